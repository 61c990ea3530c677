//! The document `/openapi.json` serves: the library's API and pages, with
//! the routes only the binary serves (objects, metrics) merged in.

use std::sync::OnceLock;

use utoipa::OpenApi;

use super::objects;

/// The binary's own routes.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(objects::serve, objects::head, crate::telemetry::scrape),
    tags((name = "objects", description = "The embedded store's presigned object URLs."))
)]
struct BinaryRoutes;

/// The whole document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = streaming_http::ApiDoc::openapi();
    document.merge(streaming_http::PagesDoc::openapi());
    document.merge(BinaryRoutes::openapi());
    document
}

/// The whole document as JSON, built once.
pub fn document() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec(&openapi()).unwrap_or_default())
}
