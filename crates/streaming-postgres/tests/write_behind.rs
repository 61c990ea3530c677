//! Write-behind progress on a real PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::adapters::MemoryProgressStore;
use streaming_core::contract::{self, infra_var};
use streaming_core::domain::{MediaId, PositionSeconds, SessionId, UserId, WatchProgress};
use streaming_core::ports::{ProgressError, ProgressStore, RecordOutcome};
use streaming_postgres::testing::fresh_database_url;
use streaming_postgres::{PgConfig, PgDatabase, PgProgressStore, WriteBehindProgress};

async fn store() -> PgProgressStore {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url)).await.unwrap();
    db.migrate().await.unwrap();
    PgProgressStore::new(db)
}

fn report(user: &str, session: SessionId, sequence: u64) -> WatchProgress {
    WatchProgress {
        user: user.parse().unwrap(),
        media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
        position: PositionSeconds::new(sequence as f64).unwrap(),
        last_watched_at: time::OffsetDateTime::now_utc(),
        watched: false,
        session: Some(session),
        sequence,
    }
}

fn movie() -> MediaId {
    "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap()
}

#[tokio::test]
async fn keeps_the_progress_store_contract() {
    let queue = WriteBehindProgress::start(store().await, 1_000, Duration::from_millis(100));
    contract::progress_store(&*queue).await;
}

#[tokio::test]
async fn many_reports_become_one_write_per_session_per_flush() {
    let durable = store().await;
    let queue = WriteBehindProgress::start(durable.clone(), 10_000, Duration::from_secs(3600));
    let sessions: Vec<(String, SessionId)> = (0..50).map(|i| (format!("viewer-{i}"), SessionId::random())).collect();
    for sequence in 1..=20 {
        for (user, session) in &sessions {
            assert_eq!(queue.record(report(user, *session, sequence)).await.unwrap(), RecordOutcome::Applied);
        }
    }
    assert_eq!(queue.depth(), 50, "coalesced to one pending update per (user, movie)");
    let user: UserId = "viewer-7".parse().unwrap();
    assert_eq!(durable.get(&user, &movie()).await.unwrap(), None, "nothing written yet");
    assert_eq!(queue.get(&user, &movie()).await.unwrap().map(|p| p.sequence), Some(20), "but reads see it");

    assert!(queue.flush().await);
    let stats = queue.stats();
    assert_eq!((stats.queued.load(Ordering::Relaxed), stats.coalesced.load(Ordering::Relaxed)), (50, 950));
    assert_eq!(stats.flushes.load(Ordering::Relaxed), 1, "one statement for the whole batch");
    for (user, _) in &sessions {
        let stored = durable.get(&user.parse().unwrap(), &movie()).await.unwrap().unwrap();
        assert_eq!(stored.sequence, 20);
    }
    let stale = queue.record(report("viewer-7", sessions[7].1, 19)).await.unwrap();
    assert_eq!(stale, RecordOutcome::Stale, "refused at once: sequence 20 of this session was written");
    queue.flush().await;
    assert_eq!(
        durable.get(&user, &movie()).await.unwrap().unwrap().sequence,
        20,
        "the database refused the older report"
    );
}

