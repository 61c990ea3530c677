//! At most one progress event per (user, movie, session) per interval.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{MediaId, SessionId, UserId};

type Key = (UserId, MediaId, Option<SessionId>);

/// Below this many tracked sessions nothing is pruned.
const PRUNE_FLOOR: usize = 10_000;

#[derive(Debug)]
pub(super) struct Coalescer {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: HashMap<Key, OffsetDateTime>,
    /// The next prune runs at this size: twice what the last one kept, so
    /// pruning costs a constant per admission however many sessions are live.
    prune_at: usize,
}

impl Coalescer {
    pub(super) fn new(interval: Duration) -> Self {
        Self { interval, state: Mutex::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an event for `key` may go out at `now`; if so, remembers it.
    pub(super) fn admit(&self, key: Key, now: OffsetDateTime) -> bool {
        let mut state = self.state();
        if state.last.len() >= state.prune_at.max(PRUNE_FLOOR) {
            let horizon = now - self.interval;
            state.last.retain(|_, at| *at > horizon);
            state.prune_at = state.last.len().saturating_mul(2);
        }
        match state.last.get(&key) {
            Some(at) if now < *at + self.interval => false,
            _ => {
                state.last.insert(key, now);
                true
            }
        }
    }

    /// Forgets `key` (its session stopped).
    pub(super) fn forget(&self, key: &Key) {
        self.state().last.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        (format!("viewer-{i}").parse().unwrap(), "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap(), None)
    }

    #[test]
    fn one_event_per_key_per_interval() {
        let coalescer = Coalescer::new(Duration::from_secs(10));
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(coalescer.admit(key(1), now));
        assert!(!coalescer.admit(key(1), now + Duration::from_secs(9)));
        assert!(coalescer.admit(key(2), now + Duration::from_secs(9)));
        assert!(coalescer.admit(key(1), now + Duration::from_secs(10)));
        coalescer.forget(&key(2));
        assert!(coalescer.admit(key(2), now + Duration::from_secs(10)), "a forgotten key starts again");
    }

    #[test]
    fn many_live_sessions_are_pruned_only_when_the_map_doubles() {
        let coalescer = Coalescer::new(Duration::from_secs(10));
        let now = OffsetDateTime::UNIX_EPOCH;
        for i in 0..PRUNE_FLOOR {
            assert!(coalescer.admit(key(i), now));
        }
        // All live: the prune keeps them all and waits for twice as many.
        assert!(coalescer.admit(key(PRUNE_FLOOR), now + Duration::from_secs(1)));
        assert_eq!(coalescer.state().prune_at, 2 * PRUNE_FLOOR);
        assert!(!coalescer.admit(key(0), now + Duration::from_secs(2)), "still remembered");
        // Once they are old, the next prune at that size drops them.
        let later = now + Duration::from_secs(60);
        for i in PRUNE_FLOOR + 1..2 * PRUNE_FLOOR {
            coalescer.admit(key(i), later);
        }
        assert!(coalescer.admit(key(0), later), "pruned and admitted again");
        assert_eq!(coalescer.state().last.len(), PRUNE_FLOOR, "the 9 999 recent keys and this one");
    }
}
