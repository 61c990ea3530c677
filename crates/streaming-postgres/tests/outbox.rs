//! Session changes and their outbox rows commit together.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use streaming_core::contract::infra_var;
use streaming_core::domain::{PlaybackAction, PlaybackEvent, PositionSeconds, SessionId, StreamSession};
use streaming_core::ports::{
    CloseOutcome, EventHandling, EventPublisher, OutboxRecord, OutboxSink, SessionError, SessionStore, SinkError,
};
use streaming_postgres::testing::{fresh_database_url, open_session};
use streaming_postgres::{PgConfig, PgDatabase, PgOutbox, PgSessionStore, RelayError, RelayOutcome, WriteBehindOutbox};
use time::OffsetDateTime;

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = Text)]
    topic: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = BigInt)]
    position: i64,
}

async fn setup() -> (String, PgDatabase) {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url.clone())).await.unwrap();
    db.migrate().await.unwrap();
    (url, db)
}

async fn rows(url: &str) -> Vec<Row> {
    let mut connection = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(
        "SELECT topic, key, payload->>'action' AS action, COALESCE((payload->>'position_seconds')::bigint, -1) AS position \
         FROM outbox ORDER BY id",
    )
    .load(&mut connection)
    .await
    .unwrap()
}

fn session() -> StreamSession {
    open_session("viewer", OffsetDateTime::now_utc())
}

fn event(session: &StreamSession, action: PlaybackAction, position: f64) -> PlaybackEvent {
    PlaybackEvent {
        event_id: uuid::Uuid::from_u128(rand_id()),
        user: session.user.clone(),
        media: session.media.clone(),
        session: Some(session.id),
        action,
        position: Some(PositionSeconds::new(position).unwrap()),
        timestamp: OffsetDateTime::now_utc(),
    }
}

fn rand_id() -> u128 {
    SessionId::random().as_uuid().as_u128()
}

#[tokio::test]
async fn start_progress_and_stop_land_in_the_outbox_in_order() {
    let (url, db) = setup().await;
    let (sessions, outbox) = (PgSessionStore::new(db.clone()), PgOutbox::new(db));
    let s = session();
    assert_eq!(
        sessions.open_with_event(s.clone(), &event(&s, PlaybackAction::Start, 0.0)).await.unwrap(),
        EventHandling::Recorded
    );
    outbox.publish(event(&s, PlaybackAction::Progress, 30.0)).await.unwrap();
    let stop = event(&s, PlaybackAction::Stop, 42.0);
    let (closed, handling) = sessions.close_with_event(&s.id, OffsetDateTime::now_utc(), &stop).await.unwrap();
    assert!(matches!(closed, CloseOutcome::Closed(_)));
    assert_eq!(handling, EventHandling::Recorded);
    let (again, handling) = sessions.close_with_event(&s.id, OffsetDateTime::now_utc(), &stop).await.unwrap();
    assert!(matches!(again, CloseOutcome::AlreadyClosed(_)));
    assert_eq!(handling, EventHandling::NotTaken, "a second stop records nothing");

    let row = |topic: &str, action: &str, position: i64| Row {
        topic: topic.into(),
        key: "viewer".into(),
        action: action.into(),
        position,
    };
    assert_eq!(
        rows(&url).await,
        vec![
            row("stream.start", "stream_start", 0),
            row("stream.progress", "stream_progress", 30),
            row("stream.stop", "stream_stop", 42)
        ]
    );
}

#[tokio::test]
async fn a_failed_outbox_write_rolls_the_session_back() {
    let (url, db) = setup().await;
    let sessions = PgSessionStore::new(db);
    let first = session();
    let start = event(&first, PlaybackAction::Start, 0.0);
    sessions.open_with_event(first, &start).await.unwrap();
    // The same event id again: the outbox refuses it, so the session must not exist either.
    let second = session();
    let result = sessions.open_with_event(second.clone(), &start).await;
    assert_eq!(result, Err(SessionError::Duplicate));
    assert_eq!(sessions.get(&second.id).await.unwrap(), None, "rolled back with its event");
    assert_eq!(rows(&url).await.len(), 1);
}

/// A sink that records what it was sent, fails while `failing` is set, and
/// waits for `gate` before answering when one is given.
#[derive(Default)]
struct RecordingSink {
    sent: std::sync::Mutex<Vec<Vec<uuid::Uuid>>>,
    failing: std::sync::atomic::AtomicBool,
    gate: Option<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl OutboxSink for RecordingSink {
    async fn send(&self, rows: &[OutboxRecord]) -> Result<(), SinkError> {
        if let Some(gate) = &self.gate {
            let _permit = gate.acquire().await.unwrap();
        }
        self.sent.lock().unwrap().push(rows.iter().map(|r| r.event_id).collect());
        if std::sync::atomic::AtomicBool::load(&self.failing, std::sync::atomic::Ordering::Relaxed) {
            return Err(SinkError::Unavailable("broker down".into()));
        }
        Ok(())
    }
}

async fn publish_progress(outbox: &PgOutbox, session: &StreamSession, count: u32) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for position in 0..count {
        let event = event(session, PlaybackAction::Progress, f64::from(position));
        ids.push(event.event_id);
        outbox.publish(event).await.unwrap();
    }
    ids
}

