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

/// What one cached URL costs beyond its key and sealed bytes (moka's entry,
/// the `Arc`, the key's own allocation), for the byte bound.
pub const ENTRY_OVERHEAD_BYTES: u32 = 160;

/// An in-process [`UrlCache`] on moka: bounded by the bytes it holds, TTL per entry.
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
    /// A cache holding at most about `max_bytes` of entries (keys, sealed
    /// entries and [`ENTRY_OVERHEAD_BYTES`] each).
    pub fn new(max_bytes: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &StreamCacheKey, timed: &Timed<Arc<[u8]>>| {
                    let bytes = key.user().as_str().len() + key.media().as_str().len() + timed.value.len();
                    u32::try_from(bytes).unwrap_or(u32::MAX).saturating_add(ENTRY_OVERHEAD_BYTES)
                })
                .expire_after(PerEntryTtl)
                .build(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cache_holds_no_more_bytes_than_its_bound() {
        let cache = MokaUrlCache::new(64 * 1024);
        let user: UserId = "viewer".parse().unwrap();
        for i in 0..200_u32 {
            let media: crate::domain::MediaId = format!("01HXKZ3Y8Q4N7W2M5V6B9C{i:04}").parse().unwrap();
            let key = StreamCacheKey::new("", &user, &media);
            cache.set(&key, vec![7; 1024], Duration::from_secs(60)).await.unwrap();
        }
        cache.entries.run_pending_tasks();
        let held = cache.entries.weighted_size();
        assert!(held <= 64 * 1024, "{held} bytes held");
        // 1 024 sealed bytes + 32 of ids + the overhead each: about 50 fit.
        assert!((40..=60).contains(&cache.entries.entry_count()), "{}", cache.entries.entry_count());
    }
}
