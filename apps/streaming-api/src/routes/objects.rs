use actix_files::NamedFile;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use streaming_localfs::{AccessError, OBJECTS_ROUTE};

use crate::problem::ApiError;
use crate::state::AppState;

/// `GET|HEAD /objects/{key}?exp=…&sig=…`: the embedded store's presigned
/// URLs. Verifies the signature, then serves the file with `Range` support
/// (206, `Content-Range`, 416 for unsatisfiable ranges).
pub async fn serve(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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
    Ok(response)
}
