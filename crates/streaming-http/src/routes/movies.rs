//! The cinema contract: `/api/v1/stream/{movie_id}` and its `progress` and `stop`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use streaming_core::domain::{ManifestKind, MediaId, SessionId, UserId};
use streaming_core::{ProgressReport, StartPlayback, StopOutcome};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::no_store;
use super::openapi::{
    BadGateway, BadRequest, BodyProblems, GrantRefused, InternalError, NotFound, ServiceUnavailable, UserRouteProblems,
};
use crate::auth::authenticate;
use crate::body::{count, json_body, Field, MAX_SAFE_INTEGER};
use crate::problem::ApiError;
use crate::state::ApiState;

/// Authenticates the caller and parses the movie id: 401 before 400.
async fn caller_and_movie(req: &HttpRequest, state: &ApiState, movie_id: &str) -> Result<(UserId, MediaId), ApiError> {
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
    state: &ApiState,
    movie_id: &str,
    payload: web::Payload,
) -> Result<(UserId, MediaId, ProgressReport), ApiError> {
    let (user, movie) = caller_and_movie(req, state, movie_id).await?;
    let body: ProgressRequest = json_body(req, payload, state.max_body_bytes, false).await?;
    Ok((user, movie, ProgressReport::try_from(body)?))
}

/// A manifest format.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ManifestType {
    /// HTTP Live Streaming (`.m3u8`).
    Hls,
    /// MPEG-DASH (`.mpd`).
    Dash,
}

impl From<ManifestKind> for ManifestType {
    fn from(kind: ManifestKind) -> Self {
        match kind {
            ManifestKind::Hls => Self::Hls,
            ManifestKind::Dash => Self::Dash,
        }
    }
}

/// The start body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StartRequest {
    /// The format to play (default `hls`).
    #[serde(default)]
    #[schema(value_type = Option<ManifestType>)]
    manifest_type: Field<String>,
}

impl TryFrom<StartRequest> for ManifestKind {
    type Error = ApiError;

    fn try_from(body: StartRequest) -> Result<Self, ApiError> {
        match body.manifest_type.optional().map_err(|()| ApiError::field("manifest_type", "must be a string"))? {
            None => Ok(Self::default()),
            Some(kind) => kind.parse().map_err(|e: streaming_core::domain::UnknownManifestKind| {
                ApiError::field("manifest_type", e.to_string())
            }),
        }
    }
}

/// A started stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    /// The manifest to give the player: this service's signed-manifest
    /// endpoint with a grant, or a presigned store URL.
    manifest_url: String,
    /// Seconds the URL stays valid.
    expires_in: u64,
    /// The format of `manifest_url`.
    manifest_type: ManifestType,
    /// The new session (send it with progress and stop).
    #[schema(format = "uuid")]
    session_id: String,
    /// Where the viewer stopped last time (whole seconds; 0 when watched or new).
    resume_position_seconds: u64,
    /// When the URL stops working (RFC 3339).
    expires_at: String,
    /// Ask for a fresh URL after this many seconds (4/5 of `expires_in`).
    refresh_after_seconds: u64,
}

/// The progress and stop body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProgressRequest {
    /// The position in seconds: at most a week, and within the movie's
    /// duration (plus `playback.position_slack_seconds`) when it is known.
    #[serde(default)]
    #[schema(value_type = f64, required = true, example = 42.5, minimum = 0, maximum = 604800)]
    position_seconds: Field<f64>,
    /// The session `start` returned; reports of a stopped session are refused.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        format = "uuid",
        pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
    )]
    session_id: Field<String>,
    /// The player's own counter: a report with a lower one than stored is
    /// ignored (a whole number up to 2^53 - 1, which every JSON reader keeps exact).
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_i64)]
    sequence: Field<serde_json::Number>,
}

impl TryFrom<ProgressRequest> for ProgressReport {
    type Error = ApiError;

