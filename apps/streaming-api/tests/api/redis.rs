//! Two app instances sharing one Redis (cluster): URLs cached by one are hits
//! on the other, and the rate limit holds across both. A dead Redis costs
//! cache misses, never failed requests, also under load and across a restart.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use streaming_api::settings::CacheKind;
use streaming_core::contract::infra_var;

use crate::harness::{spawn, TestApp, READY};

async fn instance(url: &str, per_minute: u32, prefix: &str) -> TestApp {
    instance_with(url, per_minute, prefix, 5_000, 30_000).await
}

/// An instance on Redis `url` with an in-process level of `local_ttl_ms`
/// (0: none) and a breaker cool-down of `breaker_ms`.
async fn instance_with(url: &str, per_minute: u32, prefix: &str, local_ttl_ms: u64, breaker_ms: u64) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    spawn(move |s| {
        s.cache.kind = CacheKind::Redis;
        s.cache.local_ttl_ms = local_ttl_ms;
        s.redis.breaker_cool_down_ms = breaker_ms;
        s.redis.url = Some(SecretString::from(url));
        s.redis.key_prefix = prefix;
        s.rate_limit.stream_url_per_minute = per_minute;
        // Both instances must seal and open each other's entries.
        s.cache.encryption_keys = Some(SecretString::from("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
    })
    .await
}

fn unique_prefix() -> String {
    format!("api-{}:", streaming_core::domain::SessionId::random())
}

#[tokio::test]
async fn a_url_cached_by_one_instance_is_served_by_the_other() {
    let url = infra_var("STREAMGATE_REDIS_CLUSTER_URL");
    let prefix = unique_prefix();
    let (a, b) = (instance(&url, 0, &prefix).await, instance(&url, 0, &prefix).await);
    let first = a.stream_url(READY).await;
    let second = b.stream_url(READY).await;
    assert_eq!(first["streamUrl"], second["streamUrl"], "instance b read instance a's entry");
    assert_eq!(first["expiresAt"], second["expiresAt"]);
}

#[tokio::test]
async fn the_rate_limit_holds_across_instances() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let prefix = unique_prefix();
    let (a, b) = (instance(&url, 4, &prefix).await, instance(&url, 4, &prefix).await);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(app.stream(READY, Some(&app.demo.token)).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn a_dead_redis_costs_misses_not_requests() {
    let port = streaming_core::contract::free_port();
    let app = instance(&format!("redis://127.0.0.1:{port}"), 60, "").await;
    let started = Instant::now();
    for _ in 0..10 {
        let body = app.stream_url(READY).await;
        assert!(body["streamUrl"].as_str().is_some());
    }
    assert!(started.elapsed() < Duration::from_secs(6), "the breaker bounds the cost: {:?}", started.elapsed());
    let fast = Instant::now();
    app.stream_url(READY).await;
    assert!(fast.elapsed() < Duration::from_millis(200), "with the breaker open a request pays no timeout");
}

/// A Redis server of the test's own on `port` (no persistence; working files
/// in `dir`), accepting connections; killed when dropped.
async fn own_redis(dir: &std::path::Path, port: u16) -> tokio::process::Child {
    let redis = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is required (cargo xtask test installs it)");
    crate::harness::until_listening(port, "redis-server").await;
    redis
}

/// How many keys the Redis on `port` holds.
fn keys_in(port: u16) -> u64 {
    let output = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "dbsize"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}

/// Redis killed in the middle of a run: every request still succeeds, and
/// once the breaker is open a request pays no Redis timeout at all.
#[tokio::test]
async fn redis_killed_mid_run_costs_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = streaming_core::contract::free_port();
    let mut redis = own_redis(dir.path(), port).await;
    // No in-process level: every request goes to Redis, so the kill is felt.
    let app = instance_with(&format!("redis://127.0.0.1:{port}"), 60, "", 0, 30_000).await;
    let first = app.stream_url(READY).await;
    assert_eq!(app.stream_url(READY).await["streamUrl"], first["streamUrl"], "cached while redis is up");

    redis.kill().await.unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let started = Instant::now();
        // The rate limiter (also on Redis) falls back to the local limiter: 60 per minute is plenty.
        let body = app.stream_url(READY).await;
        assert!(body["streamUrl"].as_str().is_some());
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(1_500), "a request costs at most about one timeout: {slowest:?}");
    let started = Instant::now();
    app.stream_url(READY).await;
    assert!(started.elapsed() < Duration::from_millis(200), "the open breaker skips redis entirely");
}

