use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use moka::Expiry;

use crate::domain::UserId;
use crate::ports::{CacheError, CacheLookup, StreamCacheKey, UrlCache};

#[derive(Clone)]
struct Timed<T> {
    value: T,
    ttl: Duration,
}

struct PerEntryTtl;

impl<K, T> Expiry<K, Timed<T>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &K, value: &Timed<T>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &Timed<T>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// An in-process [`UrlCache`] on moka: bounded by entry count, TTL per entry.
///
/// Generations live in a separate map that is bounded only by time, never by
/// capacity: evicting a generation early while older entries survive would
/// bring invalidated URLs back.
#[derive(Clone)]
pub struct MokaUrlCache {
    entries: Cache<StreamCacheKey, Timed<Arc<[u8]>>>,
    generations: Cache<UserId, Timed<u64>>,
}

impl std::fmt::Debug for MokaUrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaUrlCache")
            .field("entries", &self.entries.entry_count())
            .field("generations", &self.generations.entry_count())
            .finish()
    }
}

impl MokaUrlCache {
    /// A cache holding at most `max_entries` URLs.
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: Cache::builder().max_capacity(max_entries).expire_after(PerEntryTtl).build(),
            generations: Cache::builder().expire_after(PerEntryTtl).build(),
        }
    }
}

#[async_trait]
impl UrlCache for MokaUrlCache {
    async fn get(&self, key: &StreamCacheKey) -> Result<CacheLookup, CacheError> {
        Ok(CacheLookup {
            entry: self.entries.get(key).map(|timed| timed.value.to_vec()),
            generation: self.generations.get(key.user()).map_or(0, |timed| timed.value),
        })
    }

    async fn set(&self, key: &StreamCacheKey, entry: Vec<u8>, ttl: Duration) -> Result<(), CacheError> {
        self.entries.insert(key.clone(), Timed { value: entry.into(), ttl });
        Ok(())
    }

    async fn delete(&self, key: &StreamCacheKey) -> Result<(), CacheError> {
        self.entries.invalidate(key);
        Ok(())
    }

    async fn set_generation(&self, user: &UserId, generation: u64, ttl: Duration) -> Result<(), CacheError> {
        self.generations.insert(user.clone(), Timed { value: generation, ttl });
        Ok(())
    }
}
