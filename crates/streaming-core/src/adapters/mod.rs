//! Adapters that need no infrastructure: for the embedded mode and for tests.
//! They pass the same contract suites (`crate::contract`) as the real ones.

mod cached_catalog;
mod cached_subscriptions;
mod clock;
mod memory;
mod moka_cache;
mod no_cache;
mod stored_movies;

pub use cached_catalog::{CachedCatalog, CachedCatalogStats};
pub use cached_subscriptions::CachedSubscriptions;
pub use clock::{ManualClock, SystemClock};
pub use memory::{
    MemoryAuditLog, MemoryBroadcast, MemoryCatalog, MemoryDeadLetters, MemoryEventGate, MemoryEventPublisher,
    MemoryObjectStore, MemoryOffsetStore, MemoryPendingWrites, MemoryProgressStore, MemoryRateLimiter,
    MemorySessionStore, MemorySubscriptions, MemoryUrlCache,
};
pub use moka_cache::{MokaUrlCache, ENTRY_OVERHEAD_BYTES};
pub use no_cache::NoUrlCache;
pub use stored_movies::StoredMovies;
