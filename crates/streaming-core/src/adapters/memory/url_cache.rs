use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::lock;
use crate::domain::UserId;
use crate::ports::{CacheError, CacheLookup, Clock, StreamCacheKey, UrlCache};

#[derive(Debug, Default)]
struct State {
    entries: HashMap<StreamCacheKey, (Vec<u8>, OffsetDateTime)>,
    generations: HashMap<UserId, (u64, OffsetDateTime)>,
}

/// A [`UrlCache`] in a map, expiring by an injected [`Clock`] so tests can
/// move time instead of sleeping. Unbounded: for tests, not for production.
pub struct MemoryUrlCache {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryUrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryUrlCache").finish_non_exhaustive()
    }
}

impl MemoryUrlCache {
    /// An empty cache on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, state: Mutex::default() }
    }

    /// How many entries are stored, expired ones included (tests).
    pub fn stored_entries(&self) -> usize {
        lock(&self.state).entries.len()
    }
}

#[async_trait]
impl UrlCache for MemoryUrlCache {
    async fn get(&self, key: &StreamCacheKey) -> Result<CacheLookup, CacheError> {
        let now = self.clock.now();
        let state = lock(&self.state);
        let entry = state.entries.get(key).filter(|(_, until)| *until > now).map(|(blob, _)| blob.clone());
        let generation = state.generations.get(key.user()).filter(|(_, until)| *until > now).map_or(0, |(g, _)| *g);
        Ok(CacheLookup { entry, generation })
    }

    async fn set(&self, key: &StreamCacheKey, entry: Vec<u8>, ttl: Duration) -> Result<(), CacheError> {
        let until = self.clock.now() + ttl;
        lock(&self.state).entries.insert(key.clone(), (entry, until));
        Ok(())
    }

    async fn delete(&self, key: &StreamCacheKey) -> Result<(), CacheError> {
        lock(&self.state).entries.remove(key);
        Ok(())
    }

    async fn set_generation(&self, user: &UserId, generation: u64, ttl: Duration) -> Result<(), CacheError> {
        let until = self.clock.now() + ttl;
        lock(&self.state).generations.insert(user.clone(), (generation, until));
        Ok(())
    }
}