#[tokio::test]
async fn the_relay_sends_rows_in_order_and_marks_them_published() {
    let (_, db) = setup().await;
    let outbox = PgOutbox::new(db.clone());
    let ids = publish_progress(&outbox, &session(), 7).await;
    assert_eq!(outbox.backlog().await.unwrap(), 7);

    let sink = RecordingSink::default();
    assert_eq!(outbox.relay_batch(5, &sink).await.unwrap(), RelayOutcome::Relayed(5));
    assert_eq!(outbox.relay_batch(5, &sink).await.unwrap(), RelayOutcome::Relayed(2));
    assert_eq!(outbox.relay_batch(5, &sink).await.unwrap(), RelayOutcome::Relayed(0));
    assert_eq!(sink.sent.lock().unwrap().concat(), ids, "every row once, in insertion order");
    assert_eq!(outbox.backlog().await.unwrap(), 0);

    assert_eq!(
        outbox.prune_published(OffsetDateTime::now_utc() - std::time::Duration::from_secs(60)).await.unwrap(),
        0
    );
    assert_eq!(outbox.prune_published(OffsetDateTime::now_utc() + std::time::Duration::from_secs(1)).await.unwrap(), 7);
}

#[tokio::test]
async fn a_failed_send_marks_nothing_and_the_same_events_go_again() {
    let (_, db) = setup().await;
    let outbox = PgOutbox::new(db.clone());
    let ids = publish_progress(&outbox, &session(), 3).await;
    let sink = RecordingSink::default();
    sink.failing.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(outbox.relay_batch(10, &sink).await, Err(RelayError::Sink(_))));
    assert_eq!(outbox.backlog().await.unwrap(), 3, "nothing marked");
    sink.failing.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(outbox.relay_batch(10, &sink).await.unwrap(), RelayOutcome::Relayed(3));
    assert_eq!(*sink.sent.lock().unwrap(), vec![ids.clone(), ids], "the redelivery carries the same event ids");
}

