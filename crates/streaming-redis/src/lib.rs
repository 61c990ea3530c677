//! # streaming-redis
//!
//! Redis adapters on fred: the encrypted [`UrlCache`](streaming_core::ports::UrlCache)
//! (alone, or behind an in-process level with pub/sub invalidation), the
//! distributed [`RateLimiter`](streaming_core::ports::RateLimiter), the
//! [`EventGate`](streaming_core::ports::EventGate) that thins progress
//! events out across instances, and the
//! seed's hot copies of watch progress and subscriptions, the
//! [`PendingWrites`](streaming_core::ports::PendingWrites) an instance's
//! acknowledged writes wait in until PostgreSQL has them.
//!
//! * Standalone, sentinel and cluster, chosen by the URL: `redis://host:port`,
//!   `redis-sentinel://host:port?sentinelServiceName=…`,
//!   `redis-cluster://host:port?node=host:port&…` (`rediss…` for TLS).
//! * Every command has a 500 ms timeout and no retry on the request path;
//!   the connection reconnects with backoff in the background.
//! * A circuit breaker (5 consecutive failures, a trial after 30 s) stops
//!   paying the timeout on every request while Redis is down.
//! * All of a user's keys share a cluster slot: the user id is the hash tag
//!   (`{prefix}stream:{user}:{media}`), so the seed's key stays readable and
//!   an entry and its user's generation are read with one `MGET`.

mod broadcast;
mod connection;
mod event_gate;
mod hot_copies;
mod pending;
mod rate_limiter;
mod settings;
mod two_level;
mod url_cache;

pub use broadcast::RedisBroadcast;
pub use connection::{RedisConfig, RedisConnection, RedisError};
pub use event_gate::RedisEventGate;
pub use hot_copies::{HotCopyLayout, RedisProgressCache, RedisSubscriptionCache, HOT_COPY_INTERVAL};
pub use pending::{RedisPendingWrites, SHARDS as PENDING_SHARDS};
pub use rate_limiter::{RedisRateLimiter, DEFAULT_MAX_LEASE, LEASE_FOR};
pub use settings::{RedisSettings, SettingsError};
pub use two_level::{LocalLevel, TwoLevelUrlCache};
pub use url_cache::RedisUrlCache;
