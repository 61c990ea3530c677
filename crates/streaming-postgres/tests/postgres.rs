//! The PostgreSQL adapters against a real server (`cargo xtask test` starts
//! it). Every test gets a fresh database created from the migrations, so
//! tests run in parallel without sharing rows.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use streaming_core::contract::{self, infra_var};
use streaming_core::domain::{
    Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, PositionSeconds, SessionId, UserId, UserStatus,
    Viewer, Visibility, WatchProgress,
};
use streaming_core::ports::{CatalogError, MediaCatalog, ProgressStore, RecordOutcome};
use streaming_postgres::{PgCatalog, PgConfig, PgDatabase, PgProgressStore, PgSessionStore};

/// A new, migrated database of its own.
async fn fresh_database() -> PgDatabase {
    let url = streaming_postgres::testing::fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&PgConfig { pool_size: 4, ..PgConfig::new(url) }).await.unwrap();
    assert!(db.migrate().await.unwrap() >= 1);
    db
}

fn track(id: &str, owner: &str, status: MediaStatus) -> Media {
    Media {
        id: id.parse().unwrap(),
        kind: MediaKind::Track,
        owner: Some(owner.parse().unwrap()),
        status,
        object_key: ObjectKey::try_from(format!("tracks/{id}.mp3").as_str()).unwrap(),
        content_type: "audio/mpeg".into(),
        size_bytes: 15_728_640,
        duration_seconds: Some(180.5),
        visibility: Visibility::Subscribers,
        required_features: PlanFeatures { hd: true, uhd_4k: false },
    }
}

#[tokio::test]
async fn migrations_apply_once_and_the_schema_is_then_current() {
    let db = fresh_database().await;
    assert!(db.pending_migrations().await.unwrap().is_empty());
    assert_eq!(db.migrate().await.unwrap(), 0, "a second run applies nothing");
}

