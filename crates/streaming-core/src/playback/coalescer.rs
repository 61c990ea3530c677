//! Thins progress events out: at most one per (user, movie, session) per
//! interval, where a report at least 80 % of the interval after the last
//! event published always gets one (players report every 10 s with jitter,
//! so with a 10 s interval a report 9.5 s after the last one must not wait
//! for the next). A zero interval publishes every report.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{MediaId, SessionId, UserId};

/// The key progress events are thinned out by.
pub(crate) type Key = (UserId, MediaId, Option<SessionId>);

/// Below this many tracked keys nothing is pruned.
const PRUNE_FLOOR: usize = 10_000;

/// The share of the interval after which a report always gets its event.
const TOLERANCE: f64 = 0.8;

/// The least time between two progress events of one key for `interval`.
pub(crate) fn gap_of(interval: Duration) -> Duration {
    interval.mul_f64(TOLERANCE)
}

/// Keys and the time each may pass again. Also the memory adapter of the
/// [`crate::ports::EventGate`] port.
#[derive(Debug)]
pub(crate) struct Coalescer<K = Key> {
    state: Mutex<State<K>>,
}

#[derive(Debug)]
struct State<K> {
    open_at: HashMap<K, OffsetDateTime>,
    /// The next prune runs at this size: twice what the last one kept, so
    /// pruning costs a constant per admission however many keys are live.
    prune_at: usize,
}

impl<K> Default for Coalescer<K> {
    fn default() -> Self {
        Self { state: Mutex::new(State { open_at: HashMap::new(), prune_at: 0 }) }
    }
}

impl<K: Hash + Eq> Coalescer<K> {
    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an event for `key` may go out at `now`, none having passed
    /// within `gap`; if so, the gap starts again. A zero gap passes all and
    /// remembers nothing.
    pub(crate) fn admit(&self, key: K, now: OffsetDateTime, gap: Duration) -> bool {
        if gap.is_zero() {
            return true;
        }
        let mut state = self.state();
        if state.open_at.len() >= state.prune_at.max(PRUNE_FLOOR) {
            state.open_at.retain(|_, open_at| *open_at > now);
            state.prune_at = state.open_at.len().saturating_mul(2);
        }
        match state.open_at.get(&key) {
            Some(open_at) if now < *open_at => false,
            _ => {
                state.open_at.insert(key, now + gap);
                true
            }
        }
    }

    /// Forgets `key` (its session stopped).
    pub(crate) fn forget(&self, key: &K) {
        self.state().open_at.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        (format!("viewer-{i}").parse().unwrap(), "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap(), None)
    }

    #[test]
    fn one_event_per_key_per_interval_with_a_fifth_of_it_for_jitter() {
        let (coalescer, gap) = (Coalescer::default(), gap_of(Duration::from_secs(10)));
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(coalescer.admit(key(1), now, gap));
        assert!(!coalescer.admit(key(1), now + Duration::from_millis(7_999), gap));
        assert!(coalescer.admit(key(2), now + Duration::from_secs(7), gap));
        assert!(coalescer.admit(key(1), now + Duration::from_secs(8), gap), "80 % of the interval later");
        assert!(!coalescer.admit(key(1), now + Duration::from_secs(9), gap));
        coalescer.forget(&key(2));
        assert!(coalescer.admit(key(2), now + Duration::from_secs(8), gap), "a forgotten key starts again");
    }

    #[test]
    fn reports_every_ten_seconds_with_jitter_each_get_their_event() {
        let (coalescer, gap) = (Coalescer::default(), gap_of(Duration::from_secs(10)));
        let mut at = OffsetDateTime::UNIX_EPOCH;
        for jitter_ms in [0, 9_200, 10_700, 8_100, 9_900, 10_000, 8_000] {
            at += Duration::from_millis(jitter_ms);
            assert!(coalescer.admit(key(1), at, gap), "a report {jitter_ms} ms after the last");
        }
    }

    #[test]
    fn a_zero_interval_publishes_every_report_and_remembers_nothing() {
        let coalescer = Coalescer::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        for _ in 0..3 {
            assert!(coalescer.admit(key(1), now, gap_of(Duration::ZERO)));
        }
        assert!(coalescer.state().open_at.is_empty());
    }

    #[test]
    fn many_live_sessions_are_pruned_only_when_the_map_doubles() {
        let (coalescer, gap) = (Coalescer::default(), gap_of(Duration::from_secs(10)));
        let now = OffsetDateTime::UNIX_EPOCH;
        for i in 0..PRUNE_FLOOR {
            assert!(coalescer.admit(key(i), now, gap));
        }
        // All live: the prune keeps them all and waits for twice as many.
        assert!(coalescer.admit(key(PRUNE_FLOOR), now + Duration::from_secs(1), gap));
        assert_eq!(coalescer.state().prune_at, 2 * PRUNE_FLOOR);
        assert!(!coalescer.admit(key(0), now + Duration::from_secs(2), gap), "still remembered");
        // Once they are old, the next prune at that size drops them.
        let later = now + Duration::from_secs(60);
        for i in PRUNE_FLOOR + 1..2 * PRUNE_FLOOR {
            coalescer.admit(key(i), later, gap);
        }
        assert!(coalescer.admit(key(0), later, gap), "pruned and admitted again");
        assert_eq!(coalescer.state().open_at.len(), PRUNE_FLOOR, "the 9 999 recent keys and this one");
    }
}
