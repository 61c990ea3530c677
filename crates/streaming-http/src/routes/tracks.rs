use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use streaming_core::domain::MediaId;
use time::format_description::well_known::Rfc3339;

use utoipa::ToSchema;

use super::openapi::{Conflict, TooManyRequests, UserRouteProblems};
use crate::auth::authenticate;
use crate::problem::ApiError;
use crate::state::ApiState;

/// The track contract's success body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamResponse {
    /// A presigned GET URL of the track's object (Range requests work).
    stream_url: String,
    /// When the URL stops working (RFC 3339).
    expires_at: String,
    /// The object's media type.
    content_type: String,
    /// The object's size.
    file_size_bytes: u64,
    /// Always true: the store answers `Range` with 206.
    supports_range_requests: bool,
}

/// A stream URL for a track.
///
/// The order of checks: 401 (token) → 429 (rate limit) → 400 (id) → the
/// core's answer. Identical requests within a URL's cache life get the
/// same URL (served from the encrypted cache).
#[utoipa::path(
    post,
    path = "/tracks/{track_id}/stream",
    tag = "tracks",
    params(("track_id" = String, Path, pattern = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$", description = "The track's ULID (26 Crockford base-32 characters).")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A presigned URL (`Cache-Control: no-store`).", body = StreamResponse),
        UserRouteProblems,
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
    ),
)]
pub async fn stream_url(
    req: HttpRequest,
    track_id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state.verifier, state.clock.now()).await?;
    if let Some(limit) = &state.stream_url_limit {
        limit
            .admit(&principal.user)
            .await
            .map_err(|limited| ApiError::RateLimited { retry_after: limited.retry_after })?;
    }
    let track = MediaId::parse_ulid(&track_id).map_err(|_| ApiError::InvalidTrackId)?;
    let url = state
        .streaming
        .get_stream_url(&track, &principal.user)
        .await
        .map_err(|error| ApiError::from_stream(error, track.as_str()))?;
    let expires_at = url.expires_at.format(&Rfc3339).map_err(|_| ApiError::Internal)?;
    Ok(super::no_store(&StreamResponse {
        stream_url: url.url,
        expires_at,
        content_type: url.content_type,
        file_size_bytes: url.file_size_bytes,
        supports_range_requests: url.supports_range_requests,
    }))
}
