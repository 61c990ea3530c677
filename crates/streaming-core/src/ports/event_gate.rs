use std::time::Duration;

use async_trait::async_trait;

/// Why the gate could not decide. The caller lets the event through (a
/// progress event too many beats one lost) and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventGateError {
    /// The gate's backing store is down or too slow.
    #[error("event gate unavailable: {0}")]
    Unavailable(String),
}

/// Thins out events across every instance that shares the gate's store:
/// an event of one key goes out at most once per gap, whichever instance
/// has it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventGate: Send + Sync {
    /// Whether an event for `key` may go out now: `true` when no event of
    /// `key` passed within the last `gap`, and then the gap starts again
    /// from now. Atomic: two instances asking at once never both pass.
    ///
    /// # Errors
    /// [`EventGateError::Unavailable`] when the backing store cannot be reached.
    async fn pass(&self, key: &str, gap: Duration) -> Result<bool, EventGateError>;
}
