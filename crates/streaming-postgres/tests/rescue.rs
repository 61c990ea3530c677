//! Acknowledged writes outlive the queue that acknowledged them: two queues
//! of each kind on one PostgreSQL database share a pending-writes store (in
//! process here; Redis in the service, whose instances are killed for real
//! in the service's own tests). The first queue acknowledges and is dropped
//! before its flush, as a killed instance is; the second writes what it held.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use streaming_core::adapters::MemoryPendingWrites;
use streaming_core::contract::infra_var;
use streaming_core::domain::{PlaybackAction, PlaybackEvent, PositionSeconds, SessionId, StreamSession, WatchProgress};
use streaming_core::ports::{EventPublisher, PendingError, PendingWrite, PendingWrites, ProgressStore, SessionStore};
use streaming_postgres::testing::{fresh_database_url, TEST_MOVIE};
use streaming_postgres::{
    PgConfig, PgDatabase, PgOutbox, PgProgressStore, PgSessionStore, WriteBehindOutbox, WriteBehindProgress,
    WriteBehindSessions,
};
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3_600);
const RESCUE_AFTER: Duration = Duration::from_millis(300);

async fn database() -> (String, PgDatabase) {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url.clone())).await.unwrap();
    db.migrate().await.unwrap();
    (url, db)
}

fn movie() -> streaming_core::domain::MediaId {
    TEST_MOVIE.parse().unwrap()
}

fn report(user: usize, session: SessionId, sequence: u64) -> WatchProgress {
    WatchProgress {
        user: format!("rescued-{user}").parse().unwrap(),
        media: movie(),
        position: PositionSeconds::new(sequence as f64 + 0.5).unwrap(),
        last_watched_at: OffsetDateTime::now_utc(),
        watched: false,
        session: Some(session),
        sequence,
    }
}

/// Waits up to 5 s for `done`.
async fn eventually<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn progress_acknowledged_by_a_queue_that_died_is_written_by_another() {
    let (_, db) = database().await;
    let durable = PgProgressStore::new(db.clone());
    let pending = Arc::new(MemoryPendingWrites::default());
    let sessions: Vec<SessionId> = (0..50).map(|_| SessionId::random()).collect();

    let dying = WriteBehindProgress::start(durable.clone(), 1_000, HOUR);
    dying.hold_in(pending.clone(), RESCUE_AFTER);
    for (user, session) in sessions.iter().enumerate() {
        for sequence in 1..=3 {
            dying.record(report(user, *session, sequence)).await.unwrap();
        }
    }
    assert_eq!(pending.held("progress"), 50, "the newest update of each (user, movie) is held");
    drop(dying);
    for user in 0..50 {
        let stored = durable.get(&format!("rescued-{user}").parse().unwrap(), &movie()).await.unwrap();
        assert!(stored.is_none(), "nothing was flushed");
    }

    let rescuer = WriteBehindProgress::start(durable.clone(), 1_000, HOUR);
    let refreshed = Arc::new(std::sync::Mutex::new(0));
    let counter = refreshed.clone();
    rescuer.on_rescued(Arc::new(move |batch: &[WatchProgress]| *counter.lock().unwrap() += batch.len()));
    rescuer.hold_in(pending.clone(), RESCUE_AFTER);
    eventually("every acknowledged update reached the store", || async { pending.held("progress") == 0 }).await;
    for (user, session) in sessions.iter().enumerate() {
        let stored = durable.get(&format!("rescued-{user}").parse().unwrap(), &movie()).await.unwrap().unwrap();
        assert_eq!((stored.session, stored.sequence, stored.position.get()), (Some(*session), 3, 3.5));
    }
    assert_eq!(*refreshed.lock().unwrap(), 50, "the cache in front was told");
}

#[tokio::test]
async fn a_live_queue_releases_what_it_flushed_and_nothing_is_rescued_twice() {
    let (_, db) = database().await;
    let durable = PgProgressStore::new(db.clone());
    let pending = Arc::new(MemoryPendingWrites::default());
    let queue = WriteBehindProgress::start(durable.clone(), 1_000, Duration::from_millis(50));
    queue.hold_in(pending.clone(), HOUR);
    let session = SessionId::random();
    for sequence in 1..=5 {
        queue.record(report(0, session, sequence)).await.unwrap();
    }
    eventually("the flush released the held update", || async { pending.held("progress") == 0 }).await;
    // A stop written through releases the report it replaced.
    let slow = WriteBehindProgress::start(durable.clone(), 1_000, HOUR);
    slow.hold_in(pending.clone(), HOUR);
    slow.record(report(1, session, 1)).await.unwrap();
    assert_eq!(pending.held("progress"), 1);
    slow.record_durably(report(1, session, 2)).await.unwrap();
    assert_eq!(pending.held("progress"), 0, "the stop superseded the held report");
}

/// A pending-writes store that is down.
struct Down;

