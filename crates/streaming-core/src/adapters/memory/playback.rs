use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{lock, read, write};
use crate::domain::{MediaId, PlaybackEvent, SessionId, StreamSession, Subscription, UserId, WatchProgress};
use crate::ports::{
    CloseOutcome, EventHandling, EventPublisher, ProgressError, ProgressStore, PublishError, RecordOutcome,
    SessionError, SessionStore, SubscriptionDirectory, SubscriptionError,
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

/// A [`SessionStore`] in memory, bounded: past [`Self::DEFAULT_CAPACITY`]
/// sessions (or the capacity given), up to a tenth of the closed ones are
/// forgotten, those heard from least recently first; an open session never
/// is, and with nothing closed to forget a new session is refused. Open
/// sessions of a user are found through a per-user index of open sessions
/// only, so a user's closed history costs nothing.
#[derive(Debug)]
pub struct MemorySessionStore {
    state: Mutex<Sessions>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<SessionId, StreamSession>,
    /// The open sessions of each user.
    open_by_user: HashMap<UserId, Vec<SessionId>>,
}

impl Sessions {
    /// Forgets up to a tenth of the sessions, closed ones only, those heard
    /// from least recently first; how many it forgot. An open session is
    /// never forgotten: it may be another user's active stream (the idle
    /// sweep closes abandoned ones, which then can go).
    fn evict_stalest_closed(&mut self) -> usize {
        let mut by_age: Vec<(OffsetDateTime, SessionId)> =
            self.by_id.values().filter(|s| s.ended_at.is_some()).map(|s| (s.last_heartbeat_at, s.id)).collect();
        let count = (self.by_id.len() / 10).max(1).min(by_age.len());
        if count == 0 {
            return 0;
        }
        by_age.select_nth_unstable(count - 1);
        for (_, id) in by_age.into_iter().take(count) {
            self.by_id.remove(&id);
        }
        count
    }

    /// Takes `id` out of `user`'s open sessions.
    fn forget_open(&mut self, user: &UserId, id: SessionId) {
        if let Some(ids) = self.open_by_user.get_mut(user) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.open_by_user.remove(user);
            }
        }
    }

    /// Closes an open session at `ended_at` (not before its start).
    fn close(&mut self, id: SessionId, ended_at: OffsetDateTime) -> Option<StreamSession> {
        let session = self.by_id.get_mut(&id)?;
        let ended_at = ended_at.max(session.started_at);
        session.ended_at = Some(ended_at);
        session.duration_seconds = Some((ended_at - session.started_at).as_seconds_f64());
        session.last_heartbeat_at = session.last_heartbeat_at.max(ended_at);
        let closed = session.clone();
        self.forget_open(&closed.user, id);
        Some(closed)
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl MemorySessionStore {
    /// Sessions kept by [`Self::new`] (about 25 MB of them).
    pub const DEFAULT_CAPACITY: usize = 50_000;

    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// No sessions; at most `capacity` (at least 10) kept.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { state: Mutex::new(Sessions::default()), capacity: capacity.max(10) }
    }

    /// How many sessions are kept now.
    pub fn len(&self) -> usize {
        lock(&self.state).by_id.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn open(&self, session: StreamSession) -> Result<(), SessionError> {
        let mut state = lock(&self.state);
        if state.by_id.contains_key(&session.id) {
            return Err(SessionError::Duplicate);
        }
        if state.by_id.len() >= self.capacity && state.evict_stalest_closed() == 0 {
            return Err(SessionError::Unavailable(format!(
                "the in-memory session store holds {} open sessions, its capacity",
                self.capacity
            )));
        }
        state.open_by_user.entry(session.user.clone()).or_default().push(session.id);
        state.by_id.insert(session.id, session);
        Ok(())
    }

    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError> {
        Ok(lock(&self.state).by_id.get(id).cloned())
    }

    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError> {
        if let Some(session) = lock(&self.state).by_id.get_mut(id) {
            if session.ended_at.is_none() && at > session.last_heartbeat_at {
                session.last_heartbeat_at = at;
            }
        }
        Ok(())
    }

    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError> {
        let mut state = lock(&self.state);
        match state.by_id.get(id) {
            None => Ok(CloseOutcome::NotFound),
            Some(session) if session.ended_at.is_some() => Ok(CloseOutcome::AlreadyClosed(session.clone())),
            Some(_) => Ok(state.close(*id, ended_at).map_or(CloseOutcome::NotFound, CloseOutcome::Closed)),
        }
    }

    async fn close_idle(
        &self,
        idle_before: OffsetDateTime,
        at_most: usize,
    ) -> Result<(Vec<StreamSession>, EventHandling), SessionError> {
        let mut state = lock(&self.state);
        let idle: Vec<(SessionId, OffsetDateTime)> = state
            .open_by_user
            .values()
            .flatten()
            .filter_map(|id| state.by_id.get(id))
            .filter(|s| s.last_heartbeat_at < idle_before)
            .take(at_most)
            .map(|s| (s.id, s.last_heartbeat_at))
            .collect();
        let closed = idle.into_iter().filter_map(|(id, last_heartbeat)| state.close(id, last_heartbeat)).collect();
        Ok((closed, EventHandling::NotTaken))
    }

    async fn open_sessions(
        &self,
        user: &UserId,
        alive_since: OffsetDateTime,
    ) -> Result<Vec<StreamSession>, SessionError> {
        let state = lock(&self.state);
        let mut open: Vec<_> = state
            .open_by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| state.by_id.get(id))
            .filter(|s| s.ended_at.is_none() && s.last_heartbeat_at >= alive_since)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ManifestKind;

    fn session(user: &str, heard_at: i64) -> StreamSession {
        let at = OffsetDateTime::from_unix_timestamp(1_767_225_600 + heard_at).unwrap();
        StreamSession {
            id: SessionId::random(),
            user: user.parse().unwrap(),
            media: "5eed0000-0000-4000-8000-000000000001".parse().unwrap(),
            manifest: ManifestKind::Hls,
            started_at: at,
            ended_at: None,
            duration_seconds: None,
            user_agent: None,
            client_ip: None,
            last_heartbeat_at: at,
        }
    }

    /// Past its capacity the store forgets closed sessions, the stalest
    /// first, and never an open one: it may be another user's active stream.
    #[tokio::test]
    async fn past_its_capacity_the_store_forgets_closed_sessions_never_open_ones() {
        let store = MemorySessionStore::with_capacity(20);
        let sessions: Vec<StreamSession> =
            (0..20).map(|i| session(if i % 2 == 0 { "even" } else { "odd" }, i)).collect();
        for s in &sessions {
            store.open(s.clone()).await.unwrap();
        }
        // The odd ones end, late: the open even ones are heard from least recently.
        for s in sessions.iter().filter(|s| s.user.as_str() == "odd") {
            store.close(&s.id, sessions[19].last_heartbeat_at + time::Duration::seconds(5)).await.unwrap();
        }
        store.open(session("even", 30)).await.unwrap();
        assert_eq!(store.len(), 19, "a tenth (2) forgotten, one added");
        for s in sessions.iter().filter(|s| s.user.as_str() == "even") {
            assert!(store.get(&s.id).await.unwrap().is_some(), "an open session is kept");
        }
        let since = OffsetDateTime::UNIX_EPOCH;
        let even = store.open_sessions(&"even".parse().unwrap(), since).await.unwrap();
        assert_eq!(even.len(), 11, "every open one, and the new one");
        assert!(even.windows(2).all(|w| w[0].started_at <= w[1].started_at), "oldest first");
    }

    #[tokio::test]
    async fn a_store_full_of_open_sessions_refuses_a_new_one_and_forgets_none() {
        let store = MemorySessionStore::with_capacity(10);
        let sessions: Vec<StreamSession> = (0..10).map(|i| session(&format!("viewer-{i}"), i)).collect();
        for s in &sessions {
            store.open(s.clone()).await.unwrap();
        }
        assert!(matches!(store.open(session("late", 20)).await, Err(SessionError::Unavailable(_))));
        for s in &sessions {
            assert!(store.get(&s.id).await.unwrap().is_some());
        }
    }
}
