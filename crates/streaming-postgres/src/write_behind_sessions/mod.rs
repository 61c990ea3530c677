//! Sessions read from memory and touched behind.
//!
//! Every progress report with a session id reads the session (is it this
//! user's, on this movie, still open?) and moves its heartbeat. Against the
//! database that is a read and a write per report. This decorator keeps the
//! sessions it has seen for a TTL and collects heartbeats in a bounded map
//! that a flusher writes with one `touch_many` per interval:
//!
//! * `open` and `close` go straight to the store (its answer is the truth)
//!   and refresh the cached copy.
//! * `get` answers from the cache, else reads the store and keeps the
//!   answer. A session closed through another instance may look open here
//!   until the TTL runs out; what that admits is progress reports, which the
//!   progress rules make harmless.
//! * `touch` moves the cached heartbeat and queues it; a full queue writes
//!   through. A failed flush keeps the heartbeats for the next one.
//! * `close_idle` flushes the queued heartbeats first, so a session they
//!   keep alive is not closed, and drops the closed sessions' cached rows.
//! * `open_sessions` asks the store with a window widened by
//!   [`OPEN_SESSIONS_MARGIN`] and applies the queued heartbeats before
//!   filtering, so a heartbeat not yet flushed still counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use streaming_core::domain::{PlaybackEvent, SessionId, StreamSession, UserId};
use streaming_core::ports::{Broadcast, CloseOutcome, EventHandling, PendingWrites, SessionError, SessionStore};
use time::OffsetDateTime;
use tracing::{debug, warn};

use crate::rescue::Holding;
use crate::write_behind::{drain, spawn_flusher, write_in_chunks, FailureStreak, Flush};

mod ahead;
mod cached;
mod held;

use cached::CachedSession;
use held::held;

/// The broadcast topic of closed sessions (a message: their ids, space-separated).
const CLOSES: &str = "session-closes";

/// A cached open session's heartbeat is queued for the store only once it
/// is at least this much newer than the last one queued: players that report
/// every few hundred milliseconds cost a row every 5 s, not one per flush.
/// The stored heartbeat lags by at most this (against a 90 s idle timeout by
/// default); this instance's own reads see the newest one.
pub const HEARTBEAT_STEP: Duration = Duration::from_secs(5);

/// How much older than asked `open_sessions` reads from the store, to find
/// sessions whose newer heartbeat is still queued.
pub const OPEN_SESSIONS_MARGIN: Duration = Duration::from_secs(60);

/// Counters (metrics).
#[derive(Debug, Default)]
pub struct WriteBehindSessionStats {
    /// Session reads answered from memory.
    pub hits: AtomicU64,
    /// Session reads that went to the store on a caller's behalf.
    pub misses: AtomicU64,
    /// Cached sessions read again ahead of their callers (see `ahead.rs`).
    pub read_ahead: AtomicU64,
    /// Heartbeats queued (a repeated one of the same session replaces it).
    pub touches: AtomicU64,
    /// Heartbeats of cached sessions kept in memory only, less than
    /// [`HEARTBEAT_STEP`] newer than the last one queued.
    pub held: AtomicU64,
    /// Heartbeats written straight through because the queue was full.
    pub overflowed: AtomicU64,
    /// Batches written.
    pub flushes: AtomicU64,
    /// Flushes that failed (their heartbeats were kept).
    pub failed_flushes: AtomicU64,
}

/// A session cache and heartbeat queue in front of a [`SessionStore`].
pub struct WriteBehindSessions<S> {
    inner: S,
    sessions: Cache<SessionId, Arc<CachedSession>>,
    ttl: Duration,
    pending: Mutex<HashMap<SessionId, OffsetDateTime>>,
    /// The heartbeat last held per queued session (with a pending-writes store).
    held_at: Mutex<HashMap<SessionId, OffsetDateTime>>,
    /// Held exclusively by a flush from taking the queue until it is
    /// written, and shared by the database reads merged with the queue: a
    /// reader never sees a heartbeat neither queued nor written yet, and
    /// readers (every session an instance has not seen, after a restart)
    /// do not wait for each other. One flush at a time.
    flushing: tokio::sync::RwLock<()>,
    capacity: usize,
    stats: WriteBehindSessionStats,
    streak: FailureStreak,
    wake: Arc<tokio::sync::Notify>,
    /// Where closes are told to the other instances, once set.
    peers: std::sync::OnceLock<Arc<dyn Broadcast>>,
    /// Where queued heartbeats are held until flushed, once set.
    holding: Holding,
}

