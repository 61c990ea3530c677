use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::types::scripts::Script;
use fred::types::Value;
use streaming_core::adapters::{MemoryRateLimiter, SystemClock};
use streaming_core::domain::UserId;
use streaming_core::ports::{RateDecision, RateLimitError, RateLimitPolicy, RateLimiter};
use tracing::{info, warn};

use crate::connection::RedisConnection;

/// [`RateLimiter`] on Redis: GCRA in one Lua script (`EVALSHA`, loaded again
/// on `NOSCRIPT`), so the limit holds across every instance sharing the Redis.
/// While Redis is unavailable it decides with a local limiter instead, logged
/// once per outage and counted.
pub struct RedisRateLimiter {
    redis: RedisConnection,
    script: Script,
    fallback: MemoryRateLimiter,
    degraded: AtomicBool,
    fallback_decisions: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("degraded", &self.degraded.load(Ordering::Relaxed)).finish()
    }
}

impl RedisRateLimiter {
    /// A limiter on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            script: Script::from_lua(include_str!("gcra.lua")),
            fallback: MemoryRateLimiter::new(Arc::new(SystemClock)),
            degraded: AtomicBool::new(false),
            fallback_decisions: Arc::default(),
        }
    }

    /// How many decisions the local fallback made (metrics).
    pub fn fallback_decisions(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.fallback_decisions)
    }

    fn key(&self, user: &UserId, policy: &RateLimitPolicy) -> String {
        format!("{}ratelimit:{}:{{{user}}}", self.redis.prefix(), policy.name)
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, user: &UserId, policy: &RateLimitPolicy) -> Result<RateDecision, RateLimitError> {
        let key = self.key(user, policy);
        let args = vec![micros(policy.emission_interval()), micros(policy.period)];
        let client = self.redis.pool().next();
        let result: Result<Vec<Value>, _> =
            self.redis.guarded("EVALSHA", || self.script.evalsha_with_reload(client, vec![key], args)).await;
        match result {
            Ok(values) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    info!("redis rate limiting restored");
                }
                let allowed = values.first().and_then(Value::as_i64).unwrap_or(1);
                let amount = values.get(1).and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
                Ok(if allowed == 1 {
                    RateDecision::Allowed { remaining: u32::try_from(amount).unwrap_or(u32::MAX) }
                } else {
                    RateDecision::Limited { retry_after: Duration::from_micros(amount) }
                })
            }
            Err(error) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    warn!(%error, "redis unavailable: rate limiting per instance until it returns");
                }
                self.fallback_decisions.fetch_add(1, Ordering::Relaxed);
                self.fallback.check(user, policy).await
            }
        }
    }
}
