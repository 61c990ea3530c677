//! [`Broadcast`] over Redis pub/sub: one subscriber connection per
//! instance, one channel per topic (`{prefix}broadcast:{topic}`), every
//! listener of a topic called in order as its messages arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use streaming_core::ports::{Broadcast, BroadcastError, Listener};
use tracing::warn;

use crate::connection::{RedisConnection, RedisError};

type Listeners = Arc<Mutex<HashMap<String, Vec<Listener>>>>;

/// Messages to every instance on one Redis.
pub struct RedisBroadcast {
    redis: RedisConnection,
    subscriber: SubscriberClient,
    listeners: Listeners,
}

impl std::fmt::Debug for RedisBroadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroadcast").field("prefix", &self.redis.prefix()).finish_non_exhaustive()
    }
}

impl RedisBroadcast {
    /// Connects the subscriber and starts dispatching; it stops when the
    /// broadcast is dropped.
    ///
    /// # Errors
    /// [`RedisError::Config`] if the subscriber client cannot be built.
    pub fn start(redis: RedisConnection) -> Result<Arc<Self>, RedisError> {
        let subscriber = redis.subscriber()?;
        let listeners: Listeners = Arc::default();
        let broadcast = Arc::new(Self { redis, subscriber: subscriber.clone(), listeners: listeners.clone() });
        let alive = Arc::downgrade(&broadcast);
        let mut messages = subscriber.message_rx();
        drop(subscriber.connect());
        // Re-subscribes every channel after a reconnect.
        let manager = subscriber.manage_subscriptions();
        tokio::spawn(async move {
            let _manager = manager;
            while let Ok(message) = messages.recv().await {
                if alive.strong_count() == 0 {
                    break;
                }
                let Some(text) = message.value.as_str() else { continue };
                let called = listeners.lock().unwrap_or_else(PoisonError::into_inner).get(&*message.channel).cloned();
                for listener in called.unwrap_or_default() {
                    listener(&text);
                }
            }
        });
        Ok(broadcast)
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}broadcast:{topic}", self.redis.prefix())
    }
}

impl Drop for RedisBroadcast {
    fn drop(&mut self) {
        let subscriber = self.subscriber.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

#[async_trait]
impl Broadcast for RedisBroadcast {
    async fn publish(&self, topic: &str, message: &str) -> Result<(), BroadcastError> {
        let (pool, channel, message) = (self.redis.pool(), self.channel(topic), message.to_owned());
        self.redis
            .guarded("PUBLISH", || pool.next().publish::<i64, _, _>(channel, message))
            .await
            .map(drop)
            .map_err(|error| BroadcastError::Unavailable(error.to_string()))
    }

    fn listen(&self, topic: &str, listener: Listener) {
        let channel = self.channel(topic);
        let first = {
            let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = listeners.entry(channel.clone()).or_default();
            entry.push(listener);
            entry.len() == 1
        };
        if first {
            let subscriber = self.subscriber.clone();
            tokio::spawn(async move {
                if let Err(error) = subscriber.subscribe(channel).await {
                    warn!(error = %error.kind().to_str(), "cannot subscribe to a broadcast topic; relying on TTLs");
                }
            });
        }
    }
}
