//! The directory against a real HTTP server standing in for the user
//! service (actix-web on a loopback port), which answers by the user named
//! in `X-User-Id` (or by the caller's token).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use secrecy::SecretString;
use streaming_core::circuit_breaker::{BreakerState, CircuitBreaker};
use streaming_core::domain::{Plan, SubscriptionStatus, UserId};
use streaming_core::ports::SubscriptionDirectory;
use streaming_users::{with_caller_token, Credentials, UserServiceConfig, UserServiceDirectory};

#[derive(Default)]
struct Stand {
    requests: AtomicU32,
    flaky_failures: AtomicU32,
    broken: AtomicBool,
    authorization: Mutex<Vec<String>>,
}

async fn answer(req: HttpRequest, stand: web::Data<Stand>) -> HttpResponse {
    stand.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let authorization = header("authorization");
    stand.authorization.lock().unwrap().push(authorization.clone());
    if stand.broken.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    // The caller's token names the user in these tests ("Bearer token-of-{user}").
    let user = match header("x-user-id") {
        user if !user.is_empty() => user,
        _ => authorization.trim_start_matches("Bearer token-of-").to_owned(),
    };
    match user.as_str() {
        "premium" => HttpResponse::Ok().json(serde_json::json!({
            "status": "active", "end_date": "2099-01-01T00:00:00Z",
            "plan": { "max_devices": 4, "supports_hd": true, "supports_4k": true }
        })),
        "simple" => HttpResponse::Ok().json(serde_json::json!({ "is_active": true, "plan_id": "basic" })),
        "lapsed" => HttpResponse::Ok().json(serde_json::json!({ "is_active": false })),
        "nobody" => HttpResponse::NotFound().finish(),
        "crashing" => HttpResponse::InternalServerError().body("stack trace"),
        "forbidden" => HttpResponse::Forbidden().finish(),
        "garbage" => HttpResponse::Ok().content_type("text/html").body("<html>maintenance</html>"),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            HttpResponse::Ok().json(serde_json::json!({ "is_active": true }))
        }
        "flaky" if stand.flaky_failures.fetch_add(1, Ordering::Relaxed) < 2 => HttpResponse::BadGateway().finish(),
        "flaky" => HttpResponse::Ok().json(serde_json::json!({ "is_active": true })),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// Starts the stand-in; its base URL and state.
async fn stand_in() -> (String, Arc<Stand>) {
    let stand = web::Data::new(Stand::default());
    let state = stand.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route("/api/v1/subscriptions/current", web::get().to(answer))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), stand.into_inner())
}

fn config(base: &str, credentials: Credentials) -> UserServiceConfig {
    UserServiceConfig {
        timeout: Duration::from_millis(500),
        backoff: Duration::from_millis(20),
        ..UserServiceConfig::new(base, credentials)
    }
}

fn service() -> Credentials {
    Credentials::Service(SecretString::from("service-token"))
}

fn user(id: &str) -> UserId {
    id.parse().unwrap()
}

#[actix_web::test]
async fn both_payload_shapes_and_404_are_understood() {
    let (base, stand) = stand_in().await;
    let directory = UserServiceDirectory::new(config(&base, service())).unwrap();
    let premium = directory.current(&user("premium")).await.unwrap().unwrap();
    assert_eq!(premium.status, SubscriptionStatus::Active);
    assert_eq!(premium.plan, Plan { max_devices: Some(4), supports_hd: true, supports_4k: true });
    let simple = directory.current(&user("simple")).await.unwrap().unwrap();
    assert_eq!((simple.status, simple.plan.max_devices), (SubscriptionStatus::Active, Some(1)), "the default plan");
    assert_eq!(directory.current(&user("lapsed")).await.unwrap().unwrap().status, SubscriptionStatus::Expired);
    assert_eq!(directory.current(&user("nobody")).await.unwrap(), None, "404 is no subscription");
    assert!(stand.authorization.lock().unwrap().iter().all(|a| a == "Bearer service-token"));
}

#[actix_web::test]
async fn the_callers_token_is_forwarded_when_configured() {
    let (base, stand) = stand_in().await;
    let directory = UserServiceDirectory::new(config(&base, Credentials::Caller)).unwrap();
    let answer =
        with_caller_token(SecretString::from("token-of-premium"), directory.current(&user("premium"))).await.unwrap();
    assert_eq!(answer.unwrap().plan.max_devices, Some(4));
    assert_eq!(*stand.authorization.lock().unwrap(), vec!["Bearer token-of-premium".to_owned()]);
    let outside = directory.current(&user("premium")).await;
    assert!(outside.is_err(), "without a caller token there is nothing to forward: {outside:?}");
}

#[actix_web::test]
async fn failures_are_unavailable_never_no_subscription() {
    let (base, stand) = stand_in().await;
    let directory = UserServiceDirectory::new(config(&base, service()))
        .unwrap()
        .with_breaker(CircuitBreaker::new(100, Duration::from_secs(30)));
    for who in ["crashing", "garbage", "forbidden"] {
        let error = directory.current(&user(who)).await.unwrap_err();
        assert!(!error.to_string().contains("stack trace") && !error.to_string().contains("service-token"), "{error}");
    }
    let before = stand.requests.load(Ordering::Relaxed);
    assert!(directory.current(&user("crashing")).await.is_err());
    assert_eq!(stand.requests.load(Ordering::Relaxed) - before, 3, "a 5xx is tried 3 times (2 retries)");
    let before = stand.requests.load(Ordering::Relaxed);
    assert!(directory.current(&user("garbage")).await.is_err());
    assert_eq!(stand.requests.load(Ordering::Relaxed) - before, 1, "a garbage body is not retried");

    assert!(directory.current(&user("flaky")).await.unwrap().is_some(), "two 502s, then an answer");

    let started = Instant::now();
    let error = directory.current(&user("slow")).await.unwrap_err();
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "3 attempts of 500 ms plus backoff: {:?}", started.elapsed());
}

#[actix_web::test]
async fn the_breaker_opens_fails_fast_and_recovers_after_a_trial() {
    let (base, stand) = stand_in().await;
    let directory = UserServiceDirectory::new(UserServiceConfig { retries: 0, ..config(&base, service()) })
        .unwrap()
        .with_breaker(CircuitBreaker::new(2, Duration::from_millis(300)));
    stand.broken.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        assert!(directory.current(&user("premium")).await.is_err());
    }
    assert_eq!(directory.breaker().state(), BreakerState::Open);
    let before = stand.requests.load(Ordering::Relaxed);
    let error = directory.current(&user("premium")).await.unwrap_err();
    assert!(error.to_string().contains("circuit open"), "{error}");
    assert_eq!(stand.requests.load(Ordering::Relaxed), before, "no request while open");

    stand.broken.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(directory.current(&user("premium")).await.unwrap().is_some(), "the half-open trial goes through");
    assert_eq!(directory.breaker().state(), BreakerState::Closed);
}
