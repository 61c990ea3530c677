use async_trait::async_trait;

use crate::domain::{MediaId, UserId};
use crate::ports::SubscriptionError;

/// An in-process cache of catalog answers, which a catalog change clears
/// (the media's answers, or the user's).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait CatalogCache: Send + Sync {
    /// Forgets what is cached about `media` (it changed or was deleted),
    /// grants on it included.
    fn forget_media(&self, media: &MediaId);

    /// Forgets what is cached about `user` (status or grants changed).
    fn forget_user(&self, user: &UserId);
}

/// A cache of subscription answers, which `subscription.changed` clears.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SubscriptionCache: Send + Sync {
    /// Forgets `user`'s cached answer.
    ///
    /// # Errors
    /// [`SubscriptionError::Unavailable`] when a shared cache cannot be reached.
    async fn forget(&self, user: &UserId) -> Result<(), SubscriptionError>;
}