impl<S> std::fmt::Debug for WriteBehindSessions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindSessions")
            .field("cached", &self.sessions.entry_count())
            .field("pending", &self.pending.lock().map(|p| p.len()).unwrap_or_default())
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore + 'static> WriteBehindSessions<S> {
    /// Starts the cache and its flusher, which writes at least every
    /// `interval` and stops when the decorator is dropped. A session is kept
    /// while it is used (dropped after `ttl` without a read or heartbeat) and
    /// its row is read again at most `ttl` after it was last read (somewhere
    /// in the last quarter, so sessions opened together are not all read
    /// again together): a session stopped through another instance is seen
    /// here within `ttl`. At most `capacity` sessions and queued heartbeats.
    pub fn start(inner: S, capacity: usize, ttl: Duration, interval: Duration) -> Arc<Self> {
        let capacity = capacity.max(1);
        // A year is "for as long as it is used"; more would overflow the clock.
        let ttl = ttl.clamp(Duration::from_millis(1), Duration::from_secs(365 * 86_400));
        let queue = Arc::new(Self {
            inner,
            sessions: Cache::builder().max_capacity(capacity as u64).time_to_idle(ttl).build(),
            ttl,
            pending: Mutex::default(),
            held_at: Mutex::default(),
            flushing: tokio::sync::RwLock::new(()),
            capacity,
            stats: WriteBehindSessionStats::default(),
            streak: FailureStreak::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            peers: std::sync::OnceLock::new(),
            holding: Holding::default(),
        });
        spawn_flusher(&queue, Arc::clone(&queue.wake), interval);
        ahead::spawn_reader_ahead(&queue);
        queue
    }

    /// Tells every instance on `broadcast` of each session this one closes,
    /// and drops the sessions the others close from this one's cache: a
    /// stop, a logout everywhere or an idle close anywhere refuses the
    /// session on every instance within moments instead of the TTL.
    pub fn share_closes(self: &Arc<Self>, broadcast: Arc<dyn Broadcast>) {
        let this = Arc::downgrade(self);
        broadcast.listen(
            CLOSES,
            Arc::new(move |message: &str| {
                let Some(this) = this.upgrade() else { return };
                for id in message.split_whitespace().filter_map(|id| id.parse::<SessionId>().ok()) {
                    this.forget(&id);
                }
            }),
        );
        let _ = self.peers.set(broadcast);
    }

    /// Holds every queued heartbeat in `pending` before it is acknowledged
    /// (a failed hold writes it through), and writes the heartbeats other
    /// instances held but did not flush within `rescue_after`. Heartbeats
    /// kept in memory only (less than [`HEARTBEAT_STEP`] newer than the last
    /// one queued) are not held. The first call counts.
    pub fn hold_in(self: &Arc<Self>, pending: Arc<dyn PendingWrites>, rescue_after: Duration) {
        self.holding.start(self, pending, rescue_after);
    }

    /// Tells the other instances that `ids` are closed, in one message.
    async fn tell_peers(&self, ids: &[SessionId]) {
        let Some(peers) = self.peers.get().filter(|_| !ids.is_empty()) else { return };
        let message = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
        if let Err(error) = peers.publish(CLOSES, &message).await {
            warn!(%error, "session closes were not told to the other instances; their copies expire within the TTL");
        }
    }

    /// The counters.
    pub fn stats(&self) -> &WriteBehindSessionStats {
        &self.stats
    }

    /// How many heartbeats are waiting.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, OffsetDateTime>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn held_at(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, OffsetDateTime>> {
        self.held_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The queued heartbeat of `id`, if any.
    fn unwritten(&self, id: &SessionId) -> Option<OffsetDateTime> {
        self.lock().get(id).copied()
    }

    /// Writes every queued heartbeat now; returns whether none is left.
    pub async fn flush(&self) -> bool {
        let _turn = self.flushing.write().await;
        let batch: Vec<(SessionId, OffsetDateTime)> = std::mem::take(&mut *self.lock()).into_iter().collect();
        if batch.is_empty() {
            return true;
        }
        let flushed: Vec<(SessionId, OffsetDateTime)> = if self.holding.is_set() { batch.clone() } else { Vec::new() };
        let written = write_in_chunks(batch, |chunk| self.inner.touch_many(chunk)).await;
        if written.is_ok() && !flushed.is_empty() {
            let released = held::released(&mut self.held_at(), &flushed);
            // Reads need not wait for the release.
            drop(_turn);
            self.holding.release(Self::QUEUE, released).await;
        }
        self.settle(written)
    }

    /// Counts a flush's outcome; what could not be written goes back to the queue.
    fn settle(&self, written: Result<(), (Vec<(SessionId, OffsetDateTime)>, SessionError)>) -> bool {
        match written {
            Ok(()) => {
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                self.streak.succeeded(Self::QUEUE);
                self.lock().is_empty()
            }
            Err((unwritten, error)) => {
                self.stats.failed_flushes.fetch_add(1, Ordering::Relaxed);
                if let Some(streak) = self.streak.failed(Self::QUEUE) {
                    warn!(%error, heartbeats = unwritten.len(), streak, "session heartbeat flush failed; kept for the next one");
                }
                let mut pending = self.lock();
                for (id, at) in unwritten {
                    let queued = pending.entry(id).or_insert(at);
                    *queued = (*queued).max(at);
                }
                false
            }
        }
    }

    /// Flushes until nothing is queued or `timeout` passes (graceful shutdown).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] naming how many heartbeats could not be written.
    pub async fn drain(&self, timeout: Duration) -> Result<(), SessionError> {
        if drain(self, timeout).await {
            Ok(())
        } else {
            Err(SessionError::Unavailable(format!("{} session heartbeats not written", self.depth())))
        }
    }

    fn remember(&self, session: StreamSession) {
        let read_again_at = self.read_again_at(&session.id, Instant::now());
        self.sessions.insert(session.id, CachedSession::new(session, read_again_at));
    }

    /// When a row read at `now` is read again: between three quarters of
    /// the TTL and the TTL, spread by the session id.
    fn read_again_at(&self, id: &SessionId, now: Instant) -> Instant {
        let spread = (id.as_uuid().as_u128() % 1_000) as u32;
        now + self.ttl - self.ttl / 4 * spread / 1_000
    }

    /// Reads a cached open session's row again; it may have been stopped
    /// through another instance. While the store cannot answer the copy
    /// stays in use, every read trying the store again, but never past
    /// `ttl` since the row last confirmed it: then the read fails (closed).
    async fn read_again(&self, cached: Arc<CachedSession>) -> Result<Option<StreamSession>, SessionError> {
        let read = self.inner.get(&cached.session.id).await;
        self.settle_read(&cached, read)
    }

    /// What a read of a cached session's row means for the copy, and the answer.
    fn settle_read(
        &self,
        cached: &Arc<CachedSession>,
        read: Result<Option<StreamSession>, SessionError>,
    ) -> Result<Option<StreamSession>, SessionError> {
        let id = cached.session.id;
        match read {
            Ok(None) => {
                self.sessions.invalidate(&id);
                Ok(None)
            }
            Ok(Some(row)) if row.ended_at.is_some() => {
                self.lock().remove(&id);
                self.remember(row.clone());
                Ok(Some(row))
            }
            Ok(Some(row)) => {
                cached.stored_heartbeat(row.last_heartbeat_at);
                cached.confirmed(Instant::now());
                Ok(Some(cached.current()))
            }
            Err(error) if cached.unconfirmed(Instant::now(), self.ttl) => {
                debug!(%error, "a cached session could not be read again; the cached copy stays in use");
                Ok(Some(cached.current()))
            }
            Err(error) => Err(error),
        }
    }

    /// Drops what this instance holds of `id`: its next read goes to the store.
    fn forget(&self, id: &SessionId) {
        self.lock().remove(id);
        self.held_at().remove(id);
        self.sessions.invalidate(id);
    }

    fn remember_outcome(&self, id: &SessionId, outcome: &CloseOutcome) {
        match outcome {
            CloseOutcome::Closed(session) | CloseOutcome::AlreadyClosed(session) => {
                self.lock().remove(id);
                self.remember(session.clone());
            }
            CloseOutcome::NotFound => self.forget(id),
        }
    }
}

