//! The app on PostgreSQL: schema checks at start, `streaming-api migrate`,
//! and the track and cinema flows with the catalog, progress and sessions in
//! the database.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;
use streaming_api::{Application, Settings, StartupError};
use streaming_core::contract::infra_var;
use streaming_postgres::testing::fresh_database_url;

use crate::harness::{psql, spawn, TestApp, MOVIE, READY};

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
    settings.auth.secret = Some(SecretString::from(crate::harness::SECRET));
    match Application::build(settings).await {
        Err(StartupError::Database(message)) => {
            assert!(message.contains("behind") && message.contains("streaming-api migrate"), "{message}")
        }
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("the service started on an empty schema"),
    }
}

/// A Deployment's first rollout starts its replicas at once: three
/// instances with `migrate_on_start` on one empty database all start, and
/// the schema is migrated exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_started_together_on_an_empty_database_all_start() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = |n: usize| {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.storage.root = dir.path().join(format!("objects-{n}"));
        settings.events.path = dir.path().join(format!("events-{n}.jsonl"));
        settings.postgres.url = Some(SecretString::from(url.clone()));
        settings.postgres.migrate_on_start = true;
        settings.auth.secret = Some(SecretString::from(crate::harness::SECRET));
        settings
    };
    let (a, b, c) =
        tokio::join!(Application::build(settings(1)), Application::build(settings(2)), Application::build(settings(3)));
    for (n, started) in [a, b, c].into_iter().enumerate() {
        if let Err(error) = started {
            panic!("instance {} did not start: {error}", n + 1);
        }
    }
    let applied = psql(&url, "SELECT count(*) FROM __diesel_schema_migrations");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(applied.trim(), migrations.to_string(), "every migration applied once");
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
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let count =
        std::fs::read_dir(migrations).unwrap().filter(|e| e.as_ref().unwrap().path().join("up.sql").exists()).count();
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(said.starts_with(&format!("{count} migration(s) applied")), "{said}");
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
        let port = streaming_core::contract::free_port();
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
    crate::harness::assert_unavailable(down).await;
    let read = app.send(Method::GET, &format!("{movie}/progress"), None, None).await;
    assert_eq!(read.status(), 503, "never a 500");

    proxy.resume().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.send(Method::POST, &movie, None, None).await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "the service did not recover");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// PostgreSQL stopped (immediate shutdown) and started again while four