    /// The report, each field judged in order; the first wrong one is named.
    fn try_from(body: ProgressRequest) -> Result<Self, ApiError> {
        let position_seconds = match body.position_seconds {
            Field::Valid(seconds) => seconds,
            Field::Absent | Field::Null => return Err(ApiError::field("position_seconds", "is required")),
            Field::Invalid => return Err(ApiError::field("position_seconds", "must be a number")),
        };
        let session = match body.session_id.optional() {
            Ok(None) => None,
            Ok(Some(text)) => {
                Some(text.parse::<SessionId>().map_err(|_| ApiError::field("session_id", "must be a UUID"))?)
            }
            Err(()) => return Err(ApiError::field("session_id", "must be a UUID string")),
        };
        let refused = || ApiError::field("sequence", format!("must be a whole number from 0 to {MAX_SAFE_INTEGER}"));
        let sequence = match body.sequence.optional() {
            Ok(None) => None,
            Ok(Some(number)) => Some(count(&number).ok_or_else(refused)?),
            Err(()) => return Err(refused()),
        };
        Ok(Self { position_seconds, session, sequence })
    }
}

/// A progress report's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressAck {
    /// Always true on 200 (the cinema contract's field).
    success: bool,
    /// The stored position (whole seconds; 0 once the movie is watched).
    position_seconds: u64,
    /// What happened, for people.
    message: &'static str,
    /// False when a newer report of the same session was already stored.
    applied: bool,
    /// The position passed the watched fraction of the movie.
    watched: bool,
}

/// The caller's progress in a movie.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    /// The caller.
    user_id: String,
    /// The movie.
    #[schema(format = "uuid")]
    movie_id: String,
    /// Whole seconds (0 when never watched or watched to the end).
    position_seconds: u64,
    /// When the last report arrived (RFC 3339), null when never.
    last_watched_at: Option<String>,
    /// Watched to the end.
    watched: bool,
}

/// A stop's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct StopResponse {
    /// Always true on 200.
    success: bool,
    /// What happened, for people.
    message: &'static str,
    /// The stopped session, null when there was none open.
    #[schema(format = "uuid")]
    session_id: Option<String>,
    /// How long it lasted (whole seconds), null when there was none.
    duration_seconds: Option<u64>,
}

/// Starts streaming a movie.
///
/// Opens a session (counted against the plan's concurrent streams) and
/// returns the manifest URL. The body is optional.
#[utoipa::path(
    post,
    path = "/api/v1/stream/{movie_id}",
    tag = "movies",
    params(("movie_id" = String, Path, format = "uuid", pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", description = "The movie's UUID.")),
    request_body(content = Option<StartRequest>, description = "Optional; default `{\"manifest_type\": \"hls\"}`."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Started (`Cache-Control: no-store`).", body = StartResponse),
        UserRouteProblems,
        BodyProblems,
        (status = 429, response = super::openapi::TooManyRequests),
    ),
)]
pub async fn start(
    req: HttpRequest,
    movie_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie) = caller_and_movie(&req, &state, &movie_id).await?;
    let body: StartRequest = json_body(&req, payload, state.max_body_bytes, true).await?;
    let manifest = ManifestKind::try_from(body)?;
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = StartPlayback { manifest, user_agent, client_ip: req.peer_addr().map(|a| a.ip()) };
    let started =
        state.playback.start(&movie, &user, request).await.map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let expires_in = started.expires_in.as_secs();
    Ok(no_store(&StartResponse {
        manifest_url: started.manifest_url,
        expires_in,
        manifest_type: started.manifest.into(),
        session_id: started.session.to_string(),
        resume_position_seconds: started.resume_position.get().floor() as u64,
        expires_at: rfc3339(started.expires_at)?,
        // Ask for a fresh URL well before this one expires.
        refresh_after_seconds: expires_in * 4 / 5,
    }))
}

/// Records the playback position.
///
/// Reports of one session apply in `sequence` order (arrival order without
/// one); a stale report is acknowledged with `applied: false`.
#[utoipa::path(
    post,
    path = "/api/v1/stream/{movie_id}/progress",
    tag = "movies",
    params(("movie_id" = String, Path, format = "uuid", pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", description = "The movie's UUID.")),
    request_body = ProgressRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded or ignored as stale (`Cache-Control: no-store`).", body = ProgressAck),
        UserRouteProblems,
        BodyProblems,
    ),
)]
pub async fn record_progress(
    req: HttpRequest,
    movie_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
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
    Ok(no_store(&ProgressAck {
        success: true,
        position_seconds: ack.position.get().floor() as u64,
        message,
        applied: ack.applied,
        watched: ack.watched,
    }))
}

