//! Redis: the connection, the hot-copy layout, and the URL cache's key ring.

use std::sync::Arc;
use std::time::Duration;

use streaming_core::adapters::{CachedSubscriptions, MemoryRateLimiter, MemoryUrlCache, MokaUrlCache, NoUrlCache};
use streaming_core::ports::{Clock, PendingWrites, ProgressStore, RateLimiter, SubscriptionDirectory, UrlCache};
use streaming_redis::{
    HotCopyLayout, LocalLevel, RedisBroadcast, RedisPendingWrites, RedisProgressCache, RedisRateLimiter,
    RedisSubscriptionCache, RedisUrlCache, TwoLevelUrlCache,
};

use streaming_postgres::{
    PgProgressStore, PgSessionStore, WriteBehindOutbox, WriteBehindProgress, WriteBehindSessions,
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
        (CacheKind::Redis, None) => return Err(no_redis_for_the_cache()),
    })
}

/// `cache.kind = "redis"` without `redis.url`.
pub(super) fn no_redis_for_the_cache() -> StartupError {
    StartupError::Config("cache.kind = \"redis\" needs redis.url".into())
}

/// The caches in front of the subscription directory and the progress store.
pub(super) struct HotCopies {
    /// The subscription cache, which catalog changes clear.
    pub(super) subscription_cache: Option<SubscriptionCache>,
    /// The directory the services ask (through the cache, if any).
    pub(super) subscriptions: Arc<dyn SubscriptionDirectory>,
    /// The progress store the services use (through Redis, if any).
    pub(super) progress: Arc<dyn ProgressStore>,
    /// The Redis hot copy in front of the durable progress, if any.
    pub(super) hot_progress: Option<Arc<RedisProgressCache<Arc<dyn ProgressStore>>>>,
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
    let (subscriptions, hot_progress) = match (redis, &subscription_cache) {
        (Some(redis), Some(cache)) => (
            cache.port(),
            Some(Arc::new(RedisProgressCache::with_layout(
                redis.clone(),
                durable_progress.clone(),
                Duration::from_secs(settings.redis.progress_ttl_seconds),
                layout,
            ))),
        ),
        (None, Some(cache)) => (cache.port(), None),
        _ => (source, None),
    };
    let progress: Arc<dyn ProgressStore> = match &hot_progress {
        Some(hot) => hot.clone(),
        None => durable_progress,
    };
    Ok(HotCopies { subscription_cache, subscriptions, progress, hot_progress })
}

/// The write-behind queues in front of PostgreSQL.
pub(super) struct Queues<'a> {
    pub(super) progress: Option<&'a Arc<WriteBehindProgress<PgProgressStore>>>,
    pub(super) sessions: Option<&'a Arc<WriteBehindSessions<PgSessionStore>>>,
    pub(super) outbox: Option<&'a Arc<WriteBehindOutbox>>,
}

/// With Redis and PostgreSQL (and `redis.pending_writes`): every
/// acknowledged progress update, queued heartbeat and progress event is held
/// in Redis until its flush, and each instance writes what another held but
/// did not flush within `redis.rescue_after_ms` (it died), refreshing the
/// progress hot copies it wrote.
pub(super) fn hold_pending_writes(
    settings: &Settings,
    redis: Option<&RedisConnection>,
    Queues { progress, sessions, outbox }: Queues<'_>,
    hot_progress: Option<&Arc<RedisProgressCache<Arc<dyn ProgressStore>>>>,
) {
    let Some(redis) = redis.filter(|_| settings.redis.pending_writes) else { return };
    let pending: Arc<dyn PendingWrites> = Arc::new(RedisPendingWrites::start(redis.clone()));
    let after = Duration::from_millis(settings.redis.rescue_after_ms.max(100));
    if let Some(progress) = progress {
        progress.hold_in(pending.clone(), after);
        if let Some(hot) = hot_progress {
            let hot = Arc::downgrade(hot);
            progress.on_rescued(Arc::new(move |batch| {
                if let Some(hot) = hot.upgrade() {
                    hot.refresh(batch);
                }
            }));
        }
    }
    if let Some(sessions) = sessions {
        sessions.hold_in(pending.clone(), after);
    }
    if let Some(outbox) = outbox {
        outbox.hold_in(pending, after);
    }
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