/// viewers report progress and look up movies: reports keep being
/// acknowledged (they wait in the write-behind queue), what needs the
/// database is 503 with `Retry-After` and never 500, and every acknowledged
/// report is in the database afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_restarted_under_load_loses_no_acknowledged_progress() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::load::{Load, Phase};
    use streaming_postgres::testing::OwnPostgres;

    let server = OwnPostgres::start(&infra_var("STREAMGATE_POSTGRES_BIN"));
    let viewers: Vec<String> = (0..4).map(|i| format!("pg-viewer-{i}")).collect();
    let overrides = crate::harness::subscribers(&viewers);
    let url = server.url();
    let app = crate::harness::spawn_with(
        move |s| {
            s.postgres.url = Some(SecretString::from(url));
            s.postgres.migrate_on_start = true;
            s.postgres.progress_flush_interval_ms = 100;
            s.postgres.breaker_cool_down_ms = 1_000;
        },
        overrides,
    )
    .await;
    let movie = format!("/api/v1/stream/{MOVIE}");
    let mut clients = Vec::new();
    for viewer in &viewers {
        let token = crate::harness::token_for(viewer);
        let started: serde_json::Value = app.send(Method::POST, &movie, Some(&token), None).await.json().await.unwrap();
        clients.push((token, started["session_id"].as_str().unwrap().to_owned()));
    }
    // The last report each viewer had acknowledged (positions in thousandths
    // of a second: the 16 s demo movie counts as watched near its end).
    let acknowledged: Arc<Vec<AtomicU64>> = Arc::new(viewers.iter().map(|_| AtomicU64::new(0)).collect());
    let (app, clients) = (Arc::new(app), Arc::new(clients));
    let (shared, acks) = (app.clone(), acknowledged.clone());
    let load = Load::start(viewers.len(), move |i, n| {
        let (app, clients, acks) = (shared.clone(), clients.clone(), acks.clone());
        async move {
            let (token, session) = &clients[i];
            let response = if n % 8 == 0 {
                // A movie nobody has seen: the catalog must ask the database.
                let unknown = streaming_core::domain::SessionId::random();
                app.send(Method::GET, &format!("/api/v1/stream/{unknown}/progress"), Some(token), None).await
            } else {
                let body = json!({ "position_seconds": n as f64 / 1000.0, "session_id": session, "sequence": n });
                let response =
                    app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}/progress"), Some(token), Some(body)).await;
                if response.status() == 200 {
                    acks[i].store(n, Ordering::Relaxed);
                }
                response
            };
            let status = response.status().as_u16();
            if status == 503 {
                crate::harness::assert_unavailable(response).await;
            }
            status
        }
    });

    tokio::time::sleep(Duration::from_millis(700)).await;
    load.enter(Phase::During);
    server.kill();
    // The first requests that need the database wait out the 2 s acquire
    // timeout; once 5 failed, the breaker answers 503 at once, and /readyz says so.
    let (outage, mut unready) = (Instant::now(), false);
    while outage.elapsed() < Duration::from_millis(3_000) {
        let ready: serde_json::Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
        unready |= ready["checks"]["database"] == "circuit breaker open";
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unready, "/readyz reported the open breaker");
    load.enter(Phase::After);
    server.resume();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let outcomes = load.finish().await;
    println!("postgres outage: {} requests; {}", outcomes.total(), outcomes.summary());
    assert_eq!(outcomes.other_than(&[200, 404, 503]), 0, "only answers or 503: {}", outcomes.summary());
    assert_eq!(outcomes.of(Phase::Before, 503), 0, "{}", outcomes.summary());
    assert!(outcomes.of(Phase::During, 503) > 0, "the outage was felt: {}", outcomes.summary());
    assert!(outcomes.of(Phase::During, 200) > 0, "reports were still acknowledged: {}", outcomes.summary());
    assert!(outcomes.of(Phase::After, 404) > 0, "the catalog answers again: {}", outcomes.summary());

    // Every acknowledged report reaches the database once the queue is
    // flushed (each viewer's last one stands for all its earlier ones).
    let deadline = Instant::now() + Duration::from_secs(15);
    let lost = loop {
        let mut lost = 0;
        for (viewer, acknowledged) in viewers.iter().zip(acknowledged.iter()) {
            let sql =
                format!("SELECT round(position_seconds * 1000)::bigint FROM watch_progress WHERE user_id = '{viewer}'");
            let stored: u64 = crate::harness::psql(&server.url(), &sql).trim().parse().unwrap_or(0);
            lost += u64::from(stored < acknowledged.load(Ordering::Relaxed));
        }
        if lost == 0 || Instant::now() > deadline {
            break lost;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    outcomes.report("PostgreSQL (SIGKILL)", Some(lost), None);
    assert_eq!(lost, 0, "viewers whose last acknowledged report is not in the database");
    let reports: Vec<u64> = acknowledged.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    println!("postgres outage: each viewer's last acknowledged report (sequence {reports:?}) found in the database");
}

/// Sessions nobody stopped do not stay open for ever: two instances sweep
/// them (here after 2 s without a sign of life), each session once, ended
/// at its last heartbeat with a stop event; a user's closed history no
/// longer counts towards the plan's limit or burdens a start.
#[tokio::test]
async fn sessions_nobody_stopped_are_closed_by_the_instances_sweeps() {
    const HISTORY: u32 = 20_000;
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let instance = || {
        let url = url.clone();
        spawn(move |s| {
            s.postgres.url = Some(SecretString::from(url));
            s.postgres.migrate_on_start = true;
            s.playback.session_idle_timeout_seconds = 1;
            s.playback.session_close_after_seconds = 2;
        })
    };
    let (a, b) = (instance().await, instance().await);
    let user = streaming_api::demo::DEMO_USER;
    psql(
        &url,
        &format!(
            "INSERT INTO stream_sessions (id, user_id, movie_id, manifest_type, started_at, last_heartbeat_at) \
             SELECT gen_random_uuid(), '{user}', '{MOVIE}', 'hls', t, t \
             FROM (SELECT now() - interval '30 days' + n * interval '1 minute' AS t \
                   FROM generate_series(1, {HISTORY}) AS n) AS history"
        ),
    );
    let movie = format!("/api/v1/stream/{MOVIE}");
    let started: serde_json::Value = a.send(Method::POST, &movie, None, None).await.json().await.unwrap();
    let session = started["session_id"].as_str().unwrap().to_owned();

    let open = || psql(&url, "SELECT count(*) FROM stream_sessions WHERE ended_at IS NULL").trim().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while open() != "0" {
        assert!(std::time::Instant::now() < deadline, "{} sessions still open", open());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let row = psql(
        &url,
        &format!(
            "SELECT ended_at = last_heartbeat_at, duration_seconds >= 0 FROM stream_sessions WHERE id = '{session}'"
        ),
    );
    assert_eq!(row.trim(), "t|t", "ended at its last heartbeat");
    let stops = psql(
        &url,
        "SELECT count(*), count(DISTINCT payload->>'session_id') FROM outbox \
         WHERE topic = 'stream.stop' AND NOT payload ? 'position_seconds'",
    );
    assert_eq!(stops.trim(), format!("{n}|{n}", n = HISTORY + 1), "one stop event per closed session");

    // The demo plan allows two streams: the closed history does not count.
    for instance in [&a, &b] {
        assert_eq!(instance.send(Method::POST, &movie, None, None).await.status(), 200);
    }
    let stop = json!({ "position_seconds": 1, "session_id": session });
    let stopped: serde_json::Value =
        b.send(Method::POST, &format!("{movie}/stop"), None, Some(stop)).await.json().await.unwrap();
    assert_eq!(stopped["message"], "Streaming session was already stopped");
}

/// A URL for the database of `url` that answers only `after` from now: a
/// forwarder to it opens then, on a port where nothing listened before.
fn late(url: &str, after: std::time::Duration) -> String {
    let real = url.split('@').nth(1).unwrap().split('/').next().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let late_url = url.replacen(&real, &format!("127.0.0.1:{port}"), 1);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let real = real.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(real).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    late_url
}

/// Pods and their database often start together: a database that answers
/// only some seconds after the service (or the migration Job) starts is
/// waited for, at most `postgres.start_wait_seconds`; with 0 the start
/// stops at once.
#[tokio::test]
async fn the_start_and_the_migrations_wait_for_a_database_that_comes_up_late() {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = |url: String, wait: u64| {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.storage.root = dir.path().join("objects");
        settings.events.path = dir.path().join("events.jsonl");
        settings.postgres.url = Some(SecretString::from(url));
        settings.postgres.migrate_on_start = true;
        settings.postgres.start_wait_seconds = wait;
        settings.auth.secret = Some(SecretString::from(crate::harness::SECRET));
        settings
    };
    let up_after = std::time::Duration::from_secs(3);
    let started = std::time::Instant::now();
    match Application::build(settings(late(&url, 10 * up_after), 0)).await {
        Err(StartupError::Database(_)) => {}
        Err(other) => panic!("expected a database error, got {other}"),
        Ok(_) => panic!("started without a database"),
    }
    assert!(started.elapsed() < up_after, "without a wait the start stops at once");

    let started = std::time::Instant::now();
    let app = Application::build(settings(late(&url, up_after), 30)).await.expect("the start waits for the database");
    assert!(started.elapsed() >= up_after, "it did wait");
    drop(app);

    // The migration command, on an empty database that comes up late.
    let empty = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let started = std::time::Instant::now();
    let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_streaming-api"))
        .arg("migrate")
        .env("STREAMING__POSTGRES__URL", late(&empty, up_after))
        .env("STREAMING__LOG__FILTER", "error")
        .output()
        .await
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert!(started.elapsed() >= up_after, "it did wait");
}
