//! The cinema contract: `/api/v1/stream/{movie_id}` and its `progress` and `stop`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use streaming_core::domain::{ManifestKind, MediaId, UserId};
use streaming_core::{ProgressReport, StartPlayback, StopOutcome};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::authenticate;
use crate::body::{json_object, optional_session, optional_str, optional_u64, required_number};
use crate::problem::ApiError;
use crate::state::AppState;

/// Authenticates the caller and parses the movie id: 401 before 400.
async fn caller_and_movie(req: &HttpRequest, state: &AppState, movie_id: &str) -> Result<(UserId, MediaId), ApiError> {
    let principal = authenticate(req, &state.verifier, state.clock.now()).await?;
    let movie = MediaId::parse_uuid(movie_id).map_err(|_| ApiError::InvalidMovieId)?;
    Ok((principal.user, movie))
}

fn rfc3339(at: OffsetDateTime) -> Result<String, ApiError> {
    at.format(&Rfc3339).map_err(|_| ApiError::Internal)
}

/// Caller, movie and the `{position_seconds, session_id?, sequence?}` body of progress and stop.
async fn progress_request(
    req: &HttpRequest,
    state: &AppState,
    movie_id: &str,
    payload: web::Payload,
) -> Result<(UserId, MediaId, ProgressReport), ApiError> {
    let (user, movie) = caller_and_movie(req, state, movie_id).await?;
    let body = json_object(req, payload, state.max_body_bytes, false).await?;
    let report = ProgressReport {
        position_seconds: required_number(&body, "position_seconds")?,
        session: optional_session(&body, "session_id")?,
        sequence: optional_u64(&body, "sequence")?,
    };
    Ok((user, movie, report))
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// `POST /api/v1/stream/{movie_id}` `{"manifest_type": "hls"|"dash"}` (body optional).
pub async fn start(
    req: HttpRequest,
    movie_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie) = caller_and_movie(&req, &state, &movie_id).await?;
    let body = json_object(&req, payload, state.max_body_bytes, true).await?;
    let manifest = match optional_str(&body, "manifest_type")? {
        None => ManifestKind::default(),
        Some(kind) => kind.parse().map_err(|e: streaming_core::domain::UnknownManifestKind| {
            ApiError::field("manifest_type", e.to_string())
        })?,
    };
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = StartPlayback { manifest, user_agent, client_ip: req.peer_addr().map(|a| a.ip()) };
    let started =
        state.playback.start(&movie, &user, request).await.map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let expires_in = started.expires_in.as_secs();
    Ok(no_store(HttpResponse::Ok().json(json!({
        "manifest_url": started.manifest_url,
        "expires_in": expires_in,
        "manifest_type": started.manifest.as_str(),
        "session_id": started.session.to_string(),
        "resume_position_seconds": started.resume_position.get().floor() as u64,
        "expires_at": rfc3339(started.expires_at)?,
        // Ask for a fresh URL well before this one expires.
        "refresh_after_seconds": expires_in * 4 / 5,
    }))))
}

/// `POST /api/v1/stream/{movie_id}/progress` `{"position_seconds": n, "session_id"?, "sequence"?}`.
pub async fn record_progress(
    req: HttpRequest,
    movie_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie, report) = progress_request(&req, &state, &movie_id, payload).await?;
    let ack = state
        .playback
        .record_progress(&movie, &user, report)
        .await
        .map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let message = match (ack.applied, ack.watched) {
        (false, _) => "Ignored: a newer position of this session is already recorded",
        (true, true) => "Progress updated successfully; the movie is watched",
        (true, false) => "Progress updated successfully",
    };
    Ok(no_store(HttpResponse::Ok().json(json!({
        "success": true,
        "position_seconds": ack.position.get().floor() as u64,
        "message": message,
        "applied": ack.applied,
        "watched": ack.watched,
    }))))
}

/// `GET /api/v1/stream/{movie_id}/progress`.
pub async fn get_progress(
    req: HttpRequest,
    movie_id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie) = caller_and_movie(&req, &state, &movie_id).await?;
    let progress =
        state.playback.progress(&movie, &user).await.map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let (position, last_watched_at, watched) = match progress {
        Some(p) => (p.position.get().floor() as u64, Some(rfc3339(p.last_watched_at)?), p.watched),
        None => (0, None, false),
    };
    Ok(no_store(HttpResponse::Ok().json(json!({
        "user_id": user.as_str(),
        "movie_id": movie.as_str(),
        "position_seconds": position,
        "last_watched_at": last_watched_at,
        "watched": watched,
    }))))
}

/// `POST /api/v1/stream/{movie_id}/stop` `{"position_seconds": n, "session_id"?}`. Idempotent.
pub async fn stop(
    req: HttpRequest,
    movie_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie, report) = progress_request(&req, &state, &movie_id, payload).await?;
    let outcome =
        state.playback.stop(&movie, &user, report).await.map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let (message, session) = match &outcome {
        StopOutcome::Stopped(session) => ("Streaming stopped", Some(session)),
        StopOutcome::AlreadyStopped(session) => ("Streaming session was already stopped", Some(session)),
        StopOutcome::NoOpenSession => ("No open streaming session", None),
    };
    let body = json!({
        "success": true,
        "message": message,
        "session_id": session.map(|s| s.id.to_string()),
        "duration_seconds": session.and_then(|s| s.duration_seconds).map(|d| d.floor() as u64),
    });
    Ok(no_store(HttpResponse::Ok().json(body)))
}

/// `GET /api/v1/stream/{movie_id}/manifest/{path}?grant=…`: a playlist of the
/// movie with every URI signed. The grant stands in for the bearer token
/// (players fetch manifests without one); it is never logged.
pub async fn manifest(
    path: web::Path<(String, String)>,
    query: web::Query<GrantQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (movie_id, manifest_path) = path.into_inner();
    let movie = MediaId::parse_uuid(&movie_id).map_err(|_| ApiError::InvalidMovieId)?;
    let served = state
        .playback
        .manifest(&movie, &manifest_path, &query.grant)
        .await
        .map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let expires = served.urls_expire_at.format(&Rfc3339).map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type(served.content_type)
        // Identical within the signing window: players and caches may reuse it, privately.
        .insert_header((header::CACHE_CONTROL, format!("private, max-age={}", served.fresh_for.as_secs())))
        .insert_header(("X-Urls-Expire-At", expires))
        .body(actix_web::web::Bytes::from_owner(served.body)))
}

/// The `grant` query parameter.
#[derive(Debug, serde::Deserialize)]
pub struct GrantQuery {
    grant: String,
}
