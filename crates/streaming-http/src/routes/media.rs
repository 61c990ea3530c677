//! `GET /api/v1/media`: what the caller may play, page by page (the demo
//! player's list, and any client's).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use streaming_core::domain::{Media, MediaId, MediaKind, UserId};
use streaming_core::MAX_PAGE;
use utoipa::ToSchema;

use super::openapi::{BadRequest, InternalError, ServiceUnavailable, Unauthorized, ValidationFailed};
use crate::auth::authenticate;
use crate::problem::ApiError;
use crate::state::ApiState;

/// Items per page when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

/// A media item the caller may play (or may play once it is ready).
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaItem {
    /// A track's ULID or a movie's UUID.
    id: String,
    /// `track` or `movie`.
    kind: &'static str,
    /// `Ready` when it plays now; `Processing` or `Failed` otherwise.
    status: &'static str,
    /// `private`, `subscribers` or `public`.
    visibility: &'static str,
    /// Whether the caller uploaded it.
    owned: bool,
    /// MIME type of the track, or of the movie's manifest.
    content_type: String,
    /// Size in bytes (of a movie: all its files).
    size_bytes: u64,
    /// Duration in seconds, when known.
    duration_seconds: Option<f64>,
    /// Where to ask for it: `POST` here (the track or the cinema contract).
    play: String,
}

/// One page of media.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaPage {
    /// In id order.
    items: Vec<MediaItem>,
    /// Pass as `after` for the next page; null at the end. A page may hold
    /// fewer than `limit` items and still have a next one.
    next: Option<String>,
}

fn item(media: Media, caller: &UserId) -> MediaItem {
    let play = match media.kind {
        MediaKind::Track => format!("/tracks/{}/stream", media.id),
        MediaKind::Movie => format!("/api/v1/stream/{}", media.id),
    };
    MediaItem {
        id: media.id.to_string(),
        kind: media.kind.as_str(),
        status: media.status.as_str(),
        visibility: media.visibility.as_str(),
        owned: media.owner.as_ref() == Some(caller),
        content_type: media.content_type,
        size_bytes: media.size_bytes,
        duration_seconds: media.duration_seconds,
        play,
    }
}

/// The media the caller may play.
///
/// Owned, granted, public, and subscriber-only items the caller's plan
/// covers, decided as when playing them; items still processing are listed
/// with their status. Deleted items never are.
#[utoipa::path(
    get,
    path = "/api/v1/media",
    tag = "media",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Items per page (default 50)."),
        ("after" = Option<String>, Query, pattern = "^([0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$", description = "The `next` of the previous page (a media id: a ULID or a UUID)."),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page (`Cache-Control: no-store`).", body = MediaPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = ValidationFailed),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn list(req: HttpRequest, state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&req, &state.verifier, state.clock.now()).await?;
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::BadRequest("the query string is not valid".into()))?;
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::field("limit", format!("must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    let after = match query.get("after") {
        None => None,
        Some(text) => Some(
            MediaId::try_from(text.as_str())
                .map_err(|_| ApiError::field("after", "must be a media id (a ULID or a UUID)"))?,
        ),
    };
    let page = state
        .browser
        .playable(&principal.user, after.as_ref(), limit)
        .await
        .map_err(|e| ApiError::from_stream(e, ""))?;
    let body = MediaPage {
        items: page.items.into_iter().map(|media| item(media, &principal.user)).collect(),
        next: page.next.map(|id| id.to_string()),
    };
    Ok(super::no_store(&body))
}
