use actix_files::NamedFile;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use streaming_localfs::{AccessError, OBJECTS_ROUTE};

use super::BinaryState;
use streaming_http::openapi::{InternalError, NotFound, SignatureRefused};
use streaming_http::ApiError;

/// A presigned URL's query (read by hand in [`serve`]: a duplicated or
/// missing parameter is a signature failure, not a parse error).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query the handler parses
pub struct SignedQuery {
    /// Expiry, Unix seconds.
    exp: i64,
    /// The URL's signature.
    sig: String,
}

/// An object of the embedded store, by presigned URL.
///
/// Only in embedded mode (with S3 the URLs point at the store itself).
/// Verifies the signature, then serves the file with `Range` support.
/// `HEAD` answers the same without the body.
#[utoipa::path(
    get,
    path = "/objects/{key}",
    operation_id = "get_object",
    tag = "objects",
    params(("key" = String, Path, description = "The object key, percent-encoded; it may contain `/`."), SignedQuery),
    responses(
        (status = 200, description = "The whole object (`ETag`, `Last-Modified`, `Accept-Ranges: bytes`).", body = [u8], content_type = "application/octet-stream"),
        (status = 206, description = "The requested range (`Content-Range`).", body = [u8], content_type = "application/octet-stream"),
        (status = 403, response = SignatureRefused),
        (status = 404, response = NotFound),
        (status = 416, description = "The range cannot be satisfied (`Content-Range: bytes */size`)."),
        (status = 500, response = InternalError),
    ),
)]
pub async fn serve(req: HttpRequest, state: web::Data<BinaryState>) -> Result<HttpResponse, ApiError> {
    let Some(store) = &state.local_objects else {
        return Err(ApiError::RouteNotFound);
    };
    // The raw, still percent-encoded path: the signature covers the decoded
    // key, and decoding is done once, by the store.
    let encoded_key = req.uri().path().strip_prefix(OBJECTS_ROUTE).ok_or(ApiError::RouteNotFound)?;
    let (mut expires, mut signature) = (None, None);
    for pair in req.query_string().split('&') {
        match pair.split_once('=') {
            Some(("exp", value)) if expires.is_none() => expires = Some(value),
            Some(("sig", value)) if signature.is_none() => signature = Some(value),
            _ => {}
        }
    }
    let object = store.authorize(encoded_key, expires, signature, state.clock.now()).await.map_err(|e| match e {
        AccessError::BadPath | AccessError::BadSignature => ApiError::InvalidSignature,
        AccessError::Expired => ApiError::ExpiredSignature,
        AccessError::NotFound => ApiError::ObjectNotFound,
    })?;
    let file = NamedFile::open_async(&object.path).await.map_err(|_| ApiError::ObjectNotFound)?;
    let content_type = object.content_type.parse().map_err(|_| ApiError::Internal)?;
    let mut response = file
        .set_content_type(content_type)
        .disable_content_disposition()
        .use_etag(true)
        .use_last_modified(true)
        .into_response(&req);
    // The URL is a credential: keep shared caches from storing the response.
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("private, max-age=60"));
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(streaming_http::STORED_CONTENT_POLICY),
    );
    Ok(response)
}

/// The headers of an object of the embedded store, by presigned URL: the
/// same checks and headers as `GET`, no body.
#[utoipa::path(
    head,
    path = "/objects/{key}",
    operation_id = "head_object",
    tag = "objects",
    params(("key" = String, Path, description = "The object key, percent-encoded; it may contain `/`."), SignedQuery),
    responses(
        (status = 200, description = "The object's headers (`Content-Length`, `ETag`, `Accept-Ranges: bytes`)."),
        (status = 206, description = "The headers of the requested range."),
        (status = 403, description = "`invalid-signature` or `expired-signature` (no body)."),
        (status = 404, description = "`object-not-found` (no body)."),
        (status = 416, description = "The range cannot be satisfied."),
        (status = 500, description = "`internal-error` (no body)."),
    ),
)]
pub async fn head(req: HttpRequest, state: web::Data<BinaryState>) -> Result<HttpResponse, ApiError> {
    serve(req, state).await
}
