//! What several of the core's test files build the same way.

use std::sync::Arc;

use streaming_core::adapters::{
    ManualClock, MemoryCatalog, MemoryEventPublisher, MemoryObjectStore, MemoryProgressStore, MemorySessionStore,
    MemorySubscriptions,
};
use streaming_core::{PlaybackPorts, PlaybackService, PlaybackSettings};

/// A playback service on `catalog` and `sessions`, every other port in
/// memory and empty.
pub fn memory_playback(
    catalog: Arc<MemoryCatalog>,
    sessions: Arc<MemorySessionStore>,
    clock: Arc<ManualClock>,
) -> PlaybackService {
    PlaybackService::new(
        PlaybackPorts {
            catalog,
            objects: Arc::new(MemoryObjectStore::new()),
            subscriptions: Arc::new(MemorySubscriptions::new()),
            progress: Arc::new(MemoryProgressStore::new()),
            sessions,
            events: Arc::new(MemoryEventPublisher::new()),
            clock,
        },
        PlaybackSettings::default(),
    )
}
