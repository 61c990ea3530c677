//! The directory against a real HTTP server standing in for the user
//! service (actix-web on a loopback port), which answers by the user named
//! in `X-User-Id` (or by the caller's token).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use secrecy::SecretString;
use streaming_core::circuit_breaker::{BreakerState, CircuitBreaker};
use streaming_core::domain::{Plan, SubscriptionStatus, UserId};
use streaming_core::ports::SubscriptionDirectory;
use streaming_users::testing::{Answer, UserServiceStandIn};
use streaming_users::{with_caller_token, Credentials, UserServiceConfig, UserServiceDirectory};

/// The stand-in with one user for every kind of answer.
async fn stand_in() -> (String, UserServiceStandIn) {
    let stand = UserServiceStandIn::start(Answer::Status(404)).await;
    stand
        .answer("premium", Answer::plan(4, true, true))
        .answer("simple", Answer::Json(serde_json::json!({ "is_active": true, "plan_id": "basic" })))
        .answer("lapsed", Answer::Json(serde_json::json!({ "is_active": false })))
        .answer("nobody", Answer::Status(404))
        .answer("crashing", Answer::Body(500, "text/plain", "stack trace"))
        .answer("forbidden", Answer::Status(403))
        .answer("garbage", Answer::Body(200, "text/html", "<html>maintenance</html>"))
        .answer(
            "slow",
            Answer::After(Duration::from_secs(2), Box::new(Answer::Json(serde_json::json!({ "is_active": true })))),
        )
        .answer("flaky", Answer::FailFirst(2, Box::new(Answer::Json(serde_json::json!({ "is_active": true })))));
    (stand.url().to_owned(), stand)
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
    assert!(stand.seen().iter().all(|seen| seen.authorization == "Bearer service-token"));
}

#[actix_web::test]
async fn the_callers_token_is_forwarded_when_configured() {
    let (base, stand) = stand_in().await;
    let directory = UserServiceDirectory::new(config(&base, Credentials::Caller)).unwrap();
    let answer =
        with_caller_token(SecretString::from("token-of-premium"), directory.current(&user("premium"))).await.unwrap();
    assert_eq!(answer.unwrap().plan.max_devices, Some(4));
    let sent: Vec<String> = stand.seen().into_iter().map(|seen| seen.authorization).collect();
    assert_eq!(sent, vec!["Bearer token-of-premium".to_owned()]);
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
    let before = stand.requests();
    assert!(directory.current(&user("crashing")).await.is_err());
    assert_eq!(stand.requests() - before, 3, "a 5xx is tried 3 times (2 retries)");
    let before = stand.requests();
    assert!(directory.current(&user("garbage")).await.is_err());
    assert_eq!(stand.requests() - before, 1, "a garbage body is not retried");

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
    stand.set_broken(true);
    for _ in 0..2 {
        assert!(directory.current(&user("premium")).await.is_err());
    }
    assert_eq!(directory.breaker().state(), BreakerState::Open);
    let before = stand.requests();
    let error = directory.current(&user("premium")).await.unwrap_err();
    assert!(error.to_string().contains("circuit open"), "{error}");
    assert_eq!(stand.requests(), before, "no request while open");

    stand.set_broken(false);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(directory.current(&user("premium")).await.unwrap().is_some(), "the half-open trial goes through");
    assert_eq!(directory.breaker().state(), BreakerState::Closed);
}

/// One user whose token the service refuses, or lookups with no caller
/// token at all (a manifest fetch carries none), say nothing about the
/// service: the breaker stays closed and everyone else is answered.
#[actix_web::test]
async fn one_refused_caller_never_opens_the_breaker_for_everyone() {
    let (base, stand) = stand_in().await;
    let breaker = || CircuitBreaker::new(2, Duration::from_secs(30));
    let service_directory =
        UserServiceDirectory::new(UserServiceConfig { retries: 0, ..config(&base, service()) }).unwrap();
    let service_directory = service_directory.with_breaker(breaker());
    for _ in 0..5 {
        assert!(service_directory.current(&user("forbidden")).await.is_err());
        assert!(service_directory.current(&user("garbage")).await.is_err());
    }
    assert_eq!(service_directory.breaker().state(), BreakerState::Closed, "4xx and bad bodies are answers");
    assert!(service_directory.current(&user("premium")).await.unwrap().is_some());

    let caller_directory =
        UserServiceDirectory::new(UserServiceConfig { retries: 0, ..config(&base, Credentials::Caller) }).unwrap();
    let caller_directory = caller_directory.with_breaker(breaker());
    let before = stand.requests();
    for _ in 0..5 {
        assert!(caller_directory.current(&user("premium")).await.is_err(), "no token, no call");
    }
    assert_eq!(stand.requests(), before, "nothing was sent");
    assert_eq!(caller_directory.breaker().state(), BreakerState::Closed);
    let answer =
        with_caller_token(SecretString::from("token-of-premium"), caller_directory.current(&user("premium"))).await;
    assert!(answer.unwrap().is_some());
}

/// The half-open trial's caller goes away (its future is dropped): the
/// breaker must not wait for that trial for ever.
#[actix_web::test]
async fn a_dropped_trial_does_not_leave_the_breaker_half_open() {
    let (base, stand) = stand_in().await;
    let directory = UserServiceDirectory::new(UserServiceConfig { retries: 0, ..config(&base, service()) })
        .unwrap()
        .with_breaker(CircuitBreaker::new(1, Duration::from_millis(200)));
    stand.set_broken(true);
    assert!(directory.current(&user("premium")).await.is_err());
    assert_eq!(directory.breaker().state(), BreakerState::Open);
    stand.set_broken(false);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The trial: a slow answer, abandoned after 50 ms.
    let abandoned = tokio::time::timeout(Duration::from_millis(50), directory.current(&user("slow"))).await;
    assert!(abandoned.is_err(), "the trial was cut off");
    let answer = directory.current(&user("premium")).await;
    assert!(answer.as_ref().is_ok_and(Option::is_some), "the next call is the trial: {answer:?}");
    assert_eq!(directory.breaker().state(), BreakerState::Closed);
}
