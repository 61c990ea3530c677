//! Drop-in compatibility with the cinema streaming service: its
//! environment variables configure the service, and its auth service's
//! tokens work unchanged.

use reqwest::Method;
use ring::hmac;
use serde_json::json;
use streaming_api::Settings;
use time::OffsetDateTime;

use crate::harness::{assert_problem, spawn, MOVIE};
use crate::hostile::jws;

const CINEMA_SECRET: &str = "your-secret-key-change-in-production";
const VIEWER: &str = "3f8c2b1e-9d4a-4c7b-8e2f-1a2b3c4d5e6f";

/// A token as the cinema auth service mints it: HS256, `sub` the user's
/// UUID, `type` access or refresh, `exp`; no issuer or audience.
fn cinema_token(kind: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({ "sub": VIEWER, "type": kind, "exp": now + 900, "iat": now });
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
    let progress = format!("/api/v1/stream/{MOVIE}/progress");

    let response = app.send(Method::GET, &progress, Some(&cinema_token("access")), None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], VIEWER, "sub is the user");

    let refused = app.send(Method::GET, &progress, Some(&cinema_token("refresh")), None).await;
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
