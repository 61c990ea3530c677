//! Logs never carry a presigned URL, a signature, an object key, a token or
//! a secret: the whole track and movie flow runs, on the embedded store and
//! on the S3 server, with every crate logging at `trace` through the
//! production JSON formatter, and the captured lines are searched.
//!
//! Its own test binary: the log subscriber is process-wide.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::io::Write;
use std::sync::{Arc, Mutex};

use harness::{spawn, TestApp, MOVIE, READY, SECRET, SIGNING_KEY};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use streaming_api::settings::{CacheKind, LogFormat, LogSettings};
use streaming_core::contract::infra_var as infra;

/// Every log line, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// What must never be logged, gathered while the flow runs.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, value: impl Into<String>) {
        let value = value.into();
        assert!(value.len() >= 8, "too short to search for: {value:?}");
        self.0.push(value);
    }

    /// A signed URL, its path and each signature-bearing query value.
    fn add_url(&mut self, url: &str) {
        self.add(url);
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        self.add(path.split_once("://").map_or(path, |(_, rest)| rest));
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=') {
                if ["sig", "X-Amz-Signature", "grant", "X-Amz-Credential"].contains(&name) {
                    self.add(value);
                }
            }
        }
    }

    /// Every URL in a manifest body.
    fn add_manifest(&mut self, body: &str) {
        for url in body.split(['\n', '"', '<', '>']).filter(|part| part.starts_with("http")) {
            self.add_url(&url.replace("&amp;", "&"));
        }
    }
}

