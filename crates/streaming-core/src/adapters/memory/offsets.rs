use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{OffsetError, OffsetStore};

/// Consumer offsets in memory: every start begins again where the consumer's
/// starting point says (for deployments without a database, whose read
/// model is rebuilt at start anyway).
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    offsets: Mutex<HashMap<(String, i32), i64>>,
}

#[async_trait]
impl OffsetStore for MemoryOffsetStore {
    async fn load(&self, topic: &str, partition: i32) -> Result<Option<i64>, OffsetError> {
        Ok(lock(&self.offsets).get(&(topic.to_owned(), partition)).copied())
    }

    async fn store(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), OffsetError> {
        let mut offsets = lock(&self.offsets);
        let stored = offsets.entry((topic.to_owned(), partition)).or_insert(next_offset);
        *stored = (*stored).max(next_offset);
        Ok(())
    }
}
