use async_trait::async_trait;

use crate::domain::PlaybackEvent;

/// Why an event could not be handed over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The sink is down and the event could not be buffered.
    #[error("event sink unavailable: {0}")]
    Unavailable(String),
}

/// Where playback events go (Kafka through an outbox, a JSON-lines file, memory).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Hands the event over for at-least-once delivery, keyed by its user.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when it could be neither sent nor buffered.
    async fn publish(&self, event: PlaybackEvent) -> Result<(), PublishError>;
}
