//! HTTP handlers: they parse, call the core, and map errors; nothing else.

pub mod admin;
mod docs;
mod health;
mod media;
mod movies;
mod objects;
pub mod openapi;
mod player;
mod tracks;

use actix_web::http::Method;
use actix_web::{web, Route};

use crate::problem::ApiError;

/// Every route: its path (actix syntax) and its method handlers. One
/// table serves both [`configure`] and [`served_routes`], which the
/// OpenAPI test compares with the document.
fn table() -> Vec<(&'static str, Vec<(Method, Route)>)> {
    let to = |method: Method, route: Route| (method.clone(), route.method(method));
    vec![
        ("/tracks/{track_id}/stream", vec![to(Method::POST, web::to(tracks::stream_url))]),
        ("/objects/{key:.+}", vec![to(Method::GET, web::to(objects::serve)), to(Method::HEAD, web::to(objects::head))]),
        ("/api/v1/media", vec![to(Method::GET, web::to(media::list))]),
        ("/api/v1/stream/{movie_id}", vec![to(Method::POST, web::to(movies::start))]),
        (
            "/api/v1/stream/{movie_id}/progress",
            vec![to(Method::POST, web::to(movies::record_progress)), to(Method::GET, web::to(movies::get_progress))],
        ),
        ("/api/v1/stream/{movie_id}/stop", vec![to(Method::POST, web::to(movies::stop))]),
        ("/api/v1/stream/{movie_id}/manifest/{path:.+}", vec![to(Method::GET, web::to(movies::manifest))]),
        ("/", vec![to(Method::GET, web::to(player::page))]),
        ("/player/{file}", vec![to(Method::GET, web::to(player::asset))]),
        ("/healthz", vec![to(Method::GET, web::to(health::live))]),
        ("/health", vec![to(Method::GET, web::to(health::health))]),
        ("/readyz", vec![to(Method::GET, web::to(health::ready))]),
        ("/metrics", vec![to(Method::GET, web::to(crate::telemetry::scrape))]),
        ("/openapi.json", vec![to(Method::GET, web::to(openapi::serve))]),
        ("/docs", vec![to(Method::GET, web::to(docs::docs_page))]),
        ("/docs/{file}", vec![to(Method::GET, web::to(docs::docs_file))]),
    ]
}

/// Registers every route; other methods on a known path are 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg, table());
}

/// Registers `routes`, each resource named after its path; other methods on
/// a known path are 405 with the `Allow` header naming the path's methods.
fn register(cfg: &mut web::ServiceConfig, routes: Vec<(&'static str, Vec<(Method, Route)>)>) {
    for (path, routes) in routes {
        let allow = routes.iter().map(|(method, _)| method.as_str()).collect::<Vec<_>>().join(", ");
        let refuse = move || {
            let allow = allow.clone();
            async move { Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
        };
        let resource = routes
            .into_iter()
            .fold(web::resource(path).name(path), |resource, (_, route)| resource.route(route))
            .default_service(web::to(refuse));
        cfg.service(resource);
    }
}

/// The route template a request matched (the resource's name, which
/// [`configure`] sets to its path), as a `'static` metric label.
pub fn template(name: &str) -> Option<&'static str> {
    static TEMPLATES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    TEMPLATES
        .get_or_init(|| table().into_iter().chain(admin::table()).map(|(path, _)| path).collect())
        .iter()
        .copied()
        .find(|t| *t == name)
}

/// `(method, path)` of every route served, paths in OpenAPI form
/// (`{key:.+}` written `{key}`).
pub fn served_routes() -> Vec<(String, String)> {
    let openapi_path = |path: &str| {
        path.split('/')
            .map(|segment| match segment.split_once(':') {
                Some((name, _)) if segment.starts_with('{') => format!("{name}}}"),
                _ => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    table()
        .into_iter()
        .flat_map(|(path, routes)| {
            routes.into_iter().map(move |(method, _)| (method.as_str().to_owned(), openapi_path(path)))
        })
        .collect()
}

/// A JSON body with `Cache-Control: no-store` (positions, URLs and lists are per user).
fn no_store(body: &impl serde::Serialize) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).json(body)
}

/// What unknown routes and methods get.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// The policy of answers that carry what the store holds (manifests,
/// objects): nothing may load, and a browser that opens one directly runs
/// it as an opaque origin, never as a page of this service.
pub(crate) const STORED_CONTENT_POLICY: &str = "default-src 'none'; sandbox";
