//! The track and movie flows with the S3 store against the real
//! S3-compatible server of `cargo xtask test`, switched on by settings alone.

use reqwest::Method;
use secrecy::SecretString;
use streaming_api::settings::StorageKind;

use crate::harness::{spawn, TestApp, READY};

use streaming_core::contract::infra_var as infra;

async fn spawn_on_s3() -> TestApp {
    spawn(crate::harness::use_s3).await
}

#[tokio::test]
async fn the_track_flow_runs_against_the_s3_server() {
    let app = spawn_on_s3().await;
    let body = app.stream_url(READY).await;
    let url = body["streamUrl"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&infra("STREAMGATE_S3_ENDPOINT")), "the player goes straight to the store: {url}");
    assert!(url.contains("X-Amz-Signature="));

    let expected = streaming_api::demo::tone_wav(440.0, 5);
    assert_eq!(body["fileSizeBytes"], expected.len());
    let range = app.client.get(&url).header("Range", "bytes=0-99").send().await.unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], format!("bytes 0-99/{}", expected.len()));
    assert_eq!(&range.bytes().await.unwrap()[..], &expected[..100]);

    assert_eq!(app.stream_url(READY).await["streamUrl"], url.as_str(), "the second request is a cache hit");
    let local = app.client.get(app.url("/objects/tracks/x.wav?exp=1&sig=x")).send().await.unwrap();
    assert_eq!(local.status(), 404, "the embedded object route is off with S3");
}

#[tokio::test]
async fn both_movie_renditions_play_from_the_private_bucket_through_signed_manifests() {
    use crate::movies::{ffmpeg_plays, DEMO_FRAMES};
    let app = spawn_on_s3().await;
    // HLS: three segments; DASH: two init sections and six segments.
    for (kind, signed) in [("hls", 3), ("dash", 8)] {
        let body = serde_json::json!({ "manifest_type": kind });
        let response =
            app.send(Method::POST, "/api/v1/stream/5eed0000-0000-4000-8000-000000000001", None, Some(body)).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        let url = body["manifest_url"].as_str().unwrap().to_owned();
        let manifest = app.client.get(&url).send().await.unwrap();
        assert_eq!(manifest.status(), 200);
        let text = manifest.text().await.unwrap();
        assert_eq!(text.matches("X-Amz-Signature=").count(), signed, "every object presigned: {text}");
        let unsigned = app.client.get(format!(
            "{}/{}/movies/5eed0000-0000-4000-8000-000000000001/index.mpd",
            infra("STREAMGATE_S3_ENDPOINT"),
            infra("STREAMGATE_S3_BUCKET")
        ));
        assert_eq!(unsigned.send().await.unwrap().status(), 403, "the bucket is private");
        // A real player fetches every segment from the S3 server, which checks each signature.
        assert_eq!(ffmpeg_plays(&url).await, Ok(DEMO_FRAMES), "{kind}");
    }
}

/// A dead store: every manifest check fails, the breaker opens, `/readyz` says so.
#[tokio::test]
async fn an_unreachable_store_opens_the_breaker_and_readyz_reports_it() {
    use std::sync::Arc;
    use streaming_core::adapters::MemoryCatalog;
    use streaming_core::domain::{Media, MediaKind, MediaStatus, ObjectKey, PlanFeatures, Visibility};

    let catalog = Arc::new(MemoryCatalog::new());
    catalog.upsert(Media {
        id: crate::harness::MOVIE.parse().unwrap(),
        kind: MediaKind::Movie,
        owner: None,
        status: MediaStatus::Ready,
        object_key: ObjectKey::try_from("movies/m").unwrap(),
        content_type: "application/vnd.apple.mpegurl".into(),
        size_bytes: 0,
        duration_seconds: Some(6.0),
        visibility: Visibility::Public,
        required_features: PlanFeatures::default(),
    });
    let dead_port = streaming_core::contract::free_port();
    let overrides = streaming_api::PortOverrides { catalog: Some(catalog), ..streaming_api::PortOverrides::default() };
    let app = crate::harness::spawn_with(
        |s| {
            s.demo.enabled = Some(false);
            s.storage.kind = StorageKind::S3;
            s.storage.s3.endpoint = Some(format!("http://127.0.0.1:{dead_port}"));
            s.storage.s3.bucket = "nowhere".into();
            s.storage.s3.access_key = "key".into();
            s.storage.s3.secret_key = Some(SecretString::from("secret"));
            s.storage.s3.request_timeout_ms = 500;
        },
        overrides,
    )
    .await;
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    for _ in 0..5 {
        let response = app.send(Method::POST, "/api/v1/stream/5eed0000-0000-4000-8000-000000000001", None, None).await;
        crate::harness::assert_problem(response, 503, "service-unavailable").await;
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["object_store"], "circuit breaker open");
}

