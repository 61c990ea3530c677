//! A database the cinema streaming service created: this service's
//! migrations apply on top of it, keep its rows and column types, and the
//! adapters keep their contracts on its tables while the cinema service's
//! own statements go on working.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::sql_types::{Integer, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use streaming_core::contract::{self, infra_var};
use streaming_core::domain::{MediaId, PositionSeconds, SessionId, UserId, WatchProgress};
use streaming_core::ports::{ProgressStore, SessionStore};
use streaming_postgres::{Layouts, PgConfig, PgDatabase, PgProgressStore, PgSessionStore, TableLayout};

const CINEMA_SCHEMA: &str = include_str!("../../../tests/fixtures/cinema/001_create_tables.sql");
const VIEWER: &str = "9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b";
const MOVIE: &str = "3f2b8c1e-6f4a-4c1e-9b7d-2a5e8f0c1d3b";
const ENDED_SESSION: &str = "5d6e7f80-1a2b-4c3d-9e4f-5a6b7c8d9e0f";
const OPEN_SESSION: &str = "6e7f8091-2b3c-4d4e-8f50-6b7c8d9e0f1a";

/// A database as the cinema service leaves it: its schema and a few rows
/// (one progress, one ended and one never-ended session). Its URL.
async fn cinema_database() -> String {
    let url = streaming_postgres::testing::fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let mut connection = AsyncPgConnection::establish(&url).await.unwrap();
    connection.batch_execute(CINEMA_SCHEMA).await.unwrap();
    connection
        .batch_execute(&format!(
            "INSERT INTO watch_progress (user_id, movie_id, position_seconds, last_watched_at) \
             VALUES ('{VIEWER}', '{MOVIE}', 120, '2026-11-20 18:30:00');
             INSERT INTO stream_sessions (id, user_id, movie_id, started_at, ended_at, duration_seconds, user_agent, ip_address) \
             VALUES ('{ENDED_SESSION}', '{VIEWER}', '{MOVIE}', '2026-11-20 18:00:00', '2026-11-20 18:30:00', 1800, \
                     'Mozilla/5.0', '203.0.113.7'), \
                    ('{OPEN_SESSION}', '{VIEWER}', '{MOVIE}', '2026-11-21 09:00:00', NULL, NULL, NULL, '198.51.100.2');"
        ))
        .await
        .unwrap();
    url
}

async fn migrated(url: &str) -> PgDatabase {
    let db = PgDatabase::connect(&PgConfig { pool_size: 4, ..PgConfig::new(url) }).await.unwrap();
    assert!(db.migrate().await.unwrap() >= 1);
    db
}

fn instant(text: &str) -> time::OffsetDateTime {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(text, format).unwrap().assume_utc()
}

