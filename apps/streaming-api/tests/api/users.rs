//! The app with the user service (a stand-in HTTP server on loopback) as its
//! subscription directory.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::Method;
use secrecy::SecretString;

use crate::harness::{assert_problem, spawn, TestApp, MOVIE};

/// The user service: answers every request with `status` (200: an active HD plan for two
/// devices, or the cinema user service's `{"is_active": true, …}`, which names
/// no plan) and records the `Authorization` and `X-User-Id` headers.
#[derive(Default)]
pub(crate) struct Stand {
    status: AtomicU16,
    cinema: AtomicBool,
    seen: Mutex<Vec<(String, String)>>,
}

impl Stand {
    /// Answers 200 as the cinema's user service does.
    pub(crate) fn answer_as_the_cinema(&self) {
        self.cinema.store(true, Ordering::Relaxed);
    }
}

async fn answer(req: HttpRequest, stand: web::Data<Stand>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    stand.seen.lock().unwrap().push((header("authorization"), header("x-user-id")));
    match stand.status.load(Ordering::Relaxed) {
        200 if stand.cinema.load(Ordering::Relaxed) => HttpResponse::Ok().json(serde_json::json!({
            "is_active": true, "plan_id": "standard", "expires_at": "2099-01-01T00:00:00Z"
        })),
        200 => HttpResponse::Ok().json(serde_json::json!({
            "status": "active",
            "plan": { "max_devices": 2, "supports_hd": true, "supports_4k": false }
        })),
        404 => HttpResponse::NotFound().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

pub(crate) async fn stand_in(status: u16) -> (String, Arc<Stand>) {
    let stand = web::Data::new(Stand { status: AtomicU16::new(status), ..Stand::default() });
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
    let seen = stand.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(format!("Bearer {}", app.demo.token), String::new())], "the caller's own token");
    assert_eq!(start(&app).await.status(), 200);
    assert_eq!(stand.seen.lock().unwrap().len(), 1, "the answer is cached");
}

#[tokio::test]
async fn no_subscription_is_403_and_a_failing_user_service_is_503() {
    let (url, stand) = stand_in(404).await;
    let app = spawn(|s| {
        s.users.url = Some(url.clone());
        s.users.credentials = streaming_api::settings::UserCredentials::Service;
        s.users.service_token = Some(SecretString::from("service-token"));
        s.users.timeout_ms = 500;
        s.users.retries = 0;
        s.users.cache_ttl_seconds = 0;
    })
    .await;
    assert_problem(start(&app).await, 403, "subscription-required").await;
    let seen = stand.seen.lock().unwrap().clone();
    assert_eq!(seen[0], ("Bearer service-token".to_owned(), streaming_api::demo::DEMO_USER.to_owned()));

    stand.status.store(500, Ordering::Relaxed);
    let down = start(&app).await;
    crate::harness::assert_unavailable(down).await;
}
