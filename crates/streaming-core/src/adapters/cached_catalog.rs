//! A read-through, in-process cache in front of a [`MediaCatalog`].
//!
//! Every playback request asks the catalog for the media and the viewer;
//! against a database that is two round trips per request. This cache keeps
//! the answers for a short TTL (bounded by entry count), so a busy movie
//! costs one lookup per TTL per instance. Errors are never cached. Changes
//! reach it two ways: explicitly ([`CachedCatalog::invalidate_media`],
//! [`CachedCatalog::invalidate_user`], called by whoever applies catalog
//! events) and, at the latest, when the TTL runs out.
//!
//! An answer read from the catalog while an invalidation happened is
//! returned but not kept, so an invalidation is never undone by a read that
//! started before it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use crate::domain::{Media, MediaId, UserId, Viewer};
use crate::ports::{CatalogError, MediaCatalog};

/// Hits and misses (metrics).
#[derive(Debug, Default)]
pub struct CachedCatalogStats {
    /// Answers served from the cache.
    pub hits: AtomicU64,
    /// Answers read from the catalog behind.
    pub misses: AtomicU64,
}

/// [`MediaCatalog`] with a TTL cache in front of `C`.
pub struct CachedCatalog<C> {
    inner: C,
    media: Cache<MediaId, Option<Media>>,
    /// By user and, where a grant was asked for, the media: one entry per
    /// user serves every public or owned item.
    viewers: Cache<(UserId, Option<MediaId>), Viewer>,
    /// Bumped by every invalidation; a read that saw it change is not cached.
    epoch: AtomicU64,
    stats: CachedCatalogStats,
}

impl<C> std::fmt::Debug for CachedCatalog<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCatalog")
            .field("media", &self.media.entry_count())
            .field("viewers", &self.viewers.entry_count())
            .finish_non_exhaustive()
    }
}

impl<C: MediaCatalog> CachedCatalog<C> {
    /// Caches `inner`'s answers for `ttl`, at most `max_entries` of each kind.
    pub fn new(inner: C, ttl: Duration, max_entries: u64) -> Self {
        Self {
            inner,
            media: Cache::builder().max_capacity(max_entries).time_to_live(ttl).build(),
            viewers: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            epoch: AtomicU64::new(0),
            stats: CachedCatalogStats::default(),
        }
    }

    /// The catalog behind the cache.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Hit and miss counters.
    pub fn stats(&self) -> &CachedCatalogStats {
        &self.stats
    }

    /// Forgets what is cached about `media` (it changed or was deleted).
    pub fn invalidate_media(&self, media: &MediaId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.media.invalidate(media);
        let media = media.clone();
        // Grants on the media live in the viewer answers.
        let _ = self.viewers.invalidate_entries_if(move |(_, m), _| m.as_ref() == Some(&media));
    }

    /// Forgets what is cached about `user` (status or grants changed).
    pub fn invalidate_user(&self, user: &UserId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let user = user.clone();
        let _ = self.viewers.invalidate_entries_if(move |(u, _), _| *u == user);
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.media.invalidate_all();
        self.viewers.invalidate_all();
    }
}

impl<C: MediaCatalog> crate::ports::CatalogCache for CachedCatalog<C> {
    fn forget_media(&self, media: &MediaId) {
        self.invalidate_media(media);
    }

    fn forget_user(&self, user: &UserId) {
        self.invalidate_user(user);
    }
}