#[tokio::test]
async fn one_relay_at_a_time_owns_the_outbox() {
    let (_, db) = setup().await;
    let outbox = PgOutbox::new(db.clone());
    publish_progress(&outbox, &session(), 4).await;
    let slow = std::sync::Arc::new(RecordingSink { gate: Some(tokio::sync::Semaphore::new(0)), ..Default::default() });
    let first = tokio::spawn({
        let (outbox, slow) = (outbox.clone(), slow.clone());
        async move { outbox.relay_batch(10, &*slow).await }
    });
    // Wait until the first relay holds the lock and is sending.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other = RecordingSink::default();
    assert_eq!(outbox.relay_batch(10, &other).await.unwrap(), RelayOutcome::Busy);
    slow.gate.as_ref().unwrap().add_permits(1);
    assert_eq!(first.await.unwrap().unwrap(), RelayOutcome::Relayed(4));
    assert_eq!(outbox.relay_batch(10, &other).await.unwrap(), RelayOutcome::Relayed(0), "nothing is sent twice");
    assert!(other.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn queued_progress_events_land_in_one_batch_in_order_before_the_stop() {
    let (url, db) = setup().await;
    let sessions = PgSessionStore::new(db.clone());
    // An interval no test waits for: only the explicit flushes write.
    let queue = WriteBehindOutbox::start(PgOutbox::new(db), 100, std::time::Duration::from_secs(3600));
    let s = session();
    sessions.open_with_event(s.clone(), &event(&s, PlaybackAction::Start, 0.0)).await.unwrap();
    for position in [10.0, 20.0, 30.0] {
        queue.publish(event(&s, PlaybackAction::Progress, position)).await.unwrap();
    }
    assert_eq!(rows(&url).await.len(), 1, "progress events wait in the queue");
    assert_eq!(queue.depth(), 3);

    // What a stop does: the queue first, then its own event in the session's transaction.
    EventPublisher::flush(&*queue).await.unwrap();
    let stop = event(&s, PlaybackAction::Stop, 42.0);
    sessions.close_with_event(&s.id, OffsetDateTime::now_utc(), &stop).await.unwrap();
    let seen: Vec<(String, i64)> = rows(&url).await.into_iter().map(|r| (r.action, r.position)).collect();
    let expected = [("stream_start", 0), ("stream_progress", 10), ("stream_progress", 20), ("stream_progress", 30)];
    let mut expected: Vec<(String, i64)> = expected.iter().map(|(a, p)| ((*a).to_owned(), *p)).collect();
    expected.push(("stream_stop".into(), 42));
    assert_eq!(seen, expected);
    assert_eq!(counted(&queue.stats().flushes), 1, "one batch");
}

#[tokio::test]
async fn a_full_outbox_queue_is_written_by_the_next_event_and_drain_empties_it() {
    let (url, db) = setup().await;
    let queue = WriteBehindOutbox::start(PgOutbox::new(db), 2, std::time::Duration::from_secs(3600));
    let s = session();
    for position in [1.0, 2.0, 3.0] {
        queue.publish(event(&s, PlaybackAction::Progress, position)).await.unwrap();
    }
    let positions = |rows: Vec<Row>| rows.into_iter().map(|r| r.position).collect::<Vec<_>>();
    assert_eq!(positions(rows(&url).await), vec![1, 2], "the third found the queue full and wrote it");
    assert_eq!(queue.depth(), 1);
    queue.drain(std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(positions(rows(&url).await), vec![1, 2, 3]);
    assert_eq!(counted(&queue.stats().overflowed), 1);
}

#[tokio::test]
async fn a_failed_outbox_flush_keeps_the_events() {
    let port = streaming_core::contract::free_port();
    let config = PgConfig {
        acquire_timeout: std::time::Duration::from_millis(200),
        ..PgConfig::new(format!("postgres://nobody:nothing@127.0.0.1:{port}/none"))
    };
    let queue = WriteBehindOutbox::start(
        PgOutbox::new(PgDatabase::connect(&config).await.unwrap()),
        10,
        std::time::Duration::from_secs(3600),
    );
    let s = session();
    let first = event(&s, PlaybackAction::Progress, 1.0);
    queue.publish(first.clone()).await.unwrap();
    assert!(!queue.flush().await, "nothing written");
    queue.publish(event(&s, PlaybackAction::Progress, 2.0)).await.unwrap();
    assert_eq!(queue.depth(), 2, "the failed batch is kept");
    assert!(EventPublisher::flush(&*queue).await.is_err(), "a stop learns that the queue could not be written");
    assert!(queue.drain(std::time::Duration::from_millis(300)).await.is_err());
    assert!(counted(&queue.stats().failed_flushes) >= 2);
}

/// A counter's value (`load` alone would be diesel's).
fn counted(counter: &std::sync::atomic::AtomicU64) -> u64 {
    std::sync::atomic::AtomicU64::load(counter, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_batch_larger_than_one_statement_lands_whole_and_in_order() {
    let (url, db) = setup().await;
    let outbox = PgOutbox::new(db);
    let s = session();
    let count = streaming_postgres::INSERT_CHUNK * 2 + 500;
    let events: Vec<PlaybackEvent> = (0..count).map(|i| event(&s, PlaybackAction::Progress, i as f64)).collect();
    outbox.insert_many(&events).await.unwrap();
    let positions: Vec<i64> = rows(&url).await.into_iter().map(|r| r.position).collect();
    assert_eq!(positions, (0..count as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_event_written_twice_is_in_the_outbox_once() {
    let (url, db) = setup().await;
    let outbox = PgOutbox::new(db);
    let s = session();
    let events: Vec<PlaybackEvent> = (0..3).map(|i| event(&s, PlaybackAction::Progress, i as f64)).collect();
    outbox.insert_many(&events[..2]).await.unwrap();
    // A flush after a rescue of the same events (or the reverse) adds only the new one.
    outbox.insert_many(&events).await.unwrap();
    let positions: Vec<i64> = rows(&url).await.into_iter().map(|r| r.position).collect();
    assert_eq!(positions, [0, 1, 2]);
}

#[tokio::test]
async fn a_refused_row_in_a_later_statement_writes_none_of_the_batch() {
    let (url, db) = setup().await;
    let outbox = PgOutbox::new(db);
    let s = session();
    let events: Vec<PlaybackEvent> =
        (0..streaming_postgres::INSERT_CHUNK + 10).map(|i| event(&s, PlaybackAction::Progress, i as f64)).collect();
    // The database refuses the last event (a repeated id would only be skipped):
    // the second statement fails.
    let last = events.last().unwrap().position.unwrap().get();
    let mut connection = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query(format!(
        "ALTER TABLE outbox ADD CONSTRAINT refuse_last CHECK (payload->>'position_seconds' <> '{last}')"
    ))
    .execute(&mut connection)
    .await
    .unwrap();
    assert!(outbox.insert_many(&events).await.is_err());
    assert!(rows(&url).await.is_empty(), "the first statement was rolled back with it");
}
