use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::lock;
use crate::domain::UserId;
use crate::ports::{Clock, RateDecision, RateLimitError, RateLimitPolicy, RateLimiter};

/// Above this many tracked keys, keys whose state has fully decayed are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// A [`RateLimiter`] in memory using GCRA: each (user, policy) keeps one
/// "theoretical arrival time"; a request is allowed while that time stays
/// within one period of now. Exact retry-after, O(1) per request.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    arrivals: Mutex<HashMap<(UserId, String), OffsetDateTime>>,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter").finish_non_exhaustive()
    }
}

impl MemoryRateLimiter {
    /// A limiter on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, arrivals: Mutex::default() }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, user: &UserId, policy: &RateLimitPolicy) -> Result<RateDecision, RateLimitError> {
        let now = self.clock.now();
        let interval = policy.emission_interval();
        let mut arrivals = lock(&self.arrivals);
        if arrivals.len() > PRUNE_ABOVE {
            arrivals.retain(|_, tat| *tat > now);
        }
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
