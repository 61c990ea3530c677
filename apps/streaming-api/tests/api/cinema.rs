//! Drop-in compatibility with the cinema streaming service: its
//! environment variables configure the service, and its auth service's
//! tokens work unchanged.

use reqwest::Method;
use ring::hmac;
use serde_json::json;
use streaming_api::Settings;
use time::OffsetDateTime;

use crate::harness::{assert_problem, psql, spawn, MOVIE};
use crate::hostile::jws;

const CINEMA_SCHEMA: &str = include_str!("../../../../tests/fixtures/cinema/001_create_tables.sql");
const CINEMA_SECRET: &str = "your-secret-key-change-in-production";
const VIEWER: &str = "3f8c2b1e-9d4a-4c7b-8e2f-1a2b3c4d5e6f";

/// A token as the cinema auth service mints it: HS256, `sub` the user's
/// UUID, `type` access or refresh, `exp`; no issuer or audience.
fn cinema_token(kind: &str) -> String {
    cinema_token_of(VIEWER, kind)
}

/// [`cinema_token`] of another user.
fn cinema_token_of(user: &str, kind: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({ "sub": user, "type": kind, "exp": now + 900, "iat": now });
    jws(&json!({ "alg": "HS256", "typ": "JWT" }), &claims, Some((hmac::HMAC_SHA256, CINEMA_SECRET.as_bytes())))
}

