//! In-memory adapters of every port.

mod audit;
mod broadcast;
mod catalog;
mod event_gate;
mod objects;
mod offsets;
mod pending;
mod playback;
mod rate_limiter;
mod url_cache;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use audit::MemoryAuditLog;
pub use broadcast::MemoryBroadcast;
pub use catalog::MemoryCatalog;
pub use event_gate::MemoryEventGate;
pub use objects::MemoryObjectStore;
pub use offsets::{MemoryDeadLetters, MemoryOffsetStore};
pub use pending::MemoryPendingWrites;
pub use playback::{MemoryEventPublisher, MemoryProgressStore, MemorySessionStore, MemorySubscriptions};
pub use rate_limiter::MemoryRateLimiter;
pub use url_cache::MemoryUrlCache;

// A panic while holding one of these locks leaves plain data behind (maps of
// values), never a half-applied invariant, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(rw: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rw.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(rw: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rw.write().unwrap_or_else(PoisonError::into_inner)
}
