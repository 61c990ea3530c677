//! Session starts committed in groups: concurrent starts share transactions,
//! each session row in the same transaction as its start event, and a start
//! the database refuses fails alone; the positions starts resume from are
//! read in groups too, and so are sessions by id and users' statuses.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use streaming_core::contract::infra_var;
use streaming_core::domain::WatchProgress;
use streaming_core::domain::{PlaybackAction, PlaybackEvent, PositionSeconds, StreamSession};
use streaming_core::ports::{EventHandling, ProgressStore, SessionError, SessionStore};
use streaming_postgres::testing::{fresh_database_url, open_session, TEST_MOVIE};
use streaming_postgres::{PgConfig, PgDatabase, PgProgressStore, PgSessionStore};
use time::OffsetDateTime;

async fn setup() -> (String, PgSessionStore) {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url.clone())).await.unwrap();
    db.migrate().await.unwrap();
    (url, PgSessionStore::new(db))
}

fn session(viewer: usize) -> StreamSession {
    StreamSession {
        user_agent: Some("player/1.0".into()),
        client_ip: Some("192.0.2.7".parse().unwrap()),
        ..open_session(&format!("viewer-{viewer}"), OffsetDateTime::now_utc())
    }
}

fn start_event(session: &StreamSession) -> PlaybackEvent {
    PlaybackEvent::new(
        PlaybackAction::Start,
        &session.user,
        &session.media,
        Some(session.id),
        Some(PositionSeconds::default()),
        session.started_at,
    )
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut connection = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<Count> = diesel::sql_query(sql).load(&mut connection).await.unwrap();
    rows[0].n
}

/// Calls so far of this database's statements whose text is `LIKE pattern`
/// (`pg_stat_statements`, created here if missing).
async fn statement_calls(url: &str, pattern: &str) -> i64 {
    let mut admin = AsyncPgConnection::establish(url).await.unwrap();
    admin.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await.unwrap();
    let sql = format!(
        "SELECT coalesce(sum(calls), 0)::bigint AS n FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query LIKE '{pattern}'"
    );
    count(url, &sql).await
}

