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

    /// Returns once every event published so far is as safe as this
    /// publisher makes events (a publisher that queues writes its queue).
    /// Called before an event that goes out another way (a stop, written in
    /// its session's transaction), so that order holds. By default there is
    /// nothing to wait for.
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] when queued events could not be written.
    async fn flush(&self) -> Result<(), PublishError> {
        Ok(())
    }
}
