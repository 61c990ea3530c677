//! The app with the user service (a stand-in HTTP server on loopback) as its
//! subscription directory.

use reqwest::Method;
use secrecy::SecretString;
use streaming_api::Settings;
use streaming_users::testing::{Answer, Seen, UserServiceStandIn};

use crate::harness::{assert_problem, spawn, TestApp, MOVIE};

/// The user service, answering everyone with `status` (200: an active HD
/// plan for two devices); its URL and the stand-in.
pub(crate) async fn stand_in(status: u16) -> (String, UserServiceStandIn) {
    let answer = if status == 200 { Answer::plan(2, true, false) } else { Answer::Status(status) };
    let stand = UserServiceStandIn::start(answer).await;
    (stand.url().to_owned(), stand)
}

/// The user service at `url`, asked once per lookup for at most 500 ms.
fn use_users(settings: &mut Settings, url: &str) {
    settings.users.url = Some(url.to_owned());
    settings.users.timeout_ms = 500;
    settings.users.retries = 0;
}

/// Lookups with the service's own token (the user named in `X-User-Id`), none cached.
fn as_service_uncached(settings: &mut Settings) {
    settings.users.credentials = streaming_users::UserCredentials::Service;
    settings.users.service_token = Some(SecretString::from("service-token"));
    settings.users.cache_ttl_seconds = 0;
}

async fn start(app: &TestApp) -> reqwest::Response {
    app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, None).await
}

#[tokio::test]
async fn the_callers_token_reaches_the_user_service_and_its_answer_decides() {
    let (url, stand) = stand_in(200).await;
    let app = spawn(|s| {
        use_users(s, &url);
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
        use_users(s, &url);
        as_service_uncached(s);
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

/// A manifest fetch carries no bearer token. With `users.credentials =
/// "caller"` and no cached answer, the subscription cannot be asked: the
/// grant, issued after the start's full check, stands for it, and the
/// lookups that could not be made do not open the user service's breaker.
#[tokio::test]
async fn a_manifest_fetch_never_needs_the_callers_token() {
    let (url, stand) = stand_in(200).await;
    let app = spawn(|s| {
        use_users(s, &url);
        s.users.cache_ttl_seconds = 0;
        s.rate_limit.manifest_per_minute = 0;
    })
    .await;
    let started = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, Some(serde_json::json!({}))).await;
    assert_eq!(started.status(), 200);
    let body: serde_json::Value = started.json().await.unwrap();
    let manifest = body["manifest_url"].as_str().unwrap().to_owned();
    let asked_by_the_start = stand.requests();
    for fetch in 0..8 {
        let answer = app.client.get(&manifest).send().await.unwrap();
        assert_eq!(answer.status(), 200, "fetch {fetch}");
    }
    assert_eq!(stand.requests(), asked_by_the_start, "no fetch could ask the user service");
    assert_eq!(start(&app).await.status(), 200, "the breaker stayed closed");
}

/// The grant stands in for a subscription only while the directory cannot
/// answer: one it says is gone refuses the next fetch.
#[tokio::test]
async fn a_subscription_the_directory_says_is_gone_refuses_the_grant() {
    let (url, stand) = stand_in(200).await;
    let app = spawn(|s| {
        use_users(s, &url);
        as_service_uncached(s);
        s.rate_limit.manifest_per_minute = 0;
    })
    .await;
    let started = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, Some(serde_json::json!({}))).await;
    let body: serde_json::Value = started.json().await.unwrap();
    let manifest = body["manifest_url"].as_str().unwrap().to_owned();
    stand.set_broken(true);
    assert_eq!(app.client.get(&manifest).send().await.unwrap().status(), 200, "down: the grant vouches");
    stand.set_broken(false);
    stand.answer_everyone(Answer::Status(404));
    assert_problem(app.client.get(&manifest).send().await.unwrap(), 403, "manifest-grant-refused").await;
}

/// The user service killed (its connections dropped, new ones refused) in
/// the middle of a bounded load of movie starts by viewers it has not been
/// asked about yet (no cached answer), and started again: starts are 503
/// with `Retry-After` while it is gone (never 403: an outage is not a
/// refusal), and 200 again once a trial after the breaker's cool-down finds
/// it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_service_killed_and_restarted_under_load_costs_only_starts_that_need_it() {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::load::{Load, Phase};

    let (url, stand) = stand_in(200).await;
    let app = Arc::new(
        spawn(|s| {
            use_users(s, &url);
            s.users.breaker_cool_down_ms = 500;
            s.rate_limit.stream_url_per_minute = 0;
        })
        .await,
    );
    let shared = app.clone();
    let load = Load::start(4, move |client, n| {
        let app = shared.clone();
        async move {
            // A viewer the service has not been asked about: every start looks it up.
            let token = crate::harness::token_for(&format!("users-fault-{client}-{n}"));
            let movie = format!("/api/v1/stream/{MOVIE}");
            let response = app.send(Method::POST, &movie, Some(&token), None).await;
            let status = response.status().as_u16();
            if status == 503 {
                crate::harness::assert_unavailable(response).await;
            } else if status == 200 {
                let started: serde_json::Value = response.json().await.unwrap();
                let stop = serde_json::json!({ "position_seconds": 1, "session_id": started["session_id"] });
                let stopped = app.send(Method::POST, &format!("{movie}/stop"), Some(&token), Some(stop)).await;
                assert_eq!(stopped.status(), 200);
            }
            status
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    load.enter(Phase::During);
    stand.kill().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stand.restart();
    load.enter(Phase::After);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let outcomes = load.finish().await;
    println!("user service outage: {} starts; {}", outcomes.total(), outcomes.summary());
    outcomes.report("user service (killed)", None, None);
    assert_eq!(outcomes.other_than(&[200, 503]), 0, "{}", outcomes.summary());
    assert_eq!(outcomes.of(Phase::Before, 503), 0, "{}", outcomes.summary());
    assert!(outcomes.of(Phase::During, 503) > 0, "the outage was felt: {}", outcomes.summary());
    assert!(outcomes.of(Phase::After, 200) > 0, "starts again: {}", outcomes.summary());
    assert!(outcomes.recovery() < Duration::from_millis(1_500), "recovered in {:?}", outcomes.recovery());
}
