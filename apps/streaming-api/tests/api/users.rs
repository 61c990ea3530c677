//! The app with the user service (a stand-in HTTP server on loopback) as its
//! subscription directory.

use reqwest::Method;
use secrecy::SecretString;
use streaming_users::testing::{Answer, Seen, UserServiceStandIn};

use crate::harness::{assert_problem, spawn, TestApp, MOVIE};

/// The user service, answering everyone with `status` (200: an active HD
/// plan for two devices); its URL and the stand-in.
pub(crate) async fn stand_in(status: u16) -> (String, UserServiceStandIn) {
    let answer = if status == 200 { Answer::plan(2, true, false) } else { Answer::Status(status) };
    let stand = UserServiceStandIn::start(answer).await;
    (stand.url().to_owned(), stand)
}

async fn start(app: &TestApp) -> reqwest::Response {
    app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, None).await
}

#[tokio::test]
async fn the_callers_token_reaches_the_user_service_and_its_answer_decides() {
    let (url, stand) = stand_in(200).await;
    let app = spawn(|s| {
        s.users.url = Some(url.clone());
        s.users.timeout_ms = 500;
        s.users.retries = 0;
    })
    .await;
    assert_eq!(start(&app).await.status(), 200, "an active plan");
    let seen = stand.seen();
    assert_eq!(
        seen,
        vec![Seen { authorization: format!("Bearer {}", app.demo.token), user_id: String::new() }],
        "the caller's own token"
    );
    assert_eq!(start(&app).await.status(), 200);
    assert_eq!(stand.requests(), 1, "the answer is cached");
}

#[tokio::test]
async fn no_subscription_is_403_and_a_failing_user_service_is_503() {
    let (url, stand) = stand_in(404).await;
    let app = spawn(|s| {
        s.users.url = Some(url.clone());
        s.users.credentials = streaming_users::UserCredentials::Service;
        s.users.service_token = Some(SecretString::from("service-token"));
        s.users.timeout_ms = 500;
        s.users.retries = 0;
        s.users.cache_ttl_seconds = 0;
    })
    .await;
    assert_problem(start(&app).await, 403, "subscription-required").await;
    let seen = stand.seen();
    let expected =
        Seen { authorization: "Bearer service-token".into(), user_id: streaming_api::demo::DEMO_USER.into() };
    assert_eq!(seen[0], expected);

    stand.answer_everyone(Answer::Status(500));
    let down = start(&app).await;
    crate::harness::assert_unavailable(down).await;
}
