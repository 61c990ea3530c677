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
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let overrides = streaming_api::PortOverrides { catalog: Some(catalog), ..streaming_api::PortOverrides::default() };
    let app = crate::harness::spawn_with(
        |s| {
            s.demo.enabled = false;
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