/// An S3 server of the test's own on `port` (`s3s-fs`, as `cargo xtask
/// infra up` installs it, with the same credentials) serving the buckets
/// under `dir`; killed when dropped.
async fn own_s3(dir: &std::path::Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new(infra("STREAMGATE_S3S_FS_BIN"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", &infra("STREAMGATE_S3_ACCESS_KEY"), "--secret-key", &infra("STREAMGATE_S3_SECRET_KEY")])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    crate::harness::until_listening(port, "s3s-fs").await;
    child
}

/// The S3 server killed and started again while three clients ask for a
/// track's URL and one starts and stops the movie. Track URLs are signed
/// locally, so only the store's probe can tell it is gone: once its breaker
/// opens, track URLs (cached or not: no player could fetch them) are 503
/// with `Retry-After`, like movie starts (which check the manifest in the
/// store); never 500; both work again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_server_killed_and_restarted_under_load_costs_only_what_needs_it() {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::load::{Load, Phase};

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("faults")).unwrap();
    let port = streaming_core::contract::free_port();
    let mut server = own_s3(dir.path(), port).await;
    let app = Arc::new(
        spawn(|s| {
            crate::harness::use_s3(s);
            s.storage.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
            s.storage.s3.bucket = "faults".into();
            s.storage.s3.request_timeout_ms = 500;
            s.storage.s3.breaker_cool_down_ms = 1_000;
            s.storage.s3.probe_interval_ms = 100;
            s.rate_limit.stream_url_per_minute = 0;
        })
        .await,
    );
    let shared = app.clone();
    let tracks = Load::start(3, move |_, _| {
        let app = shared.clone();
        async move {
            let response = app.stream(READY, Some(&app.demo.token)).await;
            let status = response.status().as_u16();
            if status == 503 {
                crate::harness::assert_unavailable(response).await;
            }
            status
        }
    });
    let shared = app.clone();
    let starts = Load::start(1, move |_, _| {
        let app = shared.clone();
        async move {
            let movie = format!("/api/v1/stream/{}", crate::harness::MOVIE);
            let response = app.send(Method::POST, &movie, None, None).await;
            let status = response.status().as_u16();
            if status == 200 {
                let started: serde_json::Value = response.json().await.unwrap();
                let stop = serde_json::json!({ "position_seconds": 1, "session_id": started["session_id"] });
                assert_eq!(app.send(Method::POST, &format!("{movie}/stop"), None, Some(stop)).await.status(), 200);
            } else if status == 503 {
                crate::harness::assert_unavailable(response).await;
            }
            status
        }
    });

    tokio::time::sleep(Duration::from_millis(700)).await;
    tracks.enter(Phase::During);
    starts.enter(Phase::During);
    server.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    server = own_s3(dir.path(), port).await;
    tracks.enter(Phase::After);
    starts.enter(Phase::After);
    // Longer than the breaker's cool-down: a trial finds the store back.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (tracks, starts) = (tracks.finish().await, starts.finish().await);
    drop(server);

    println!("s3 outage, track URLs: {} requests; {}", tracks.total(), tracks.summary());
    println!("s3 outage, movie starts: {} requests; {}", starts.total(), starts.summary());
    tracks.report("S3 server (SIGKILL): track URLs", None, None);
    starts.report("S3 server (SIGKILL): movie starts and stops", None, None);
    assert_eq!(tracks.other_than(&[200, 503]), 0, "{}", tracks.summary());
    assert_eq!(tracks.of(Phase::Before, 503), 0, "{}", tracks.summary());
    assert!(tracks.of(Phase::During, 503) > 0, "URLs no player could fetch are refused: {}", tracks.summary());
    assert!(tracks.of(Phase::After, 200) > 0, "track URLs again: {}", tracks.summary());
    assert_eq!(starts.other_than(&[200, 503]), 0, "{}", starts.summary());
    assert_eq!(starts.of(Phase::Before, 503), 0, "{}", starts.summary());
    assert!(starts.of(Phase::During, 503) > 0, "the outage was felt: {}", starts.summary());
    assert!(starts.of(Phase::After, 200) > 0, "movies start again: {}", starts.summary());
}

/// Only track URLs asked for, so nothing but the probe talks to the store:
/// a store that is down is refused (503 with `Retry-After`) within a bound,
/// instead of signing URLs no player can fetch, and served again once back.
#[tokio::test]
async fn a_store_that_is_down_gets_no_track_urls_signed() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("probed")).unwrap();
    let port = streaming_core::contract::free_port();
    let mut server = own_s3(dir.path(), port).await;
    let app = spawn(|s| {
        crate::harness::use_s3(s);
        s.storage.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
        s.storage.s3.bucket = "probed".into();
        s.storage.s3.request_timeout_ms = 500;
        s.storage.s3.breaker_cool_down_ms = 500;
        s.storage.s3.probe_interval_ms = 100;
        s.rate_limit.stream_url_per_minute = 0;
    })
    .await;
    assert_eq!(app.stream(READY, Some(&app.demo.token)).await.status(), 200);
    server.kill().await.unwrap();
    let down = Instant::now();
    loop {
        let response = app.stream(READY, Some(&app.demo.token)).await;
        if response.status() == 503 {
            crate::harness::assert_unavailable(response).await;
            break;
        }
        assert!(down.elapsed() < Duration::from_secs(3), "URLs still signed 3 s after the store went down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("track URLs refused {:?} after the store went down", down.elapsed());
    server = own_s3(dir.path(), port).await;
    let back = Instant::now();
    while app.stream(READY, Some(&app.demo.token)).await.status() != 200 {
        assert!(back.elapsed() < Duration::from_secs(3), "still refused 3 s after the store came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("track URLs served again {:?} after the store came back", back.elapsed());
    drop(server);
}
