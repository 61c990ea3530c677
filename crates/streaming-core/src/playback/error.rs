//! Why a playback operation failed.

use crate::access::AccessError;
use crate::domain::{InvalidPosition, MediaStatus, SessionId};
use crate::manifest::GrantError;
use crate::policy::Denial;
use crate::service::Dependency;
use std::time::Duration;

/// Why a playback operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlaybackError {
    /// No such movie (or it was deleted).
    #[error("movie not found")]
    NotFound,
    /// The movie exists but its manifest of the asked kind does not.
    #[error("manifest not found")]
    ManifestNotFound,
    /// The movie is not streamable yet.
    #[error("movie is {status}, not Ready")]
    NotReady {
        /// Its status.
        status: MediaStatus,
    },
    /// The user may not play it.
    #[error("access denied: {0:?}")]
    Forbidden(Denial),
    /// The position is not acceptable.
    #[error("invalid position: {0}")]
    InvalidPosition(InvalidPosition),
    /// No session with that id belongs to this user and movie.
    #[error("session not found")]
    SessionNotFound,
    /// The session was stopped; start a new one.
    #[error("session already stopped")]
    SessionClosed,
    /// The plan's `max_devices` streams are already open; stopping one of
    /// `open` (oldest first) makes room.
    #[error("{limit} streams already open")]
    TooManyStreams {
        /// The plan's limit.
        limit: u32,
        /// The open sessions that count, oldest first.
        open: Vec<SessionId>,
    },
    /// The manifest grant is not valid (forged, malformed, for another movie) or has expired.
    #[error("manifest grant refused: {0}")]
    GrantRefused(GrantError),
    /// The grant's session was stopped (or the user may no longer play the movie).
    #[error("manifest grant revoked")]
    GrantRevoked,
    /// The stored manifest cannot be served (malformed, too large, refers outside the movie).
    #[error("{0}")]
    ManifestInvalid(String),
    /// The user is over a request limit ([`crate::PlaybackLimits`]).
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long until one more request is allowed.
        retry_after: Duration,
    },
    /// A dependency is down.
    #[error("{} unavailable", dependency.as_str())]
    Unavailable {
        /// Which one.
        dependency: Dependency,
    },
}

impl From<AccessError> for PlaybackError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Denied(Denial::NotFound | Denial::Deleted) => Self::NotFound,
            AccessError::Denied(Denial::NotReady(status)) => Self::NotReady { status },
            AccessError::Denied(denial) => Self::Forbidden(denial),
            AccessError::Unavailable(dependency) => Self::Unavailable { dependency },
        }
    }
}
