use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::lock;
use crate::ports::{claim_stamp, PendingError, PendingWrite, PendingWrites};

/// Pending writes in this process: what the Redis adapter does across
/// instances, for unit tests and the contract suite (a process's own memory
/// does not outlive it, so it rescues nothing in production).
#[derive(Debug)]
pub struct MemoryPendingWrites {
    started: Instant,
    held: Mutex<HashMap<(String, String), Held>>,
}

#[derive(Debug)]
struct Held {
    write: PendingWrite,
    /// Milliseconds since `started` that claims count the age from.
    at: i128,
}

impl Default for MemoryPendingWrites {
    fn default() -> Self {
        Self { started: Instant::now(), held: Mutex::default() }
    }
}

impl MemoryPendingWrites {
    fn now(&self) -> i128 {
        self.started.elapsed().as_millis() as i128
    }

    /// How many writes of `kind` are held.
    pub fn held(&self, kind: &str) -> usize {
        lock(&self.held).keys().filter(|(k, _)| k == kind).count()
    }
}

/// Whether `incoming` leaves `held` in place: same group, lower number.
fn held_is_newer(held: &PendingWrite, incoming: &PendingWrite) -> bool {
    match (&held.order, &incoming.order) {
        (Some((group, number)), Some((incoming_group, incoming_number))) => {
            group == incoming_group && number > incoming_number
        }
        _ => false,
    }
}

#[async_trait]
impl PendingWrites for MemoryPendingWrites {
    async fn hold(&self, kind: &str, writes: Vec<PendingWrite>) -> Result<(), PendingError> {
        let now = self.now();
        let mut held = lock(&self.held);
        for write in writes {
            let key = (kind.to_owned(), write.id.clone());
            if held.get(&key).is_some_and(|current| held_is_newer(&current.write, &write)) {
                continue;
            }
            held.insert(key, Held { write, at: now });
        }
        Ok(())
    }

    async fn release(&self, kind: &str, written: Vec<(String, String)>) -> Result<(), PendingError> {
        let mut held = lock(&self.held);
        for (id, stamp) in written {
            let key = (kind.to_owned(), id);
            if held.get(&key).is_some_and(|current| current.write.stamp == stamp) {
                held.remove(&key);
            }
        }
        Ok(())
    }

    async fn claim(
        &self,
        kind: &str,
        age: Duration,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<PendingWrite>, PendingError> {
        let now = self.now();
        let (age, lease) = (age.as_millis() as i128, lease.as_millis() as i128);
        let stamp = claim_stamp();
        let mut held = lock(&self.held);
        let mut due: Vec<(&(String, String), &mut Held)> =
            held.iter_mut().filter(|((k, _), entry)| k == kind && entry.at <= now - age).collect();
        due.sort_by_key(|(_, entry)| entry.at);
        Ok(due
            .into_iter()
            .take(max)
            .map(|(_, entry)| {
                entry.write.stamp.clone_from(&stamp);
                entry.at = now + lease - age;
                entry.write.clone()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_pending_writes_keep_the_contract() {
        crate::contract::pending_writes(&super::MemoryPendingWrites::default()).await;
    }
}
