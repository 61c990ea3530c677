use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{lock, read, write};
use crate::domain::{MediaId, PlaybackEvent, SessionId, StreamSession, Subscription, UserId, WatchProgress};
use crate::ports::{
    CloseOutcome, EventPublisher, ProgressError, ProgressStore, PublishError, RecordOutcome, SessionError,
    SessionStore, SubscriptionDirectory, SubscriptionError,
};

/// A [`SubscriptionDirectory`] in memory.
#[derive(Debug, Default)]
pub struct MemorySubscriptions {
    subscriptions: RwLock<HashMap<UserId, Subscription>>,
}

impl MemorySubscriptions {
    /// No one subscribed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or with `None` removes) a user's subscription.
    pub fn set(&self, user: &UserId, subscription: Option<Subscription>) {
        let mut map = write(&self.subscriptions);
        match subscription {
            Some(subscription) => map.insert(user.clone(), subscription),
            None => map.remove(user),
        };
    }
}

#[async_trait]
impl SubscriptionDirectory for MemorySubscriptions {
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        Ok(read(&self.subscriptions).get(user).cloned())
    }
}

/// A [`ProgressStore`] in memory, monotonic per session like the real one.
#[derive(Debug, Default)]
pub struct MemoryProgressStore {
    rows: Mutex<HashMap<(UserId, MediaId), WatchProgress>>,
}

impl MemoryProgressStore {
    /// No progress recorded.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ProgressStore for MemoryProgressStore {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        Ok(lock(&self.rows).get(&(user.clone(), media.clone())).cloned())
    }

    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let mut rows = lock(&self.rows);
        let key = (progress.user.clone(), progress.media.clone());
        if let Some(stored) = rows.get(&key) {
            if stored.session.is_some() && stored.session == progress.session && stored.sequence >= progress.sequence {
                return Ok(RecordOutcome::Stale);
            }
        }
        rows.insert(key, progress);
        Ok(RecordOutcome::Applied)
    }
}

/// A [`SessionStore`] in memory.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<SessionId, StreamSession>>,
}

impl MemorySessionStore {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn open(&self, session: StreamSession) -> Result<(), SessionError> {
        let mut sessions = lock(&self.sessions);
        if sessions.contains_key(&session.id) {
            return Err(SessionError::Duplicate);
        }
        sessions.insert(session.id, session);
        Ok(())
    }

    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError> {
        Ok(lock(&self.sessions).get(id).cloned())
    }

    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError> {
        if let Some(session) = lock(&self.sessions).get_mut(id) {
            if session.ended_at.is_none() && at > session.last_heartbeat_at {
                session.last_heartbeat_at = at;
            }
        }
        Ok(())
    }

    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError> {
        let mut sessions = lock(&self.sessions);
        let Some(session) = sessions.get_mut(id) else {
            return Ok(CloseOutcome::NotFound);
        };
        if session.ended_at.is_some() {
            return Ok(CloseOutcome::AlreadyClosed(session.clone()));
        }
        let ended_at = ended_at.max(session.started_at);
        session.ended_at = Some(ended_at);
        session.duration_seconds = Some((ended_at - session.started_at).as_seconds_f64());
        session.last_heartbeat_at = session.last_heartbeat_at.max(ended_at);
        Ok(CloseOutcome::Closed(session.clone()))
    }

    async fn open_sessions(
        &self,
        user: &UserId,
        alive_since: OffsetDateTime,
    ) -> Result<Vec<StreamSession>, SessionError> {
        let mut open: Vec<_> = lock(&self.sessions)
            .values()
            .filter(|s| &s.user == user && s.ended_at.is_none() && s.last_heartbeat_at >= alive_since)
            .cloned()
            .collect();
        open.sort_by_key(|s| s.started_at);
        Ok(open)
    }
}

/// An [`EventPublisher`] that keeps events in memory, in publication order.
#[derive(Debug, Default)]
pub struct MemoryEventPublisher {
    events: Mutex<Vec<PlaybackEvent>>,
}

impl MemoryEventPublisher {
    /// No events yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published so far.
    pub fn events(&self) -> Vec<PlaybackEvent> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl EventPublisher for MemoryEventPublisher {
    async fn publish(&self, event: PlaybackEvent) -> Result<(), PublishError> {
        lock(&self.events).push(event);
        Ok(())
    }
}
