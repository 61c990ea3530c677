//! The one mapping from failures to HTTP: RFC 7807 `application/problem+json`
//! documents with stable `type` URIs, the request path as `instance`, and a
//! `traceId`. Status codes and problem types exist only here.

mod context;
mod mapping;

pub use context::{enrich_problems, ProblemTypeBase, TraceId};

use std::time::Duration;

use actix_web::http::header::{self};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};
use streaming_core::domain::MediaStatus;
use streaming_core::policy::Denial;
use streaming_core::Dependency;

/// Every way a request can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The track id is not a ULID.
    #[error("invalid track id")]
    InvalidTrackId,
    /// No usable bearer token.
    #[error("unauthorized")]
    Unauthorized {
        /// Why, for `detail` and the `WWW-Authenticate` error description; `None` when no token was sent.
        reason: Option<&'static str>,
    },
    /// Access refused.
    #[error("forbidden")]
    Forbidden(Denial),
    /// No such track.
    #[error("track not found")]
    TrackNotFound,
    /// The track is not streamable yet.
    #[error("track not ready")]
    TrackNotReady {
        /// Its id.
        track_id: String,
        /// Its status.
        status: MediaStatus,
    },
    /// Too many requests.
    #[error("rate limit exceeded")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// A dependency is down.
    #[error("service unavailable")]
    Unavailable(Dependency),
    /// The movie id is not a UUID.
    #[error("invalid movie id")]
    InvalidMovieId,
    /// No such movie.
    #[error("movie not found")]
    MovieNotFound,
    /// The movie has no manifest of the asked kind.
    #[error("manifest not found")]
    ManifestNotFound,
    /// The movie is not streamable yet.
    #[error("movie not ready")]
    MovieNotReady {
        /// Its id.
        movie_id: String,
        /// Its status.
        status: MediaStatus,
    },
    /// Subscriber-only media without an active subscription.
    #[error("subscription required")]
    SubscriptionRequired,
    /// The plan lacks a feature the media needs.
    #[error("plan upgrade required")]
    PlanUpgradeRequired,
    /// The plan's concurrent streams are all open.
    #[error("too many streams")]
    TooManyStreams {
        /// The plan's `max_devices`.
        limit: u32,
        /// The open sessions that count, oldest first.
        open: Vec<String>,
    },
    /// The manifest grant is invalid, expired or revoked.
    #[error("manifest grant refused")]
    GrantRefused {
        /// Why, for the detail.
        reason: &'static str,
    },
    /// The stored manifest cannot be served.
    #[error("manifest invalid")]
    ManifestInvalid,
    /// No such session of this user on this movie.
    #[error("session not found")]
    SessionNotFound,
    /// The session was stopped.
    #[error("session closed")]
    SessionClosed,
    /// The body is well-formed JSON but a field is wrong.
    #[error("validation error")]
    Validation(Vec<FieldError>),
    /// The object URL's signature is wrong or missing.
    #[error("invalid signature")]
    InvalidSignature,
    /// The object URL has expired.
    #[error("expired signature")]
    ExpiredSignature,
    /// No such object.
    #[error("object not found")]
    ObjectNotFound,
    /// No such route.
    #[error("not found")]
    RouteNotFound,
    /// The demo player has no such file, or demo mode is off.
    #[error("player file not found")]
    PlayerFileNotFound,
    /// The API docs page has no such file.
    #[error("docs file not found")]
    DocsFileNotFound,
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods it has, for the `Allow` header (`GET, HEAD`).
        allow: String,
    },
    /// A malformed request (body, headers).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is too large.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body has the wrong content type.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A bug; details are logged, not returned.
    #[error("internal error")]
    Internal,
    /// The internal API was called with a user token.
    #[error("service credential required")]
    ServiceCredentialRequired,
    /// The media id is neither a ULID nor a UUID.
    #[error("invalid media id")]
    InvalidMediaId,
    /// The user id is not one.
    #[error("invalid user id")]
    InvalidUserId,
    /// No such media item.
    #[error("media not found")]
    MediaNotFound,
    /// `If-Match`/`If-None-Match` did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Suspended users get no new grants.
    #[error("user suspended")]
    UserSuspended,
    /// The read model holds a newer change of the same item.
    #[error("newer change applied")]
    NewerChangeApplied,
}

/// One invalid field of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

struct Shape {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
}

