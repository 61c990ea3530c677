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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use streaming_core::telemetry::{self, InvalidationReason};
use tracing::Instrument;

use async_trait::async_trait;
use streaming_core::domain::{CatalogChange, CatalogEvent, MediaId, UserId};
use streaming_core::ports::{ApplyError, CatalogEventHandler, CatalogWriter, MediaCatalog};
use streaming_core::{Dependency, PlaybackService, StreamUrlService, StreamingService};
use time::OffsetDateTime;

use crate::catalog::Catalog;
use crate::subscriptions::SubscriptionCache;

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

/// Applies catalog changes; the consumer's handler and the admin API's core.
pub struct CatalogChanges {
    catalog: Catalog,
    streaming: Arc<StreamUrlService>,
    playback: Arc<PlaybackService>,
    subscriptions: Option<SubscriptionCache>,
    stats: Arc<InvalidationStats>,
}

impl std::fmt::Debug for CatalogChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogChanges").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl CatalogChanges {
    /// A handler writing to `catalog` and invalidating `streaming`'s URL cache
    /// (and the subscription cache, if there is one).
    pub fn new(
        catalog: Catalog,
        streaming: Arc<StreamUrlService>,
        playback: Arc<PlaybackService>,
        subscriptions: Option<SubscriptionCache>,
    ) -> Self {
        Self { catalog, streaming, playback, subscriptions, stats: Arc::default() }
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
        self.catalog.invalidate_media(media);
        // The owner's URL; the catalog read is fresh after the invalidation.
        let owner = self
            .catalog
            .port()
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
        self.streaming.invalidate(media, user).await.map_err(|e| e.to_string()).map_err(failed(Dependency::Cache))?;
        self.count(reason);
        Ok(())
    }

    /// Drops every cached URL of `user`, counted under `reason`.
    ///
    /// # Errors
    /// [`ApplyError`] naming the cache when it cannot be reached.
    pub async fn forget_user(&self, user: &UserId, reason: InvalidationReason) -> Result<(), ApplyError> {
        self.streaming.invalidate_user(user).await.map_err(|e| e.to_string()).map_err(failed(Dependency::Cache))?;
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
        let writer: &dyn CatalogWriter = self.catalog.writer();
        let applied = writer
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
                self.catalog.invalidate_user(user);
                self.forget_user(user, InvalidationReason::StatusChange).await?;
            }
            CatalogChange::UserLoggedOutEverywhere { user } => {
                // Their streams end too: manifest grants die with their sessions.
                self.playback
                    .end_sessions_of(user)
                    .await
                    .map_err(|e| e.to_string())
                    .map_err(failed(Dependency::Sessions))?;
                self.forget_user(user, InvalidationReason::Logout).await?;
            }
            CatalogChange::SubscriptionChanged { user } => {
                if let Some(cache) = &self.subscriptions {
                    cache
                        .invalidate(user)
                        .await
                        .map_err(|e| e.to_string())
                        .map_err(failed(Dependency::Subscriptions))?;
                }
                self.forget_user(user, InvalidationReason::Subscription).await?;
            }
            CatalogChange::GrantChanged { media, user, .. } => {
                self.catalog.invalidate_user(user);
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
