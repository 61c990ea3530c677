//! The routes mounted in a team's own actix-web application, beside its own
//! routes, over mocked driving ports of the core: the real server on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use secrecy::SecretString;
use serde_json::Value;
use streaming_auth::{TokenClaims, TokenSigner, TokenVerifier, VerifierOptions};
use streaming_core::adapters::SystemClock;
use streaming_core::ports::MockReadinessCheck;
use streaming_core::{MockBrowse, MockPlayback, MockStreamingService, StreamError, StreamUrl};
use streaming_http::ApiState;
use time::OffsetDateTime;

const SECRET: &str = "a-secret-of-this-team-at-least-32-bytes-long";
const TRACK: &str = "01J9ZQ4M5N6P7Q8R9S0T1V2W3A";
const USER: &str = "7f3e4c1a-9b2d-4e8f-8a6b-1c2d3e4f5a6b";

fn state(streaming: MockStreamingService, ready: bool) -> web::Data<ApiState> {
    let secret = SecretString::from(SECRET);
    let mut database = MockReadinessCheck::new();
    database.expect_unready_reason().returning(move || (!ready).then_some("circuit breaker open"));
    web::Data::new(ApiState {
        streaming: Arc::new(streaming),
        playback: Arc::new(MockPlayback::new()),
        browser: Arc::new(MockBrowse::new()),
        max_body_bytes: 4096,
        verifier: TokenVerifier::hs256(&secret, VerifierOptions::default()).unwrap(),
        stream_url_limit: None,
        clock: Arc::new(SystemClock),
        readiness: vec![("database", Arc::new(database))],
        openapi: streaming_http::document(),
    })
}

/// The team's application: its own `/` and `/api/v1/own`, then ours.
async fn serve(state: web::Data<ApiState>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(streaming_http::enrich_problems))
            .route("/", web::get().to(|| async { HttpResponse::Ok().body("the team's home") }))
            .route("/api/v1/own", web::get().to(|| async { HttpResponse::Ok().body("the team's route") }))
            .configure(|cfg| streaming_http::configure(cfg, state.clone()))
            .default_service(web::to(streaming_http::not_found))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

fn token() -> String {
    let claims = TokenClaims {
        subject: USER.into(),
        expires_at: Some(OffsetDateTime::now_utc() + Duration::from_secs(300)),
        ..TokenClaims::default()
    };
    TokenSigner::hs256(&SecretString::from(SECRET)).sign(&claims).unwrap()
}

#[actix_web::test]
async fn our_routes_serve_beside_the_teams_own() {
    let mut streaming = MockStreamingService::new();
    streaming.expect_get_stream_url().times(1).returning(|media, user| {
        assert_eq!((media.as_str(), user.as_str()), (TRACK, USER));
        Ok(StreamUrl {
            url: "https://cdn.test/song.mp3?signature=abc".into(),
            expires_at: OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(),
            content_type: "audio/mpeg".into(),
            file_size_bytes: 42,
            supports_range_requests: true,
            cache_hit: false,
        })
    });
    let base = serve(state(streaming, true)).await;
    let http = reqwest::Client::new();

    let home = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.text().await.unwrap(), "the team's home");
    let own = http.get(format!("{base}/api/v1/own")).send().await.unwrap();
    assert_eq!(own.text().await.unwrap(), "the team's route");

    let url = format!("{base}/tracks/{TRACK}/stream");
    let granted = http.post(&url).bearer_auth(token()).send().await.unwrap();
    assert_eq!(granted.status(), 200);
    assert_eq!(granted.headers()["cache-control"], "no-store");
    let body: Value = granted.json().await.unwrap();
    assert_eq!(body["streamUrl"], "https://cdn.test/song.mp3?signature=abc");
    assert_eq!(body["fileSizeBytes"], 42);
}

#[actix_web::test]
async fn every_refusal_is_a_full_problem_document() {
    let mut streaming = MockStreamingService::new();
    streaming.expect_get_stream_url().returning(|_, _| Err(StreamError::NotFound));
    let base = serve(state(streaming, true)).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/tracks/{TRACK}/stream");

    let anonymous = http.post(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(anonymous.headers()["content-type"], "application/problem+json");
    let problem: Value = anonymous.json().await.unwrap();
    assert_eq!(problem["instance"], format!("/tracks/{TRACK}/stream"));
    assert_eq!(problem["traceId"].as_str().unwrap().len(), 32);

    let missing = http.post(&url).bearer_auth(token()).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["type"], "https://streamgate.dev/problems/track-not-found");

    let wrong_method = http.get(&url).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");

    let bad_id = http.post(format!("{base}/tracks/not-a-ulid/stream")).bearer_auth(token()).send().await.unwrap();
    assert_eq!(bad_id.status(), 400);

    let unknown = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
}

#[actix_web::test]
async fn readiness_and_the_document_describe_what_is_mounted() {
    let base = serve(state(MockStreamingService::new(), false)).await;
    let http = reqwest::Client::new();

    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "circuit breaker open");

    let document: Value = http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut documented: Vec<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(|m| (m.to_uppercase(), path.clone())))
        .collect();
    let mut served = streaming_http::served_routes();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}
