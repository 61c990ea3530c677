//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated
//! from the handlers' `#[utoipa::path]` attributes and the types they
//! serialize. Problem responses are shared components, one per status, all
//! `application/problem+json` with the [`Problem`] schema.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse, ToSchema};

use super::{docs, health, media, movies, player, tracks};

/// An RFC 7807 problem document; every error of every route is one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "https://streamgate.dev/problems/track-not-found",
    "title": "Track not found",
    "status": 404,
    "detail": "The track does not exist.",
    "instance": "/tracks/01JG0DEM0TRACK000000000001/stream",
    "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"
}))]
pub struct Problem {
    /// A URI naming the kind of problem (`{problems.type_base}{slug}`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people (the field the cinema clients read).
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// The request's trace id (also in the `trace-id` header).
    pub trace_id: String,
    /// `track-not-ready`: the track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    /// `movie-not-ready`: the movie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub movie_id: Option<String>,
    /// `*-not-ready`: the media's status (`uploading`, `processing`, `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// `rate-limit-exceeded`: whole seconds to wait (also `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// `too-many-streams`: the plan's concurrent stream limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `too-many-streams`: the open sessions that count, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_sessions: Option<Vec<String>>,
    /// `validation-error`: each invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldProblem>>,
}

/// One invalid field of a request body.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The field's name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, ToResponse)]
        #[response(content_type = "application/problem+json")]
        #[allow(dead_code)] // a documentation type: never built
        pub struct $name(Problem);
    )*};
}

problem_responses! {
    /// `bad-request` (malformed JSON, body or query), `invalid-track-id` or `invalid-movie-id`.
    BadRequest;
    /// `unauthorized`: no bearer token, or one refused (`WWW-Authenticate` says why).
    Unauthorized;
    /// `forbidden`, `subscription-required` or `plan-upgrade-required`: the caller may not play it.
    Forbidden;
    /// `manifest-grant-refused`: the grant is invalid, expired or revoked (session stopped, access lost).
    GrantRefused;
    /// `invalid-signature` or `expired-signature`.
    SignatureRefused;
    /// `track-not-found`, `movie-not-found`, `manifest-not-found`, `session-not-found`, `object-not-found`,
    /// `player-not-found` or `docs-file-not-found`.
    NotFound;
    /// `track-not-ready` / `movie-not-ready` (with `currentStatus`), `too-many-streams` (with
    /// `limit` and `activeSessions`) or `session-closed`.
    Conflict;
    /// `payload-too-large`: the body exceeds `server.max_body_bytes`.
    PayloadTooLarge;
    /// `unsupported-media-type`: a body that is not `application/json`.
    UnsupportedMediaType;
    /// `validation-error`: well-formed JSON with invalid fields (listed in `errors`).
    ValidationFailed;
    /// `rate-limit-exceeded` (with `Retry-After` and `retryAfterSeconds`).
    TooManyRequests;
    /// `internal-error`: a bug; the details are logged, not returned.
    InternalError;
    /// `manifest-invalid`: the stored manifest is malformed, too large or refers outside the movie.
    BadGateway;
    /// `service-unavailable`: a dependency is down (`Retry-After: 5`); `detail` names it.
    ServiceUnavailable;
}

/// The problems every user route can answer: a bad id, no or a refused
/// token, access refused, nothing there, a bug, a dependency down.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // a documentation type: never built
pub enum UserRouteProblems {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    #[response(status = 500)]
    InternalError(#[ref_response] InternalError),
    #[response(status = 503)]
    ServiceUnavailable(#[ref_response] ServiceUnavailable),
}

/// What a user route with a JSON body (start, progress, stop) can answer
/// besides [`UserRouteProblems`]: a state conflict and the body's problems.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // a documentation type: never built
pub enum BodyProblems {
    #[response(status = 409)]
    Conflict(#[ref_response] Conflict),
    #[response(status = 413)]
    PayloadTooLarge(#[ref_response] PayloadTooLarge),
    #[response(status = 415)]
    UnsupportedMediaType(#[ref_response] UnsupportedMediaType),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}

/// The bearer scheme the user routes require.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description = Some("An access token of the configured issuer (HS256 or RS256/ES256 via JWKS).".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "streamgate streaming API",
        description = "Who may play which media, short-lived signed URLs straight to the object store, \
                       playback progress and sessions. Two contracts: the track contract \
                       (`POST /tracks/{trackId}/stream`) and the cinema contract (`/api/v1/stream/...`). \
                       Every error is an `application/problem+json` document; an unknown route is 404 \
                       and an unsupported method on a known route is 405, both problems too."
    ),
    paths(
        tracks::stream_url,
        media::list,
        movies::start,
        movies::record_progress,
        movies::get_progress,
        movies::stop,
        movies::manifest,
        health::live,
        health::health,
        health::ready,
        serve,
    ),
    components(responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        GrantRefused,
        SignatureRefused,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        TooManyRequests,
        InternalError,
        BadGateway,
        ServiceUnavailable,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "tracks", description = "The track contract: a presigned URL per request."),
        (name = "movies", description = "The cinema contract: manifests, progress and sessions."),
        (name = "media", description = "What the caller may play."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
    )
)]
pub struct ApiDoc;

/// The pages' part of the document ([`super::configure_pages`]).
#[derive(Debug, OpenApi)]
#[openapi(
    paths(player::page, player::asset, docs::docs_page, docs::docs_file),
    tags((name = "player", description = "The demo player page (demo mode only)."))
)]
pub struct PagesDoc;

/// The document of these routes as JSON, built once.
pub fn document() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_default())
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "get_openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object)),
)]
pub async fn serve(state: actix_web::web::Data<crate::ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(state.openapi)
}
