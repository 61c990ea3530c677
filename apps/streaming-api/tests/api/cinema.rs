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