#[async_trait]
impl<C: MediaCatalog> MediaCatalog for CachedCatalog<C> {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        if let Some(cached) = self.media.get(id) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(cached);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Acquire);
        let media = self.inner.media(id).await?;
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.media.insert(id.clone(), media.clone());
        }
        Ok(media)
    }

    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        let key = (user.clone(), grant_on.cloned());
        if let Some(cached) = self.viewers.get(&key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(cached);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Acquire);
        let viewer = self.inner.viewer(user, grant_on).await?;
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.viewers.insert(key, viewer);
        }
        Ok(viewer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::MemoryCatalog;
    use crate::domain::{MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserStatus, Visibility};
    use crate::ports::MockMediaCatalog;

    fn movie(id: &MediaId, status: MediaStatus) -> Media {
        Media {
            id: id.clone(),
            kind: MediaKind::Movie,
            owner: None,
            status,
            object_key: ObjectKey::try_from(format!("movies/{id}")).unwrap(),
            content_type: "application/vnd.apple.mpegurl".into(),
            size_bytes: 0,
            duration_seconds: Some(60.0),
            visibility: Visibility::Public,
            required_features: PlanFeatures::default(),
        }
    }

    fn ids() -> (MediaId, UserId) {
        ("7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(), "viewer-1".parse().unwrap())
    }

    #[tokio::test]
    async fn answers_are_read_once_until_invalidated() {
        let (id, user) = ids();
        let memory = Arc::new(MemoryCatalog::new());
        memory.upsert(movie(&id, MediaStatus::Ready));
        let cached = CachedCatalog::new(Arc::clone(&memory), Duration::from_secs(60), 100);

        assert_eq!(cached.media(&id).await.unwrap().unwrap().status, MediaStatus::Ready);
        memory.upsert(movie(&id, MediaStatus::Deleted));
        assert_eq!(cached.media(&id).await.unwrap().unwrap().status, MediaStatus::Ready, "served from the cache");
        cached.invalidate_media(&id);
        assert_eq!(cached.media(&id).await.unwrap().unwrap().status, MediaStatus::Deleted);

        assert_eq!(cached.viewer(&user, Some(&id)).await.unwrap().status, UserStatus::Active);
        assert_eq!(cached.viewer(&user, None).await.unwrap().status, UserStatus::Active);
        memory.set_user_status(&user, UserStatus::Suspended);
        assert_eq!(cached.viewer(&user, Some(&id)).await.unwrap().status, UserStatus::Active, "served from the cache");
        assert_eq!(cached.viewer(&user, None).await.unwrap().status, UserStatus::Active, "both answers");
        cached.invalidate_user(&user);
        assert_eq!(cached.viewer(&user, Some(&id)).await.unwrap().status, UserStatus::Suspended);
        assert_eq!(cached.viewer(&user, None).await.unwrap().status, UserStatus::Suspended);
        assert_eq!(cached.stats().hits.load(Ordering::Relaxed), 3);
        assert_eq!(cached.stats().misses.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn a_changed_media_forgets_its_grants_but_not_the_users_status() {
        let (id, user) = ids();
        let memory = Arc::new(MemoryCatalog::new());
        memory.upsert(movie(&id, MediaStatus::Ready));
        let cached = CachedCatalog::new(Arc::clone(&memory), Duration::from_secs(60), 100);
        cached.viewer(&user, Some(&id)).await.unwrap();
        cached.viewer(&user, None).await.unwrap();
        cached.invalidate_media(&id);
        cached.viewer(&user, Some(&id)).await.unwrap();
        cached.viewer(&user, None).await.unwrap();
        assert_eq!(cached.stats().misses.load(Ordering::Relaxed), 3, "only the grant was asked again");
    }

    #[tokio::test]
    async fn unknown_media_is_cached_as_unknown_and_expires() {
        let (id, _) = ids();
        let memory = Arc::new(MemoryCatalog::new());
        let cached = CachedCatalog::new(Arc::clone(&memory), Duration::from_millis(50), 100);
        assert_eq!(cached.media(&id).await.unwrap(), None);
        memory.upsert(movie(&id, MediaStatus::Ready));
        assert_eq!(cached.media(&id).await.unwrap(), None, "the negative answer is cached too");
        std::thread::sleep(Duration::from_millis(80));
        assert!(cached.media(&id).await.unwrap().is_some(), "and expires with the TTL");
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let (id, _) = ids();
        let mut mock = MockMediaCatalog::new();
        let mut calls = 0;
        mock.expect_media().times(2).returning(move |id| {
            calls += 1;
            if calls == 1 {
                Err(CatalogError::Unavailable("down".into()))
            } else {
                Ok(Some(movie(id, MediaStatus::Ready)))
            }
        });
        let cached = CachedCatalog::new(mock, Duration::from_secs(60), 100);
        assert!(cached.media(&id).await.is_err());
        assert!(cached.media(&id).await.unwrap().is_some(), "the next call asks again");
        assert!(cached.media(&id).await.unwrap().is_some(), "and that answer is kept");
    }

    /// A catalog whose first answer is held back until the test lets it go.
    struct Gated {
        memory: Arc<MemoryCatalog>,
        gate: tokio::sync::Semaphore,
    }

    #[async_trait]
    impl MediaCatalog for Gated {
        async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
            let answer = self.memory.media(id).await;
            let _permit = self.gate.acquire().await.unwrap();
            answer
        }

        async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
            self.memory.viewer(user, grant_on).await
        }
    }

    #[tokio::test]
    async fn a_read_overtaken_by_an_invalidation_is_not_kept() {
        let (id, _) = ids();
        let memory = Arc::new(MemoryCatalog::new());
        memory.upsert(movie(&id, MediaStatus::Ready));
        let gated = Gated { memory: Arc::clone(&memory), gate: tokio::sync::Semaphore::new(0) };
        let cached = Arc::new(CachedCatalog::new(gated, Duration::from_secs(60), 100));
        let reader = tokio::spawn({
            let cached = Arc::clone(&cached);
            let id = id.clone();
            async move { cached.media(&id).await }
        });
        tokio::task::yield_now().await;
        // The media is deleted while the read (which saw it Ready) is in flight.
        memory.upsert(movie(&id, MediaStatus::Deleted));
        cached.invalidate_media(&id);
        cached.inner().gate.add_permits(10);
        assert_eq!(reader.await.unwrap().unwrap().unwrap().status, MediaStatus::Ready);
        assert_eq!(
            cached.media(&id).await.unwrap().unwrap().status,
            MediaStatus::Deleted,
            "the old answer was not kept"
        );
    }
}
