//! Browsing: the media a user may play, page by page, decided by the same
//! policy as playing them.

use std::sync::Arc;

use tracing::{debug_span, Instrument};

use crate::domain::{Media, MediaId, MediaStatus, Subscription, UserId, UserStatus, Viewer};
use crate::policy::{decide, Decision, Denial, SubscriptionFact};
use crate::ports::{Clock, MediaCatalog, MediaListing, SubscriptionDirectory};
use crate::service::{Dependency, StreamError};

/// The most items one page holds.
pub const MAX_PAGE: usize = 100;

/// The ports browsing needs.
#[derive(Clone)]
pub struct BrowsePorts {
    /// Narrows the catalog down to a user's candidates.
    pub listing: Arc<dyn MediaListing>,
    /// The user's status.
    pub catalog: Arc<dyn MediaCatalog>,
    /// Subscriptions, asked at most once per page and only when a
    /// subscriber-only item needs it.
    pub subscriptions: Arc<dyn SubscriptionDirectory>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BrowsePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowsePorts").finish_non_exhaustive()
    }
}

/// One page of what a user may play.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowsePage {
    /// The items the user may play, or may play once they are ready
    /// (their `status` says which), in id order.
    pub items: Vec<Media>,
    /// Where the next page starts (pass it as `after`), or `None` at the end.
    pub next: Option<MediaId>,
}

/// Lists the media a user may play.
#[derive(Debug, Clone)]
pub struct MediaBrowser {
    ports: BrowsePorts,
}

impl MediaBrowser {
    /// A browser over `ports`.
    pub fn new(ports: BrowsePorts) -> Self {
        Self { ports }
    }

    /// Up to `limit` items (1 to [`MAX_PAGE`]) after `after`. An item is
    /// listed when the access policy would let `user` play it were it ready:
    /// owned, granted, public, or for subscribers with a plan that covers
    /// it. A page may hold fewer than `limit` items while `next` is set (the
    /// policy dropped some candidates); the listing ends when `next` is
    /// `None`.
    ///
    /// # Errors
    /// [`StreamError::Forbidden`] for a suspended user;
    /// [`StreamError::Unavailable`] when the catalog or, for subscriber-only
    /// items, the subscription directory cannot answer.
    pub async fn playable(
        &self,
        user: &UserId,
        after: Option<&MediaId>,
        limit: usize,
    ) -> Result<BrowsePage, StreamError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let unavailable = |dependency| StreamError::Unavailable { dependency };
        let viewer = self
            .ports
            .catalog
            .viewer(user, None)
            .instrument(debug_span!("catalog.viewer"))
            .await
            .map_err(|_| unavailable(Dependency::Catalog))?;
        if viewer.status == UserStatus::Suspended {
            return Err(StreamError::Forbidden(Denial::Suspended));
        }
        let candidates = self
            .ports
            .listing
            .candidates(user, after, limit)
            .instrument(debug_span!("catalog.candidates"))
            .await
            .map_err(|_| unavailable(Dependency::Catalog))?;
        let next = (candidates.len() == limit).then(|| candidates.last().map(|c| c.media.id.clone())).flatten();
        let now = self.ports.clock.now();
        let mut subscription: Option<Option<Subscription>> = None;
        let mut items = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let viewer = Viewer { status: viewer.status, granted: candidate.granted };
            // Decided as if ready: a processing upload is listed, with its status.
            let as_ready = Media { status: MediaStatus::Ready, ..candidate.media.clone() };
            let mut decision = decide(Some(&as_ready), user, viewer, SubscriptionFact::NotLooked, now);
            if decision == Decision::NeedsSubscription {
                if subscription.is_none() {
                    let current = self
                        .ports
                        .subscriptions
                        .current(user)
                        .instrument(debug_span!("subscriptions.current"))
                        .await
                        .map_err(|_| unavailable(Dependency::Subscriptions))?;
                    subscription = Some(current);
                }
                let known = subscription.as_ref().and_then(Option::as_ref);
                decision = decide(Some(&as_ready), user, viewer, SubscriptionFact::Known(known), now);
            }
            if decision == Decision::Allowed {
                items.push(candidate.media);
            }
        }
        Ok(BrowsePage { items, next })
    }
}

/// The driving port of listing what a user may play: what an HTTP layer
/// calls. [`MediaBrowser`] implements it; with the `mock` feature,
/// `MockBrowse` stands in for it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait Browse: Send + Sync {
    /// See [`MediaBrowser::playable`].
    async fn playable<'a>(
        &self,
        user: &UserId,
        after: Option<&'a MediaId>,
        limit: usize,
    ) -> Result<BrowsePage, StreamError>;
}

#[async_trait::async_trait]
impl Browse for MediaBrowser {
    async fn playable<'a>(
        &self,
        user: &UserId,
        after: Option<&'a MediaId>,
        limit: usize,
    ) -> Result<BrowsePage, StreamError> {
        MediaBrowser::playable(self, user, after, limit).await
    }
}
