use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{PlaybackEvent, SessionId, StreamSession, UserId};

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

/// Whether a store took an event into the same transaction as the session
/// change (a transactional outbox), or left it to the event publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventHandling {
    /// Written with the change: publishing it again would duplicate it.
    Recorded,
    /// Not taken: the caller publishes it.
    NotTaken,
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

    /// The sessions with these ids, in the order asked (`None` where there
    /// is none). The default reads them one by one; a store that can read
    /// them together should.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn get_many(&self, ids: &[SessionId]) -> Result<Vec<Option<StreamSession>>, SessionError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(self.get(id).await?);
        }
        Ok(found)
    }

    /// Marks the session as still alive at `at`.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError>;

    /// [`SessionStore::touch`] for many sessions at once (a write-behind
    /// flush); stores that can, do it in one round trip. The default touches
    /// one by one.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`]; any part of the batch may have been applied
    /// (touches are idempotent: a heartbeat only moves forward).
    async fn touch_many(&self, batch: Vec<(SessionId, OffsetDateTime)>) -> Result<(), SessionError> {
        for (id, at) in batch {
            self.touch(&id, at).await?;
        }
        Ok(())
    }

    /// Closes the session at `ended_at`, recording its duration. Idempotent:
    /// closing a closed session changes nothing.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`].
    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError>;

    /// [`SessionStore::open`], recording `event` in the same transaction when
    /// the store has an outbox. The default opens and leaves the event.
    ///
    /// # Errors
    /// As [`SessionStore::open`]; on error neither the session nor the event is stored.
    async fn open_with_event(
        &self,
        session: StreamSession,
        event: &PlaybackEvent,
    ) -> Result<EventHandling, SessionError> {
        let _ = event;
        self.open(session).await.map(|()| EventHandling::NotTaken)
    }

    /// [`SessionStore::close`], recording `event` in the same transaction when
    /// this call closed the session and the store has an outbox. The default
    /// closes and leaves the event.
    ///
    /// # Errors
    /// As [`SessionStore::close`].
    async fn close_with_event(
        &self,
        id: &SessionId,
        ended_at: OffsetDateTime,
        event: &PlaybackEvent,
    ) -> Result<(CloseOutcome, EventHandling), SessionError> {
        let _ = event;
        self.close(id, ended_at).await.map(|outcome| (outcome, EventHandling::NotTaken))
    }

    /// Closes up to `at_most` open sessions (of any user) whose last
    /// heartbeat is before `idle_before`, each ended at its last heartbeat
    /// with the duration up to it, and returns them. A store with an outbox
    /// records each one's [`PlaybackEvent::idle_stop`] in the same
    /// transaction. Safe to call from several instances at once: a session
    /// is closed, and returned, by one call only. Call again until fewer
    /// than `at_most` come back.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`]; nothing of the failed call is closed.
    async fn close_idle(
        &self,
        idle_before: OffsetDateTime,
        at_most: usize,
    ) -> Result<(Vec<StreamSession>, EventHandling), SessionError>;

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
