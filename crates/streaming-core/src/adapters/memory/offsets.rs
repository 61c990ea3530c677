use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{DeadLetter, DeadLetters, OffsetError, OffsetStore};

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

    async fn reset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), OffsetError> {
        lock(&self.offsets).insert((topic.to_owned(), partition), next_offset);
        Ok(())
    }
}

/// Dead letters in memory (deployments without a database; gone at exit).
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn keep(&self, letter: &DeadLetter) -> Result<(), OffsetError> {
        let mut letters = lock(&self.letters);
        let same = |kept: &DeadLetter| {
            (kept.topic.as_str(), kept.partition, kept.offset)
                == (letter.topic.as_str(), letter.partition, letter.offset)
        };
        if !letters.iter().any(same) {
            letters.push(letter.clone());
        }
        Ok(())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<DeadLetter>, OffsetError> {
        Ok(lock(&self.letters).iter().rev().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn dead_letters_keep_their_contract() {
        crate::contract::dead_letters(&super::MemoryDeadLetters::default()).await;
    }
}
