use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::types::scripts::Script;
use fred::types::Value;
use streaming_core::adapters::{MemoryRateLimiter, SystemClock};
use streaming_core::domain::UserId;
use streaming_core::ports::{RateDecision, RateLimitError, RateLimitPolicy, RateLimiter};
use tracing::{info, warn};

use crate::connection::RedisConnection;

/// How long a reservation may be spent on this instance. Requests are
/// counted when reserved, so one spent later moves by at most this much:
/// over any period a user gets at most the limit plus this long at the
/// sustained rate (a quarter of a request at 60 a minute).
pub const LEASE_FOR: Duration = Duration::from_millis(250);

/// The most requests one reservation takes, by default.
pub const DEFAULT_MAX_LEASE: u32 = 256;

/// Below this many remembered reservations nothing is pruned.
const PRUNE_FLOOR: usize = 4_096;

/// [`RateLimiter`] on Redis: GCRA in one Lua script (`EVALSHA`, loaded again
/// on `NOSCRIPT`), so the limit holds across every instance sharing the Redis.
///
/// A user who asks often reserves several requests at once and spends them
/// here without a round trip: the first request reserves one, each
/// reservation spent within its [`LEASE_FOR`] doubles the next, up to a tenth
/// of the limit and at most `max_lease`. Reserved requests count against the
/// limit when reserved, so the shared limit is never exceeded; what a
/// reservation leaves unspent is given back with the user's next request
/// (or, if none comes, regenerates with time like any other request). A user
/// asking once in a while is decided by Redis every time.
///
/// While Redis is unavailable it decides with a local limiter instead, logged
/// once per outage and counted.
pub struct RedisRateLimiter {
    redis: RedisConnection,
    script: Script,
    leases: Mutex<Leases>,
    max_lease: u32,
    fallback: MemoryRateLimiter,
    degraded: AtomicBool,
    fallback_decisions: Arc<AtomicU64>,
    redis_decisions: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("max_lease", &self.max_lease)
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisRateLimiter {
    /// A limiter on `redis`, reserving up to [`DEFAULT_MAX_LEASE`] requests at once.
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            script: Script::from_lua(include_str!("gcra.lua")),
            leases: Mutex::default(),
            max_lease: DEFAULT_MAX_LEASE,
            fallback: MemoryRateLimiter::new(Arc::new(SystemClock)),
            degraded: AtomicBool::new(false),
            fallback_decisions: Arc::default(),
            redis_decisions: Arc::default(),
        }
    }

    /// At most `max_lease` requests per reservation; 1 asks Redis for every request.
    #[must_use]
    pub fn with_max_lease(mut self, max_lease: u32) -> Self {
        self.max_lease = max_lease.max(1);
        self
    }

    /// How many decisions the local fallback made (metrics).
    pub fn fallback_decisions(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.fallback_decisions)
    }

    /// How many times Redis was asked (the rest were spent from reservations).
    pub fn redis_decisions(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.redis_decisions)
    }

    fn key(&self, user: &UserId, policy: &RateLimitPolicy) -> String {
        format!("{}ratelimit:{}:{{{user}}}", self.redis.prefix(), policy.name)
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// Requests reserved in Redis and not yet spent, by limiter key.
#[derive(Debug, Default)]
struct Leases {
    by_key: HashMap<String, Lease>,
    prune_at: usize,
}

#[derive(Debug)]
struct Lease {
    /// Reserved and not yet spent.
    left: u32,
    /// Spendable until then.
    until: Instant,
    /// How many the last reservation took.
    size: u32,
    /// What Redis said was left after it.
    remote_remaining: u32,
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Spent from a reservation; this many remain.
    Spent(u32),
    /// Ask Redis to reserve `want`, giving back `refund` unspent first.
    Ask { want: u32, refund: u32 },
}

impl Leases {
    fn take(&mut self, key: &str, now: Instant, cap: u32) -> Step {
        let Some(lease) = self.by_key.get_mut(key) else {
            return Step::Ask { want: 1, refund: 0 };
        };
        if lease.left > 0 && now < lease.until {
            lease.left -= 1;
            return Step::Spent(lease.remote_remaining.saturating_add(lease.left));
        }
        // Taken out here so that a concurrent request cannot give it back twice.
        let refund = std::mem::take(&mut lease.left);
        let want = if refund > 0 {
            lease.size.saturating_sub(refund)
        } else if now < lease.until + LEASE_FOR {
            lease.size.saturating_mul(2)
        } else {
            1
        };
        Step::Ask { want: want.clamp(1, cap), refund }
    }

    /// Records a reservation of `granted` (one of which is spent at once);
    /// the requests that remain.
    fn reserved(&mut self, key: String, granted: u32, remote_remaining: u32, now: Instant) -> u32 {
        if self.by_key.len() >= self.prune_at.max(PRUNE_FLOOR) {
            // Forgotten reservations are not given back: they regenerate.
            self.by_key.retain(|_, lease| now < lease.until + LEASE_FOR);
            self.prune_at = self.by_key.len().saturating_mul(2);
        }
        let until = now + LEASE_FOR;
        let lease = self.by_key.entry(key).or_insert(Lease { left: 0, until, size: granted, remote_remaining });
        // A concurrent reservation still running keeps its (earlier) end.
        if lease.left == 0 || lease.until <= now {
            lease.until = until;
        }
        lease.left = lease.left.saturating_add(granted.saturating_sub(1));
        lease.size = granted;
        lease.remote_remaining = remote_remaining;
        remote_remaining.saturating_add(lease.left)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, user: &UserId, policy: &RateLimitPolicy) -> Result<RateDecision, RateLimitError> {
        let key = self.key(user, policy);
        let cap = (policy.limit / 10).clamp(1, self.max_lease);
        let (want, refund) = match self.leases().take(&key, Instant::now(), cap) {
            Step::Spent(remaining) => return Ok(RateDecision::Allowed { remaining }),
            Step::Ask { want, refund } => (want, refund),
        };
        self.redis_decisions.fetch_add(1, Ordering::Relaxed);
        let args = vec![micros(policy.emission_interval()), micros(policy.period), i64::from(want), i64::from(refund)];
        let client = self.redis.pool().next();
        let keys = vec![key.clone()];
        let result: Result<Vec<Value>, _> =
            self.redis.guarded("EVALSHA", || self.script.evalsha_with_reload(client, keys, args)).await;
        match result {
            Ok(values) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    info!("redis rate limiting restored");
                }
                let granted = values.first().and_then(Value::as_i64).unwrap_or(1).max(0);
                let amount = values.get(1).and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
                Ok(if granted >= 1 {
                    let granted = u32::try_from(granted).unwrap_or(u32::MAX);
                    let remote = u32::try_from(amount).unwrap_or(u32::MAX);
                    RateDecision::Allowed { remaining: self.leases().reserved(key, granted, remote, Instant::now()) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_start_at_one_and_double_while_spent_in_time() {
        let (mut leases, now) = (Leases::default(), Instant::now());
        assert_eq!(leases.take("k", now, 100), Step::Ask { want: 1, refund: 0 });
        assert_eq!(leases.reserved("k".into(), 1, 50, now), 50);
        assert_eq!(leases.take("k", now, 100), Step::Ask { want: 2, refund: 0 });
        assert_eq!(leases.reserved("k".into(), 2, 48, now), 49);
        assert_eq!(leases.take("k", now, 100), Step::Spent(48));
        assert_eq!(leases.take("k", now, 100), Step::Ask { want: 4, refund: 0 });
        assert_eq!(leases.reserved("k".into(), 4, 40, now), 43);
        for remaining in [42, 41, 40] {
            assert_eq!(leases.take("k", now, 100), Step::Spent(remaining));
        }
        assert_eq!(leases.take("k", now, 5), Step::Ask { want: 5, refund: 0 }, "never above the cap");
    }

    #[test]
    fn an_expired_reservation_gives_back_what_it_left_and_shrinks() {
        let (mut leases, now) = (Leases::default(), Instant::now());
        leases.reserved("k".into(), 8, 10, now);
        leases.take("k", now, 100);
        let later = now + LEASE_FOR;
        assert_eq!(leases.take("k", later, 100), Step::Ask { want: 2, refund: 6 }, "two were spent, six go back");
        assert!(
            matches!(leases.take("k", later, 100), Step::Ask { refund: 0, .. }),
            "given back only once, whatever a concurrent request asks for"
        );
    }

    #[test]
    fn a_user_back_after_a_pause_starts_again_at_one() {
        let (mut leases, now) = (Leases::default(), Instant::now());
        leases.reserved("k".into(), 1, 10, now);
        assert_eq!(leases.take("k", now + LEASE_FOR * 3, 100), Step::Ask { want: 1, refund: 0 });
    }

    #[test]
    fn concurrent_reservations_add_up_and_keep_the_earlier_end() {
        let (mut leases, now) = (Leases::default(), Instant::now());
        leases.reserved("k".into(), 3, 10, now);
        let later = now + LEASE_FOR / 2;
        assert_eq!(leases.reserved("k".into(), 3, 7, later), 11);
        assert_eq!(leases.take("k", now + LEASE_FOR - Duration::from_millis(1), 100), Step::Spent(10));
        assert_eq!(leases.take("k", now + LEASE_FOR, 100), Step::Ask { want: 1, refund: 3 });
    }

    #[test]
    fn stale_reservations_are_pruned_once_many() {
        let (mut leases, now) = (Leases::default(), Instant::now());
        for i in 0..PRUNE_FLOOR {
            leases.reserved(format!("k{i}"), 1, 1, now);
        }
        leases.reserved("fresh".into(), 1, 1, now + LEASE_FOR * 2);
        assert_eq!(leases.by_key.len(), 1, "only the fresh one is kept");
    }
}
