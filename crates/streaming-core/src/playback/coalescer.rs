//! At most one progress event per (user, movie, session) per interval.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{MediaId, SessionId, UserId};

type Key = (UserId, MediaId, Option<SessionId>);

/// Above this many tracked sessions, entries older than the interval are dropped.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug)]
pub(super) struct Coalescer {
    interval: Duration,
    last: Mutex<HashMap<Key, OffsetDateTime>>,
}

impl Coalescer {
    pub(super) fn new(interval: Duration) -> Self {
        Self { interval, last: Mutex::default() }
    }

    /// Whether an event for `key` may go out at `now`; if so, remembers it.
    pub(super) fn admit(&self, key: Key, now: OffsetDateTime) -> bool {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.len() > PRUNE_ABOVE {
            let horizon = now - self.interval;
            last.retain(|_, at| *at > horizon);
        }
        match last.get(&key) {
            Some(at) if now < *at + self.interval => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }

    /// Forgets `key` (its session stopped).
    pub(super) fn forget(&self, key: &Key) {
        self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}
