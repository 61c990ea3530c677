use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{Broadcast, BroadcastError, Listener};

/// A [`Broadcast`] within one process: every listener of a topic is called
/// as the message is published (one instance, and tests of several
/// services in one process).
#[derive(Default)]
pub struct MemoryBroadcast {
    listeners: Mutex<HashMap<String, Vec<Listener>>>,
}

impl std::fmt::Debug for MemoryBroadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroadcast").field("topics", &lock(&self.listeners).len()).finish()
    }
}

impl MemoryBroadcast {
    /// No listeners yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Broadcast for MemoryBroadcast {
    async fn publish(&self, topic: &str, message: &str) -> Result<(), BroadcastError> {
        let listeners = lock(&self.listeners).get(topic).cloned().unwrap_or_default();
        for listener in listeners {
            listener(message);
        }
        Ok(())
    }

    fn listen(&self, topic: &str, listener: Listener) {
        lock(&self.listeners).entry(topic.to_owned()).or_default().push(listener);
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn keeps_the_broadcast_contract() {
        let broadcast = super::MemoryBroadcast::new();
        crate::contract::broadcast(&broadcast, &broadcast, tokio::time::sleep).await;
    }
}