#[async_trait]
impl<S: SessionStore + 'static> Flush for WriteBehindSessions<S> {
    const QUEUE: &'static str = "sessions";

    async fn flush(&self) -> bool {
        WriteBehindSessions::flush(self).await
    }

    fn depth(&self) -> usize {
        WriteBehindSessions::depth(self)
    }
}

#[async_trait]
impl<S: SessionStore + 'static> SessionStore for WriteBehindSessions<S> {
    async fn open(&self, session: StreamSession) -> Result<(), SessionError> {
        self.inner.open(session.clone()).await?;
        self.remember(session);
        Ok(())
    }

    async fn open_with_event(
        &self,
        session: StreamSession,
        event: &PlaybackEvent,
    ) -> Result<EventHandling, SessionError> {
        let handling = self.inner.open_with_event(session.clone(), event).await?;
        self.remember(session);
        Ok(handling)
    }

    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError> {
        if let Some(cached) = self.sessions.get(id) {
            let now = Instant::now();
            if cached.claim_read(now, self.read_again_at(id, now)) {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return self.read_again(cached).await;
            }
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(cached.current()));
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let _turn = self.flushing.read().await;
        let mut session = self.inner.get(id).await?;
        if let Some(session) = &mut session {
            if let Some(queued) = self.unwritten(id) {
                session.last_heartbeat_at = session.last_heartbeat_at.max(queued);
            }
            self.remember(session.clone());
        }
        Ok(session)
    }

    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError> {
        let cached = self.sessions.get(id);
        if cached.as_ref().is_some_and(|c| c.session.ended_at.is_some()) {
            // The store never moves a stopped session's heartbeat.
            return Ok(());
        }
        let queued = {
            let mut pending = self.lock();
            let due = cached.as_ref().is_none_or(|c| c.heartbeat(at));
            if let Some(queued) = pending.get_mut(id) {
                let before = *queued;
                *queued = (*queued).max(at);
                if let Some(cached) = &cached {
                    cached.stored_heartbeat(*queued);
                }
                self.stats.touches.fetch_add(1, Ordering::Relaxed);
                // Held again only a step newer than the one held: what a
                // kill loses stays within the step, as for one never queued.
                let held = self.held_at().get(id).copied().unwrap_or(before);
                if *queued - held < HEARTBEAT_STEP {
                    return Ok(());
                }
                Some(*queued)
            } else if !due {
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            } else if pending.len() < self.capacity {
                pending.insert(*id, at);
                self.stats.touches.fetch_add(1, Ordering::Relaxed);
                Some(at)
            } else {
                None
            }
        };
        if let Some(queued) = queued {
            // Acknowledged once held, or else written through.
            if self.holding.is_set() {
                let mut held_at = self.held_at();
                // Bounded like the queue (a closed session's entry may stay behind).
                if held_at.len() >= self.capacity {
                    held_at.clear();
                }
                held_at.insert(*id, queued);
            }
            if self.holding.hold(Self::QUEUE, || held(id, queued)).await.is_err() {
                self.inner.touch(id, queued).await?;
            }
            return Ok(());
        }
        self.stats.overflowed.fetch_add(1, Ordering::Relaxed);
        crate::write_behind::overflowed("sessions");
        self.wake.notify_one();
        self.inner.touch(id, at).await
    }

    async fn touch_many(&self, batch: Vec<(SessionId, OffsetDateTime)>) -> Result<(), SessionError> {
        for (id, at) in batch {
            self.touch(&id, at).await?;
        }
        Ok(())
    }

    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError> {
        let outcome = self.inner.close(id, ended_at).await?;
        self.remember_outcome(id, &outcome);
        self.tell_peers(&[*id]).await;
        Ok(outcome)
    }

    async fn close_with_event(
        &self,
        id: &SessionId,
        ended_at: OffsetDateTime,
        event: &PlaybackEvent,
    ) -> Result<(CloseOutcome, EventHandling), SessionError> {
        let (outcome, handling) = self.inner.close_with_event(id, ended_at, event).await?;
        self.remember_outcome(id, &outcome);
        self.tell_peers(&[*id]).await;
        Ok((outcome, handling))
    }

    async fn close_idle(
        &self,
        idle_before: OffsetDateTime,
        at_most: usize,
    ) -> Result<(Vec<StreamSession>, EventHandling), SessionError> {
        // This instance's queued heartbeats first: a session they keep alive
        // is not closed. (Held ones lag by less than HEARTBEAT_STEP.)
        self.flush().await;
        let (closed, handling) = self.inner.close_idle(idle_before, at_most).await?;
        // Dropped, not remembered: a sweep closes thousands nobody asks about.
        for session in &closed {
            self.forget(&session.id);
        }
        let ids: Vec<SessionId> = closed.iter().map(|session| session.id).collect();
        self.tell_peers(&ids).await;
        Ok((closed, handling))
    }

    async fn open_sessions(
        &self,
        user: &UserId,
        alive_since: OffsetDateTime,
    ) -> Result<Vec<StreamSession>, SessionError> {
        // No flush between the read and the merge: a heartbeat is then either
        // in the rows read or still queued (a start, not a hot path, waits
        // for a flush in progress).
        let _turn = self.flushing.read().await;
        let mut sessions = self.inner.open_sessions(user, alive_since - OPEN_SESSIONS_MARGIN).await?;
        for session in &mut sessions {
            if let Some(queued) = self.unwritten(&session.id) {
                session.last_heartbeat_at = session.last_heartbeat_at.max(queued);
            }
            // Heartbeats held in memory (less than a step newer than the row's).
            if let Some(cached) = self.sessions.get(&session.id) {
                session.last_heartbeat_at = session.last_heartbeat_at.max(cached.last_heartbeat_at());
            }
        }
        sessions.retain(|s| s.last_heartbeat_at >= alive_since);
        Ok(sessions)
    }
}