/// Starts `sessions` at once, each from its own task.
async fn start_all(
    store: &PgSessionStore,
    sessions: Vec<(StreamSession, PlaybackEvent)>,
) -> Vec<Result<EventHandling, SessionError>> {
    let calls: Vec<_> = sessions
        .into_iter()
        .map(|(session, event)| {
            let store = store.clone();
            tokio::spawn(async move { store.open_with_event(session, &event).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_share_transactions_each_with_its_event() {
    let (url, store) = setup().await;
    let starts: Vec<_> = (0..300).map(session).map(|s| (s.clone(), start_event(&s))).collect();
    for answer in start_all(&store, starts).await {
        assert_eq!(answer, Ok(EventHandling::Recorded));
    }
    assert_eq!(count(&url, "SELECT count(*) AS n FROM stream_sessions").await, 300);
    // Each session row committed in the transaction of its start event.
    let together = "SELECT count(*) AS n FROM stream_sessions s JOIN outbox o \
                    ON o.payload->>'session_id' = s.id::text AND o.xmin = s.xmin";
    assert_eq!(count(&url, together).await, 300);
    let transactions = count(&url, "SELECT count(DISTINCT xmin::text) AS n FROM stream_sessions").await;
    assert!(transactions <= 300 / 4, "300 concurrent starts took {transactions} transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_the_database_refuses_fails_alone_in_its_group() {
    let (url, store) = setup().await;
    let taken = session(0);
    store.open_with_event(taken.clone(), &start_event(&taken)).await.unwrap();
    let used_event = start_event(&session(1));
    store.open_with_event(session(1), &used_event).await.unwrap();

    // Hold the table so the rounds under way wait, and the starts after
    // them gather into one group with the two the database will refuse.
    let mut holder = AsyncPgConnection::establish(&url).await.unwrap();
    holder.batch_execute("BEGIN; LOCK TABLE stream_sessions IN EXCLUSIVE MODE").await.unwrap();
    let early: Vec<_> = (10..14)
        .map(|viewer| {
            let store = store.clone();
            let s = session(viewer);
            tokio::spawn(async move { store.open_with_event(s.clone(), &start_event(&s)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut group: Vec<(StreamSession, PlaybackEvent)> =
        (20..60).map(session).map(|s| (s.clone(), start_event(&s))).collect();
    // The same session id again, and a new session with an event id already recorded.
    group.insert(7, (taken.clone(), start_event(&taken)));
    let reused = session(2);
    group.insert(23, (reused.clone(), PlaybackEvent { session: Some(reused.id), ..used_event.clone() }));
    let late = tokio::spawn({
        let store = store.clone();
        async move { start_all(&store, group).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.batch_execute("COMMIT").await.unwrap();

    for call in early {
        assert_eq!(call.await.unwrap(), Ok(EventHandling::Recorded));
    }
    let answers = late.await.unwrap();
    for (i, answer) in answers.iter().enumerate() {
        let expected = if i == 7 || i == 23 { Err(SessionError::Duplicate) } else { Ok(EventHandling::Recorded) };
        assert_eq!(answer, &expected, "start {i}");
    }
    assert_eq!(store.get(&reused.id).await.unwrap(), None, "a refused start leaves no session");
    // 2 before, 4 early, 40 in the group.
    assert_eq!(count(&url, "SELECT count(*) AS n FROM stream_sessions").await, 46);
    assert_eq!(count(&url, "SELECT count(*) AS n FROM outbox").await, 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resume_reads_share_statements_and_each_gets_its_own_row() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url.clone())).await.unwrap();
    db.migrate().await.unwrap();
    let progress = PgProgressStore::new(db);
    let movie: streaming_core::domain::MediaId = TEST_MOVIE.parse().unwrap();
    // Viewers 0..100 have a position (their number in seconds); 100..200 none.
    let saved: Vec<WatchProgress> = (0..100)
        .map(|viewer| WatchProgress {
            user: format!("viewer-{viewer}").parse().unwrap(),
            media: movie.clone(),
            position: PositionSeconds::new(f64::from(viewer)).unwrap(),
            last_watched_at: OffsetDateTime::now_utc(),
            watched: false,
            session: None,
            sequence: 1,
        })
        .collect();
    progress.record_many(saved).await.unwrap();
    let reads = "SELECT%watch_progress%";
    let before = statement_calls(&url, reads).await;
    let calls: Vec<_> = (0..200_u32)
        .map(|viewer| {
            let (progress, movie) = (progress.clone(), movie.clone());
            let user = format!("viewer-{viewer}").parse().unwrap();
            tokio::spawn(async move { (viewer, progress.get(&user, &movie).await.unwrap()) })
        })
        .collect();
    for call in calls {
        let (viewer, found) = call.await.unwrap();
        let position = found.map(|p| (p.user.to_string(), p.position.get()));
        let expected = (viewer < 100).then(|| (format!("viewer-{viewer}"), f64::from(viewer)));
        assert_eq!(position, expected, "viewer {viewer}");
    }
    let statements = statement_calls(&url, reads).await - before;
    assert!(statements <= 200 / 4, "200 concurrent reads took {statements} statements");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_session_reads_share_statements_and_each_gets_its_own_session() {
    let (url, store) = setup().await;
    let sessions: Vec<StreamSession> = (0..100).map(session).collect();
    for session in &sessions {
        store.open_with_event(session.clone(), &start_event(session)).await.unwrap();
    }
    let reads = "SELECT%FROM stream_sessions WHERE id%";
    let before = statement_calls(&url, reads).await;
    // Each session read twice, and 100 ids never started.
    let asked: Vec<(Option<StreamSession>, streaming_core::domain::SessionId)> = sessions
        .iter()
        .chain(&sessions)
        .map(|s| (Some(s.clone()), s.id))
        .chain((0..100).map(|_| (None, streaming_core::domain::SessionId::random())))
        .collect();
    let calls: Vec<_> = asked
        .into_iter()
        .map(|(expected, id)| {
            let store = store.clone();
            tokio::spawn(async move { (expected, store.get(&id).await.unwrap()) })
        })
        .collect();
    for call in calls {
        let (expected, found) = call.await.unwrap();
        assert_eq!(found.map(|s| (s.id, s.user)), expected.map(|s| (s.id, s.user)));
    }
    let statements = statement_calls(&url, reads).await - before;
    assert!(statements <= 300 / 4, "300 concurrent reads took {statements} statements");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_status_reads_share_statements_and_each_gets_its_own_status() {
    use streaming_core::domain::{UserId, UserStatus};
    use streaming_core::ports::MediaCatalog;
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig::new(url.clone())).await.unwrap();
    db.migrate().await.unwrap();
    let catalog = streaming_postgres::PgCatalog::new(db);
    // Viewers 0..50 suspended, 50..100 active, 100..200 without a row.
    for viewer in 0..100 {
        let status = if viewer < 50 { UserStatus::Suspended } else { UserStatus::Active };
        catalog.set_user_status(&format!("viewer-{viewer}").parse().unwrap(), status).await.unwrap();
    }
    let reads = "SELECT%FROM \"users\"%";
    let before = statement_calls(&url, reads).await;
    let calls: Vec<_> = (0..200_u32)
        .map(|viewer| {
            let catalog = catalog.clone();
            let user: UserId = format!("viewer-{viewer}").parse().unwrap();
            tokio::spawn(async move { (viewer, catalog.viewer(&user, None).await.unwrap()) })
        })
        .collect();
    for call in calls {
        let (viewer, found) = call.await.unwrap();
        let expected = if viewer < 50 { UserStatus::Suspended } else { UserStatus::Active };
        assert_eq!(found.status, expected, "viewer {viewer}");
        assert!(!found.granted);
    }
    let statements = statement_calls(&url, reads).await - before;
    assert!(statements <= 200 / 4, "200 concurrent reads took {statements} statements");
}