#[tokio::test]
async fn the_flusher_writes_within_its_interval_and_drain_empties_the_queue() {
    let durable = store().await;
    let queue = WriteBehindProgress::start(durable.clone(), 100, Duration::from_millis(200));
    queue.record(report("timely", SessionId::random(), 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(durable.get(&"timely".parse().unwrap(), &movie()).await.unwrap().is_some(), "flushed by the timer");

    let slow = WriteBehindProgress::start(durable.clone(), 100, Duration::from_secs(3600));
    for i in 0..10 {
        slow.record(report(&format!("draining-{i}"), SessionId::random(), 1)).await.unwrap();
    }
    slow.drain(Duration::from_secs(5)).await.unwrap();
    assert_eq!(slow.depth(), 0);
    assert!(durable.get(&"draining-9".parse().unwrap(), &movie()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_full_queue_writes_through() {
    let durable = store().await;
    let queue = WriteBehindProgress::start(durable.clone(), 2, Duration::from_secs(3600));
    for user in ["a", "b", "c"] {
        queue.record(report(user, SessionId::random(), 1)).await.unwrap();
    }
    // The overflow also wakes the flusher, so the first two may be written by now too.
    assert!(queue.depth() <= 2);
    assert!(
        durable.get(&"c".parse().unwrap(), &movie()).await.unwrap().is_some(),
        "the third went straight to the store"
    );
    assert_eq!(queue.stats().overflowed.load(Ordering::Relaxed), 1);
}

/// A store whose writes fail while `down` is set, and whose batches take `delay`.
struct Flaky {
    inner: MemoryProgressStore,
    down: Arc<AtomicBool>,
    delay: Duration,
}

#[async_trait]
impl ProgressStore for Flaky {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        self.inner.get(user, media).await
    }
    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(ProgressError::Unavailable("database down".into()));
        }
        self.inner.record(progress).await
    }
    async fn record_many(&self, batch: Vec<WatchProgress>) -> Result<(), ProgressError> {
        tokio::time::sleep(self.delay).await;
        if self.down.load(Ordering::Relaxed) {
            return Err(ProgressError::Unavailable("database down".into()));
        }
        self.inner.record_many(batch).await
    }
}

/// A queue (no timer flushes) in front of a [`Flaky`] store that starts down.
fn flaky_queue() -> (Arc<WriteBehindProgress<Flaky>>, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(true));
    let store = Flaky { inner: MemoryProgressStore::new(), down: down.clone(), delay: Duration::ZERO };
    (WriteBehindProgress::start(store, 100, Duration::from_secs(3600)), down)
}

#[tokio::test]
async fn a_failed_flush_loses_nothing_and_newer_updates_win() {
    let (queue, down) = flaky_queue();
    let session = SessionId::random();
    queue.record(report("kept", session, 1)).await.unwrap();
    assert!(!queue.flush().await, "the flush failed");
    assert_eq!(queue.depth(), 1, "and kept the update");
    queue.record(report("kept", session, 2)).await.unwrap();
    assert!(queue.drain(Duration::from_millis(300)).await.is_err(), "still down: drain reports what is left");
    // The database returns.
    down.store(false, Ordering::Relaxed);
    queue.drain(Duration::from_secs(1)).await.unwrap();
    assert_eq!(queue.get(&"kept".parse().unwrap(), &movie()).await.unwrap().unwrap().sequence, 2);
}

#[tokio::test]
async fn a_durable_record_is_in_the_store_when_it_returns_and_replaces_the_pending_one() {
    let durable = store().await;
    let queue = WriteBehindProgress::start(durable.clone(), 100, Duration::from_secs(3600));
    let (session, user) = (SessionId::random(), "stopping".parse::<UserId>().unwrap());
    assert_eq!(queue.record(report("stopping", session, 1)).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(queue.record_durably(report("stopping", session, 2)).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(durable.get(&user, &movie()).await.unwrap().map(|p| p.sequence), Some(2), "written through");
    assert_eq!(queue.depth(), 0, "the older pending update went with it");
    assert_eq!(queue.record_durably(report("stopping", session, 2)).await.unwrap(), RecordOutcome::Stale);
    assert_eq!(queue.record(report("stopping", session, 1)).await.unwrap(), RecordOutcome::Stale);
    queue.flush().await;
    assert_eq!(durable.get(&user, &movie()).await.unwrap().map(|p| p.sequence), Some(2));
}

#[tokio::test]
async fn a_failed_durable_record_is_an_error_and_stays_queued() {
    let (queue, down) = flaky_queue();
    let session = SessionId::random();
    queue.record(report("stopping", session, 1)).await.unwrap();
    assert!(queue.record_durably(report("stopping", session, 2)).await.is_err(), "not acknowledged");
    assert_eq!(queue.depth(), 1, "kept for the flusher");
    down.store(false, Ordering::Relaxed);
    queue.drain(Duration::from_secs(1)).await.unwrap();
    assert_eq!(queue.get(&"stopping".parse().unwrap(), &movie()).await.unwrap().unwrap().sequence, 2);
}

/// A read during a flush sees the update being written: it is no longer
/// queued and not yet in the store, so the read waits for the write.
#[tokio::test]
async fn an_update_being_written_is_read_back() {
    let store = Flaky {
        inner: MemoryProgressStore::new(),
        down: Arc::new(AtomicBool::new(false)),
        delay: Duration::from_millis(300),
    };
    let queue = WriteBehindProgress::start(store, 100, Duration::from_secs(3600));
    queue.record(report("reader", SessionId::random(), 7)).await.unwrap();
    let flushing = tokio::spawn({
        let queue = queue.clone();
        async move { queue.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(queue.depth(), 0, "the flush has taken the queue");
    let read = queue.get(&"reader".parse().unwrap(), &movie()).await.unwrap();
    assert_eq!(read.map(|p| p.sequence), Some(7), "read through the write");
    assert!(flushing.await.unwrap());
}
