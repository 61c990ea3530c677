//! A circuit breaker for networked adapters: after `threshold` consecutive
//! failures it opens and calls fail fast; after `cool_down` one trial call is
//! let through (half-open); its success closes the breaker, its failure opens
//! it again.
//!
//! A call is a [`Call`]: reported with [`Call::succeeded`] or
//! [`Call::failed`], or dropped unreported when the future making it is
//! cancelled, which tells the breaker nothing (a trial it carried is
//! released, so the next call tries).

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
    /// When the trial in flight started, if one is.
    trial_since: Option<Instant>,
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
            inner: Mutex::new(Inner { consecutive_failures: 0, opened_at: None, trial_since: None }),
        }
    }

    /// Reports the breaker's state as `circuit_breaker_state{dependency=name}`
    /// (and each opening in `circuit_breaker_opened_total`).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        crate::telemetry::breaker_state(name, BreakerState::Closed);
        metrics::counter!(crate::telemetry::BREAKER_OPENED, "dependency" => name).increment(0);
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

    /// Leave to make one call now: `None` while the breaker is open;
    /// after the cool-down, exactly one trial at a time.
    pub fn call(&self) -> Option<Call<'_>> {
        self.call_at(Instant::now())
    }

    /// [`CircuitBreaker::call`] at a given instant (tests).
    pub fn call_at(&self, now: Instant) -> Option<Call<'_>> {
        let mut inner = self.lock();
        match inner.opened_at {
            None => Some(Call { breaker: self, trial: false, reported: false }),
            Some(opened) if now.duration_since(opened) >= self.cool_down && inner.trial_since.is_none() => {
                inner.trial_since = Some(now);
                drop(inner);
                self.report(BreakerState::Open, BreakerState::HalfOpen);
                Some(Call { breaker: self, trial: true, reported: false })
            }
            Some(_) => None,
        }
    }

    /// A successful call: the breaker closes.
    fn record_success(&self) {
        let mut inner = self.lock();
        let before = Self::state_of(&inner);
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.trial_since = None;
        drop(inner);
        self.report(before, BreakerState::Closed);
    }

    /// A failed call: counts towards opening, or reopens after a failed trial.
    fn record_failure_at(&self, now: Instant) {
        let mut inner = self.lock();
        let before = Self::state_of(&inner);
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if inner.trial_since.is_some() || inner.consecutive_failures >= self.threshold {
            inner.opened_at = Some(now);
        }
        inner.trial_since = None;
        let after = Self::state_of(&inner);
        drop(inner);
        self.report(before, after);
    }

    /// A trial dropped unreported: released, the breaker stays open.
    fn release_trial(&self) {
        let mut inner = self.lock();
        let before = Self::state_of(&inner);
        inner.trial_since = None;
        let after = Self::state_of(&inner);
        drop(inner);
        self.report(before, after);
    }

    /// Whether the guarded dependency counts as reachable for readiness:
    /// closed, or half-open with its trial started less than a cool-down
    /// ago. Open, or a trial that has not closed it within a cool-down, is
    /// not ready.
    pub fn ready(&self) -> bool {
        self.ready_at(Instant::now())
    }

    /// [`CircuitBreaker::ready`] at a given instant (tests).
    pub fn ready_at(&self, now: Instant) -> bool {
        let inner = self.lock();
        match (inner.opened_at, inner.trial_since) {
            (None, _) => true,
            (Some(_), Some(since)) => now.duration_since(since) < self.cool_down,
            (Some(_), None) => false,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        Self::state_of(&self.lock())
    }

    fn state_of(inner: &Inner) -> BreakerState {
        match (inner.opened_at, inner.trial_since) {
            (None, _) => BreakerState::Closed,
            (Some(_), Some(_)) => BreakerState::HalfOpen,
            (Some(_), None) => BreakerState::Open,
        }
    }
}

/// Leave to make one call through a [`CircuitBreaker`]. Report its outcome
/// with [`Call::succeeded`] or [`Call::failed`]; dropped unreported (its
/// future cancelled), it tells the breaker nothing.
#[derive(Debug)]
#[must_use = "report the call's outcome, or it tells the breaker nothing"]
pub struct Call<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    reported: bool,
}

impl Call<'_> {
    /// The dependency answered: the breaker closes.
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record_success();
    }

    /// The dependency failed (transport, timeout, a server error): counts
    /// towards opening, or reopens after a failed trial.
    pub fn failed(mut self) {
        self.reported = true;
        self.breaker.record_failure_at(Instant::now());
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.reported && self.trial {
            self.breaker.release_trial();
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
            breaker.call_at(t0).unwrap().failed();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_success();
        for _ in 0..3 {
            breaker.record_failure_at(t0);
        }
        assert_eq!(breaker.state(), BreakerState::Open, "three in a row open it");
        assert!(breaker.call_at(t0 + Duration::from_secs(29)).is_none());

        let later = t0 + Duration::from_secs(30);
        let trial = breaker.call_at(later).expect("one trial after the cool-down");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.call_at(later).is_none(), "only one trial at a time");
        breaker.record_failure_at(later);
        drop(trial);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed trial reopens it");
        assert!(breaker.call_at(later + Duration::from_secs(10)).is_none());

        let again = later + Duration::from_secs(30);
        breaker.call_at(again).expect("a trial").succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed, "a successful trial closes it");
        assert!(breaker.call_at(again).is_some());
    }

    /// The future making the half-open trial is dropped (a client went
    /// away, a timeout fired): the trial must not stay in flight for ever.
    #[test]
    fn a_dropped_trial_lets_the_next_call_try() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(30));
        let t0 = Instant::now();
        breaker.record_failure_at(t0);
        let later = t0 + Duration::from_secs(30);
        let trial = breaker.call_at(later).expect("a trial after the cool-down");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.call_at(later).is_none(), "one trial at a time");
        drop(trial);
        assert_eq!(breaker.state(), BreakerState::Open, "a dropped trial tells nothing");
        let next = breaker.call_at(later).expect("the next call is the trial");
        next.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        // Dropping a call while closed changes nothing either.
        drop(breaker.call_at(later).expect("closed"));
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn readiness_counts_a_trial_only_within_the_cool_down() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(breaker.ready_at(t0));
        breaker.record_failure_at(t0);
        assert!(!breaker.ready_at(t0 + Duration::from_secs(40)), "open");
        let trial = breaker.call_at(t0 + Duration::from_secs(40)).expect("trial");
        assert!(breaker.ready_at(t0 + Duration::from_secs(41)), "a trial under way may close it");
        assert!(!breaker.ready_at(t0 + Duration::from_secs(71)), "not closed within its cool-down");
        trial.succeeded();
        assert!(breaker.ready_at(t0 + Duration::from_secs(71)));
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
