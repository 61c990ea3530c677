use async_trait::async_trait;

use crate::domain::CatalogEvent;
use crate::service::Dependency;

/// Why consumer offsets could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    /// The store is down or too slow; the consumer retries (a read) or goes
    /// on (a write: the events may be handled again after a restart).
    #[error("offset store unavailable: {0}")]
    Unavailable(String),
}

/// Where a consumer of upstream events keeps how far it has read, per
/// topic and partition.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// The next offset to read, if one was stored.
    ///
    /// # Errors
    /// [`OffsetError::Unavailable`].
    async fn load(&self, topic: &str, partition: i32) -> Result<Option<i64>, OffsetError>;

    /// Everything before `next_offset` was handled. An offset lower than the
    /// stored one is ignored (offsets never go back).
    ///
    /// # Errors
    /// [`OffsetError::Unavailable`].
    async fn store(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), OffsetError>;
}

/// Why a catalog change could not be applied in full: which dependency
/// failed. Applying it again is safe (every step is idempotent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} unavailable: {message}", dependency.as_str())]
pub struct ApplyError {
    /// What failed.
    pub dependency: Dependency,
    /// Its error.
    pub message: String,
}

/// What a consumer does with each upstream catalog event.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CatalogEventHandler: Send + Sync {
    /// Applies `event`. Must be idempotent: delivery is at-least-once.
    ///
    /// # Errors
    /// [`ApplyError`]; the same event is offered again after a backoff.
    async fn handle(&self, event: &CatalogEvent) -> Result<(), ApplyError>;
}
