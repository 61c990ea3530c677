use std::time::Duration;

use async_trait::async_trait;
use streaming_api::PortOverrides;
use streaming_auth::TokenClaims;
use streaming_core::domain::{Media, MediaId, UserId, Viewer};
use streaming_core::ports::{CatalogError, MediaCatalog};
use time::OffsetDateTime;

use crate::harness::{arc, assert_problem, spawn, spawn_with, token, token_for, PROCESSING, READY};

#[tokio::test]
async fn a_malformed_track_id_is_400() {
    let app = spawn(|_| {}).await;
    for bad in [
        "not-a-ulid",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "81JG0DEM0TRACK000000000001",
        "01JG0DEM0TRACK00000000000U",
        "%20",
    ] {
        let response = app.stream(bad, Some(&app.demo.token)).await;
        assert_problem(response, 400, "invalid-track-id").await;
    }
    let bearer = format!("Bearer {}", app.demo.token);
    for raw in ["%2E%2E", "01JG0DEM0TRACK000000000001%00", "..%2F..%2Fetc"] {
        let status = app.raw_status("POST", &format!("/tracks/{raw}/stream"), &[("Authorization", &bearer)]).await;
        assert_eq!(status, 400, "{raw}");
    }
}

#[tokio::test]
async fn a_missing_token_is_401_with_a_challenge() {
    let app = spawn(|_| {}).await;
    let response = app.stream(READY, None).await;
    assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="streaming""#);
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn refused_tokens_are_401_with_the_reason_in_the_challenge() {
    let app = spawn(|_| {}).await;
    let expired = token(TokenClaims {
        subject: "someone".into(),
        expires_at: Some(OffsetDateTime::now_utc() - Duration::from_secs(120)),
        ..TokenClaims::default()
    });
    let no_exp = token(TokenClaims { subject: "someone".into(), ..TokenClaims::default() });
    let tampered = format!("{}x", app.demo.token);
    for (token, reason) in [
        (expired.as_str(), "token expired"),
        (no_exp.as_str(), "a required claim is missing"),
        (tampered.as_str(), "invalid signature"),
        ("garbage", "malformed token"),
    ] {
        let response = app.stream(READY, Some(token)).await;
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(r#"error="invalid_token""#) && challenge.contains(reason), "{challenge}");
        assert_problem(response, 401, "unauthorized").await;
    }
    let basic = app
        .client
        .post(app.url(&format!("/tracks/{READY}/stream")))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401, "unauthorized").await;
    let doubled = app
        .client
        .post(app.url(&format!("/tracks/{READY}/stream")))
        .header("Authorization", format!("Bearer {}", app.demo.token))
        .header("Authorization", format!("Bearer {}", app.demo.token))
        .send()
        .await
        .unwrap();
    assert_problem(doubled, 401, "unauthorized").await;
}

#[tokio::test]
async fn another_users_track_is_403() {
    let app = spawn(|_| {}).await;
    let response = app.stream(READY, Some(&token_for("01JG0STRANGER0000000000000"))).await;
    assert_problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn an_unknown_track_is_404() {
    let app = spawn(|_| {}).await;
    let response = app.stream("01JG0NQNE00000000000000000", Some(&app.demo.token)).await;
    assert_problem(response, 404, "track-not-found").await;
}

#[tokio::test]
async fn a_processing_track_is_409_with_its_status() {
    let app = spawn(|_| {}).await;
    let body = assert_problem(app.stream(PROCESSING, Some(&app.demo.token)).await, 409, "track-not-ready").await;
    assert_eq!(body["trackId"], PROCESSING);
    assert_eq!(body["currentStatus"], "Processing");
}

/// The seed's order: existence (404), then ownership and the user's status
/// (403), then the track's status (409). A stranger learns nothing of
/// another user's track that is still processing.
#[tokio::test]
async fn another_users_processing_track_is_403_without_its_status() {
    let app = spawn(|_| {}).await;
    let stranger = token_for("01JG0STRANGER0000000000000");
    let body = assert_problem(app.stream(PROCESSING, Some(&stranger)).await, 403, "forbidden").await;
    assert!(body.get("currentStatus").is_none() && body.get("trackId").is_none(), "{body}");
}

#[tokio::test]
async fn the_rate_limit_is_429_with_retry_after() {
    let app = spawn(|s| s.rate_limit.stream_url_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(app.stream(READY, Some(&app.demo.token)).await.status(), 200);
    }
    let limited = app.stream(READY, Some(&app.demo.token)).await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body = assert_problem(limited, 429, "rate-limit-exceeded").await;
    assert_eq!(body["retryAfterSeconds"], retry_after);
    // Limits are per user.
    assert_eq!(app.stream(READY, Some(&token_for("someone-else"))).await.status(), 403);
}

struct DownCatalog;

#[async_trait]
impl MediaCatalog for DownCatalog {
    async fn media(&self, _: &MediaId) -> Result<Option<Media>, CatalogError> {
        Err(CatalogError::Unavailable("connection refused".into()))
    }
    async fn viewer<'a>(&self, _: &UserId, _: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        Err(CatalogError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn a_catalog_outage_is_503_with_retry_after() {
    let app = spawn_with(|_| {}, PortOverrides { catalog: Some(arc(DownCatalog)), ..PortOverrides::default() }).await;
    let response = app.stream(READY, Some(&app.demo.token)).await;
    assert!(response.headers().contains_key("retry-after"));
    let body = assert_problem(response, 503, "service-unavailable").await;
    assert!(!body.to_string().contains("connection refused"), "driver errors stay internal");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn(|_| {}).await;
    assert_problem(app.client.get(app.url("/nope")).send().await.unwrap(), 404, "not-found").await;
    let get = app.client.get(app.url(&format!("/tracks/{READY}/stream"))).send().await.unwrap();
    assert_problem(get, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn an_incoming_traceparent_becomes_the_trace_id() {
    let app = spawn(|_| {}).await;
    let response = app
        .client
        .post(app.url(&format!("/tracks/{READY}/stream")))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 401, "unauthorized").await;
    assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn(|s| s.server.max_body_bytes = 1024).await;
    let response = app
        .client
        .post(app.url(&format!("/tracks/{READY}/stream")))
        .bearer_auth(&app.demo.token)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    // The track endpoint takes no body; an unread body must not break the answer.
    assert!(response.status().is_success() || response.status() == 413, "{}", response.status());
}
