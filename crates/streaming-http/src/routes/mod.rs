//! HTTP handlers: they parse, call the core, and map errors; nothing else.

pub mod admin;
mod docs;
mod health;
mod media;
mod movies;
pub mod openapi;
mod player;
mod tracks;

use actix_web::http::Method;
use actix_web::{web, Route};

use crate::problem::ApiError;
use crate::state::ApiState;

/// Routes by path (actix syntax), each with its method handlers.
pub type RouteTable = Vec<(&'static str, Vec<(Method, Route)>)>;

/// `(method, route)` for a [`RouteTable`] entry.
pub fn to(method: Method, route: Route) -> (Method, Route) {
    (method.clone(), route.method(method))
}

/// The public API's routes. One table serves both [`configure`] and
/// [`served_routes`], which the OpenAPI test compares with the document.
fn table() -> RouteTable {
    vec![
        ("/tracks/{track_id}/stream", vec![to(Method::POST, web::to(tracks::stream_url))]),
        ("/api/v1/media", vec![to(Method::GET, web::to(media::list))]),
        ("/api/v1/stream/{movie_id}", vec![to(Method::POST, web::to(movies::start))]),
        (
            "/api/v1/stream/{movie_id}/progress",
            vec![to(Method::POST, web::to(movies::record_progress)), to(Method::GET, web::to(movies::get_progress))],
        ),
        ("/api/v1/stream/{movie_id}/stop", vec![to(Method::POST, web::to(movies::stop))]),
        ("/api/v1/stream/{movie_id}/manifest/{path:.+}", vec![to(Method::GET, web::to(movies::manifest))]),
        ("/healthz", vec![to(Method::GET, web::to(health::live))]),
        ("/health", vec![to(Method::GET, web::to(health::health))]),
        ("/readyz", vec![to(Method::GET, web::to(health::ready))]),
        ("/openapi.json", vec![to(Method::GET, web::to(openapi::serve))]),
    ]
}

/// The demo player (`/`, `/player/{file}`) and the interactive API docs
/// (`/docs`, `/docs/{file}`), built into the crate.
fn pages_table() -> RouteTable {
    vec![
        ("/", vec![to(Method::GET, web::to(player::page))]),
        ("/player/{file}", vec![to(Method::GET, web::to(player::asset))]),
        ("/docs", vec![to(Method::GET, web::to(docs::docs_page))]),
        ("/docs/{file}", vec![to(Method::GET, web::to(docs::docs_file))]),
    ]
}

/// What the pages need.
#[derive(Debug, Default)]
pub struct PagesState {
    /// The demo token, while demo mode is on: the player page is served
    /// with it (to loopback clients only); `None` answers `/` with a short
    /// description of the service and the player's files with 404.
    pub demo_token: Option<String>,
}

/// Mounts the pages: the player at `/` and the docs at `/docs`, over the
/// document `/openapi.json` serves. Optional: a team with its own `/` leaves
/// them out.
pub fn configure_pages(cfg: &mut web::ServiceConfig, state: web::Data<PagesState>) {
    cfg.app_data(state);
    register(cfg, pages_table());
}

/// `(method, path)` of every page, paths in OpenAPI form.
pub fn served_page_routes() -> Vec<(String, String)> {
    served(pages_table())
}

/// Mounts the public API on an application: its routes (other methods on
/// them are 405 with `Allow`), `state`, and the body and query limits and
/// error answers. Wrap the application in [`crate::enrich_problems`] for
/// problem documents that carry `instance` and `traceId`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<ApiState>) {
    let max_body = state.max_body_bytes;
    cfg.app_data(state)
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(query_error));
    register(cfg, table());
}

fn json_error(error: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match error {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge,
        E::ContentType => ApiError::UnsupportedMediaType,
        other => ApiError::BadRequest(format!("The request body is not valid JSON: {other}")),
    };
    api.into()
}

pub(crate) fn query_error(
    error: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    // Names the missing or malformed parameter, never its value.
    let detail = match error {
        actix_web::error::QueryPayloadError::Deserialize(error) => error.to_string(),
        other => other.to_string(),
    };
    ApiError::BadRequest(format!("The query string is not valid: {detail}.")).into()
}

/// Registers `routes`, each resource named after its path; other methods on
/// a known path are 405 with the `Allow` header naming the path's methods.
/// Each path becomes a [`template`] the request metrics are labelled with.
pub fn register(cfg: &mut web::ServiceConfig, routes: RouteTable) {
    for (path, routes) in routes {
        remember_template(path);
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

/// Every path [`register`] has registered in this process.
fn templates() -> &'static std::sync::RwLock<Vec<&'static str>> {
    static TEMPLATES: std::sync::OnceLock<std::sync::RwLock<Vec<&'static str>>> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(Default::default)
}

fn remember_template(path: &'static str) {
    let mut known = templates().write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !known.contains(&path) {
        known.push(path);
    }
}

/// The route template a request matched (the resource's name, which
/// [`register`] sets to its path), as a `'static` metric label: any route
/// registered through [`register`], ours or the program's.
pub fn template(name: &str) -> Option<&'static str> {
    templates().read().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().find(|t| *t == name)
}

/// `(method, path)` of every public route, paths in OpenAPI form
/// (`{key:.+}` written `{key}`).
pub fn served_routes() -> Vec<(String, String)> {
    served(table())
}

/// `(method, path)` of every route of `table`, paths in OpenAPI form.
pub fn served(table: RouteTable) -> Vec<(String, String)> {
    let openapi_path = |path: &str| {
        path.split('/')
            .map(|segment| match segment.split_once(':') {
                Some((name, _)) if segment.starts_with('{') => format!("{name}}}"),
                _ => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    table
        .into_iter()
        .flat_map(|(path, routes)| {
            routes.into_iter().map(move |(method, _)| (method.as_str().to_owned(), openapi_path(path)))
        })
        .collect()
}

/// A JSON body with `Cache-Control: no-store` (positions, URLs and lists are per user).
pub(crate) fn no_store(body: &impl serde::Serialize) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).json(body)
}

/// What unknown routes and methods get.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// The policy of answers that carry what the store holds (manifests,
/// objects): nothing may load, and a browser that opens one directly runs
/// it as an opaque origin, never as a page of this service.
pub const STORED_CONTENT_POLICY: &str = "default-src 'none'; sandbox";
