use std::time::Duration;

use async_trait::async_trait;

use crate::domain::UserId;
use crate::ports::{CacheError, CacheLookup, StreamCacheKey, UrlCache};

/// A [`UrlCache`] that keeps nothing: every request presigns a fresh URL.
///
/// For deployments that want a new URL per request, and for measuring the
/// uncached path. It is deliberately not a cache, so it is not run through
/// the cache contract suite (a read after a write finds nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUrlCache;

#[async_trait]
impl UrlCache for NoUrlCache {
    async fn get(&self, _key: &StreamCacheKey) -> Result<CacheLookup, CacheError> {
        Ok(CacheLookup::default())
    }

    async fn set(&self, _key: &StreamCacheKey, _entry: Vec<u8>, _ttl: Duration) -> Result<(), CacheError> {
        Ok(())
    }

    async fn delete(&self, _key: &StreamCacheKey) -> Result<(), CacheError> {
        Ok(())
    }

    async fn set_generation(&self, _user: &UserId, _generation: u64, _ttl: Duration) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MediaId;

    #[tokio::test]
    async fn nothing_written_is_read_back() {
        let cache = NoUrlCache;
        let user = UserId::try_from("user-1").unwrap();
        let media = MediaId::parse_ulid("01JG0DEM0TRACK000000000001").unwrap();
        let key = StreamCacheKey::new("", &user, &media);
        cache.set(&key, vec![1, 2, 3], Duration::from_secs(60)).await.unwrap();
        cache.set_generation(&user, 7, Duration::from_secs(60)).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap(), CacheLookup { entry: None, generation: 0 });
        cache.delete(&key).await.unwrap();
    }
}