/// The caller's progress in a movie.
#[utoipa::path(
    get,
    path = "/api/v1/stream/{movie_id}/progress",
    tag = "movies",
    params(("movie_id" = String, Path, format = "uuid", pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", description = "The movie's UUID.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored position, or 0 (`Cache-Control: no-store`).", body = ProgressView),
        UserRouteProblems,
    ),
)]
pub async fn get_progress(
    req: HttpRequest,
    movie_id: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie) = caller_and_movie(&req, &state, &movie_id).await?;
    let progress =
        state.playback.progress(&movie, &user).await.map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let (position, last_watched_at, watched) = match progress {
        Some(p) => (p.position.get().floor() as u64, Some(rfc3339(p.last_watched_at)?), p.watched),
        None => (0, None, false),
    };
    Ok(no_store(&ProgressView {
        user_id: user.as_str().to_owned(),
        movie_id: movie.as_str().to_owned(),
        position_seconds: position,
        last_watched_at,
        watched,
    }))
}

/// Stops streaming: records the final position and closes the session.
///
/// Idempotent: stopping a stopped session answers 200 again. Without a
/// `session_id`, the caller's open sessions of this movie are stopped.
#[utoipa::path(
    post,
    path = "/api/v1/stream/{movie_id}/stop",
    tag = "movies",
    params(("movie_id" = String, Path, format = "uuid", pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", description = "The movie's UUID.")),
    request_body = ProgressRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stopped, already stopped, or nothing open (`Cache-Control: no-store`).", body = StopResponse),
        UserRouteProblems,
        BodyProblems,
    ),
)]
pub async fn stop(
    req: HttpRequest,
    movie_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let (user, movie, report) = progress_request(&req, &state, &movie_id, payload).await?;
    let outcome =
        state.playback.stop(&movie, &user, report).await.map_err(|e| ApiError::from_playback(e, movie.as_str()))?;
    let (message, session) = match &outcome {
        StopOutcome::Stopped(session) => ("Streaming stopped", Some(session)),
        StopOutcome::AlreadyStopped(session) => ("Streaming session was already stopped", Some(session)),
        StopOutcome::NoOpenSession => ("No open streaming session", None),
    };
    Ok(no_store(&StopResponse {
        success: true,
        message,
        session_id: session.map(|s| s.id.to_string()),
        duration_seconds: session.and_then(|s| s.duration_seconds).map(|d| d.floor() as u64),
    }))
}

/// A playlist of the movie with every URI signed.
///
/// The `manifest_url` of a start points here. The grant stands in for the
/// bearer token (players fetch manifests without one) and is never logged.
/// Nested playlists point back here with the same grant; segments, keys and
/// init sections are presigned store URLs, all signed at the start of the
/// current window so the body is identical within it.
#[utoipa::path(
    get,
    path = "/api/v1/stream/{movie_id}/manifest/{path}",
    tag = "movies",
    params(
        ("movie_id" = String, Path, format = "uuid", pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", description = "The movie's UUID."),
        ("path" = String, Path, description = "The playlist's path under the movie's root (`master.m3u8`, `720p/index.m3u8`, `manifest.mpd`)."),
        ("grant" = String, Query, description = "The grant `start` put in `manifest_url`."),
    ),
    responses(
        (status = 200, description = "The signed playlist (`Cache-Control: private, max-age` = the rest of the window; `X-Urls-Expire-At`).",
            content(
                (String = "application/vnd.apple.mpegurl"),
                (String = "application/dash+xml"),
            )),
        (status = 400, response = BadRequest),
        (status = 403, response = GrantRefused),
        (status = 404, response = NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 429, response = super::openapi::TooManyRequests),
        (status = 500, response = InternalError),
        (status = 502, response = BadGateway),
        (status = 503, response = ServiceUnavailable),
    ),
)]
pub async fn manifest(
    path: web::Path<(String, String)>,
    query: web::Query<GrantQuery>,
    state: web::Data<ApiState>,
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
        .insert_header((header::CONTENT_SECURITY_POLICY, super::STORED_CONTENT_POLICY))
        .body(actix_web::web::Bytes::from_owner(served.body)))
}

/// The `grant` query parameter.
#[derive(Debug, serde::Deserialize)]
pub struct GrantQuery {
    grant: String,
}
