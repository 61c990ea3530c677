use actix_web::HttpResponse;
use serde_json::json;

/// Liveness: the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the dependencies answer. The embedded adapters have nothing to
/// wait for; networked adapters add their checks here.
pub async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ready", "checks": {} }))
}
