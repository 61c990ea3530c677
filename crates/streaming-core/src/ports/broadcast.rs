use std::sync::Arc;

use async_trait::async_trait;

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// The channel between instances is down; the copies of the others
    /// catch up when their own time-to-live ends.
    #[error("broadcast unavailable: {0}")]
    Unavailable(String),
}

/// What a listener is called with: each message on its topic.
pub type Listener = Arc<dyn Fn(&str) + Send + Sync>;

/// Messages every instance hears: how a change one instance made reaches
/// what the others hold in process (a stopped session, a suspended user)
/// within moments instead of a cache's time-to-live.
#[async_trait]
pub trait Broadcast: Send + Sync {
    /// Sends `message` on `topic` to every instance listening to it, this
    /// one included. Best effort: a message can be lost while the channel
    /// is down, so listeners keep their own time-to-live as the bound.
    async fn publish(&self, topic: &str, message: &str) -> Result<(), BroadcastError>;

    /// Calls `listener` with every message on `topic` from now on.
    fn listen(&self, topic: &str, listener: Listener);
}
