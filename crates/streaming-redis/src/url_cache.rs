use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface};
use fred::types::Value;
use streaming_core::domain::UserId;
use streaming_core::ports::{CacheError, CacheLookup, StreamCacheKey, UrlCache};

use crate::connection::{RedisConnection, RedisError};

/// [`UrlCache`] on Redis. Entry keys are the seed's `{prefix}stream:{user}:{media}`
/// with the user as hash tag; the user's generation lives at
/// `{prefix}stream-gen:{user}`, in the same slot, read with the entry in one `MGET`.
#[derive(Debug, Clone)]
pub struct RedisUrlCache {
    redis: RedisConnection,
}

impl RedisUrlCache {
    /// A cache on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    pub(crate) fn entry_key(&self, key: &StreamCacheKey) -> String {
        format!("{}stream:{{{}}}:{}", self.redis.prefix(), key.user(), key.media())
    }

    pub(crate) fn generation_key(&self, user: &UserId) -> String {
        format!("{}stream-gen:{{{user}}}", self.redis.prefix())
    }
}

fn unavailable(error: RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl UrlCache for RedisUrlCache {
    async fn get(&self, key: &StreamCacheKey) -> Result<CacheLookup, CacheError> {
        let keys = vec![self.entry_key(key), self.generation_key(key.user())];
        let pool = self.redis.pool();
        let values: Vec<Value> = self.redis.guarded("MGET", || pool.mget(keys)).await.map_err(unavailable)?;
        let mut values = values.into_iter();
        let entry = match values.next() {
            Some(Value::Bytes(bytes)) => Some(bytes.to_vec()),
            Some(Value::String(text)) => Some(text.as_bytes().to_vec()),
            _ => None,
        };
        // A missing or unreadable generation reads as 0: entries sealed under
        // another generation are then misses, never wrong hits.
        let generation = values.next().and_then(|v| v.as_u64()).unwrap_or(0);
        Ok(CacheLookup { entry, generation })
    }

    async fn set(&self, key: &StreamCacheKey, entry: Vec<u8>, ttl: Duration) -> Result<(), CacheError> {
        let pool = self.redis.pool();
        let key = self.entry_key(key);
        self.redis
            .guarded("SET", || pool.set::<(), _, _>(key, entry, Some(Expiration::PX(millis(ttl))), None, false))
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &StreamCacheKey) -> Result<(), CacheError> {
        let pool = self.redis.pool();
        let key = self.entry_key(key);
        self.redis.guarded("DEL", || pool.del::<i64, _>(key)).await.map(drop).map_err(unavailable)
    }

    async fn set_generation(&self, user: &UserId, generation: u64, ttl: Duration) -> Result<(), CacheError> {
        let pool = self.redis.pool();
        let key = self.generation_key(user);
        self.redis
            .guarded("SET", || {
                pool.set::<(), _, _>(key, generation.to_string(), Some(Expiration::PX(millis(ttl))), None, false)
            })
            .await
            .map_err(unavailable)
    }
}
