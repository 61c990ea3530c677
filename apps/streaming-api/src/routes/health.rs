use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// Liveness: the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: 200 while every dependency can serve, 503 naming the ones that
/// cannot (an open circuit breaker means requests to it fail fast).
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = Map::new();
    let object_store = state.storage.unready_reason();
    checks.insert("object_store".into(), Value::from(object_store.unwrap_or("ok")));
    if object_store.is_none() {
        HttpResponse::Ok().json(json!({ "status": "ready", "checks": checks }))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(json!({ "status": "unavailable", "checks": checks }))
    }
}