#[tokio::test]
async fn the_cinema_auth_services_access_tokens_work_and_its_refresh_tokens_do_not() {
    let cinema = Settings::load(
        None,
        [("JWT_SECRET_KEY", CINEMA_SECRET), ("JWT_ALGORITHM", "HS256")].map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let app = spawn(|s| s.auth = cinema.auth.clone()).await;
    // The demo trailer: public, so the viewer needs no subscription to read it.
    let progress = &format!("/api/v1/stream/{}/progress", streaming_api::demo::DEMO_TRAILER);

    let response = app.send(Method::GET, progress, Some(&cinema_token("access")), None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], VIEWER, "sub is the user");

    let refused = app.send(Method::GET, progress, Some(&cinema_token("refresh")), None).await;
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_problem(refused, 401, "unauthorized").await;
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

/// Copies the demo movie's files to `movies/{id}/` of the embedded store.
fn store_movie_files(app: &crate::harness::TestApp, id: &str) {
    let objects = app.dir.path().join("objects").join("movies");
    let target = objects.join(id);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(objects.join(MOVIE)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn a_movie_without_a_catalog_row_plays_when_its_manifest_is_stored() {
    const STORED: &str = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e";
    let start = format!("/api/v1/stream/{STORED}");

    let plain = spawn(|_| {}).await;
    store_movie_files(&plain, STORED);
    assert_problem(plain.send(Method::POST, &start, None, None).await, 404, "movie-not-found").await;

    let app = spawn(|s| s.playback.stored_movies = true).await;
    store_movie_files(&app, STORED);
    let response = app.send(Method::POST, &start, None, None).await;
    assert_eq!(response.status(), 200, "the demo user subscribes");
    let started: serde_json::Value = response.json().await.unwrap();
    let manifest = app.client.get(started["manifest_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(manifest.status(), 200);
    assert!(manifest.text().await.unwrap().starts_with("#EXTM3U"));
    let stranger = crate::harness::token_for("01JG0STRANGER0000000000001");
    let refused = app.send(Method::POST, &start, Some(&stranger), None).await;
    assert_problem(refused, 403, "subscription-required").await;
    let missing = "/api/v1/stream/0c1d2e3f-4a5b-4c6d-8e7f-000000000000";
    assert_problem(app.send(Method::POST, missing, None, None).await, 404, "movie-not-found").await;
}

#[tokio::test]
async fn the_cinema_health_route_answers() {
    let app = spawn(|_| {}).await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

/// The service as the cinema drop-in: the binary started with the cinema
/// service's variables only (and nothing of ours), against the real
/// PostgreSQL, Redis, S3 server and broker, its schema migrated by its own
/// command; topics of its own under a fresh prefix.
struct DropIn {
    base: String,
    brokers: String,
    prefix: String,
    viewer: String,
    token: String,
    client: reqwest::Client,
    _service: tokio::process::Child,
}

/// A database as the cinema service creates it, empty.
async fn cinema_database() -> String {
    let url = streaming_postgres::testing::fresh_database_url(&streaming_core::contract::infra_var(
        "STREAMGATE_POSTGRES_URL",
    ))
    .await;
    psql(&url, CINEMA_SCHEMA);
    url
}

impl DropIn {
    /// Starts the drop-in on `database_url` with the user service at
    /// `users`, for `viewer`.
    async fn start(database_url: &str, users: String, viewer: &str) -> Self {
        use streaming_core::contract::{free_port, infra_var};
        use streaming_kafka::testing::{create_topics, unique_prefix, PLAYBACK_TOPICS};

        // The demo movie's files in the bucket (a demo-mode app on the S3 server uploads them).
        drop(spawn(crate::harness::use_s3).await);
        let database = reqwest::Url::parse(database_url).unwrap();
        let redis = reqwest::Url::parse(&infra_var("STREAMGATE_REDIS_URL")).unwrap();
        let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
        let prefix = unique_prefix();
        create_topics(&brokers, &format!("{prefix}."), &PLAYBACK_TOPICS).await;
        let port = free_port();
        let cinema: Vec<(&str, String)> = vec![
            ("HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("API_V1_PREFIX", "/api/v1".into()),
            ("POSTGRES_HOST", database.host_str().unwrap().into()),
            ("POSTGRES_PORT", database.port().unwrap().to_string()),
            ("POSTGRES_USER", database.username().into()),
            ("POSTGRES_PASSWORD", database.password().unwrap_or_default().into()),
            ("POSTGRES_DB", database.path().trim_start_matches('/').into()),
            ("REDIS_HOST", redis.host_str().unwrap().into()),
            ("REDIS_PORT", redis.port().unwrap().to_string()),
            ("REDIS_DB", "0".into()),
            ("REDIS_PROGRESS_TTL", "86400".into()),
            ("REDIS_SUBSCRIPTION_CACHE_TTL", "300".into()),
            ("S3_ENDPOINT_URL", infra_var("STREAMGATE_S3_ENDPOINT")),
            ("S3_ACCESS_KEY", infra_var("STREAMGATE_S3_ACCESS_KEY")),
            ("S3_SECRET_KEY", infra_var("STREAMGATE_S3_SECRET_KEY")),
            ("S3_BUCKET_NAME", infra_var("STREAMGATE_S3_BUCKET")),
            ("S3_REGION", "us-east-1".into()),
            ("S3_USE_SSL", "false".into()),
            ("SIGNED_URL_EXPIRATION", "3600".into()),
            ("KAFKA_BOOTSTRAP_SERVERS", brokers.clone()),
            ("KAFKA_TOPIC_PREFIX", format!("{prefix}.stream")),
            ("ENABLE_KAFKA", "true".into()),
            ("USER_SERVICE_URL", users),
            ("USER_SERVICE_TIMEOUT", "5".into()),
            ("JWT_SECRET_KEY", CINEMA_SECRET.into()),
            ("JWT_ALGORITHM", "HS256".into()),
        ];
        let command = |args: &[&str]| {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"));
            command
                .args(args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "warn");
            for (name, value) in &cinema {
                command.env(name, value);
            }
            command.kill_on_drop(true);
            command
        };
        let migrated = command(&["migrate"]).output().await.unwrap();
        assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
        let service = command(&[]).stdout(std::process::Stdio::null()).spawn().unwrap();
        crate::harness::until_listening(port, "the service").await;
        Self {
            base: format!("http://127.0.0.1:{port}/api/v1/stream/{MOVIE}"),
            brokers,
            prefix,
            viewer: viewer.to_owned(),
            token: cinema_token_of(viewer, "access"),
            client: reqwest::Client::new(),
            _service: service,
        }
    }

    /// A request to `path` under the movie's route, with the viewer's token.
    async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// The viewer's events on the cinema topic `stream.{action}`, once at
    /// least `wanted` distinct ones are there (30 s at most).
    async fn records(&self, action: &str, wanted: usize) -> Vec<serde_json::Value> {
        crate::kafka::events_of(&self.brokers, &format!("{}.", self.prefix), action, wanted, &self.viewer).await
    }
}

/// The binary started with the cinema service's variables only: the schema
/// migrated by its own command, then the cinema flow — start, progress, get
/// progress, stop — with a cinema token, on a movie known only by its
/// manifest in the bucket, and its events read back from the broker.
#[tokio::test]
async fn the_cinema_flow_runs_with_only_the_cinema_variables() {
    let (users, _stand) = crate::users::stand_in(200).await;
    // A viewer of this run only: the shared Redis keeps hot copies of progress.
    let viewer = streaming_core::domain::SessionId::random().to_string();
    let database_url = cinema_database().await;
    // The database as the cinema service left it: its schema, a viewer's
    // progress on the movie and a session it never ended.
    psql(
        &database_url,
        &format!(
            "INSERT INTO watch_progress (user_id, movie_id, position_seconds, last_watched_at) \
             VALUES ('{viewer}', '{MOVIE}', 120, '2026-11-20 18:30:00'); \
             INSERT INTO stream_sessions (user_id, movie_id, started_at, user_agent, ip_address) \
             VALUES ('{viewer}', '{MOVIE}', '2026-11-21 09:00:00', 'Mozilla/5.0', '203.0.113.7');"
        ),
    );
    let drop_in = DropIn::start(&database_url, users, &viewer).await;
    // The cinema service's row, read through this service's API.
    let stored: serde_json::Value = drop_in.call(Method::GET, "/progress", None).await.json().await.unwrap();
    assert_eq!(stored["position_seconds"], 120, "{stored}");
    let started = drop_in.call(Method::POST, "", None).await;
    assert_eq!(started.status(), 200, "{}", started.text().await.unwrap());
    let started: serde_json::Value = started.json().await.unwrap();
    assert_eq!(started["resume_position_seconds"], 120, "{started}");
    assert!(started["manifest_url"].as_str().unwrap().starts_with("http"));
    assert_eq!(started["expires_in"], 3600, "SIGNED_URL_EXPIRATION");
    let session = started["session_id"].as_str().unwrap().to_owned();
    let progress = json!({ "position_seconds": 3, "session_id": session });
    assert_eq!(drop_in.call(Method::POST, "/progress", Some(progress)).await.status(), 200);
    let read: serde_json::Value = drop_in.call(Method::GET, "/progress", None).await.json().await.unwrap();
    assert_eq!(read["position_seconds"], 3);
    assert_eq!(read["user_id"], viewer);
    let stop = json!({ "position_seconds": 4.8, "session_id": session });
    assert_eq!(drop_in.call(Method::POST, "/stop", Some(stop)).await.status(), 200);

    // What the cinema service reads from its tables: whole seconds, its own
    // session untouched, this one ended with an integer duration.
    let cinema_reads = format!(
        "SELECT position_seconds FROM watch_progress WHERE user_id = '{viewer}'::uuid AND movie_id = '{MOVIE}'::uuid"
    );
    assert_eq!(psql(&database_url, &cinema_reads).trim(), "4");
    let sessions = psql(
        &database_url,
        &format!(
            "SELECT id = '{session}'::uuid, ended_at IS NOT NULL, pg_typeof(duration_seconds), ip_address \
             FROM stream_sessions WHERE user_id = '{viewer}'::uuid ORDER BY started_at"
        ),
    );
    assert_eq!(sessions.trim(), "f|f|integer|203.0.113.7\nt|t|integer|127.0.0.1", "{sessions}");

    // The cinema topics, each event with the cinema fields, names and types.
    for (action, position) in [("start", None), ("progress", Some(3)), ("stop", Some(4))] {
        let event = drop_in.records(action, 1).await.remove(0);
        assert_eq!(event["user_id"], viewer, "{event}");
        assert_eq!(event["movie_id"], MOVIE, "{event}");
        assert_eq!(event["action"], format!("stream_{action}"), "{event}");
        assert!(event["timestamp"].is_string(), "{event}");
        if let Some(position) = position {
            assert_eq!(event["position_seconds"], position, "{event}");
        }
    }
}

/// Cinema clients never send a session id and never stop: a viewer who
/// reloads starts again, and each start plays (the cinema service answers
/// every start with 200, and its subscription answer names no plan, so no
/// stream limit applies). Every accepted report is published, as there.
#[tokio::test]
async fn the_cinema_flow_starts_again_on_a_reload_and_publishes_every_report() {
    let (users, stand) = crate::users::stand_in(200).await;
    stand.answer_everyone(streaming_users::testing::Answer::cinema_active());
    let viewer = streaming_core::domain::SessionId::random().to_string();
    let drop_in = DropIn::start(&cinema_database().await, users, &viewer).await;
    for _ in 0..4 {
        let started = drop_in.call(Method::POST, "", None).await;
        assert_eq!(started.status(), 200, "{}", started.text().await.unwrap());
    }
    for position in 1..=5 {
        let report = json!({ "position_seconds": position });
        assert_eq!(drop_in.call(Method::POST, "/progress", Some(report)).await.status(), 200);
    }
    assert_eq!(drop_in.records("start", 4).await.len(), 4);
    let published = drop_in.records("progress", 5).await;
    let mut positions: Vec<i64> = published.iter().map(|event| event["position_seconds"].as_i64().unwrap()).collect();
    positions.sort_unstable();
    assert_eq!(positions, [1, 2, 3, 4, 5], "one event per accepted report");
}

fn redis_cli(args: &[&str]) -> String {
    let url = streaming_core::contract::infra_var("STREAMGATE_REDIS_URL");
    let output = std::process::Command::new("redis-cli").args(["-u", &url]).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// During a rolling switch both services run on one Redis: the drop-in
/// reads and writes the hot copies under the cinema service's keys and in
/// its value shapes, so each sees the other's.
#[tokio::test]
async fn the_drop_in_and_the_cinema_service_share_hot_copies_on_one_redis() {
    let (users, stand) = crate::users::stand_in(200).await;
    stand.answer_everyone(streaming_users::testing::Answer::cinema_active());
    let viewer = streaming_core::domain::SessionId::random().to_string();
    let drop_in = DropIn::start(&cinema_database().await, users, &viewer).await;
    let progress_key = format!("progress:{viewer}:{MOVIE}");

    // The cinema service's copy of a position it has not written to its table yet.
    let theirs = format!(r#"{{"user_id": "{viewer}", "movie_id": "{MOVIE}", "position_seconds": 321}}"#);
    redis_cli(&["SET", &progress_key, &theirs, "EX", "86400"]);
    let read: serde_json::Value = drop_in.call(Method::GET, "/progress", None).await.json().await.unwrap();
    assert_eq!(read["position_seconds"], 321, "{read}");
    let started: serde_json::Value = drop_in.call(Method::POST, "", None).await.json().await.unwrap();
    assert_eq!(started["resume_position_seconds"], 321, "{started}");

    // A report here: the copy the cinema service reads, whole seconds.
    let report = json!({ "position_seconds": 400.6 });
    assert_eq!(drop_in.call(Method::POST, "/progress", Some(report)).await.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let copy = loop {
        let copy: serde_json::Value = serde_json::from_str(&redis_cli(&["GET", &progress_key])).unwrap();
        if copy["position_seconds"] == 400 || std::time::Instant::now() > deadline {
            break copy;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((&copy["user_id"], &copy["movie_id"]), (&json!(viewer), &json!(MOVIE)), "{copy}");
    assert!(copy["position_seconds"].is_u64(), "{copy}");
    assert_eq!(copy["position_seconds"], 400, "{copy}");
    let ttl: i64 = redis_cli(&["TTL", &progress_key]).parse().unwrap();
    assert!((86_000..=86_400).contains(&ttl), "REDIS_PROGRESS_TTL: {ttl}");

    // The subscription answer it cached, as the cinema service caches one.
    let cached: serde_json::Value =
        serde_json::from_str(&redis_cli(&["GET", &format!("subscription:{viewer}")])).unwrap();
    assert_eq!(cached["is_active"], true, "{cached}");
    assert!(cached["expires_at"].is_string(), "{cached}");
    let ttl: i64 = redis_cli(&["TTL", &format!("subscription:{viewer}")]).parse().unwrap();
    assert!((200..=300).contains(&ttl), "REDIS_SUBSCRIPTION_CACHE_TTL: {ttl}");
    // And an answer the cinema service cached is taken: this one says the
    // subscription lapsed (the user service would still say active).
    let lapsed = streaming_core::domain::SessionId::random().to_string();
    let answer = r#"{"is_active": false, "plan_id": "basic", "expires_at": "2026-01-01T00:00:00"}"#;
    redis_cli(&["SET", &format!("subscription:{lapsed}"), answer, "EX", "300"]);
    let refused =
        drop_in.client.post(&drop_in.base).bearer_auth(cinema_token_of(&lapsed, "access")).send().await.unwrap();
    assert_eq!(refused.status(), 403, "{}", refused.text().await.unwrap());
}

/// On the cinema service's tables (uuid user ids) the service starts only
/// when tokens are held to UUID subjects, which the cinema variables do.
#[tokio::test]
async fn on_the_cinema_tables_tokens_must_name_uuid_users() {
    use secrecy::SecretString;
    use streaming_api::{Application, StartupError};

    let url = cinema_database().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = |uuid_subjects: bool| {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.storage.root = dir.path().join("objects");
        settings.events.path = dir.path().join("events.jsonl");
        settings.postgres.url = Some(SecretString::from(url.clone()));
        settings.postgres.migrate_on_start = true;
        settings.auth.uuid_subjects = uuid_subjects;
        settings.auth.secret = Some(SecretString::from(CINEMA_SECRET));
        settings
    };
    match Application::build(settings(false)).await {
        Err(StartupError::Database(message)) => {
            assert!(message.contains("cinema") && message.contains("auth.uuid_subjects"), "{message}")
        }
        Err(other) => panic!("expected a database error, got {other}"),
        Ok(_) => panic!("the service started with subjects its tables cannot hold"),
    }
    assert!(Application::build(settings(true)).await.is_ok());
}
