use std::time::Duration;

use async_trait::async_trait;

use crate::domain::UserId;

/// Why the limiter could not decide. The caller fails open (lets the request
/// through) and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The limiter's backing store is down or too slow.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
}

/// A named limit: at most `limit` requests per `period` per user, with
/// bursts of up to `limit` (GCRA semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Policy name, part of the limiter key (e.g. `stream-url`).
    pub name: String,
    /// Requests allowed per period.
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

impl RateLimitPolicy {
    /// The time between two requests at the sustained rate.
    pub fn emission_interval(&self) -> Duration {
        self.period / self.limit.max(1)
    }
}

/// The limiter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead.
    Allowed {
        /// Requests still allowed right now.
        remaining: u32,
    },
    /// Refused; try again after this long.
    Limited {
        /// How long until one more request is allowed.
        retry_after: Duration,
    },
}

/// Per-user, per-policy request limits.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request of `user` against `policy` and says whether it may
    /// proceed. Atomic: two instances sharing a store never both take the last slot.
    ///
    /// # Errors
    /// [`RateLimitError::Unavailable`] when the backing store cannot be reached.
    async fn check(&self, user: &UserId, policy: &RateLimitPolicy) -> Result<RateDecision, RateLimitError>;
}