impl ApiError {
    fn shape(&self) -> Shape {
        let (status, slug, title) = match self {
            Self::InvalidTrackId => (StatusCode::BAD_REQUEST, "invalid-track-id", "Invalid track ID"),
            Self::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Access denied"),
            Self::TrackNotFound => (StatusCode::NOT_FOUND, "track-not-found", "Track not found"),
            Self::TrackNotReady { .. } => (StatusCode::CONFLICT, "track-not-ready", "Track not ready for streaming"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limit-exceeded", "Rate limit exceeded"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service-unavailable", "Service unavailable"),
            Self::InvalidMovieId => (StatusCode::BAD_REQUEST, "invalid-movie-id", "Invalid movie ID"),
            Self::MovieNotFound => (StatusCode::NOT_FOUND, "movie-not-found", "Movie not found"),
            Self::ManifestNotFound => (StatusCode::NOT_FOUND, "manifest-not-found", "Manifest not found"),
            Self::GrantRefused { .. } => (StatusCode::FORBIDDEN, "manifest-grant-refused", "Manifest grant refused"),
            Self::ManifestInvalid => (StatusCode::BAD_GATEWAY, "manifest-invalid", "Manifest cannot be served"),
            Self::MovieNotReady { .. } => (StatusCode::CONFLICT, "movie-not-ready", "Movie not ready for streaming"),
            Self::SubscriptionRequired => (StatusCode::FORBIDDEN, "subscription-required", "Subscription required"),
            Self::PlanUpgradeRequired => (StatusCode::FORBIDDEN, "plan-upgrade-required", "Plan upgrade required"),
            Self::TooManyStreams { .. } => (StatusCode::CONFLICT, "too-many-streams", "Too many streams"),
            Self::SessionNotFound => (StatusCode::NOT_FOUND, "session-not-found", "Session not found"),
            Self::SessionClosed => (StatusCode::CONFLICT, "session-closed", "Session already stopped"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation-error", "Validation error"),
            Self::InvalidSignature => (StatusCode::FORBIDDEN, "invalid-signature", "Invalid signature"),
            Self::ExpiredSignature => (StatusCode::FORBIDDEN, "expired-signature", "Signature expired"),
            Self::ObjectNotFound => (StatusCode::NOT_FOUND, "object-not-found", "Object not found"),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::PlayerFileNotFound => (StatusCode::NOT_FOUND, "player-not-found", "Player not found"),
            Self::DocsFileNotFound => (StatusCode::NOT_FOUND, "docs-file-not-found", "Not found"),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal-error", "Internal error"),
            Self::ServiceCredentialRequired => {
                (StatusCode::FORBIDDEN, "service-credential-required", "Service credential required")
            }
            Self::InvalidMediaId => (StatusCode::BAD_REQUEST, "invalid-media-id", "Invalid media ID"),
            Self::InvalidUserId => (StatusCode::BAD_REQUEST, "invalid-user-id", "Invalid user ID"),
            Self::MediaNotFound => (StatusCode::NOT_FOUND, "media-not-found", "Media not found"),
            Self::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition-failed", "Precondition failed"),
            Self::UserSuspended => (StatusCode::CONFLICT, "user-suspended", "User suspended"),
            Self::NewerChangeApplied => (StatusCode::CONFLICT, "newer-change-applied", "A newer change is applied"),
        };
        Shape { status, slug, title }
    }

    fn detail(&self) -> String {
        match self {
            Self::InvalidTrackId => "Track ID must be a valid ULID.".into(),
            Self::Unauthorized { reason: None } => "A bearer token is required.".into(),
            Self::Unauthorized { reason: Some(reason) } => format!("The bearer token was refused: {reason}."),
            Self::Forbidden(Denial::Suspended) => "Your account is suspended.".into(),
            Self::Forbidden(Denial::SubscriptionRequired) => "An active subscription is required.".into(),
            Self::Forbidden(Denial::PlanUpgradeRequired) => "Your plan does not include this media.".into(),
            Self::Forbidden(_) => "You do not have permission to play this media.".into(),
            Self::TrackNotFound => "The track does not exist.".into(),
            Self::TrackNotReady { status, .. } => {
                format!("Track is currently {status}. Please wait until processing completes.")
            }
            Self::RateLimited { retry_after } => {
                format!("Too many requests. Retry after {} seconds.", retry_after_seconds(*retry_after))
            }
            Self::Unavailable(dependency) => {
                format!("A dependency ({}) is unavailable. Please retry shortly.", dependency.as_str())
            }
            Self::InvalidMovieId => "Movie ID must be a valid UUID.".into(),
            Self::MovieNotFound => "The movie does not exist.".into(),
            Self::ManifestNotFound => "The movie has no manifest of that type.".into(),
            Self::GrantRefused { reason } => (*reason).into(),
            Self::ManifestInvalid => "The movie's stored manifest is malformed, too large, or refers outside the movie.".into(),
            Self::MovieNotReady { status, .. } => {
                format!("Movie is currently {status}. Please wait until processing completes.")
            }
            Self::SubscriptionRequired => "An active subscription is required to watch this movie.".into(),
            Self::PlanUpgradeRequired => "Your plan does not include this movie's quality.".into(),
            Self::TooManyStreams { limit, .. } => format!(
                "Your plan allows {limit} stream(s) at once. Stop one of the open sessions (POST .../stop with its session_id) to start another."
            ),
            Self::SessionNotFound => "No such streaming session for this user and movie.".into(),
            Self::SessionClosed => "The streaming session was stopped. Start a new one.".into(),
            Self::Validation(errors) => {
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            }
            Self::InvalidSignature => "The URL signature is missing or invalid.".into(),
            Self::ExpiredSignature => "The URL has expired. Request a new one.".into(),
            Self::ObjectNotFound => "The object does not exist.".into(),
            Self::RouteNotFound => "No such resource.".into(),
            Self::PlayerFileNotFound => "The demo player is served in demo mode only, and has no such file.".into(),
            Self::DocsFileNotFound => "The API docs page has no such file.".into(),
            Self::MethodNotAllowed { .. } => "This resource does not support that method.".into(),
            Self::BadRequest(detail) => detail.clone(),
            Self::PayloadTooLarge => "The request body is too large.".into(),
            Self::UnsupportedMediaType => "The request body must be application/json.".into(),
            Self::Internal => "An unexpected error occurred.".into(),
            Self::ServiceCredentialRequired => {
                "The internal API takes a service credential (admin.keys), not a user token.".into()
            }
            Self::InvalidMediaId => "Media ID must be a ULID (track) or a UUID (movie).".into(),
            Self::InvalidUserId => {
                "User ID must be 1 to 128 ASCII letters, digits, '.', '_', '-', '@' or '|'.".into()
            }
            Self::MediaNotFound => "The catalog has no such media.".into(),
            Self::PreconditionFailed => {
                "The media changed since it was read (If-Match), or exists (If-None-Match). Read it again.".into()
            }
            Self::UserSuspended => "The user is suspended: no new grants. Reinstate the user first.".into(),
            Self::NewerChangeApplied => {
                "The catalog already holds a newer change of this item (from an upstream event).".into()
            }
        }
    }

    fn extensions(&self, body: &mut Map<String, Value>) {
        match self {
            Self::TrackNotReady { track_id, status } => {
                body.insert("trackId".into(), json!(track_id));
                body.insert("currentStatus".into(), json!(status.as_str()));
            }
            Self::TooManyStreams { limit, open } => {
                body.insert("limit".into(), json!(limit));
                body.insert("activeSessions".into(), json!(open));
            }
            Self::RateLimited { retry_after } => {
                body.insert("retryAfterSeconds".into(), json!(retry_after_seconds(*retry_after)));
            }
            Self::MovieNotReady { movie_id, status } => {
                body.insert("movieId".into(), json!(movie_id));
                body.insert("currentStatus".into(), json!(status.as_str()));
            }
            Self::Validation(errors) => {
                let errors: Vec<_> = errors.iter().map(|e| json!({ "field": e.field, "message": e.message })).collect();
                body.insert("errors".into(), json!(errors));
            }
            _ => {}
        }
    }

    /// The full problem response for a request to `instance` traced as `trace_id`.
    pub fn to_problem(&self, type_base: &str, instance: &str, trace_id: &str) -> HttpResponse {
        let shape = self.shape();
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{type_base}{}", shape.slug)));
        body.insert("title".into(), json!(shape.title));
        body.insert("status".into(), json!(shape.status.as_u16()));
        body.insert("detail".into(), json!(self.detail()));
        body.insert("instance".into(), json!(instance));
        body.insert("traceId".into(), json!(trace_id));
        self.extensions(&mut body);

        let mut response = HttpResponse::build(shape.status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            Self::RateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after_seconds(*retry_after).to_string()));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            Self::Unauthorized { reason } => {
                let challenge = match reason {
                    None => r#"Bearer realm="streaming""#.to_owned(),
                    Some(reason) => {
                        format!(r#"Bearer realm="streaming", error="invalid_token", error_description="{reason}""#)
                    }
                };
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            _ => {}
        }
        response.body(Value::Object(body).to_string())
    }
}

/// Whole seconds to wait, rounded up so a client never retries too early.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.shape().status
    }

    // Used only if a response escapes `enrich_problems`; it then lacks `instance` and `traceId`.
    fn error_response(&self) -> HttpResponse {
        self.to_problem(ProblemTypeBase::DEFAULT, "", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
    }
}
