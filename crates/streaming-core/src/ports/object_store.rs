use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::ObjectKey;

/// Why the object store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectStoreError {
    /// No object under that key.
    #[error("object not found")]
    NotFound,
    /// The store is down, too slow or its circuit breaker is open.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// The request cannot be served as asked (e.g. an object larger than the limit).
    #[error("invalid object store request: {0}")]
    Invalid(String),
}

/// The longest presign expiry any store accepts (S3's limit: 7 days).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks a presign expiry against the rule every store shares: longer than
/// zero, at most [`MAX_PRESIGN_EXPIRY`].
///
/// # Errors
/// [`ObjectStoreError::Invalid`] otherwise.
pub fn check_presign_expiry(expires_in: Duration) -> Result<(), ObjectStoreError> {
    if expires_in.is_zero() || expires_in > MAX_PRESIGN_EXPIRY {
        return Err(ObjectStoreError::Invalid("expiry must be between 1 s and 7 days".into()));
    }
    Ok(())
}

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size_bytes: u64,
    /// MIME type recorded by the store, if any.
    pub content_type: Option<String>,
}

/// A URL that lets its holder `GET` one object (with `Range`) until it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    /// The URL. A bearer credential: never log it.
    pub url: String,
    /// When the signature stops being accepted.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignedUrl").field("url", &"<redacted>").field("expires_at", &self.expires_at).finish()
    }
}

/// The private bucket holding the media bytes.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Size and type of the object under `key`.
    ///
    /// # Errors
    /// [`ObjectStoreError::NotFound`] if there is none, `Unavailable` if the
    /// store cannot be reached.
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, ObjectStoreError>;

    /// A URL for `GET key` signed as of `signed_at` and valid for `expires_in`.
    /// Signing is local computation: implementations must not make a network
    /// round trip here. The object need not exist.
    ///
    /// # Errors
    /// `Invalid` if `expires_in` is beyond what the store accepts,
    /// `Unavailable` if the store's credentials cannot be obtained.
    async fn presign_get(
        &self,
        key: &ObjectKey,
        signed_at: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedUrl, ObjectStoreError>;

    /// The whole object, if it is at most `max_bytes` long (manifests).
    ///
    /// # Errors
    /// `NotFound` if there is none, `Invalid` if it is larger than
    /// `max_bytes`, `Unavailable` if the store cannot be reached.
    async fn read_small(&self, key: &ObjectKey, max_bytes: u64) -> Result<Vec<u8>, ObjectStoreError>;
}

/// Shared stores are stores: lets decorators wrap an `Arc<dyn ObjectStore>`.
#[async_trait]
impl<T: ObjectStore + ?Sized> ObjectStore for std::sync::Arc<T> {
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, ObjectStoreError> {
        (**self).head(key).await
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        signed_at: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedUrl, ObjectStoreError> {
        (**self).presign_get(key, signed_at, expires_in).await
    }

    async fn read_small(&self, key: &ObjectKey, max_bytes: u64) -> Result<Vec<u8>, ObjectStoreError> {
        (**self).read_small(key, max_bytes).await
    }
}
