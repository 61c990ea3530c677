//! The app on PostgreSQL: schema checks at start, `streaming-api migrate`,
//! and the track and cinema flows with the catalog, progress and sessions in
//! the database.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;
use streaming_api::{Application, Settings, StartupError};
use streaming_core::contract::infra_var;
use streaming_postgres::testing::fresh_database_url;

use crate::harness::{spawn, TestApp, MOVIE, READY};

async fn on_postgres(url: &str) -> TestApp {
    let url = url.to_owned();
    spawn(move |s| {
        s.postgres.url = Some(SecretString::from(url));
        s.postgres.migrate_on_start = true;
        s.postgres.progress_flush_interval_ms = 100;
    })
    .await
}

#[tokio::test]
async fn a_schema_that_is_behind_stops_the_start() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.storage.root = dir.path().join("objects");
    settings.events.path = dir.path().join("events.jsonl");
    settings.postgres.url = Some(SecretString::from(url));
    match Application::build(settings).await {
        Err(StartupError::Database(message)) => {
            assert!(message.contains("behind") && message.contains("streaming-api migrate"), "{message}")
        }
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("the service started on an empty schema"),
    }
}

#[tokio::test]
async fn the_migrate_command_brings_the_schema_up_to_date() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"))
            .arg("migrate")
            .env("STREAMING__POSTGRES__URL", &url)
            .env("STREAMING__LOG__FILTER", "warn")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("2 migration(s) applied"));
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).starts_with("0 migration(s) applied"));
    assert!(!String::from_utf8_lossy(&first.stderr).contains("password"), "the URL is never printed");
}

#[tokio::test]
async fn the_track_and_cinema_flows_run_on_postgres() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let app = on_postgres(&url).await;
    let first = app.stream_url(READY).await;
    assert_eq!(app.stream_url(READY).await["streamUrl"], first["streamUrl"], "demo media live in the database");

    let movie = format!("/api/v1/stream/{MOVIE}");
    let started: serde_json::Value = app.send(Method::POST, &movie, None, None).await.json().await.unwrap();
    let session = started["session_id"].as_str().unwrap().to_owned();
    let progress = json!({ "position_seconds": 3, "session_id": session, "sequence": 2 });
    assert_eq!(app.send(Method::POST, &format!("{movie}/progress"), None, Some(progress)).await.status(), 200);
    let late = json!({ "position_seconds": 1, "session_id": session, "sequence": 1 });
    let ack: serde_json::Value =
        app.send(Method::POST, &format!("{movie}/progress"), None, Some(late)).await.json().await.unwrap();
    assert_eq!(ack["applied"], false, "the database refused the older report");
    let stop = json!({ "position_seconds": 4, "session_id": session });
    assert_eq!(app.send(Method::POST, &format!("{movie}/stop"), None, Some(stop)).await.status(), 200);

    // A second instance on the same database sees the same state.
    let other = on_postgres(&url).await;
    let read: serde_json::Value =
        other.send(Method::GET, &format!("{movie}/progress"), None, None).await.json().await.unwrap();
    assert_eq!(read["position_seconds"], 4);
    let restarted: serde_json::Value = other.send(Method::POST, &movie, None, None).await.json().await.unwrap();
    assert_eq!(restarted["resume_position_seconds"], 4);
    let again = json!({ "position_seconds": 5, "session_id": session });
    let stopped: serde_json::Value =
        other.send(Method::POST, &format!("{movie}/stop"), None, Some(again)).await.json().await.unwrap();
    assert_eq!(stopped["message"], "Streaming session was already stopped", "the session was closed in the database");
}

/// A TCP proxy the test can cut and restore: an outage of the database as the
/// app sees it (connections dropped, new ones refused), without touching the
/// shared server.
struct Proxy {
    port: u16,
    upstream: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let proxy = Self { port, upstream, tasks: Default::default() };
        proxy.resume().await;
        proxy
    }

    async fn resume(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
async fn a_database_outage_is_503_and_the_service_recovers() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let (head, tail) = url.split_once('@').unwrap();
    let (hostport, database) = tail.split_once('/').unwrap();
    let proxy = Proxy::start(hostport.parse().unwrap()).await;
    let app = on_postgres(&format!("{head}@127.0.0.1:{}/{database}", proxy.port)).await;
    let movie = format!("/api/v1/stream/{MOVIE}");
    assert_eq!(app.send(Method::POST, &movie, None, None).await.status(), 200);

    proxy.cut();
    let started = std::time::Instant::now();
    let down = app.send(Method::POST, &movie, None, None).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "bounded by the pool's timeouts: {:?}",
        started.elapsed()
    );
    assert_eq!(down.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    crate::harness::assert_problem(down, 503, "service-unavailable").await;
    let read = app.send(Method::GET, &format!("{movie}/progress"), None, None).await;
    assert_eq!(read.status(), 503, "never a 500");

    proxy.resume().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.send(Method::POST, &movie, None, None).await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "the service did not recover");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