#[async_trait]
impl PendingWrites for Down {
    async fn hold(&self, _: &str, _: Vec<PendingWrite>) -> Result<(), PendingError> {
        Err(PendingError::Unavailable("down".into()))
    }
    async fn release(&self, _: &str, _: Vec<(String, String)>) -> Result<(), PendingError> {
        Err(PendingError::Unavailable("down".into()))
    }
    async fn claim(&self, _: &str, _: Duration, _: Duration, _: usize) -> Result<Vec<PendingWrite>, PendingError> {
        Err(PendingError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn what_cannot_be_held_is_written_through_before_it_is_acknowledged() {
    let (url, db) = database().await;
    let durable = PgProgressStore::new(db.clone());
    let progress = WriteBehindProgress::start(durable.clone(), 1_000, HOUR);
    progress.hold_in(Arc::new(Down), HOUR);
    let session = SessionId::random();
    progress.record(report(7, session, 4)).await.unwrap();
    let stored = durable.get(&"rescued-7".parse().unwrap(), &movie()).await.unwrap().unwrap();
    assert_eq!(stored.sequence, 4, "in the store when acknowledged");

    let sessions = WriteBehindSessions::start(PgSessionStore::new(db.clone()), 1_000, HOUR, HOUR);
    sessions.hold_in(Arc::new(Down), HOUR);
    let opened = open_session(&sessions).await;
    let later = opened.started_at + Duration::from_secs(30);
    sessions.touch(&opened.id, later).await.unwrap();
    let row = PgSessionStore::new(db.clone()).get(&opened.id).await.unwrap().unwrap();
    assert_eq!(row.last_heartbeat_at, later);

    let outbox = WriteBehindOutbox::start(PgOutbox::new(db.clone()), 1_000, HOUR);
    outbox.hold_in(Arc::new(Down), HOUR);
    outbox.publish(event(&opened)).await.unwrap();
    assert_eq!(outbox.depth(), 0, "the queue was written with the event");
    assert_eq!(count(&url, "SELECT count(*) FROM outbox").await, 1);
}

async fn open_session(sessions: &WriteBehindSessions<PgSessionStore>) -> StreamSession {
    // Whole microseconds, as PostgreSQL stores them.
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let session = streaming_postgres::testing::open_session("rescued-viewer", now);
    sessions.open(session.clone()).await.unwrap();
    session
}

fn event(session: &StreamSession) -> PlaybackEvent {
    PlaybackEvent::new(
        PlaybackAction::Progress,
        &session.user,
        &session.media,
        Some(session.id),
        Some(PositionSeconds::new(12.0).unwrap()),
        OffsetDateTime::now_utc(),
    )
}

async fn count(url: &str, sql: &str) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let mut connection = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<Count> = diesel::sql_query(sql).load(&mut connection).await.unwrap();
    rows[0].count
}

#[tokio::test]
async fn heartbeats_and_events_acknowledged_by_queues_that_died_are_written_by_others() {
    let (url, db) = database().await;
    let pending = Arc::new(MemoryPendingWrites::default());
    let store = PgSessionStore::new(db.clone());

    let dying = WriteBehindSessions::start(store.clone(), 1_000, HOUR, HOUR);
    dying.hold_in(pending.clone(), RESCUE_AFTER);
    let dying_outbox = WriteBehindOutbox::start(PgOutbox::new(db.clone()), 1_000, HOUR);
    dying_outbox.hold_in(pending.clone(), RESCUE_AFTER);
    let mut opened = Vec::new();
    let mut events = Vec::new();
    for _ in 0..20 {
        let session = open_session(&dying).await;
        dying.touch(&session.id, session.started_at + Duration::from_secs(10)).await.unwrap();
        let event = event(&session);
        dying_outbox.publish(event.clone()).await.unwrap();
        events.push(event);
        opened.push(session);
    }
    assert_eq!((pending.held("sessions"), pending.held("outbox")), (20, 20));
    drop((dying, dying_outbox));

    let rescuer = WriteBehindSessions::start(store.clone(), 1_000, HOUR, HOUR);
    rescuer.hold_in(pending.clone(), RESCUE_AFTER);
    let rescuer_outbox = WriteBehindOutbox::start(PgOutbox::new(db.clone()), 1_000, HOUR);
    rescuer_outbox.hold_in(pending.clone(), RESCUE_AFTER);
    eventually("every held heartbeat and event was written", || async {
        pending.held("sessions") + pending.held("outbox") == 0
    })
    .await;
    for session in &opened {
        let row = store.get(&session.id).await.unwrap().unwrap();
        assert_eq!(row.last_heartbeat_at, session.started_at + Duration::from_secs(10));
    }
    assert_eq!(count(&url, "SELECT count(*) FROM outbox WHERE topic = 'stream.progress'").await, 20);

    // The same events flushed again (an instance that was only slow) are not doubled.
    let late = WriteBehindOutbox::start(PgOutbox::new(db.clone()), 1_000, HOUR);
    for event in events {
        late.publish(event).await.unwrap();
    }
    assert!(late.flush().await);
    assert_eq!(count(&url, "SELECT count(*) FROM outbox").await, 20);
}

/// A player reporting every second while its heartbeats wait (here, for a
/// flush that never comes) has one held a step apart: what a kill would
/// lose stays within the step, without a hold per report.
#[tokio::test]
async fn a_chatty_players_heartbeats_are_held_a_step_apart() {
    let (_, db) = database().await;
    let pending = Arc::new(MemoryPendingWrites::default());
    let sessions = WriteBehindSessions::start(PgSessionStore::new(db.clone()), 1_000, HOUR, HOUR);
    sessions.hold_in(pending.clone(), HOUR);
    let opened = open_session(&sessions).await;
    let mut held = std::collections::BTreeSet::new();
    for second in 6..=20 {
        let at = opened.started_at + Duration::from_secs(second);
        sessions.touch(&opened.id, at).await.unwrap();
        let claimed = pending.claim("sessions", Duration::ZERO, Duration::ZERO, 10).await.unwrap();
        let nanos: i128 = claimed[0].body.split_once(' ').unwrap().1.parse().unwrap();
        let held_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
        assert!(at - held_at < streaming_postgres::HEARTBEAT_STEP, "at +{second} s the held heartbeat is {held_at}");
        held.insert(held_at);
    }
    assert_eq!(held.len(), 3, "held at +6, +11 and +16 s: {held:?}");
}

/// A heartbeat newer than the one held (within the step, so not held
/// again) is what the flush writes: the flush still releases the held one,
/// so a live instance leaves nothing for the rescuers to write again.
#[tokio::test]
async fn a_flush_releases_the_held_heartbeat_though_a_newer_one_was_written() {
    let (_, db) = database().await;
    let pending = Arc::new(MemoryPendingWrites::default());
    let sessions = WriteBehindSessions::start(PgSessionStore::new(db.clone()), 1_000, HOUR, HOUR);
    sessions.hold_in(pending.clone(), HOUR);
    let opened = open_session(&sessions).await;
    sessions.touch(&opened.id, opened.started_at + Duration::from_secs(6)).await.unwrap();
    sessions.touch(&opened.id, opened.started_at + Duration::from_secs(8)).await.unwrap();
    assert_eq!(pending.held("sessions"), 1);
    assert!(sessions.flush().await);
    assert_eq!(pending.held("sessions"), 0, "the flush released the held heartbeat");
    let row = sessions.get(&opened.id).await.unwrap().unwrap();
    assert_eq!(row.last_heartbeat_at, opened.started_at + Duration::from_secs(8));
}

/// A progress store that refuses writes while `down` is set.
struct Flaky {
    inner: PgProgressStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl ProgressStore for Flaky {
    async fn get(
        &self,
        user: &streaming_core::domain::UserId,
        media: &streaming_core::domain::MediaId,
    ) -> Result<Option<WatchProgress>, streaming_core::ports::ProgressError> {
        self.inner.get(user, media).await
    }

    async fn record(
        &self,
        progress: WatchProgress,
    ) -> Result<streaming_core::ports::RecordOutcome, streaming_core::ports::ProgressError> {
        self.record_many(vec![progress.clone()]).await?;
        self.inner.record(progress).await
    }

    async fn record_many(&self, batch: Vec<WatchProgress>) -> Result<(), streaming_core::ports::ProgressError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(streaming_core::ports::ProgressError::Unavailable("down".into()));
        }
        self.inner.record_many(batch).await
    }
}

/// The store is down when the rescuer first claims another instance's
/// writes: it tries them again each round, not only after its lease.
#[tokio::test]
async fn a_rescue_that_found_the_store_down_is_tried_again_at_once_when_it_is_back() {
    let (_, db) = database().await;
    let durable = PgProgressStore::new(db.clone());
    let pending = Arc::new(MemoryPendingWrites::default());
    let dying = WriteBehindProgress::start(durable.clone(), 1_000, HOUR);
    dying.hold_in(pending.clone(), HOUR);
    let session = SessionId::random();
    for user in 0..10 {
        dying.record(report(100 + user, session, 1)).await.unwrap();
    }
    drop(dying);

    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let rescuer = WriteBehindProgress::start(Flaky { inner: durable.clone(), down: down.clone() }, 1_000, HOUR);
    rescuer.hold_in(pending.clone(), RESCUE_AFTER);
    tokio::time::sleep(RESCUE_AFTER * 3).await;
    assert_eq!(pending.held("progress"), 10, "claimed, not written");
    down.store(false, std::sync::atomic::Ordering::Relaxed);
    eventually("written within moments of the store's return", || async { pending.held("progress") == 0 }).await;
    let stored = durable.get(&"rescued-105".parse().unwrap(), &movie()).await.unwrap();
    assert_eq!(stored.map(|p| p.sequence), Some(1));
}