async fn flow(app: &TestApp, secrets: &mut Secrets) {
    secrets.add(app.demo.token.clone());
    // Track: a miss, a hit, the bytes, a refusal.
    let body = app.stream_url(READY).await;
    let url = body["streamUrl"].as_str().unwrap().to_owned();
    secrets.add_url(&url);
    app.stream_url(READY).await;
    let range = app.client.get(&url).header("Range", "bytes=0-15").send().await.unwrap();
    assert_eq!(range.status(), 206);
    let forged = format!("{}x", &app.demo.token[..app.demo.token.len() - 1]);
    assert_eq!(app.stream(READY, Some(&forged)).await.status(), 401);

    // Movie: both renditions, progress, stop, a revoked grant.
    for kind in ["hls", "dash"] {
        let start = format!("/api/v1/stream/{MOVIE}");
        let started = app.send(Method::POST, &start, None, Some(json!({ "manifest_type": kind }))).await;
        let started: Value = started.json().await.unwrap();
        let manifest_url = started["manifest_url"].as_str().unwrap().to_owned();
        secrets.add_url(&manifest_url);
        let manifest = app.client.get(&manifest_url).send().await.unwrap();
        assert_eq!(manifest.status(), 200);
        secrets.add_manifest(&manifest.text().await.unwrap());
        let session = started["session_id"].clone();
        let progress = json!({ "position_seconds": 3, "session_id": session });
        let path = format!("/api/v1/stream/{MOVIE}/progress");
        assert_eq!(app.send(Method::POST, &path, None, Some(progress)).await.status(), 200);
        let stop = json!({ "position_seconds": 4, "session_id": session });
        assert_eq!(
            app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}/stop"), None, Some(stop)).await.status(),
            200
        );
        assert_eq!(app.client.get(&manifest_url).send().await.unwrap().status(), 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_url_signature_key_token_or_secret_reaches_the_logs_at_trace_level() {
    let captured = Captured::default();
    let log = LogSettings { filter: "trace".into(), format: LogFormat::Json, user_ids: true };
    streaming_api::telemetry::install_logging(
        &log,
        &Default::default(),
        tracing_subscriber::EnvFilter::new("trace"),
        captured.clone(),
    )
    .unwrap();

    let mut secrets = Secrets::default();
    for secret in [SECRET, SIGNING_KEY] {
        secrets.add(secret);
    }
    // Object keys, in the forms a careless line would print them.
    for key in [format!("tracks/{READY}"), format!("movies/{MOVIE}/"), "segment-000.ts".into(), "init-0.m4s".into()] {
        secrets.add(key);
    }
    let embedded = spawn(|_| {}).await;
    flow(&embedded, &mut secrets).await;

    secrets.add(infra("STREAMGATE_S3_SECRET_KEY"));
    let on_s3 = spawn(harness::use_s3).await;
    flow(&on_s3, &mut secrets).await;

    // Everything real: S3, the Redis cache, PostgreSQL with its outbox, Kafka.
    let brokers = infra("STREAMGATE_KAFKA_BROKERS");
    let prefix = streaming_kafka::testing::unique_prefix();
    streaming_kafka::testing::create_topics(&brokers, &prefix, &streaming_kafka::testing::PLAYBACK_TOPICS).await;
    let database = streaming_postgres::testing::fresh_database_url(&infra("STREAMGATE_POSTGRES_URL")).await;
    secrets.add(database.rsplit_once('@').map_or(database.as_str(), |(credentials, _)| credentials));
    let everything = spawn(|s| {
        harness::use_s3(s);
        s.cache.kind = CacheKind::Redis;
        s.redis.url = Some(SecretString::from(infra("STREAMGATE_REDIS_URL")));
        s.redis.key_prefix = prefix.clone();
        s.postgres.url = Some(SecretString::from(database.clone()));
        s.postgres.migrate_on_start = true;
        s.postgres.progress_flush_interval_ms = 50;
        s.kafka.enabled = true;
        s.kafka.brokers = brokers.clone();
        s.kafka.topic_prefix = prefix.clone();
        s.kafka.relay_poll_interval_ms = 50;
    })
    .await;
    flow(&everything, &mut secrets).await;
    // Let the write-behind queues and the outbox relay run (and log) once more.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // Kept for whoever investigates a failure.
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("redaction-logs.jsonl"), &logs).unwrap();
    // The flow was logged, with the spec's fields, as JSON lines.
    assert!(logs.lines().count() > 50, "{} lines", logs.lines().count());
    for line in logs.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    for expected in ["stream URL requested", "\"TrackId\"", "\"UserId\"", "\"CacheHit\"", "\"KeyVersion\"", "trace_id"]
    {
        assert!(logs.contains(expected), "{expected} missing from the logs");
    }
    for secret in &secrets.0 {
        if let Some(line) = logs.lines().find(|line| line.contains(secret.as_str())) {
            panic!("logged: {secret:?} in\n{line}");
        }
    }
}

/// Every config type that holds a secret keeps it out of its `Debug`
/// output (a `{:?}` of a config in a log line or a panic message).
#[test]
fn config_types_keep_their_secrets_out_of_debug_output() {
    use streaming_s3::{S3Config, S3Credentials};
    use streaming_users::{Credentials, UserServiceConfig};

    let secrets = ["redis-password", "sentinel-password", "pg-password", "s3-secret-key", "users-service-token"];
    let redis = streaming_redis::RedisConfig::new(
        "redis-sentinel://:redis-password@s1:26379?sentinelPassword=sentinel-password",
    );
    let postgres = streaming_postgres::PgConfig::new("postgres://app:pg-password@db:5432/streams");
    let s3 = S3Config {
        endpoint: Some("http://127.0.0.1:9000".into()),
        region: "us-east-1".into(),
        bucket: "media".into(),
        credentials: S3Credentials::Static {
            access_key: "streamgate".into(),
            secret_key: SecretString::from("s3-secret-key"),
        },
        request_timeout: std::time::Duration::from_secs(5),
        breaker_cool_down: std::time::Duration::from_secs(30),
    };
    let users = UserServiceConfig::new(
        "http://users.internal",
        Credentials::Service(SecretString::from("users-service-token")),
    );
    let settings = streaming_api::Settings::load(
        None,
        [
            ("STREAMING__REDIS__URL", "redis://:redis-password@cache:6379"),
            ("STREAMING__POSTGRES__URL", "postgres://app:pg-password@db/streams"),
            ("STREAMING__STORAGE__S3__SECRET_KEY", "s3-secret-key"),
            ("STREAMING__USERS__SERVICE_TOKEN", "users-service-token"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    for debug in [
        format!("{redis:?}"),
        format!("{postgres:?}"),
        format!("{s3:?}"),
        format!("{users:?}"),
        format!("{settings:?}"),
    ] {
        for secret in secrets {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
    assert!(format!("{postgres:?}").contains("db:5432/streams"), "the rest stays readable");
}
