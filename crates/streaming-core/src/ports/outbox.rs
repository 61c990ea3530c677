use async_trait::async_trait;
use time::OffsetDateTime;

/// An event waiting in an outbox, as a relay hands it to its sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The event's own id (the same on every redelivery, so consumers can
    /// drop duplicates).
    pub event_id: uuid::Uuid,
    /// The topic without any deployment prefix, e.g. `stream.start`.
    pub topic: String,
    /// The partition key (the user id: one user's events stay in order).
    pub key: String,
    /// The event's JSON.
    pub payload: String,
    /// When the event was written to the outbox.
    pub created_at: OffsetDateTime,
}

/// Why a sink did not take a batch. Either way nothing is marked published
/// and the same records go again (at-least-once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The broker could not be reached or did not answer in time.
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// The broker answered and refused the records.
    #[error("sink refused the records: {0}")]
    Refused(String),
}

/// Where an outbox relay sends what it holds (Kafka in the service).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OutboxSink: Send + Sync {
    /// Sends `records` in order; returns once every one is acknowledged.
    ///
    /// # Errors
    /// [`SinkError`]; the records stay unpublished and are sent again.
    async fn send(&self, records: &[OutboxRecord]) -> Result<(), SinkError>;
}
