//! A circuit breaker for networked adapters: after `threshold` consecutive
//! failures it opens and calls fail fast; after `cool_down` one trial call is
//! let through (half-open); its success closes the breaker, its failure opens
//! it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// One trial call is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

/// A consecutive-failure circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    /// The dependency it guards, for `circuit_breaker_state{dependency}`; unnamed breakers are not reported.
    name: Option<&'static str>,
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// The design's default: 5 consecutive failures open it, a trial after 30 s.
    pub fn standard() -> Self {
        Self::new(5, Duration::from_secs(30))
    }

    /// Opens after `threshold` consecutive failures; tries again after `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            name: None,
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner { consecutive_failures: 0, opened_at: None, trial_in_flight: false }),
        }
    }

    /// Reports the breaker's state as `circuit_breaker_state{dependency=name}`
    /// (and each opening in `circuit_breaker_opened_total`).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        crate::telemetry::breaker_state(name, BreakerState::Closed);
        self
    }

    /// Publishes `state` if it differs from `before`.
    fn report(&self, before: BreakerState, state: BreakerState) {
        if let Some(name) = self.name.filter(|_| before != state) {
            crate::telemetry::breaker_state(name, state);
            if state == BreakerState::Open {
                metrics::counter!(crate::telemetry::BREAKER_OPENED, "dependency" => name).increment(1);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may be made now. While open, `false` until the
    /// cool-down ends; then `true` for exactly one trial call.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    /// [`CircuitBreaker::allow`] at a given instant (tests).
    pub fn allow_at(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.opened_at {
            None => true,
            Some(opened) if now.duration_since(opened) >= self.cool_down && !inner.trial_in_flight => {
                inner.trial_in_flight = true;
                drop(inner);
                self.report(BreakerState::Open, BreakerState::HalfOpen);
                true
            }
            Some(_) => false,
        }
    }

    /// Records a successful call: the breaker closes.
    pub fn record_success(&self) {
        let mut inner = self.lock();
        let before = Self::state_of(&inner);
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.trial_in_flight = false;
        drop(inner);
        self.report(before, BreakerState::Closed);
    }

    /// Records a failed call: counts towards opening, or reopens after a failed trial.
    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now());
    }

    /// [`CircuitBreaker::record_failure`] at a given instant (tests).
    pub fn record_failure_at(&self, now: Instant) {
        let mut inner = self.lock();
        let before = Self::state_of(&inner);
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if inner.trial_in_flight || inner.consecutive_failures >= self.threshold {
            inner.opened_at = Some(now);
        }
        inner.trial_in_flight = false;
        let after = Self::state_of(&inner);
        drop(inner);
        self.report(before, after);
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        Self::state_of(&self.lock())
    }

    fn state_of(inner: &Inner) -> BreakerState {
        match (inner.opened_at, inner.trial_in_flight) {
            (None, _) => BreakerState::Closed,
            (Some(_), true) => BreakerState::HalfOpen,
            (Some(_), false) => BreakerState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_after_the_cool_down() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(breaker.allow_at(t0));
            breaker.record_failure_at(t0);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_success();
        for _ in 0..3 {
            breaker.record_failure_at(t0);
        }
        assert_eq!(breaker.state(), BreakerState::Open, "three in a row open it");
        assert!(!breaker.allow_at(t0 + Duration::from_secs(29)));

        let later = t0 + Duration::from_secs(30);
        assert!(breaker.allow_at(later), "one trial after the cool-down");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allow_at(later), "only one trial at a time");
        breaker.record_failure_at(later);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed trial reopens it");
        assert!(!breaker.allow_at(later + Duration::from_secs(10)));

        let again = later + Duration::from_secs(30);
        assert!(breaker.allow_at(again));
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed, "a successful trial closes it");
        assert!(breaker.allow_at(again));
    }

    #[test]
    fn successes_reset_the_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(1));
        let now = Instant::now();
        breaker.record_failure_at(now);
        breaker.record_success();
        breaker.record_failure_at(now);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
