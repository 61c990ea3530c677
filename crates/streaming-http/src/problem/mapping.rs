//! The core's errors as problems: which status, type and fields each becomes
//! (and which are logged).

use super::{ApiError, FieldError};

use streaming_core::policy::Denial;
use streaming_core::{PlaybackError, StreamError};

impl ApiError {
    /// The problem for a failed stream-URL request for `track_id`.
    pub fn from_stream(error: StreamError, track_id: &str) -> Self {
        match error {
            StreamError::NotFound => Self::TrackNotFound,
            StreamError::NotReady { status } => Self::TrackNotReady { track_id: track_id.to_owned(), status },
            StreamError::Forbidden(denial) => Self::Forbidden(denial),
            StreamError::Unavailable { dependency } => Self::Unavailable(dependency),
        }
    }
}

impl ApiError {
    /// A validation error naming one field.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError { field, message: message.into() }])
    }

    /// The problem for a failed playback operation on `movie_id`.
    pub fn from_playback(error: PlaybackError, movie_id: &str) -> Self {
        match error {
            PlaybackError::NotFound => Self::MovieNotFound,
            PlaybackError::ManifestNotFound => Self::ManifestNotFound,
            PlaybackError::GrantRefused(streaming_core::manifest::GrantError::Expired) => {
                Self::GrantRefused { reason: "The manifest grant has expired; start the stream again." }
            }
            PlaybackError::GrantRefused(_) => Self::GrantRefused { reason: "The manifest grant is not valid." },
            PlaybackError::GrantRevoked => Self::GrantRefused {
                reason: "The manifest grant was revoked: the session is stopped or the movie may no longer be played.",
            },
            // The reason names manifest URIs (object keys): not logged.
            PlaybackError::ManifestInvalid(_) => {
                tracing::error!(movie_id = %movie_id, "a stored manifest is malformed, too large, or refers outside the movie");
                Self::ManifestInvalid
            }
            PlaybackError::NotReady { status } => Self::MovieNotReady { movie_id: movie_id.to_owned(), status },
            PlaybackError::Forbidden(Denial::SubscriptionRequired) => Self::SubscriptionRequired,
            PlaybackError::Forbidden(Denial::PlanUpgradeRequired) => Self::PlanUpgradeRequired,
            PlaybackError::TooManyStreams { limit, open } => {
                Self::TooManyStreams { limit, open: open.iter().map(ToString::to_string).collect() }
            }
            PlaybackError::Forbidden(denial) => Self::Forbidden(denial),
            PlaybackError::InvalidPosition(error) => Self::field("position_seconds", error.to_string()),
            PlaybackError::SessionNotFound => Self::SessionNotFound,
            PlaybackError::SessionClosed => Self::SessionClosed,
            PlaybackError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            PlaybackError::Unavailable { dependency } => Self::Unavailable(dependency),
        }
    }
}