/// Redis killed (SIGKILL) under concurrent load and started again on the
/// same port: no request fails, during the outage or after, and the cache
/// fills the new (empty) Redis again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_request() {
    use crate::load::{Load, Phase};

    let dir = tempfile::tempdir().unwrap();
    let port = streaming_core::contract::free_port();
    let mut redis = own_redis(dir.path(), port).await;
    // No in-process level, so every request reaches Redis (or its breaker).
    let app = std::sync::Arc::new(instance_with(&format!("redis://127.0.0.1:{port}"), 1_000_000, "", 0, 2_000).await);
    let client = app.clone();
    let load = Load::start(4, move |_, _| {
        let app = client.clone();
        async move { app.stream(READY, Some(&app.demo.token)).await.status().as_u16() }
    });

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(keys_in(port) > 0, "the app keeps its cache and limits in this Redis");
    load.enter(Phase::During);
    redis.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    load.enter(Phase::After);
    redis = own_redis(dir.path(), port).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let outcomes = load.finish().await;

    println!("redis outage: {} requests; {}", outcomes.total(), outcomes.summary());
    outcomes.report("Redis (SIGKILL)", None, None);
    assert_eq!(outcomes.other_than(&[200]), 0, "{}", outcomes.summary());
    assert!(
        outcomes.of(Phase::Before, 200) > 0 && outcomes.of(Phase::During, 200) > 0,
        "the load ran before and during the outage: {}",
        outcomes.summary()
    );
    // The breaker skips Redis for its cool-down (2 s here), then a trial
    // request finds it back and the cache fills the new, empty server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while keys_in(port) == 0 {
        assert!(Instant::now() < deadline, "the restarted Redis was not used again");
        app.stream_url(READY).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(redis);
}

