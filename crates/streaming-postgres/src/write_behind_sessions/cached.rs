//! A session as this instance holds it: the row, the newest heartbeat seen,
//! and when the row is to be read again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streaming_core::domain::StreamSession;
use time::OffsetDateTime;

use super::HEARTBEAT_STEP;

/// A cached session: its row as read or opened, the newest heartbeat this
/// instance has seen (moved forward in place: a heartbeat does not rebuild
/// the entry), and when the row is to be read again.
#[derive(Debug)]
pub(super) struct CachedSession {
    pub(super) session: StreamSession,
    state: Mutex<CachedState>,
}

#[derive(Debug)]
struct CachedState {
    last_heartbeat_at: OffsetDateTime,
    /// The newest heartbeat handed to the queue (or read from the row).
    queued_heartbeat_at: OffsetDateTime,
    read_again_at: Instant,
    /// When the row last confirmed this copy (opened here, or read).
    confirmed_at: Instant,
}

impl CachedSession {
    pub(super) fn new(session: StreamSession, read_again_at: Instant) -> Arc<Self> {
        let at = session.last_heartbeat_at;
        let state = Mutex::new(CachedState {
            last_heartbeat_at: at,
            queued_heartbeat_at: at,
            read_again_at,
            confirmed_at: Instant::now(),
        });
        Arc::new(Self { session, state })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CachedState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session with the newest heartbeat seen.
    pub(super) fn current(&self) -> StreamSession {
        let mut session = self.session.clone();
        session.last_heartbeat_at = session.last_heartbeat_at.max(self.state().last_heartbeat_at);
        session
    }

    /// Whether the row is due to be read again; the caller that gets `true`
    /// reads it, the others go on with this copy until `next`.
    pub(super) fn claim_read(&self, now: Instant, next: Instant) -> bool {
        let mut state = self.state();
        if self.session.ended_at.is_some() || now < state.read_again_at {
            return false;
        }
        state.read_again_at = next;
        true
    }

    /// The row was read and still says open.
    pub(super) fn confirmed(&self, now: Instant) {
        self.state().confirmed_at = now;
    }

    /// The row could not be read: the next read tries again, and whether
    /// this copy is still within `ttl` of its last confirmation.
    pub(super) fn unconfirmed(&self, now: Instant, ttl: Duration) -> bool {
        let mut state = self.state();
        state.read_again_at = now;
        now.duration_since(state.confirmed_at) <= ttl
    }

    /// Takes a heartbeat: whether it is to be queued for the store, being
    /// [`HEARTBEAT_STEP`] newer than the last one queued.
    pub(super) fn heartbeat(&self, at: OffsetDateTime) -> bool {
        let mut state = self.state();
        state.last_heartbeat_at = state.last_heartbeat_at.max(at);
        if at - state.queued_heartbeat_at < HEARTBEAT_STEP {
            return false;
        }
        state.queued_heartbeat_at = at;
        true
    }

    /// A heartbeat read from the row (written by any instance) or on its
    /// way there in the queue.
    pub(super) fn stored_heartbeat(&self, at: OffsetDateTime) {
        let mut state = self.state();
        state.last_heartbeat_at = state.last_heartbeat_at.max(at);
        state.queued_heartbeat_at = state.queued_heartbeat_at.max(at);
    }

    pub(super) fn last_heartbeat_at(&self) -> OffsetDateTime {
        self.state().last_heartbeat_at
    }
}
