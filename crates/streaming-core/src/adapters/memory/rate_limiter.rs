use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::lock;
use crate::domain::UserId;
use crate::ports::{Clock, RateDecision, RateLimitError, RateLimitPolicy, RateLimiter};

/// Above this many tracked keys (and then each time their number doubles),
/// keys whose state has fully decayed are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// A [`RateLimiter`] in memory using GCRA: each (user, policy) keeps one
/// "theoretical arrival time"; a request is allowed while that time stays
/// within one period of now. Exact retry-after, O(1) per request.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    arrivals: Mutex<Arrivals>,
}

/// The arrival times, and when to look for decayed ones next.
#[derive(Default)]
struct Arrivals {
    times: HashMap<(UserId, String), OffsetDateTime>,
    /// Pruning runs when the map grows past this; afterwards it is set to
    /// twice what is left (at least [`PRUNE_ABOVE`]), so however many keys
    /// are live, a scan costs O(1) per request amortised.
    prune_at: usize,
    /// Scans so far (tests).
    prunes: u64,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter").finish_non_exhaustive()
    }
}

impl MemoryRateLimiter {
    /// A limiter on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, arrivals: Mutex::new(Arrivals { prune_at: PRUNE_ABOVE, ..Arrivals::default() }) }
    }

    #[cfg(test)]
    fn prunes(&self) -> u64 {
        lock(&self.arrivals).prunes
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, user: &UserId, policy: &RateLimitPolicy) -> Result<RateDecision, RateLimitError> {
        let now = self.clock.now();
        let interval = policy.emission_interval();
        let mut guard = lock(&self.arrivals);
        let arrivals = &mut *guard;
        if arrivals.times.len() > arrivals.prune_at {
            arrivals.times.retain(|_, tat| *tat > now);
            arrivals.prune_at = (2 * arrivals.times.len()).max(PRUNE_ABOVE);
            arrivals.prunes += 1;
        }
        let arrivals = &mut arrivals.times;
        let key = (user.clone(), policy.name.clone());
        let tat = arrivals.get(&key).copied().filter(|tat| *tat > now).unwrap_or(now);
        let next = tat + interval;
        let ahead = Duration::try_from(next - now).unwrap_or(Duration::ZERO);
        if ahead > policy.period {
            return Ok(RateDecision::Limited { retry_after: ahead - policy.period });
        }
        arrivals.insert(key, next);
        let spare = policy.period - ahead;
        let remaining = (spare.as_nanos() / interval.as_nanos().max(1)).min(u128::from(u32::MAX)) as u32;
        Ok(RateDecision::Allowed { remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ManualClock;

    /// With more live users than the pruning threshold, a request must not
    /// scan the whole map: scans are amortised over the map's growth.
    #[tokio::test]
    async fn pruning_is_amortised_however_many_users_are_live() {
        let clock = Arc::new(ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
        let limiter = MemoryRateLimiter::new(clock.clone());
        let policy = RateLimitPolicy { name: "p".into(), limit: 60, period: Duration::from_secs(60) };
        let users: Vec<UserId> = (0..25_000).map(|n| UserId::try_from(format!("user-{n}").as_str()).unwrap()).collect();
        for user in &users {
            limiter.check(user, &policy).await.unwrap();
        }
        assert!(limiter.prunes() <= 3, "{} scans for 25 000 live users", limiter.prunes());
        // Once they have decayed, the next scan (when the map has doubled) drops them.
        clock.advance(Duration::from_secs(120));
        for n in 0..16_000 {
            limiter.check(&UserId::try_from(format!("late-{n}").as_str()).unwrap(), &policy).await.unwrap();
        }
        let left = lock(&limiter.arrivals).times.len();
        assert_eq!(left, 16_000, "the 25 000 decayed keys were dropped");
    }
}
