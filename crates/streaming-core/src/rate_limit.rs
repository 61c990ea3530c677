//! Per-user request limits: one policy over one [`RateLimiter`], with the
//! decision every caller shares (a limiter outage lets requests through).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug_span, warn, Instrument as _};

use crate::domain::UserId;
use crate::ports::{RateDecision, RateLimitPolicy, RateLimiter};
use crate::telemetry;

/// A user is over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// How long until one more request is allowed.
    pub retry_after: Duration,
}

/// One policy enforced through one limiter.
#[derive(Clone)]
pub struct UserLimit {
    limiter: Arc<dyn RateLimiter>,
    policy: RateLimitPolicy,
}

impl fmt::Debug for UserLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLimit").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl UserLimit {
    /// `policy` enforced through `limiter` (its rejections counted from 0).
    pub fn new(limiter: Arc<dyn RateLimiter>, policy: RateLimitPolicy) -> Self {
        metrics::counter!(telemetry::RATE_LIMIT_REJECTIONS, "policy" => policy.name.clone()).increment(0);
        Self { limiter, policy }
    }

    /// At most `limit` requests a minute per user under the policy `name`;
    /// `None` when `limit` is 0 (no limit).
    pub fn per_minute(limiter: Arc<dyn RateLimiter>, name: &str, limit: u32) -> Option<Self> {
        (limit > 0)
            .then(|| Self::new(limiter, RateLimitPolicy { name: name.into(), limit, period: Duration::from_secs(60) }))
    }

    /// The policy.
    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// Counts one request of `user`.
    ///
    /// Fails open: when the limiter cannot decide, the request goes through
    /// (logged at WARN), since a limiter outage must not take streaming down with it.
    ///
    /// # Errors
    /// [`Limited`] when the user is over the policy (counted in
    /// `rate_limit_rejections_total{policy}`).
    pub async fn admit(&self, user: &UserId) -> Result<(), Limited> {
        match self.limiter.check(user, &self.policy).instrument(debug_span!("ratelimit.check")).await {
            Ok(RateDecision::Allowed { .. }) => Ok(()),
            Ok(RateDecision::Limited { retry_after }) => {
                metrics::counter!(telemetry::RATE_LIMIT_REJECTIONS, "policy" => self.policy.name.clone()).increment(1);
                Err(Limited { retry_after })
            }
            Err(error) => {
                warn!(%error, policy = %self.policy.name, "rate limiter unavailable; request allowed");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ports::{MockRateLimiter, RateLimitError};

    fn user() -> UserId {
        UserId::try_from("u-1").unwrap()
    }

    #[test]
    fn a_zero_limit_is_no_limit() {
        assert!(UserLimit::per_minute(Arc::new(MockRateLimiter::new()), "p", 0).is_none());
    }

    #[tokio::test]
    async fn over_the_policy_is_limited_with_the_limiters_wait() {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_check()
            .withf(|user, policy| user.as_str() == "u-1" && policy.name == "p" && policy.limit == 2)
            .returning(|_, _| Ok(RateDecision::Limited { retry_after: Duration::from_secs(7) }));
        let limit = UserLimit::per_minute(Arc::new(limiter), "p", 2).unwrap();
        assert_eq!(limit.admit(&user()).await, Err(Limited { retry_after: Duration::from_secs(7) }));
    }

    #[tokio::test]
    async fn a_limiter_outage_lets_the_request_through() {
        let mut limiter = MockRateLimiter::new();
        limiter.expect_check().returning(|_, _| Err(RateLimitError::Unavailable("down".into())));
        let limit = UserLimit::per_minute(Arc::new(limiter), "p", 2).unwrap();
        assert_eq!(limit.admit(&user()).await, Ok(()));
    }
}
