use async_trait::async_trait;

use time::OffsetDateTime;

use crate::domain::{CatalogChange, Media, MediaId, UserId, Viewer};

/// Why the catalog could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The catalog is down or too slow; the request should fail with 503.
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    /// The catalog holds data the core cannot use (a bug or corruption upstream).
    #[error("catalog returned invalid data: {0}")]
    Invalid(String),
}

/// The read model of media, ownership, grants and user status.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MediaCatalog: Send + Sync {
    /// The media item with this id, deleted ones included (the core decides
    /// what a deleted item means); `None` if the catalog never heard of it.
    ///
    /// # Errors
    /// [`CatalogError::Unavailable`] when the catalog cannot be reached.
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError>;

    /// The user's status and, when `grant_on` is given, whether they hold a
    /// grant on that media (`granted` is false without it: the core asks
    /// only for non-public media the user does not own, so one answer per user
    /// serves every public or owned item). Users the catalog has never seen
    /// are `Active` without grants.
    ///
    /// # Errors
    /// [`CatalogError::Unavailable`] when the catalog cannot be reached.
    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError>;
}

/// Shared catalogs are catalogs: lets decorators wrap an `Arc<dyn MediaCatalog>`.
#[async_trait]
impl<T: MediaCatalog + ?Sized> MediaCatalog for std::sync::Arc<T> {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        (**self).media(id).await
    }

    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        (**self).viewer(user, grant_on).await
    }
}

/// Writes upstream changes into the catalog read model.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CatalogWriter: Send + Sync {
    /// Applies `change`, which happened at `at`, unless the read model already
    /// holds a newer change of the same item (media or user); returns whether
    /// it was applied. Applying the same change twice changes nothing more,
    /// so redeliveries and several appliers are safe. Changes that only
    /// concern caches (logout, subscription) store nothing and return `true`.
    ///
    /// # Errors
    /// [`CatalogError::Unavailable`] when the catalog cannot be written.
    async fn apply(&self, change: &CatalogChange, at: OffsetDateTime) -> Result<bool, CatalogError>;
}
