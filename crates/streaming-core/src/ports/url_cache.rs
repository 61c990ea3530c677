use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{MediaId, UserId};

/// Why the cache could not answer. The core treats every cache error as a
/// miss (fail-open) and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The cache is down, too slow or its circuit breaker is open.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

/// The key of one cached stream URL: the seed's `{prefix}stream:{userId}:{mediaId}`,
/// with its parts kept so that an adapter can lay keys out its own way (a
/// cluster hash tag on the user, for instance).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamCacheKey {
    user: UserId,
    media: MediaId,
    rendered: String,
}

impl StreamCacheKey {
    /// `{prefix}stream:{user}:{media}`.
    pub fn new(prefix: &str, user: &UserId, media: &MediaId) -> Self {
        let rendered = format!("{prefix}stream:{user}:{media}");
        Self { user: user.clone(), media: media.clone(), rendered }
    }

    /// The user part.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The media part.
    pub fn media(&self) -> &MediaId {
        &self.media
    }

    /// The canonical rendering, also bound into each entry's encryption.
    pub fn as_str(&self) -> &str {
        &self.rendered
    }
}

/// What a cache read found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheLookup {
    /// The stored blob, if a live one exists.
    pub entry: Option<Vec<u8>>,
    /// The user's current generation; `0` if none was ever set or it expired.
    pub generation: u64,
}

/// A store of opaque, already-encrypted blobs with per-entry TTLs, plus a
/// per-user generation number that makes "forget all of this user's URLs" O(1).
///
/// The cache never sees plaintext URLs: the core encrypts before `set` and
/// decrypts after `get`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait UrlCache: Send + Sync {
    /// The live blob under `key` (if any) and the current generation of the
    /// key's user, read together so a networked cache needs one round trip.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`]; the core then treats the read as a miss.
    async fn get(&self, key: &StreamCacheKey) -> Result<CacheLookup, CacheError>;

    /// Stores `entry` under `key` for `ttl`, replacing what was there.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`]; the core then serves the URL uncached.
    async fn set(&self, key: &StreamCacheKey, entry: Vec<u8>, ttl: Duration) -> Result<(), CacheError>;

    /// Removes the entry under `key`, if any.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`].
    async fn delete(&self, key: &StreamCacheKey) -> Result<(), CacheError>;

    /// Replaces `user`'s generation with `generation` (never `0`), kept for at
    /// least `ttl`, which the core makes at least as long as any entry's TTL.
    /// Entries sealed under another generation then read as misses. The core
    /// picks a fresh random value each time, so a generation that expired and
    /// came back as `0` can never make an older entry valid again.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`].
    async fn set_generation(&self, user: &UserId, generation: u64, ttl: Duration) -> Result<(), CacheError>;
}
