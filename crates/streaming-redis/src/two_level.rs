//! A two-level [`UrlCache`]: moka in process in front of Redis, so a hit does
//! not always cross the network. Invalidations go to every instance through
//! the [`Broadcast`] (topic `url-cache`) and each drops its in-process copy
//! when the message arrives (milliseconds); if a message is lost (Redis
//! down, a reconnect), the in-process TTL bounds how long a stale copy can
//! be served.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use fred::types::scripts::Script;
use fred::types::Value;
use moka::sync::Cache;
use streaming_core::domain::UserId;
use streaming_core::ports::{Broadcast, CacheError, CacheLookup, StreamCacheKey, UrlCache};
use tracing::warn;

use crate::connection::RedisConnection;
use crate::url_cache::RedisUrlCache;

/// Settings of the in-process level.
#[derive(Debug, Clone, Copy)]
pub struct LocalLevel {
    /// Longest time an in-process copy is served without asking Redis (default 5 s):
    /// the bound on staleness when an invalidation message is lost.
    pub ttl: Duration,
    /// Most bytes of entries kept in process (keys, sealed entries and a
    /// fixed overhead each; default 32 MiB).
    pub max_bytes: u64,
}

impl Default for LocalLevel {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(5), max_bytes: 32 << 20 }
    }
}

#[derive(Clone)]
struct Local {
    blob: Arc<[u8]>,
    ttl: Duration,
}

struct LocalTtl;

impl moka::Expiry<String, Local> for LocalTtl {
    fn expire_after_create(&self, _: &String, value: &Local, _: std::time::Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// moka in front of [`RedisUrlCache`], with invalidations broadcast over pub/sub.
pub struct TwoLevelUrlCache {
    redis: RedisConnection,
    remote: RedisUrlCache,
    read_script: Script,
    entries: Cache<String, Local>,
    generations: Cache<UserId, u64>,
    level: LocalLevel,
    peers: Arc<dyn Broadcast>,
}

/// The broadcast topic of URL cache invalidations (`entry <key>`, `user <id>`).
const TOPIC: &str = "url-cache";

impl std::fmt::Debug for TwoLevelUrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoLevelUrlCache").field("level", &self.level).finish_non_exhaustive()
    }
}

impl TwoLevelUrlCache {
    /// The cache, listening to the invalidations `peers` carries (for as
    /// long as the cache lives).
    pub fn start(redis: RedisConnection, level: LocalLevel, peers: Arc<dyn Broadcast>) -> Arc<Self> {
        let cache = Arc::new(Self {
            remote: RedisUrlCache::new(redis.clone()),
            read_script: Script::from_lua(include_str!("read_entry.lua")),
            entries: Cache::builder()
                .max_capacity(level.max_bytes)
                .weigher(|key: &String, local: &Local| {
                    let bytes = u32::try_from(key.len() + local.blob.len()).unwrap_or(u32::MAX);
                    bytes.saturating_add(streaming_core::adapters::ENTRY_OVERHEAD_BYTES)
                })
                .expire_after(LocalTtl)
                .build(),
            generations: Cache::builder().time_to_live(level.ttl).build(),
            level,
            redis,
            peers: peers.clone(),
        });
        let weak: Weak<Self> = Arc::downgrade(&cache);
        peers.listen(
            TOPIC,
            Arc::new(move |message: &str| {
                if let Some(cache) = weak.upgrade() {
                    cache.apply_invalidation(message);
                }
            }),
        );
        cache
    }

    fn apply_invalidation(&self, message: &str) {
        match message.split_once(' ') {
            Some(("entry", key)) => self.entries.invalidate(key),
            Some(("user", user)) => {
                if let Ok(user) = UserId::try_from(user) {
                    self.generations.invalidate(&user);
                }
            }
            _ => {}
        }
    }

    async fn publish(&self, message: String) {
        if let Err(error) = self.peers.publish(TOPIC, &message).await {
            warn!(%error, "invalidation not broadcast; other instances catch up within the local TTL");
        }
    }
}

#[async_trait]
impl UrlCache for TwoLevelUrlCache {
    async fn get(&self, key: &StreamCacheKey) -> Result<CacheLookup, CacheError> {
        if let (Some(local), Some(generation)) = (self.entries.get(key.as_str()), self.generations.get(key.user())) {
            return Ok(CacheLookup { entry: Some(local.blob.to_vec()), generation });
        }
        let keys = vec![self.remote.entry_key(key), self.remote.generation_key(key.user())];
        let client = self.redis.pool().next();
        let values: Vec<Value> = self
            .redis
            .guarded("EVALSHA", || self.read_script.evalsha_with_reload(client, keys, Vec::<Value>::new()))
            .await
            .map_err(|e| CacheError::Unavailable(e.to_string()))?;
        let mut values = values.into_iter();
        let entry = values.next().and_then(|v| v.into_bytes()).map(|b| b.to_vec());
        let generation = values.next().and_then(|v| v.as_u64()).unwrap_or(0);
        let remaining_ms = values.next().and_then(|v| v.as_i64()).unwrap_or(-2);
        self.generations.insert(key.user().clone(), generation);
        if let Some(blob) = &entry {
            if remaining_ms > 0 {
                let ttl = self.level.ttl.min(Duration::from_millis(remaining_ms as u64));
                self.entries.insert(key.as_str().to_owned(), Local { blob: blob.as_slice().into(), ttl });
            }
        }
        Ok(CacheLookup { entry, generation })
    }

    async fn set(&self, key: &StreamCacheKey, entry: Vec<u8>, ttl: Duration) -> Result<(), CacheError> {
        let local = Local { blob: entry.as_slice().into(), ttl: self.level.ttl.min(ttl) };
        self.remote.set(key, entry, ttl).await?;
        self.entries.insert(key.as_str().to_owned(), local);
        Ok(())
    }

    async fn delete(&self, key: &StreamCacheKey) -> Result<(), CacheError> {
        self.entries.invalidate(key.as_str());
        let result = self.remote.delete(key).await;
        self.publish(format!("entry {}", key.as_str())).await;
        result
    }

    async fn set_generation(&self, user: &UserId, generation: u64, ttl: Duration) -> Result<(), CacheError> {
        self.generations.invalidate(user);
        let result = self.remote.set_generation(user, generation, ttl).await;
        self.publish(format!("user {user}")).await;
        result
    }
}
