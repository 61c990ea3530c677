//! `/docs`: interactive API docs (Swagger UI over `/openapi.json`), with
//! every file served by this service — no CDN at runtime. The cinema
//! service's clients find them where they were.

use actix_web::{web, HttpResponse};

use super::player::{html_page, static_file, CSS, JAVASCRIPT};
use crate::problem::ApiError;

const PAGE: &str = include_str!("../../web/docs.html");
const SCRIPT: &str = include_str!("../../web/docs.js");
/// Swagger UI, as its package publishes it (`web/package.json` names the version).
const BUNDLE: &str = include_str!("../../web/vendor/swagger-ui-bundle.js");
const STYLE: &str = include_str!("../../web/vendor/swagger-ui.css");

/// Scripts from this service only; Swagger UI sets inline styles.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The interactive API docs.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    responses((status = 200, description = "Swagger UI over `/openapi.json` (HTML).", content_type = "text/html")),
)]
pub async fn docs_page() -> HttpResponse {
    html_page(POLICY).body(PAGE)
}

/// One of the docs page's files: `docs.js`, `swagger-ui-bundle.js` or `swagger-ui.css`.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "operations",
    params(("file" = String, Path, description = "`docs.js`, `swagger-ui-bundle.js` or `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file (JavaScript or CSS, cached for an hour)."),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match file.as_str() {
        "docs.js" => Ok(static_file(SCRIPT, JAVASCRIPT)),
        "swagger-ui-bundle.js" => Ok(static_file(BUNDLE, JAVASCRIPT)),
        "swagger-ui.css" => Ok(static_file(STYLE, CSS)),
        _ => Err(ApiError::DocsFileNotFound),
    }
}