#[tokio::test]
async fn migrations_are_reversible() {
    let db = fresh_database().await;
    let catalog = PgCatalog::new(db.clone());
    catalog.upsert_media(&track("01HXKZ3Y8Q4N7W2M5V6B9C0D1E", "o", MediaStatus::Ready)).await.unwrap();
    assert!(db.revert_all().await.unwrap() >= 1);
    assert!(!db.pending_migrations().await.unwrap().is_empty(), "everything is pending again");
    assert!(catalog.media(&"01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap()).await.is_err(), "the tables are gone");
    assert!(db.migrate().await.unwrap() >= 1);
    assert_eq!(catalog.media(&"01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap()).await.unwrap(), None);
}

#[tokio::test]
async fn the_progress_store_keeps_the_contract() {
    contract::progress_store(&PgProgressStore::new(fresh_database().await)).await;
}

#[tokio::test]
async fn the_audit_log_keeps_the_contract() {
    contract::audit_log(&streaming_postgres::PgAuditLog::new(fresh_database().await)).await;
}

#[tokio::test]
async fn dead_letters_keep_the_contract() {
    contract::dead_letters(&streaming_postgres::PgDeadLetters::new(fresh_database().await)).await;
}

#[tokio::test]
async fn the_session_store_keeps_the_contract() {
    contract::session_store(&PgSessionStore::new(fresh_database().await)).await;
}

#[tokio::test]
async fn the_catalog_reads_what_was_written() {
    let catalog = PgCatalog::new(fresh_database().await);
    let item = track("01HXKZ3Y8Q4N7W2M5V6B9C0D1E", "owner-1", MediaStatus::Ready);
    assert_eq!(catalog.media(&item.id).await.unwrap(), None);
    catalog.upsert_media(&item).await.unwrap();
    assert_eq!(catalog.media(&item.id).await.unwrap(), Some(item.clone()));

    let changed = Media { status: MediaStatus::Deleted, visibility: Visibility::Public, ..item.clone() };
    catalog.upsert_media(&changed).await.unwrap();
    assert_eq!(catalog.media(&item.id).await.unwrap(), Some(changed), "upsert replaces");

    let fan: UserId = "fan".parse().unwrap();
    assert_eq!(
        catalog.viewer(&fan, Some(&item.id)).await.unwrap(),
        Viewer::default(),
        "unknown users: active, ungranted"
    );
    assert_eq!(catalog.viewer(&fan, None).await.unwrap(), Viewer::default());
    catalog.set_grant(&item.id, &fan, true).await.unwrap();
    catalog.set_grant(&item.id, &fan, true).await.unwrap();
    catalog.set_user_status(&fan, UserStatus::Suspended).await.unwrap();
    assert_eq!(
        catalog.viewer(&fan, Some(&item.id)).await.unwrap(),
        Viewer { status: UserStatus::Suspended, granted: true }
    );
    let status_alone = Viewer { status: UserStatus::Suspended, granted: false };
    assert_eq!(catalog.viewer(&fan, None).await.unwrap(), status_alone, "the grant is not looked up");
    catalog.set_grant(&item.id, &fan, false).await.unwrap();
    catalog.set_user_status(&fan, UserStatus::Active).await.unwrap();
    assert_eq!(catalog.viewer(&fan, Some(&item.id)).await.unwrap(), Viewer::default());

    let unknown: MediaId = "01HXKZ3Y8Q4N7W2M5V6B9C0D2F".parse().unwrap();
    assert!(catalog.set_grant(&unknown, &fan, true).await.is_err(), "grants need the media to exist");
}

#[tokio::test]
async fn concurrent_and_reordered_writers_never_move_progress_backwards() {
    let store = Arc::new(PgProgressStore::new(fresh_database().await));
    let (user, movie): (UserId, MediaId) =
        ("viewer".parse().unwrap(), "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap());
    let session = SessionId::random();
    let at = time::OffsetDateTime::now_utc();
    // 40 writers of one session, sequences shuffled: the highest must win.
    let mut sequences: Vec<u64> = (1..=40).collect();
    sequences.sort_by_key(|s| (s * 7919) % 41);
    let writers: Vec<_> = sequences
        .into_iter()
        .map(|sequence| {
            let (store, user, movie) = (store.clone(), user.clone(), movie.clone());
            tokio::spawn(async move {
                store
                    .record(WatchProgress {
                        user,
                        media: movie,
                        position: PositionSeconds::new(sequence as f64 * 10.0).unwrap(),
                        last_watched_at: at,
                        watched: false,
                        session: Some(session),
                        sequence,
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut applied = 0;
    for writer in writers {
        if writer.await.unwrap() == RecordOutcome::Applied {
            applied += 1;
        }
    }
    assert!(applied >= 1);
    let stored = store.get(&user, &movie).await.unwrap().unwrap();
    assert_eq!((stored.sequence, stored.position.get()), (40, 400.0), "the newest report wins whatever the order");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_quickly() {
    let port = streaming_core::contract::free_port();
    let config = PgConfig {
        acquire_timeout: Duration::from_millis(500),
        ..PgConfig::new(format!("postgres://nobody:nothing@127.0.0.1:{port}/none"))
    };
    let catalog = PgCatalog::new(PgDatabase::connect(&config).await.unwrap());
    let started = std::time::Instant::now();
    let result = catalog.media(&"01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap()).await;
    assert!(matches!(result, Err(CatalogError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the acquire timeout and one retry");
}

#[tokio::test]
async fn the_catalog_keeps_the_writer_contract() {
    contract::catalog_writer(&PgCatalog::new(fresh_database().await)).await;
}

#[tokio::test]
async fn the_catalog_keeps_the_listing_contract() {
    let catalog = PgCatalog::new(fresh_database().await);
    contract::media_listing(&catalog, |media, user| {
        let catalog = catalog.clone();
        async move { catalog.set_grant(&media, &user, true).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn consumer_offsets_keep_the_contract() {
    let db = fresh_database().await;
    let mine = streaming_postgres::PgConsumerOffsets::new(db.clone(), "instance-a");
    let theirs = streaming_postgres::PgConsumerOffsets::new(db, "instance-b");
    contract::offset_store(&mine, &theirs).await;
}

/// Updates of a table, and how many of them were heap-only (in place).
#[derive(diesel::QueryableByName, Debug)]
struct TableUpdates {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    in_place: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    all: i64,
}

#[tokio::test]
async fn progress_and_heartbeats_rewrite_their_rows_in_place() {
    use diesel_async::RunQueryDsl;
    use streaming_core::domain::{ManifestKind, StreamSession};
    use streaming_core::ports::SessionStore;

    // A server of its own without autovacuum: a worker's snapshot in the
    // database (it comes to a new one soon, for the catalogs the migrations
    // changed) keeps the previous round's versions alive, and then an update
    // finds no room in its page however the table is laid out.
    let server = streaming_postgres::testing::OwnPostgres::start_with(
        &infra_var("STREAMGATE_POSTGRES_BIN"),
        &["autovacuum=off"],
    );
    // One connection: the statistics read back include its own updates.
    let db = PgDatabase::connect(&PgConfig { pool_size: 1, ..PgConfig::new(server.url()) }).await.unwrap();
    db.migrate().await.unwrap();
    let (progress, sessions) = (PgProgressStore::new(db.clone()), PgSessionStore::new(db.clone()));
    let movie: MediaId = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    let t0 = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let viewers: Vec<(UserId, SessionId)> =
        (0..50).map(|i| (format!("hot-{i}").parse().unwrap(), SessionId::random())).collect();
    for (user, session) in &viewers {
        sessions
            .open(StreamSession {
                id: *session,
                user: user.clone(),
                media: movie.clone(),
                manifest: ManifestKind::Hls,
                started_at: t0,
                ended_at: None,
                duration_seconds: None,
                user_agent: None,
                client_ip: None,
                last_heartbeat_at: t0,
            })
            .await
            .unwrap();
    }
    for round in 1..=20_u64 {
        let at = t0 + Duration::from_secs(round * 10);
        let reports = viewers
            .iter()
            .map(|(user, session)| WatchProgress {
                user: user.clone(),
                media: movie.clone(),
                position: PositionSeconds::new(round as f64 * 10.0).unwrap(),
                last_watched_at: at,
                watched: false,
                session: Some(*session),
                sequence: round,
            })
            .collect();
        progress.record_many(reports).await.unwrap();
        sessions.touch_many(viewers.iter().map(|(_, session)| (*session, at)).collect()).await.unwrap();
    }

    let mut connection = db.connection().await.unwrap();
    diesel::sql_query("SELECT pg_stat_force_next_flush()").execute(&mut connection).await.unwrap();
    let counts: Vec<TableUpdates> = diesel::sql_query(
        "SELECT relname::text AS table, n_tup_hot_upd AS in_place, n_tup_upd AS all FROM pg_stat_user_tables \
         WHERE relname IN ('watch_progress', 'stream_sessions') ORDER BY relname",
    )
    .load(&mut connection)
    .await
    .unwrap();
    assert_eq!(counts.len(), 2);
    for table in counts {
        // Every heartbeat round updates; the first progress round inserts.
        let rounds = if table.table == "watch_progress" { 19 } else { 20 };
        assert_eq!(table.all, rounds * 50, "{table:?}");
        // Without room in the pages or with an index on a changed column, none would be.
        assert!(table.in_place * 10 >= table.all * 9, "most updates in place: {table:?}");
    }
}

/// `stream_sessions` does not grow for ever: sessions that ended before the
/// retention are deleted in bounded rounds; open ones never are.
#[tokio::test]
async fn ended_sessions_past_their_retention_are_pruned_and_open_ones_never() {
    use streaming_core::domain::{ManifestKind, StreamSession};
    use streaming_core::ports::SessionStore;

    let sessions = PgSessionStore::new(fresh_database().await);
    let movie: MediaId = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    let t0 = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let session = |user: &str, started: time::OffsetDateTime| StreamSession {
        id: SessionId::random(),
        user: user.parse().unwrap(),
        media: movie.clone(),
        manifest: ManifestKind::Hls,
        started_at: started,
        ended_at: None,
        duration_seconds: None,
        user_agent: None,
        client_ip: None,
        last_heartbeat_at: started,
    };
    let old: Vec<StreamSession> = (0..5).map(|i| session(&format!("old-{i}"), t0)).collect();
    let recent = session("recent", t0 + Duration::from_secs(86_400));
    let open = session("open", t0);
    for s in old.iter().chain([&recent, &open]) {
        sessions.open(s.clone()).await.unwrap();
    }
    for s in &old {
        sessions.close(&s.id, t0 + Duration::from_secs(60)).await.unwrap();
    }
    sessions.close(&recent.id, t0 + Duration::from_secs(86_460)).await.unwrap();

    let before = t0 + Duration::from_secs(3_600);
    assert_eq!(sessions.prune_ended(before, 3).await.unwrap(), 3, "a bounded round");
    assert_eq!(sessions.prune_ended(before, 3).await.unwrap(), 2, "the rest");
    assert_eq!(sessions.prune_ended(before, 3).await.unwrap(), 0);
    for s in &old {
        assert!(sessions.get(&s.id).await.unwrap().is_none());
    }
    assert!(sessions.get(&recent.id).await.unwrap().is_some(), "ended within the retention: kept");
    assert!(sessions.get(&open.id).await.unwrap().is_some(), "open, however old: kept");
}
