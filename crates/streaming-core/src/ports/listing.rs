use async_trait::async_trait;

use crate::domain::{Media, MediaId, UserId};
use crate::ports::CatalogError;

/// A media item a user might play, with whether they hold a grant on it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaCandidate {
    /// The item.
    pub media: Media,
    /// Whether an explicit grant lets this user play it.
    pub granted: bool,
}

/// Browsing the catalog: the media a user might play, page by page. The
/// core applies the access policy to each candidate; the listing only
/// narrows the catalog down to what the policy could allow.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MediaListing: Send + Sync {
    /// At most `limit` items that `user` owns, holds a grant on, or that are
    /// public or for subscribers, deleted ones left out; in id order (the
    /// ids' canonical spellings compared byte by byte), starting after
    /// `after` when given.
    ///
    /// # Errors
    /// [`CatalogError::Unavailable`] when the catalog cannot be reached.
    async fn candidates<'a>(
        &self,
        user: &UserId,
        after: Option<&'a MediaId>,
        limit: usize,
    ) -> Result<Vec<MediaCandidate>, CatalogError>;
}

/// Shared listings are listings.
#[async_trait]
impl<T: MediaListing + ?Sized> MediaListing for std::sync::Arc<T> {
    async fn candidates<'a>(
        &self,
        user: &UserId,
        after: Option<&'a MediaId>,
        limit: usize,
    ) -> Result<Vec<MediaCandidate>, CatalogError> {
        (**self).candidates(user, after, limit).await
    }
}
