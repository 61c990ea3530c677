//! Applying catalog changes — upstream events, and the same changes made by
//! operators through the internal admin API: the read model first, then
//! every cache that could still answer from before the change. Each step is
//! idempotent, so a redelivered event or a repeated request changes nothing
//! more.
//!
//! | event | read model | caches invalidated | reason counted |
//! |---|---|---|---|
//! | `media.upserted` | upsert (if newer) | catalog answers of the media; the owner's URL | `status_change` |
//! | `media.status_changed` | status (if newer) | the same | `status_change` |
//! | `media.deleted` | status `deleted` (if newer) | the same | `deletion` |
//! | `user.suspended` | user status (if newer) | the user's catalog answers; all the user's URLs | `status_change` |
//! | `user.logout_all` | the user's open sessions closed (manifest grants die with them) | all the user's URLs | `logout` |
//! | `subscription.changed` | — | the cached subscription; all the user's URLs | `subscription` |
//! | grant given or taken back (admin API) | the grant | the user's URL of the media | `grant` |
//! | a cached URL dropped by an operator (admin API) | — | that URL, or all the user's | `operator` |
//!
//! Other viewers' URLs of a changed media item are not looked up (the cache
//! is keyed by user); none is served after the change anyway: every request
//! checks access against the catalog before reading the cache, and an entry
//! is served only if it was signed for the item as it is now (its object,
//! content type and size).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::domain::{CatalogChange, CatalogEvent, MediaId, UserId};
use crate::ports::{
    ApplyError, Broadcast, CatalogCache, CatalogEventHandler, CatalogWriter, MediaCatalog, SubscriptionCache,
};
use crate::telemetry::{self, InvalidationReason};
use crate::{Dependency, PlaybackService, StreamingService};

/// The broadcast topic of catalog cache invalidations (`media <id>`, `user <id>`).
const CATALOG_TOPIC: &str = "catalog-changes";

/// `stream_cache_invalidations_total{reason}`.
#[derive(Debug, Default)]
pub struct InvalidationStats {
    /// Media deleted.
    pub deletion: AtomicU64,
    /// Media changed or its status changed; user suspended or reinstated.
    pub status_change: AtomicU64,
    /// User logged out everywhere.
    pub logout: AtomicU64,
    /// Subscription changed.
    pub subscription: AtomicU64,
    /// A grant was given or taken back.
    pub grant: AtomicU64,
    /// An operator dropped cached URLs.
    pub operator: AtomicU64,
}

fn failed(dependency: Dependency) -> impl FnOnce(String) -> ApplyError {
    move |message| ApplyError { dependency, message }
}

/// What catalog changes are applied to.
#[derive(Clone)]
pub struct ChangePorts {
    /// The read model's writer.
    pub writer: Arc<dyn CatalogWriter>,
    /// The read model as it is stored now (no in-process cache in front).
    pub catalog: Arc<dyn MediaCatalog>,
    /// The in-process cache of catalog answers, if there is one.
    pub catalog_cache: Option<Arc<dyn CatalogCache>>,
    /// The subscription cache, if there is one.
    pub subscription_cache: Option<Arc<dyn SubscriptionCache>>,
    /// The URL issuing path, whose cache is cleared.
    pub streaming: Arc<dyn StreamingService>,
    /// Playback, whose sessions a logout ends (`None` where only tracks are played).
    pub playback: Option<Arc<PlaybackService>>,
    /// The other instances, told which catalog answers to drop from their
    /// in-process caches (`None`: one instance, or none with such a cache).
    pub peers: Option<Arc<dyn Broadcast>>,
}

impl ChangePorts {
    /// The ports of the common case: a catalog that is its own writer, no
    /// caches in front of it, tracks only. Set the other fields for more.
    pub fn new<C: MediaCatalog + CatalogWriter + 'static>(
        catalog: Arc<C>,
        streaming: Arc<dyn StreamingService>,
    ) -> Self {
        Self {
            writer: catalog.clone(),
            catalog,
            catalog_cache: None,
            subscription_cache: None,
            streaming,
            playback: None,
            peers: None,
        }
    }
}

impl ChangePorts {
    /// Whether this instance keeps answers a catalog change makes stale
    /// (catalog answers, which manifests exist), which the other instances'
    /// changes must clear too.
    fn holds_catalog_answers(&self) -> bool {
        self.catalog_cache.is_some() || self.playback.is_some()
    }
}

impl fmt::Debug for ChangePorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePorts").finish_non_exhaustive()
    }
}

/// Applies catalog changes; the consumer's handler and the admin use cases' core.
pub struct CatalogChanges {
    ports: ChangePorts,
    stats: Arc<InvalidationStats>,
}

