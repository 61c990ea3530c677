//! `/metrics`, trace ids and the request span, black-box over HTTP.

use std::collections::HashMap;

use reqwest::Method;

use crate::harness::{spawn, TestApp, MOVIE, READY};

/// `/metrics` as `series → value` (`name{labels}` exactly as rendered).
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// How much `series` grew between two scrapes.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn the_spec_metrics_count_the_url_path_and_http_is_labelled_by_route_template() {
    let app = spawn(|_| {}).await;
    let before = scrape(&app).await;
    for series in [
        "stream_url_cache_hits_total",
        "stream_url_cache_misses_total",
        "stream_url_presign_generated_total",
        "stream_url_requests_total{status=\"success\",cache_hit=\"true\"}",
    ] {
        assert!(before.contains_key(series), "{series} exists from the start");
    }

    app.stream_url(READY).await; // miss: presigned
    let url = app.stream_url(READY).await["streamUrl"].as_str().unwrap().to_owned(); // hit
    let missing = app.stream("01JG0DEM0TRACK0000000000ZZ", Some(&app.demo.token)).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(app.client.get(&url).header("Range", "bytes=0-9").send().await.unwrap().status(), 206);
    let started = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, None).await;
    let started: serde_json::Value = started.json().await.unwrap();
    let manifest = app.client.get(started["manifest_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(manifest.status(), 200);
    let after = scrape(&app).await;

    let grew = |series: &str| delta(&before, &after, series);
    assert_eq!(grew("stream_url_requests_total{status=\"success\",cache_hit=\"false\"}"), 1.0);
    assert_eq!(grew("stream_url_requests_total{status=\"success\",cache_hit=\"true\"}"), 1.0);
    assert_eq!(grew("stream_url_requests_total{status=\"error\",cache_hit=\"false\"}"), 1.0);
    assert_eq!(grew("stream_url_cache_hits_total"), 1.0);
    assert_eq!(grew("stream_url_cache_misses_total"), 1.0);
    assert_eq!(grew("stream_url_presign_generated_total"), 1.0);
    assert_eq!(grew("stream_url_request_duration_ms_count"), 3.0);
    assert!(after.contains_key("stream_url_request_duration_ms_bucket{le=\"1000\"}"), "a histogram with buckets");
    assert_eq!(grew("playback_sessions_started_total{manifest=\"hls\"}"), 1.0);
    assert_eq!(grew("manifest_requests_total{kind=\"hls\",outcome=\"served\"}"), 1.0);
    assert_eq!(grew("http_requests_total{method=\"POST\",route=\"/tracks/{track_id}/stream\",status=\"200\"}"), 2.0);
    assert_eq!(grew("http_requests_total{method=\"POST\",route=\"/tracks/{track_id}/stream\",status=\"404\"}"), 1.0);
    assert_eq!(grew("http_requests_total{method=\"GET\",route=\"/objects/{key:.+}\",status=\"206\"}"), 1.0);
    assert!(after.get("process_resident_memory_bytes").is_some_and(|rss| *rss > 1e6));

    // No raw path, id or key ever becomes a label; every series is one we document.
    let known: Vec<&str> = streaming_core::telemetry::ALL.to_vec();
    for series in after.keys() {
        for leak in [READY, MOVIE, "tracks/", "movies/", "grant="] {
            assert!(!series.contains(leak) || series.contains("{track_id}"), "{leak} in {series}");
        }
        let name = series.split('{').next().unwrap();
        let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        assert!(known.contains(&base) || base == "process_resident_memory_bytes", "undocumented metric {name}");
    }
}

#[tokio::test]
async fn rate_limit_rejections_are_counted_by_policy() {
    let app = spawn(|s| s.rate_limit.stream_url_per_minute = 1).await;
    app.stream_url(READY).await;
    let before = scrape(&app).await;
    assert_eq!(app.stream(READY, Some(&app.demo.token)).await.status(), 429);
    let after = scrape(&app).await;
    assert_eq!(delta(&before, &after, "rate_limit_rejections_total{policy=\"stream-url\"}"), 1.0);
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_and_every_response_carries_one() {
    let app = spawn(|_| {}).await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app.client.get(app.url("/healthz")).header("traceparent", incoming).send().await.unwrap();
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continues");
    assert_ne!(parts[2], "00f067aa0ba902b7", "with a span of our own");
    assert_eq!(response.headers()["trace-id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // A problem document names the same trace.
    let missing = app
        .client
        .post(app.url("/tracks/01JG0DEM0TRACK0000000000ZZ/stream"))
        .bearer_auth(&app.demo.token)
        .header("traceparent", incoming)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // Garbage starts a fresh trace.
    let fresh = app.client.get(app.url("/healthz")).header("traceparent", "00-zz-zz-01").send().await.unwrap();
    let fresh = fresh.headers()["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(fresh.len(), 55, "{fresh}");
    assert!(!fresh.contains("zz"));
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let app = spawn(|s| s.metrics.enabled = false).await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
}
