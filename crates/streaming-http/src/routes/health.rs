use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::ApiState;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    status: &'static str,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// Each dependency: `ok`, or why it cannot serve.
    checks: BTreeMap<&'static str, &'static str>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Liveness)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// The cinema service's health route, kept for its clients and probes:
/// the same answer as `/healthz`.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Liveness)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// Readiness: 200 while every dependency can serve, 503 naming the ones that
/// cannot (an open circuit breaker means requests to it fail fast).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready (`Retry-After: 5`); `checks` names why.", body = Readiness),
    ),
)]
pub async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let checks: BTreeMap<&'static str, &'static str> =
        state.readiness.iter().map(|(name, check)| (*name, check.unready_reason().unwrap_or("ok"))).collect();
    if checks.values().all(|check| *check == "ok") {
        HttpResponse::Ok().json(Readiness { status: "ready", checks })
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(Readiness { status: "unavailable", checks })
    }
}
