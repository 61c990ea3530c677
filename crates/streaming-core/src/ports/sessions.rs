use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{SessionId, StreamSession, UserId};

/// Why the session store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The store is down or too slow.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A session with this id already exists.
    #[error("session already exists")]
    Duplicate,
}

/// What closing a session did.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseOutcome {
    /// The session was open and is now closed, as returned.
    Closed(StreamSession),
    /// The session had been closed before; it is returned unchanged.
    AlreadyClosed(StreamSession),
    /// No such session.
    NotFound,
}

/// Stream sessions (who watches what, since when).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new open session.
    ///
    /// # Errors
    /// [`SessionError::Duplicate`] if the id is taken, `Unavailable` otherwise.
    async fn open(&self, session: StreamSession) -> Result<(), SessionError>;

    /// The session with this id, open or closed.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError>;

    /// Marks the session as still alive at `at`.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError>;

    /// Closes the session at `ended_at`, recording its duration. Idempotent:
    /// closing a closed session changes nothing.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError>;

    /// The user's open sessions whose last heartbeat is at or after `alive_since`.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn open_sessions(
        &self,
        user: &UserId,
        alive_since: OffsetDateTime,
    ) -> Result<Vec<StreamSession>, SessionError>;
}