impl fmt::Debug for CatalogChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogChanges").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl CatalogChanges {
    /// Changes applied to `ports`. With `peers`, the catalog answers the
    /// other instances drop are dropped from this one's cache too.
    pub fn new(ports: ChangePorts) -> Self {
        if let (Some(peers), true) = (&ports.peers, ports.holds_catalog_answers()) {
            let (cache, playback) = (ports.catalog_cache.clone(), ports.playback.clone());
            peers.listen(
                CATALOG_TOPIC,
                Arc::new(move |message: &str| match message.split_once(' ') {
                    Some(("media", id)) => {
                        if let (Some(cache), Ok(id)) = (&cache, id.parse::<MediaId>()) {
                            cache.forget_media(&id);
                        }
                        if let Some(playback) = &playback {
                            playback.forget_manifests();
                        }
                    }
                    Some(("user", id)) => {
                        if let (Some(cache), Ok(id)) = (&cache, UserId::try_from(id)) {
                            cache.forget_user(&id);
                        }
                    }
                    _ => {}
                }),
            );
        }
        Self { ports, stats: Arc::default() }
    }

    /// Tells the other instances to drop what `message` names from their
    /// catalog caches. A lost message leaves their copies to their TTL.
    async fn tell_peers(&self, message: String) {
        if let (Some(peers), true) = (&self.ports.peers, self.ports.holds_catalog_answers()) {
            if let Err(error) = peers.publish(CATALOG_TOPIC, &message).await {
                tracing::warn!(%error, "a catalog change was not told to the other instances; their caches expire within the TTL");
            }
        }
    }

    /// The invalidation counters.
    pub fn stats(&self) -> Arc<InvalidationStats> {
        Arc::clone(&self.stats)
    }

    fn count(&self, reason: InvalidationReason) {
        let counter = match reason {
            InvalidationReason::Deletion => &self.stats.deletion,
            InvalidationReason::StatusChange => &self.stats.status_change,
            InvalidationReason::Logout => &self.stats.logout,
            InvalidationReason::Subscription => &self.stats.subscription,
            InvalidationReason::Grant => &self.stats.grant,
            InvalidationReason::Operator => &self.stats.operator,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        telemetry::invalidated(reason);
    }

    async fn forget_media(&self, media: &MediaId, reason: InvalidationReason) -> Result<(), ApplyError> {
        if let Some(cache) = &self.ports.catalog_cache {
            cache.forget_media(media);
        }
        if let Some(playback) = &self.ports.playback {
            playback.forget_manifests();
        }
        self.tell_peers(format!("media {media}")).await;
        // The owner's URL, read as stored now.
        let owner = self
            .ports
            .catalog
            .media(media)
            .await
            .map_err(|e| e.to_string())
            .map_err(failed(Dependency::Catalog))?
            .and_then(|m| m.owner);
        if let Some(owner) = owner {
            self.forget_url(media, &owner, reason).await?;
        } else {
            self.count(reason);
        }
        Ok(())
    }

    async fn forget_catalog_user(&self, user: &UserId) {
        if let Some(cache) = &self.ports.catalog_cache {
            cache.forget_user(user);
        }
        self.tell_peers(format!("user {user}")).await;
    }

    /// Drops the cached URL of `media` for `user`, counted under `reason`.
    ///
    /// # Errors
    /// [`ApplyError`] naming the cache when it cannot be reached.
    pub async fn forget_url(
        &self,
        media: &MediaId,
        user: &UserId,
        reason: InvalidationReason,
    ) -> Result<(), ApplyError> {
        self.ports
            .streaming
            .invalidate(media, user)
            .await
            .map_err(|e| e.to_string())
            .map_err(failed(Dependency::Cache))?;
        self.count(reason);
        Ok(())
    }

    /// Drops every cached URL of `user`, counted under `reason`.
    ///
    /// # Errors
    /// [`ApplyError`] naming the cache when it cannot be reached.
    pub async fn forget_user(&self, user: &UserId, reason: InvalidationReason) -> Result<(), ApplyError> {
        self.ports
            .streaming
            .invalidate_user(user)
            .await
            .map_err(|e| e.to_string())
            .map_err(failed(Dependency::Cache))?;
        self.count(reason);
        Ok(())
    }

    /// Applies `change`, which happened at `at`, to the read model and then
    /// to every cache; returns whether the read model took it (a newer change
    /// of the same item wins; the caches are cleared either way).
    ///
    /// # Errors
    /// [`ApplyError`] naming the dependency that failed; applying again is safe.
    pub async fn apply(&self, change: &CatalogChange, at: OffsetDateTime) -> Result<bool, ApplyError> {
        let applied = self
            .ports
            .writer
            .apply(change, at)
            .instrument(tracing::debug_span!("catalog.apply"))
            .await
            .map_err(|e| e.to_string())
            .map_err(failed(Dependency::Catalog))?;
        match change {
            CatalogChange::MediaUpserted(media) => {
                self.forget_media(&media.id, InvalidationReason::StatusChange).await?
            }
            CatalogChange::MediaStatusChanged { media, .. } => {
                self.forget_media(media, InvalidationReason::StatusChange).await?;
            }
            CatalogChange::MediaDeleted { media } => self.forget_media(media, InvalidationReason::Deletion).await?,
            CatalogChange::UserStatusChanged { user, .. } => {
                self.forget_catalog_user(user).await;
                self.forget_user(user, InvalidationReason::StatusChange).await?;
            }
            CatalogChange::UserLoggedOutEverywhere { user } => {
                // Their streams end too: manifest grants die with their sessions.
                if let Some(playback) = &self.ports.playback {
                    playback
                        .end_sessions_of(user)
                        .await
                        .map_err(|e| e.to_string())
                        .map_err(failed(Dependency::Sessions))?;
                }
                self.forget_user(user, InvalidationReason::Logout).await?;
            }
            CatalogChange::SubscriptionChanged { user } => {
                if let Some(cache) = &self.ports.subscription_cache {
                    cache.forget(user).await.map_err(|e| e.to_string()).map_err(failed(Dependency::Subscriptions))?;
                }
                self.forget_user(user, InvalidationReason::Subscription).await?;
            }
            CatalogChange::GrantChanged { media, user, .. } => {
                self.forget_catalog_user(user).await;
                self.forget_url(media, user, InvalidationReason::Grant).await?;
            }
        }
        Ok(applied)
    }
}

#[async_trait]
impl CatalogEventHandler for CatalogChanges {
    async fn handle(&self, event: &CatalogEvent) -> Result<(), ApplyError> {
        self.apply(&event.change, event.occurred_at).await.map(drop)
    }
}
