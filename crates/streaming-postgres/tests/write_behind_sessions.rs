//! Cached sessions and heartbeats written behind, on a real PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::adapters::MemorySessionStore;
use streaming_core::contract::{self, infra_var};
use streaming_core::domain::{SessionId, StreamSession, UserId};
use streaming_core::ports::{CloseOutcome, EventHandling, SessionError, SessionStore};
use streaming_postgres::testing::{fresh_database_url, open_session};
use streaming_postgres::{PgConfig, PgDatabase, PgSessionStore, WriteBehindSessions};
use time::OffsetDateTime;

async fn store() -> PgSessionStore {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url)).await.unwrap();
    db.migrate().await.unwrap();
    PgSessionStore::new(db)
}

const HOUR: Duration = Duration::from_secs(3600);

fn start_time() -> OffsetDateTime {
    // Whole microseconds, as PostgreSQL stores them.
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

#[tokio::test]
async fn keeps_the_session_store_contract() {
    let sessions = WriteBehindSessions::start(store().await, 1_000, HOUR, Duration::from_millis(100));
    contract::session_store(&*sessions).await;
}

#[tokio::test]
async fn many_heartbeats_become_one_write_per_session_per_flush() {
    let durable = store().await;
    let sessions = WriteBehindSessions::start(durable.clone(), 1_000, HOUR, HOUR);
    let t0 = start_time();
    let open: Vec<StreamSession> = (0..40).map(|i| open_session(&format!("viewer-{i}"), t0)).collect();
    for s in &open {
        sessions.open(s.clone()).await.unwrap();
    }
    for second in 1..=20 {
        for s in &open {
            sessions.touch(&s.id, t0 + Duration::from_secs(second)).await.unwrap();
            assert!(sessions.get(&s.id).await.unwrap().unwrap().ended_at.is_none());
        }
    }
    assert_eq!(sessions.depth(), 40, "one queued heartbeat per session");
    assert_eq!(sessions.stats().misses.load(Ordering::Relaxed), 0, "every read was answered from memory");
    let probe = &open[7];
    assert_eq!(durable.get(&probe.id).await.unwrap().unwrap().last_heartbeat_at, t0, "nothing written yet");
    assert_eq!(sessions.get(&probe.id).await.unwrap().unwrap().last_heartbeat_at, t0 + Duration::from_secs(20));

    assert!(sessions.flush().await);
    assert_eq!(sessions.stats().flushes.load(Ordering::Relaxed), 1, "one statement for the whole batch");
    for s in &open {
        assert_eq!(durable.get(&s.id).await.unwrap().unwrap().last_heartbeat_at, t0 + Duration::from_secs(20));
    }
}

#[tokio::test]
async fn a_session_opened_elsewhere_is_read_once_and_a_close_is_seen_at_once() {
    let durable = store().await;
    let here = WriteBehindSessions::start(durable.clone(), 1_000, HOUR, HOUR);
    let elsewhere = WriteBehindSessions::start(durable.clone(), 1_000, HOUR, HOUR);
    let s = open_session("viewer", start_time());
    elsewhere.open(s.clone()).await.unwrap();

    assert_eq!(here.get(&s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(here.get(&s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(here.stats().misses.load(Ordering::Relaxed), 1, "read from the database once");
    assert_eq!(here.get(&SessionId::random()).await.unwrap(), None);

    let ended = start_time() + Duration::from_secs(30);
    assert!(matches!(here.close(&s.id, ended).await.unwrap(), CloseOutcome::Closed(_)));
    assert_eq!(here.get(&s.id).await.unwrap().unwrap().ended_at, Some(ended), "the cached copy is closed too");
    // The other instance learns it from the store once its copy expires; the
    // store refuses its late heartbeat meanwhile.
    elsewhere.touch(&s.id, ended + Duration::from_secs(10)).await.unwrap();
    elsewhere.drain(Duration::from_secs(2)).await.unwrap();
    assert_eq!(durable.get(&s.id).await.unwrap().unwrap().last_heartbeat_at, ended);
}

#[tokio::test]
async fn a_session_in_use_is_read_again_and_a_stop_elsewhere_is_seen_within_the_ttl() {
    let durable = store().await;
    let ttl = Duration::from_millis(400);
    let here = WriteBehindSessions::start(durable.clone(), 1_000, ttl, HOUR);
    let elsewhere = WriteBehindSessions::start(durable.clone(), 1_000, HOUR, HOUR);
    let t0 = start_time();
    let s = open_session("viewer", t0);
    here.open(s.clone()).await.unwrap();

    // Reports keep coming here; the row is read again while they do, and
    // the newest heartbeat (queued, not written) is never moved back by it.
    let mut beat = t0;
    let until = std::time::Instant::now() + ttl * 2;
    while std::time::Instant::now() < until {
        beat += Duration::from_secs(1);
        here.touch(&s.id, beat).await.unwrap();
        let read = here.get(&s.id).await.unwrap().unwrap();
        assert_eq!((read.ended_at, read.last_heartbeat_at), (None, beat));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read_again = here.stats().misses.load(Ordering::Relaxed) + here.stats().read_ahead.load(Ordering::Relaxed);
    assert!(read_again >= 1, "read again while in use");

    // Stopped through another instance: seen here within the TTL.
    let ended = t0 + Duration::from_secs(3_600);
    assert!(matches!(elsewhere.close(&s.id, ended).await.unwrap(), CloseOutcome::Closed(_)));
    let deadline = std::time::Instant::now() + ttl + Duration::from_millis(200);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        here.touch(&s.id, beat).await.unwrap();
        seen = here.get(&s.id).await.unwrap().unwrap().ended_at;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(ended), "the stop made elsewhere reached this instance's copy");
}

#[tokio::test]
async fn a_chatty_player_s_heartbeats_are_written_a_step_apart_and_still_count_here() {
    let durable = store().await;
    let sessions = WriteBehindSessions::start(durable.clone(), 1_000, HOUR, HOUR);
    let t0 = start_time();
    let s = open_session("chatty", t0);
    sessions.open(s.clone()).await.unwrap();
    let user: UserId = "chatty".parse().unwrap();
    let second = |n: u64| t0 + Duration::from_secs(n);

    // Less than a step after the last written heartbeat: held in memory.
    sessions.touch(&s.id, second(1)).await.unwrap();
    assert_eq!(sessions.depth(), 0);
    assert_eq!(sessions.stats().held.load(Ordering::Relaxed), 1);
    assert_eq!(sessions.get(&s.id).await.unwrap().unwrap().last_heartbeat_at, second(1));
    let alive = sessions.open_sessions(&user, second(1)).await.unwrap();
    assert_eq!(alive.iter().map(|a| a.last_heartbeat_at).collect::<Vec<_>>(), [second(1)], "held ones count here");

    // A step on: queued, and later ones ride along until the flush.
    let step = streaming_postgres::HEARTBEAT_STEP.as_secs();
    sessions.touch(&s.id, second(step)).await.unwrap();
    sessions.touch(&s.id, second(step + 1)).await.unwrap();
    assert_eq!(sessions.depth(), 1);
    assert!(sessions.flush().await);
    assert_eq!(durable.get(&s.id).await.unwrap().unwrap().last_heartbeat_at, second(step + 1));

    // The step counts from the last queued one.
    sessions.touch(&s.id, second(2 * step)).await.unwrap();
    assert_eq!(sessions.depth(), 0, "less than a step after the last queued heartbeat");
    sessions.touch(&s.id, second(2 * step + 1)).await.unwrap();
    assert_eq!(sessions.depth(), 1);
    assert!(sessions.flush().await);
    assert_eq!(durable.get(&s.id).await.unwrap().unwrap().last_heartbeat_at, second(2 * step + 1));

    // A stopped session's heartbeats go nowhere.
    let ended = second(100);
    assert!(matches!(sessions.close(&s.id, ended).await.unwrap(), CloseOutcome::Closed(_)));
    sessions.touch(&s.id, second(200)).await.unwrap();
    assert_eq!(sessions.depth(), 0);
}

#[tokio::test]
async fn queued_heartbeats_count_for_open_sessions() {
    let durable = store().await;
    let sessions = WriteBehindSessions::start(durable.clone(), 1_000, HOUR, HOUR);
    let t0 = start_time();
    let idle = open_session("viewer", t0);
    let active = open_session("viewer", t0);
    sessions.open(idle.clone()).await.unwrap();
    sessions.open(active.clone()).await.unwrap();
    sessions.touch(&active.id, t0 + Duration::from_secs(50)).await.unwrap();
    let user: UserId = "viewer".parse().unwrap();
    let alive = sessions.open_sessions(&user, t0 + Duration::from_secs(30)).await.unwrap();
    assert_eq!(alive.iter().map(|s| s.id).collect::<Vec<_>>(), vec![active.id], "the queued heartbeat counts");
    assert_eq!(alive[0].last_heartbeat_at, t0 + Duration::from_secs(50));
    assert!(durable.open_sessions(&user, t0 + Duration::from_secs(30)).await.unwrap().is_empty(), "not flushed yet");
}

#[tokio::test]
async fn a_full_queue_writes_through() {
    let durable = store().await;
    let sessions = WriteBehindSessions::start(durable.clone(), 2, HOUR, HOUR);
    let t0 = start_time();
    let open: Vec<StreamSession> = (0..3).map(|i| open_session(&format!("viewer-{i}"), t0)).collect();
    for s in &open {
        sessions.open(s.clone()).await.unwrap();
        sessions.touch(&s.id, t0 + Duration::from_secs(5)).await.unwrap();
    }
    assert_eq!(sessions.stats().overflowed.load(Ordering::Relaxed), 1);
    assert_eq!(durable.get(&open[2].id).await.unwrap().unwrap().last_heartbeat_at, t0 + Duration::from_secs(5));
}

/// A store whose batched touches fail while `down` is set, and take
/// `delay`, and whose reads fail while `reads_down` is set.
#[derive(Default)]
struct Flaky {
    inner: Arc<MemorySessionStore>,
    down: Arc<AtomicBool>,
    delay: Duration,
    reads_down: Arc<AtomicBool>,
}

#[async_trait]
impl SessionStore for Flaky {
    async fn open(&self, session: StreamSession) -> Result<(), SessionError> {
        self.inner.open(session).await
    }
    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError> {
        if self.reads_down.load(Ordering::Relaxed) {
            return Err(SessionError::Unavailable("database down".into()));
        }
        self.inner.get(id).await
    }
    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError> {
        self.inner.touch(id, at).await
    }
    async fn touch_many(&self, batch: Vec<(SessionId, OffsetDateTime)>) -> Result<(), SessionError> {
        tokio::time::sleep(self.delay).await;
        if self.down.load(Ordering::Relaxed) {
            return Err(SessionError::Unavailable("database down".into()));
        }
        self.inner.touch_many(batch).await
    }
    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError> {
        self.inner.close(id, ended_at).await
    }
    async fn open_sessions(&self, user: &UserId, since: OffsetDateTime) -> Result<Vec<StreamSession>, SessionError> {
        self.inner.open_sessions(user, since).await
    }
    async fn close_idle(
        &self,
        idle_before: OffsetDateTime,
        at_most: usize,
    ) -> Result<(Vec<StreamSession>, EventHandling), SessionError> {
        self.inner.close_idle(idle_before, at_most).await
    }
}

#[tokio::test]
async fn a_failed_flush_keeps_the_heartbeats_and_drain_writes_them_later() {
    let down = Arc::new(AtomicBool::new(true));
    let memory = Arc::new(MemorySessionStore::new());
    let sessions = WriteBehindSessions::start(
        Flaky { inner: memory.clone(), down: down.clone(), ..Flaky::default() },
        100,
        HOUR,
        HOUR,
    );
    let t0 = start_time();
    let s = open_session("viewer", t0);
    sessions.open(s.clone()).await.unwrap();
    sessions.touch(&s.id, t0 + Duration::from_secs(10)).await.unwrap();
    assert!(!sessions.flush().await);
    sessions.touch(&s.id, t0 + Duration::from_secs(5)).await.unwrap();
    assert!(sessions.drain(Duration::from_millis(300)).await.is_err(), "still down");
    down.store(false, Ordering::Relaxed);
    sessions.drain(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        memory.get(&s.id).await.unwrap().unwrap().last_heartbeat_at,
        t0 + Duration::from_secs(10),
        "the newest won"
    );
}

/// A reader during a flush sees the heartbeats being written: they are no
/// longer queued and not yet in the database, so it waits for the write.
#[tokio::test]
async fn a_heartbeat_being_written_still_counts_for_open_sessions() {
    let memory = Arc::new(MemorySessionStore::new());
    let slow = Flaky { inner: memory, delay: Duration::from_millis(300), ..Flaky::default() };
    let sessions = WriteBehindSessions::start(slow, 100, HOUR, HOUR);
    let t0 = start_time();
    let s = open_session("viewer", t0);
    sessions.open(s.clone()).await.unwrap();
    sessions.touch(&s.id, t0 + Duration::from_secs(100)).await.unwrap();
    let flushing = tokio::spawn({
        let sessions = sessions.clone();
        async move { sessions.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sessions.depth(), 0, "the flush has taken the queue");
    let open = sessions.open_sessions(&s.user, t0 + Duration::from_secs(50)).await.unwrap();
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), vec![s.id], "alive through the write");
    assert!(flushing.await.unwrap());
}

/// A store whose reads take 200 ms.
struct SlowReads(Arc<MemorySessionStore>);

#[async_trait]
impl SessionStore for SlowReads {
    async fn open(&self, session: StreamSession) -> Result<(), SessionError> {
        self.0.open(session).await
    }
    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.0.get(id).await
    }
    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError> {
        self.0.touch(id, at).await
    }
    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError> {
        self.0.close(id, ended_at).await
    }
    async fn open_sessions(&self, user: &UserId, since: OffsetDateTime) -> Result<Vec<StreamSession>, SessionError> {
        self.0.open_sessions(user, since).await
    }
    async fn close_idle(
        &self,
        idle_before: OffsetDateTime,
        at_most: usize,
    ) -> Result<(Vec<StreamSession>, EventHandling), SessionError> {
        self.0.close_idle(idle_before, at_most).await
    }
}

/// Sessions this instance has not seen (after a restart, or moved here by a
/// load balancer) are read from the store side by side, not one by one.
#[tokio::test(start_paused = true)]
async fn reads_of_sessions_not_seen_yet_do_not_wait_for_each_other() {
    let memory = Arc::new(MemorySessionStore::new());
    let t0 = start_time();
    let seen_elsewhere: Vec<StreamSession> = (0..5).map(|i| open_session(&format!("viewer-{i}"), t0)).collect();
    for s in &seen_elsewhere {
        memory.open(s.clone()).await.unwrap();
    }
    let sessions = WriteBehindSessions::start(SlowReads(memory), 100, HOUR, HOUR);
    let started = tokio::time::Instant::now();
    let reads: Vec<_> = seen_elsewhere
        .iter()
        .map(|s| {
            let (sessions, id) = (sessions.clone(), s.id);
            tokio::spawn(async move { sessions.get(&id).await })
        })
        .collect();
    for read in reads {
        assert!(matches!(read.await.unwrap(), Ok(Some(_))));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(400), "five 200 ms reads took {took:?}: they waited for each other");
}

/// While its row cannot be read, a cached open session is served from
/// memory, but never longer than the TTL since the row last confirmed it:
/// a stop made elsewhere during an outage must not go unseen for ever.
#[tokio::test]
async fn a_cached_session_is_not_served_past_its_ttl_while_its_row_cannot_be_read() {
    let reads_down = Arc::new(AtomicBool::new(false));
    let store = Flaky { reads_down: reads_down.clone(), ..Flaky::default() };
    let sessions = WriteBehindSessions::start(store, 100, Duration::from_millis(300), HOUR);
    let s = open_session("viewer", start_time());
    sessions.open(s.clone()).await.unwrap();
    reads_down.store(true, Ordering::Relaxed);
    assert!(sessions.get(&s.id).await.unwrap().is_some(), "within the TTL: the cached copy");
    let began = std::time::Instant::now();
    let mut last = sessions.get(&s.id).await;
    while began.elapsed() < Duration::from_millis(700) {
        last = sessions.get(&s.id).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(last.is_err(), "past the TTL with nothing confirmed: refused, not served: {last:?}");
    reads_down.store(false, Ordering::Relaxed);
    assert!(sessions.get(&s.id).await.unwrap().is_some(), "read again once the store answers");
}

/// Sessions one instance closes, one or a sweep's worth at once, leave the
/// other instances' caches at once through the broadcast.
#[tokio::test]
async fn closes_made_through_one_instance_leave_the_others_caches() {
    let store = Arc::new(MemorySessionStore::new());
    let peers = Arc::new(streaming_core::adapters::MemoryBroadcast::new());
    let over = |store: &Arc<MemorySessionStore>| Flaky { inner: store.clone(), ..Flaky::default() };
    let here = WriteBehindSessions::start(over(&store), 100, HOUR, HOUR);
    let there = WriteBehindSessions::start(over(&store), 100, HOUR, HOUR);
    here.share_closes(peers.clone());
    there.share_closes(peers);
    let t0 = start_time();
    let sessions: Vec<StreamSession> = (0..3).map(|i| open_session(&format!("viewer-{i}"), t0)).collect();
    for s in &sessions {
        here.open(s.clone()).await.unwrap();
        assert!(there.get(&s.id).await.unwrap().unwrap().ended_at.is_none(), "cached open over there");
    }
    here.close(&sessions[0].id, t0 + Duration::from_secs(1)).await.unwrap();
    here.close_idle(t0 + Duration::from_secs(3_600), 10).await.unwrap();
    for s in &sessions {
        assert!(there.get(&s.id).await.unwrap().unwrap().ended_at.is_some(), "seen closed over there at once");
    }
}

/// Sessions in use come due for a re-read of their rows every TTL. They are
/// read again ahead of that, together, so a report does not wait for its
/// session's read; a stop made elsewhere is still seen within the TTL.
#[tokio::test]
async fn sessions_in_use_are_read_again_ahead_of_their_reports() {
    let durable = store().await;
    // Read ahead every 250 ms, 500 ms ahead.
    let ttl = Duration::from_secs(2);
    let here = WriteBehindSessions::start(durable.clone(), 1_000, ttl, HOUR);
    let t0 = start_time();
    let sessions: Vec<StreamSession> = (0..20).map(|n| open_session(&format!("viewer-{n}"), t0)).collect();
    for session in &sessions {
        here.open(session.clone()).await.unwrap();
    }
    // Half of them stopped through another instance that tells no one.
    let ended = t0 + Duration::from_secs(60);
    for session in &sessions[..10] {
        assert!(matches!(durable.close(&session.id, ended).await.unwrap(), CloseOutcome::Closed(_)));
    }
    // Reports every 50 ms for more than a TTL: not one of them reads a row.
    let until = std::time::Instant::now() + ttl + Duration::from_millis(400);
    let misses_before = here.stats().misses.load(Ordering::Relaxed);
    let mut seen_closed = 0;
    while std::time::Instant::now() < until {
        seen_closed = 0;
        for session in &sessions {
            let read = here.get(&session.id).await.unwrap().unwrap();
            seen_closed += usize::from(read.ended_at == Some(ended));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(here.stats().misses.load(Ordering::Relaxed) - misses_before, 0, "a report read a row");
    assert!(here.stats().read_ahead.load(Ordering::Relaxed) >= 20, "every session was read again ahead");
    assert_eq!(seen_closed, 10, "the stops made elsewhere were seen within the TTL");
}
