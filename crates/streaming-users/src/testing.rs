//! A stand-in of the user service for tests (feature `test-support`): a
//! real HTTP server on a loopback port serving
//! `GET /api/v1/subscriptions/current`, answering per user (named by
//! `X-User-Id`, or by a caller token `Bearer token-of-{user}`) or with one
//! answer for everyone, and recording what it was sent.

// Test support: a poisoned lock or a port that cannot be bound is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// What the stand-in answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200 with this JSON body.
    Json(Value),
    /// This status with an empty body.
    Status(u16),
    /// This status, content type and body.
    Body(u16, &'static str, &'static str),
    /// The answer after a delay.
    After(Duration, Box<Answer>),
    /// 502 for the first `n` requests, then the answer.
    FailFirst(u32, Box<Answer>),
}

impl Answer {
    /// An active subscription with this plan.
    pub fn plan(max_devices: u32, supports_hd: bool, supports_4k: bool) -> Self {
        Self::Json(json!({
            "status": "active", "end_date": "2099-01-01T00:00:00Z",
            "plan": { "max_devices": max_devices, "supports_hd": supports_hd, "supports_4k": supports_4k }
        }))
    }

    /// The cinema user service's answer for an active subscription (it names no plan).
    pub fn cinema_active() -> Self {
        Self::Json(json!({ "is_active": true, "plan_id": "standard", "expires_at": "2099-01-01T00:00:00Z" }))
    }
}

/// What one request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its `Authorization` header ("" when absent).
    pub authorization: String,
    /// Its `X-User-Id` header ("" when absent).
    pub user_id: String,
}

#[derive(Debug)]
struct State {
    requests: AtomicU32,
    broken: AtomicBool,
    seen: Mutex<Vec<Seen>>,
    by_user: Mutex<HashMap<String, Answer>>,
    everyone: Mutex<Answer>,
}

/// The running stand-in; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct UserServiceStandIn {
    url: String,
    port: u16,
    state: web::Data<State>,
    server: std::sync::Arc<Mutex<Option<actix_web::dev::ServerHandle>>>,
}

impl UserServiceStandIn {
    /// Starts a stand-in answering `everyone` unless a user has an answer of its own.
    pub async fn start(everyone: Answer) -> Self {
        let state = web::Data::new(State {
            requests: AtomicU32::new(0),
            broken: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
            by_user: Mutex::new(HashMap::new()),
            everyone: Mutex::new(everyone),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let server = serve(state.clone(), listener);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            server: std::sync::Arc::new(Mutex::new(Some(server))),
        }
    }

    /// Stops at once, its open connections closed, as a killed process
    /// would (requests are refused until [`UserServiceStandIn::restart`]).
    pub async fn kill(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.stop(false).await;
        }
    }

    /// Serves again on the same port, answering as before.
    pub fn restart(&self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("the same loopback port");
        *self.server.lock().unwrap() = Some(serve(self.state.clone(), listener));
    }

    /// Its base URL (`users.url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers `user` with `answer`.
    pub fn answer(&self, user: &str, answer: Answer) -> &Self {
        self.state.by_user.lock().unwrap().insert(user.to_owned(), answer);
        self
    }

    /// Answers every user without an answer of its own with `answer`.
    pub fn answer_everyone(&self, answer: Answer) {
        *self.state.everyone.lock().unwrap() = answer;
    }

    /// While `broken`, every request is a 503.
    pub fn set_broken(&self, broken: bool) {
        self.state.broken.store(broken, Ordering::Relaxed);
    }

    /// Requests received so far.
    pub fn requests(&self) -> u32 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// What each request carried, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn serve(state: web::Data<State>, listener: std::net::TcpListener) -> actix_web::dev::ServerHandle {
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route("/api/v1/subscriptions/current", web::get().to(respond))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listening")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

async fn respond(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let seen = Seen { authorization: header("authorization"), user_id: header("x-user-id") };
    state.seen.lock().unwrap().push(seen.clone());
    if state.broken.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let user = match seen.user_id.as_str() {
        "" => seen.authorization.trim_start_matches("Bearer token-of-").to_owned(),
        user => user.to_owned(),
    };
    let answer = {
        let mut by_user = state.by_user.lock().unwrap();
        match by_user.get_mut(&user) {
            Some(Answer::FailFirst(left, _)) if *left > 0 => {
                *left -= 1;
                Answer::Status(502)
            }
            Some(Answer::FailFirst(_, then)) => (**then).clone(),
            Some(answer) => answer.clone(),
            None => state.everyone.lock().unwrap().clone(),
        }
    };
    reply(answer).await
}

async fn reply(mut answer: Answer) -> HttpResponse {
    loop {
        answer = match answer {
            Answer::Json(body) => return HttpResponse::Ok().json(body),
            Answer::Status(status) => return HttpResponse::build(status_code(status)).finish(),
            Answer::Body(status, content_type, body) => {
                return HttpResponse::build(status_code(status)).content_type(content_type).body(body)
            }
            Answer::After(delay, then) => {
                tokio::time::sleep(delay).await;
                *then
            }
            Answer::FailFirst(_, then) => *then,
        };
    }
}

fn status_code(status: u16) -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
}
