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

    /// Replaces the stored offset with `next_offset`, lower or not: the
    /// broker refused the stored one as out of range (its log no longer
    /// holds it), and reading starts again where the consumer's starting
    /// point says.
    ///
    /// # Errors
    /// [`OffsetError::Unavailable`].
    async fn reset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), OffsetError>;
}

/// An upstream record the consumer gave up on after its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its topic (the full name).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its event id, when it parsed.
    pub event_id: Option<uuid::Uuid>,
    /// The record's value as received.
    pub payload: Vec<u8>,
    /// The last error (it names a dependency, never the payload).
    pub error: String,
    /// How many times handling it was tried.
    pub attempts: u32,
}

/// Where the consumer keeps the records it gave up on, so that a partition
/// moves on past an event that cannot be applied and nothing is lost.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Keeps `letter`; keeping the same (topic, partition, offset) again
    /// changes nothing.
    ///
    /// # Errors
    /// [`OffsetError::Unavailable`]: the consumer keeps retrying the record.
    async fn keep(&self, letter: &DeadLetter) -> Result<(), OffsetError>;

    /// The newest `limit` letters, newest first.
    ///
    /// # Errors
    /// [`OffsetError::Unavailable`].
    async fn recent(&self, limit: usize) -> Result<Vec<DeadLetter>, OffsetError>;
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