/// The cinema flow with Redis: progress lands in the seed's hot copy.
#[tokio::test]
async fn progress_goes_through_the_redis_hot_copy() {
    use reqwest::Method;
    use serde_json::json;

    let url = infra_var("STREAMGATE_REDIS_URL");
    let prefix = unique_prefix();
    let app = instance(&url, 60, &prefix).await;
    let movie = "/api/v1/stream/5eed0000-0000-4000-8000-000000000001";
    let started: serde_json::Value = app.send(Method::POST, movie, None, None).await.json().await.unwrap();
    let session = started["session_id"].as_str().unwrap();
    let body = json!({ "position_seconds": 4, "session_id": session });
    assert_eq!(app.send(Method::POST, &format!("{movie}/progress"), None, Some(body)).await.status(), 200);
    let read: serde_json::Value =
        app.send(Method::GET, &format!("{movie}/progress"), None, None).await.json().await.unwrap();
    assert_eq!(read["position_seconds"], 4);

    // The copy is written behind, within the hot-copy interval.
    let key = format!("{prefix}progress:{{{}}}:5eed0000-0000-4000-8000-000000000001", app.demo.user);
    let read_copy = || {
        let output = std::process::Command::new("redis-cli").args(["-u", &url, "--raw", "GET", &key]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut copy = read_copy();
    while copy.is_none() && Instant::now() < deadline {
        tokio::time::sleep(streaming_redis::HOT_COPY_INTERVAL).await;
        copy = read_copy();
    }
    let copy = copy.expect("the hot copy reaches Redis");
    assert_eq!(copy["position_seconds"], 4.0);
    assert_eq!(copy["session_id"], session);
}

/// Progress events are thinned out across instances, not per instance: one
/// viewer's reports sent alternately to two instances on one Redis give one
/// event per interval in all, and a report 80 % of the interval after the
/// last event gets one.
#[tokio::test]
async fn progress_events_are_thinned_out_across_instances() {
    use crate::harness::MOVIE;
    use reqwest::Method;

    let url = infra_var("STREAMGATE_REDIS_URL");
    let prefix = unique_prefix();
    let instance = || {
        let (url, prefix) = (url.clone(), prefix.clone());
        spawn(move |s| {
            s.redis.url = Some(SecretString::from(url));
            s.redis.key_prefix = prefix;
            s.playback.progress_event_interval_seconds = 1;
        })
    };
    let (a, b) = (instance().await, instance().await);
    let progress = format!("/api/v1/stream/{MOVIE}/progress");
    let progress = progress.as_str();
    async fn report(app: &TestApp, progress: &str, position: u32) -> u16 {
        let body = serde_json::json!({ "position_seconds": position });
        app.send(Method::POST, progress, None, Some(body)).await.status().as_u16()
    }
    let published =
        || [&a, &b].iter().flat_map(|app| app.events()).filter(|event| event["action"] == "stream_progress").count();
    for position in 1..=6 {
        let app = if position % 2 == 0 { &a } else { &b };
        assert_eq!(report(app, progress, position).await, 200);
    }
    assert_eq!(published(), 1, "six reports within the interval on two instances");
    // 0.8 s is 80 % of the 1 s interval.
    tokio::time::sleep(Duration::from_millis(850)).await;
    assert_eq!(report(&a, progress, 7).await, 200);
    assert_eq!(published(), 2, "a report 80 % of the interval after the last event gets one");
    assert_eq!(report(&b, progress, 8).await, 200);
    assert_eq!(published(), 2);
}

/// The movie limits (`stream-start`, `stream-manifest`) count on Redis like
/// `stream-url`: a user cannot double them by alternating instances.
#[tokio::test]
async fn the_start_and_manifest_limits_hold_across_instances() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let prefix = unique_prefix();
    let limited = |url: String, prefix: String| {
        spawn(move |s| {
            s.redis.url = Some(SecretString::from(url));
            s.redis.key_prefix = prefix;
            s.rate_limit.stream_start_per_minute = 2;
            s.rate_limit.manifest_per_minute = 2;
            s.users.default_max_devices = 0;
        })
    };
    let (a, b) = (limited(url.clone(), prefix.clone()).await, limited(url, prefix).await);
    let start = format!("/api/v1/stream/{}", crate::harness::MOVIE);
    let mut statuses = Vec::new();
    let mut manifests = Vec::new();
    for i in 0..3 {
        let app = if i % 2 == 0 { &a } else { &b };
        let response = app.send(reqwest::Method::POST, &start, None, None).await;
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            let body: serde_json::Value = response.json().await.unwrap();
            manifests.push((app, body["manifest_url"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(statuses, [200, 200, 429], "two starts between both instances");
    let mut fetched = Vec::new();
    for (app, url) in manifests.iter().chain(manifests.iter()) {
        fetched.push(app.client.get(url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(fetched, [200, 200, 429, 429], "two manifest fetches between both instances");
}

/// The writes a progress report holds in Redis until its flush (its
/// position, maybe its heartbeat and its event) share script calls with each
/// other and with the other reports' writes waiting then: 48 reports sent at
/// once hold their writes in calls of several writes each, not one call a
/// write (the Redis round trips were most of a report's CPU under load).
#[tokio::test]
async fn concurrent_reports_hold_their_writes_in_shared_redis_calls() {
    use reqwest::Method;
    use serde_json::json;
    use streaming_postgres::testing::fresh_database_url;

    use crate::harness::MOVIE;
    use crate::observability::{delta, scrape};

    let database = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let (url, prefix) = (infra_var("STREAMGATE_REDIS_URL"), unique_prefix());
    let viewers: Vec<String> = (0..48).map(|n| format!("holds-viewer-{n}")).collect();
    let configure = move |s: &mut streaming_api::Settings| {
        s.postgres.url = Some(SecretString::from(database));
        s.postgres.migrate_on_start = true;
        s.redis.url = Some(SecretString::from(url));
        s.redis.key_prefix = prefix;
    };
    let app = crate::harness::spawn_with(configure, crate::harness::subscribers(&viewers)).await;
    let movie = format!("/api/v1/stream/{MOVIE}");
    let mut sessions = Vec::new();
    for viewer in &viewers {
        let token = crate::harness::token_for(viewer);
        let started = app.send(Method::POST, &movie, Some(&token), Some(json!({}))).await;
        let started: serde_json::Value = started.json().await.unwrap();
        assert!(started["session_id"].is_string(), "{started}");
        sessions.push((token, started["session_id"].as_str().unwrap().to_owned()));
    }
    let progress = format!("{movie}/progress");
    let before = scrape(&app).await;
    // Positions within the 16 s demo movie.
    let reports = sessions.iter().enumerate().map(|(n, (token, session))| {
        let body = json!({ "position_seconds": n % 10 + 1, "session_id": session });
        app.send(Method::POST, &progress, Some(token), Some(body))
    });
    for answer in futures_util::future::join_all(reports).await {
        assert_eq!(answer.status(), 200);
    }
    let after = scrape(&app).await;
    let held: f64 = ["progress", "sessions", "outbox"]
        .iter()
        .map(|queue| delta(&before, &after, &format!("pending_writes_held_total{{queue=\"{queue}\"}}")))
        .sum();
    let calls = delta(&before, &after, "pending_writes_hold_calls_total");
    println!("48 reports at once held {held} writes in {calls} calls");
    assert!(held >= 48.0, "each report holds its position at least: {held}");
    assert!(calls * 3.0 <= held, "{held} writes held in {calls} calls: fewer than three a call");

    // One report at a time, once a heartbeat is due again: its heartbeat
    // and its position go out in one call (before, one call each).
    tokio::time::sleep(streaming_postgres::HEARTBEAT_STEP + Duration::from_millis(100)).await;
    let (before, lone) = (scrape(&app).await, &sessions[..8]);
    for (n, (token, session)) in lone.iter().enumerate() {
        let body = json!({ "position_seconds": n % 4 + 12, "session_id": session });
        assert_eq!(app.send(Method::POST, &progress, Some(token), Some(body)).await.status(), 200);
    }
    let after = scrape(&app).await;
    let heartbeats = delta(&before, &after, "pending_writes_held_total{queue=\"sessions\"}");
    let positions = delta(&before, &after, "pending_writes_held_total{queue=\"progress\"}");
    let events = delta(&before, &after, "pending_writes_held_total{queue=\"outbox\"}");
    let calls = delta(&before, &after, "pending_writes_hold_calls_total");
    println!("8 lone reports held {heartbeats} heartbeats, {positions} positions, {events} events in {calls} calls");
    assert_eq!((heartbeats, positions), (8.0, 8.0), "each report holds its heartbeat and its position");
    assert!(
        calls <= 8.0 + events,
        "{calls} calls for 8 reports and {events} events: one call for heartbeat and position"
    );
}
