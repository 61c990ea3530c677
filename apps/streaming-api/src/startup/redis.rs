//! Redis: the connection, the hot-copy layout, and the URL cache's key ring.

use std::sync::Arc;
use std::time::Duration;

use streaming_core::adapters::{CachedSubscriptions, MemoryRateLimiter, MemoryUrlCache, MokaUrlCache, NoUrlCache};
use streaming_core::ports::{Clock, ProgressStore, RateLimiter, SubscriptionDirectory, UrlCache};
use streaming_redis::{
    HotCopyLayout, LocalLevel, RedisBroadcast, RedisProgressCache, RedisRateLimiter, RedisSubscriptionCache,
    RedisUrlCache, TwoLevelUrlCache,
};

use crate::settings::{CacheKind, Settings};
use crate::subscriptions::SubscriptionCache;

use super::StartupError;
use secrecy::ExposeSecret;
use streaming_core::CacheKeyring;
use streaming_redis::RedisConnection;

/// The channel between the instances on one Redis (URL cache, session
/// closes and catalog changes travel on it).
pub(super) fn peers(redis: Option<&RedisConnection>) -> Result<Option<Arc<RedisBroadcast>>, StartupError> {
    redis
        .map(|redis| RedisBroadcast::start(redis.clone()))
        .transpose()
        .map_err(|_| StartupError::Config("redis.url: cannot build the subscriber client".into()))
}

/// The URL cache `cache.kind` names.
pub(super) fn url_cache(
    settings: &Settings,
    redis: Option<&RedisConnection>,
    peers: Option<&Arc<RedisBroadcast>>,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<dyn UrlCache>, StartupError> {
    Ok(match (settings.cache.kind, redis) {
        (CacheKind::Moka, _) => Arc::new(MokaUrlCache::new(settings.cache.max_bytes)),
        (CacheKind::Memory, _) => Arc::new(MemoryUrlCache::new(clock.clone())),
        (CacheKind::Off, _) => Arc::new(NoUrlCache),
        (CacheKind::Redis, Some(redis)) if settings.cache.local_ttl_ms == 0 => {
            Arc::new(RedisUrlCache::new(redis.clone()))
        }
        (CacheKind::Redis, Some(redis)) => {
            let level = LocalLevel {
                ttl: Duration::from_millis(settings.cache.local_ttl_ms),
                max_bytes: settings.cache.local_max_bytes,
            };
            // Every instance with Redis has its broadcast (see `peers`).
            let peers = peers.ok_or_else(|| StartupError::Config("redis.url: no broadcast".into()))?;
            TwoLevelUrlCache::start(redis.clone(), level, peers.clone())
        }
        (CacheKind::Redis, None) => return Err(StartupError::Config("cache.kind = \"redis\" needs redis.url".into())),
    })
}

/// The caches in front of the subscription directory and the progress store.
pub(super) struct HotCopies {
    /// The subscription cache, which catalog changes clear.
    pub(super) subscription_cache: Option<SubscriptionCache>,
    /// The directory the services ask (through the cache, if any).
    pub(super) subscriptions: Arc<dyn SubscriptionDirectory>,
    /// The progress store the services use (through Redis, if any).
    pub(super) progress: Arc<dyn ProgressStore>,
}

/// With Redis: the seed's hot copies in front of the progress store and the
/// directory; without it, a `remote` directory gets a cache of its own.
pub(super) fn hot_copies(
    settings: &Settings,
    redis: Option<&RedisConnection>,
    source: Arc<dyn SubscriptionDirectory>,
    remote: bool,
    durable_progress: Arc<dyn ProgressStore>,
) -> Result<HotCopies, StartupError> {
    let layout = hot_copy_layout(settings, redis)?;
    let subscription_cache = match redis {
        Some(redis) => {
            let ttl = Duration::from_secs(settings.redis.subscription_ttl_seconds);
            let cache = RedisSubscriptionCache::new(redis.clone(), source.clone(), ttl);
            Some(SubscriptionCache::Redis(Arc::new(match layout {
                HotCopyLayout::Cinema => cache.with_cinema_layout(settings.users.default_plan()),
                HotCopyLayout::Tagged => cache,
            })))
        }
        None if remote => Some(SubscriptionCache::Local(Arc::new(CachedSubscriptions::new(
            source.clone(),
            Duration::from_secs(settings.users.cache_ttl_seconds),
            settings.cache.max_entries,
        )))),
        None => None,
    };
    let (subscriptions, progress): (Arc<dyn SubscriptionDirectory>, Arc<dyn ProgressStore>) =
        match (redis, &subscription_cache) {
            (Some(redis), Some(cache)) => (
                cache.port(),
                Arc::new(RedisProgressCache::with_layout(
                    redis.clone(),
                    durable_progress,
                    Duration::from_secs(settings.redis.progress_ttl_seconds),
                    layout,
                )),
            ),
            (None, Some(cache)) => (cache.port(), durable_progress),
            _ => (source, durable_progress),
        };
    Ok(HotCopies { subscription_cache, subscriptions, progress })
}

/// Per-user limits: shared through Redis, else this instance's own.
pub(super) fn rate_limiter(
    settings: &Settings,
    redis: Option<&RedisConnection>,
    clock: &Arc<dyn Clock>,
) -> Arc<dyn RateLimiter> {
    match redis {
        Some(redis) => Arc::new(RedisRateLimiter::new(redis.clone()).with_max_lease(settings.rate_limit.max_lease)),
        None => Arc::new(MemoryRateLimiter::new(clock.clone())),
    }
}

pub(super) fn redis_connection(settings: &Settings) -> Result<Option<RedisConnection>, StartupError> {
    settings.redis.connect().map_err(|e| StartupError::Config(e.to_string()))
}

/// The layout of the Redis hot copies; the cinema's needs a standalone Redis.
fn hot_copy_layout(settings: &Settings, redis: Option<&RedisConnection>) -> Result<HotCopyLayout, StartupError> {
    match redis {
        Some(redis) => settings.redis.layout_on(redis).map_err(|e| StartupError::Config(e.to_string())),
        None => Ok(settings.redis.hot_copy_keys),
    }
}

/// Parses `version:base64key,…`; without keys, one random key for this process.
pub(super) fn keyring(settings: &Settings) -> Result<CacheKeyring, StartupError> {
    let Some(spec) = &settings.cache.encryption_keys else {
        return Ok(CacheKeyring::random());
    };
    let bad = |e: streaming_core::KeyringError| StartupError::Config(format!("cache.encryption_keys: {e}"));
    let keyring: CacheKeyring = spec.expose_secret().parse().map_err(bad)?;
    match settings.cache.current_key_version {
        Some(version) => keyring.sealing_with(version).map_err(bad),
        None => Ok(keyring),
    }
}
