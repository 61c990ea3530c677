//! The event gate shared by every instance: `SET {prefix}gate:{key} 1 NX PX
//! {gap}` passes exactly one asker per gap.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface};
use fred::types::{SetOptions, Value};
use streaming_core::ports::{EventGate, EventGateError};

use crate::connection::RedisConnection;

/// [`EventGate`] on Redis: the key exists while its gap runs, and only the
/// asker that created it passes (Redis runs the `SET … NX` of every instance
/// one at a time).
#[derive(Debug, Clone)]
pub struct RedisEventGate {
    redis: RedisConnection,
}

impl RedisEventGate {
    /// A gate on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl EventGate for RedisEventGate {
    async fn pass(&self, key: &str, gap: Duration) -> Result<bool, EventGateError> {
        let millis = i64::try_from(gap.as_millis()).unwrap_or(i64::MAX);
        if millis <= 0 {
            return Ok(true);
        }
        let key = format!("{}gate:{key}", self.redis.prefix());
        let pool = self.redis.pool();
        let answer = self
            .redis
            .guarded("SET", || {
                pool.set::<Value, _, _>(key, 1, Some(Expiration::PX(millis)), Some(SetOptions::NX), false)
            })
            .await
            .map_err(|error| EventGateError::Unavailable(error.to_string()))?;
        // `OK` when this call created the key; nil when it already existed.
        Ok(!answer.is_null())
    }
}