#[derive(QueryableByName, Debug, PartialEq)]
struct ColumnType {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

async fn column_types(url: &str, table: &str) -> Vec<(String, String)> {
    let mut connection = AsyncPgConnection::establish(url).await.unwrap();
    let columns: Vec<ColumnType> = diesel::sql_query(format!(
        "SELECT column_name::text AS name, data_type::text AS data_type FROM information_schema.columns \
         WHERE table_name = '{table}' ORDER BY ordinal_position"
    ))
    .load(&mut connection)
    .await
    .unwrap();
    columns.into_iter().map(|c| (c.name, c.data_type)).collect()
}

#[tokio::test]
async fn the_migrations_keep_the_cinema_rows_and_columns_and_the_adapters_read_them() {
    let url = cinema_database().await;
    let cinema_progress_columns = column_types(&url, "watch_progress").await;
    let db = migrated(&url).await;
    assert_eq!(db.layouts().await.unwrap(), Layouts { progress: TableLayout::Cinema, sessions: TableLayout::Cinema });

    // The cinema columns are still there with their types; this service's come after them.
    let now = column_types(&url, "watch_progress").await;
    assert_eq!(now[..cinema_progress_columns.len()], cinema_progress_columns[..]);
    assert!(now.contains(&("position_seconds".into(), "integer".into())));
    assert!(now.contains(&("sequence".into(), "bigint".into())));

    let (viewer, movie): (UserId, MediaId) = (VIEWER.parse().unwrap(), MOVIE.parse().unwrap());
    let progress = PgProgressStore::new(db.clone()).get(&viewer, &movie).await.unwrap().unwrap();
    assert_eq!(progress.position.get(), 120.0);
    assert_eq!(progress.last_watched_at, instant("2026-11-20 18:30:00"), "stored in UTC");
    assert_eq!((progress.session, progress.sequence, progress.watched), (None, 0, false));

    let sessions = PgSessionStore::new(db.clone());
    let ended = sessions.get(&SessionId::from(uuid::Uuid::parse_str(ENDED_SESSION).unwrap())).await.unwrap().unwrap();
    assert_eq!(ended.user, viewer);
    assert_eq!(ended.started_at, instant("2026-11-20 18:00:00"));
    assert_eq!(ended.ended_at, Some(instant("2026-11-20 18:30:00")));
    assert_eq!(ended.duration_seconds, Some(1800.0));
    assert_eq!(ended.client_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(ended.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(ended.last_heartbeat_at, instant("2026-11-20 18:30:00"), "its last sign of life is its end");
    let open = sessions.get(&SessionId::from(uuid::Uuid::parse_str(OPEN_SESSION).unwrap())).await.unwrap().unwrap();
    assert_eq!((open.ended_at, open.last_heartbeat_at), (None, instant("2026-11-21 09:00:00")));
    let alive = sessions.open_sessions(&viewer, instant("2026-11-21 09:00:01")).await.unwrap();
    assert!(alive.is_empty(), "a cinema session never heartbeated is not alive later");
}

#[tokio::test]
async fn the_progress_store_keeps_its_contract_on_the_cinema_table() {
    let db = migrated(&cinema_database().await).await;
    contract::progress_store(&PgProgressStore::new(db)).await;
}

#[tokio::test]
async fn the_session_store_keeps_its_contract_on_the_cinema_table() {
    let db = migrated(&cinema_database().await).await;
    contract::session_store(&PgSessionStore::new(db)).await;
}

#[derive(QueryableByName)]
struct Seconds {
    #[diesel(sql_type = Integer)]
    seconds: i32,
}

#[tokio::test]
async fn the_cinema_service_reads_and_writes_the_tables_after_the_migrations() {
    let url = cinema_database().await;
    let db = migrated(&url).await;
    let store = PgProgressStore::new(db.clone());
    let (viewer, movie): (UserId, MediaId) = (VIEWER.parse().unwrap(), MOVIE.parse().unwrap());
    let report = WatchProgress {
        user: viewer.clone(),
        media: movie.clone(),
        position: PositionSeconds::new(754.9).unwrap(),
        last_watched_at: time::OffsetDateTime::now_utc(),
        watched: false,
        session: Some(SessionId::random()),
        sequence: 3,
    };
    store.record(report.clone()).await.unwrap();
    store
        .record_many(vec![WatchProgress { sequence: 4, position: PositionSeconds::new(760.2).unwrap(), ..report }])
        .await
        .unwrap();

    // What the cinema service asks (its ORM binds ids as uuid): whole seconds, rounded down.
    let mut connection = AsyncPgConnection::establish(&url).await.unwrap();
    let read = || {
        diesel::sql_query(
            "SELECT position_seconds AS seconds FROM watch_progress WHERE user_id = $1::uuid AND movie_id = $2::uuid",
        )
        .bind::<Text, _>(VIEWER)
        .bind::<Text, _>(MOVIE)
    };
    let seconds: Vec<Seconds> = read().load(&mut connection).await.unwrap();
    assert_eq!(seconds.iter().map(|s| s.seconds).collect::<Vec<_>>(), [760]);

    // Its own writes, which know nothing of this service's columns, still go in.
    connection
        .batch_execute(&format!(
            "INSERT INTO watch_progress (user_id, movie_id, position_seconds) VALUES ('{VIEWER}', '{MOVIE}', 800) \
             ON CONFLICT (user_id, movie_id) DO UPDATE SET position_seconds = EXCLUDED.position_seconds, \
             updated_at = CURRENT_TIMESTAMP, last_watched_at = CURRENT_TIMESTAMP;
             INSERT INTO stream_sessions (user_id, movie_id, user_agent, ip_address) \
             VALUES ('{VIEWER}', '{MOVIE}', 'curl/8', '192.0.2.1');"
        ))
        .await
        .unwrap();
    assert_eq!(store.get(&viewer, &movie).await.unwrap().unwrap().position.get(), 800.0);
    let seconds: Vec<Seconds> = read().load(&mut connection).await.unwrap();
    assert_eq!(seconds[0].seconds, 800);
}

#[tokio::test]
async fn users_the_cinema_tables_cannot_hold_are_refused_without_failing_a_batch() {
    let db = migrated(&cinema_database().await).await;
    let store = PgProgressStore::new(db.clone());
    let movie: MediaId = MOVIE.parse().unwrap();
    let report = |user: &str| WatchProgress {
        user: user.parse().unwrap(),
        media: movie.clone(),
        position: PositionSeconds::new(42.0).unwrap(),
        last_watched_at: time::OffsetDateTime::now_utc(),
        watched: false,
        session: None,
        sequence: 0,
    };
    let opaque: UserId = "auth0|alice".parse().unwrap();
    let refused = store.record(report("auth0|alice")).await.unwrap_err();
    assert!(refused.to_string().contains("UUID"), "{refused}");
    assert_eq!(store.get(&opaque, &movie).await.unwrap(), None, "nothing is stored for such a user");

    let fresh_viewer = SessionId::random().to_string();
    store.record_many(vec![report("auth0|alice"), report(&fresh_viewer)]).await.unwrap();
    let stored = store.get(&fresh_viewer.parse().unwrap(), &movie).await.unwrap().unwrap();
    assert_eq!(stored.position.get(), 42.0, "the rest of the batch is written");
    assert!(PgSessionStore::new(db).open_sessions(&opaque, time::OffsetDateTime::UNIX_EPOCH).await.unwrap().is_empty());
}

#[tokio::test]
async fn reverting_leaves_the_cinema_tables_as_the_cinema_service_made_them() {
    let url = cinema_database().await;
    let before = (column_types(&url, "watch_progress").await, column_types(&url, "stream_sessions").await);
    let db = migrated(&url).await;
    db.revert_all().await.unwrap();
    let after = (column_types(&url, "watch_progress").await, column_types(&url, "stream_sessions").await);
    assert_eq!(after, before);
    let mut connection = AsyncPgConnection::establish(&url).await.unwrap();
    let seconds: Vec<Seconds> = diesel::sql_query("SELECT position_seconds AS seconds FROM watch_progress")
        .load(&mut connection)
        .await
        .unwrap();
    assert_eq!(seconds.iter().map(|s| s.seconds).collect::<Vec<_>>(), [120], "the rows stay");
    assert!(db.migrate().await.unwrap() >= 1, "and the migrations apply again");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

async fn count(connection: &mut AsyncPgConnection, query: &str) -> i64 {
    let rows: Vec<Count> = diesel::sql_query(query).load(connection).await.unwrap();
    rows[0].count
}

/// The cinema service never ends a session: a viewer's history is all
/// open rows. Three instances sweeping at once close every one of them,
/// each once, at its last sign of life, with one stop event each.
#[tokio::test]
async fn the_cinema_services_never_ended_sessions_are_closed_once_by_sweepers_side_by_side() {
    const HISTORY: i64 = 40_000;
    const BATCH: usize = 2_000;
    let url = cinema_database().await;
    let mut connection = AsyncPgConnection::establish(&url).await.unwrap();
    connection
        .batch_execute(&format!(
            "INSERT INTO stream_sessions (user_id, movie_id, started_at, user_agent, ip_address) \
             SELECT '{VIEWER}', '{MOVIE}', timestamp '2026-01-01 00:00:00' + n * interval '1 minute', NULL, NULL \
             FROM generate_series(1, {HISTORY}) AS n"
        ))
        .await
        .unwrap();
    let db = migrated(&url).await;
    let idle_before = time::OffsetDateTime::now_utc();
    let sweepers: Vec<_> = (0..3)
        .map(|_| {
            let store = PgSessionStore::new(db.clone());
            tokio::spawn(async move {
                let mut closed = Vec::new();
                loop {
                    let (batch, _) = store.close_idle(idle_before, BATCH).await.unwrap();
                    let last = batch.len() < BATCH;
                    closed.extend(batch);
                    if last {
                        return closed;
                    }
                }
            })
        })
        .collect();
    let mut closed = Vec::new();
    for sweeper in sweepers {
        closed.extend(sweeper.await.unwrap());
    }

    let mut ids: Vec<uuid::Uuid> = closed.iter().map(|s| s.id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), closed.len(), "no session is closed twice");
    assert_eq!(closed.len() as i64, HISTORY + 1, "the history and the fixture's open session");
    assert!(closed.iter().all(|s| s.ended_at == Some(s.last_heartbeat_at)), "ended at the last sign of life");
    let open = "SELECT count(*) AS count FROM stream_sessions WHERE ended_at IS NULL";
    assert_eq!(count(&mut connection, open).await, 0);
    let ended_at_start = "SELECT count(*) AS count FROM stream_sessions \
                          WHERE ended_at = started_at AND duration_seconds = 0";
    assert_eq!(count(&mut connection, ended_at_start).await, HISTORY + 1, "never heartbeated: ended at the start");
    let stops = "SELECT count(DISTINCT payload->>'session_id') AS count FROM outbox \
                 WHERE topic = 'stream.stop' AND payload->>'action' = 'stream_stop' AND NOT payload ? 'position_seconds'";
    assert_eq!(count(&mut connection, stops).await, HISTORY + 1, "one stop event, without a position, per session");
    assert_eq!(count(&mut connection, "SELECT count(*) AS count FROM outbox").await, HISTORY + 1);
}
