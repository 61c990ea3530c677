//! HTTP handlers: they parse, call the core, and map errors; nothing else.

mod health;
mod movies;
mod objects;
mod tracks;

use actix_web::web;

use crate::problem::ApiError;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/tracks/{track_id}/stream").route(web::post().to(tracks::stream_url)))
        .service(
            resource("/objects/{key:.+}").route(web::get().to(objects::serve)).route(web::head().to(objects::serve)),
        )
        .service(resource("/api/v1/stream/{movie_id}").route(web::post().to(movies::start)))
        .service(
            resource("/api/v1/stream/{movie_id}/progress")
                .route(web::post().to(movies::record_progress))
                .route(web::get().to(movies::get_progress)),
        )
        .service(resource("/api/v1/stream/{movie_id}/stop").route(web::post().to(movies::stop)))
        .service(resource("/api/v1/stream/{movie_id}/manifest/{path:.+}").route(web::get().to(movies::manifest)))
        .service(resource("/healthz").route(web::get().to(health::live)))
        .service(resource("/readyz").route(web::get().to(health::ready)))
        .service(resource("/metrics").route(web::get().to(crate::telemetry::scrape)));
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// What unknown routes and methods get.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
