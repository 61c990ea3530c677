use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::playback::coalescer::Coalescer;
use crate::ports::{Clock, EventGate, EventGateError};

/// An [`EventGate`] in memory: shared by the services of one process that
/// hold it (one instance, or several in a test), on `clock`.
pub struct MemoryEventGate {
    clock: Arc<dyn Clock>,
    gaps: Coalescer<String>,
}

impl std::fmt::Debug for MemoryEventGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEventGate").finish_non_exhaustive()
    }
}

impl MemoryEventGate {
    /// A gate on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, gaps: Coalescer::default() }
    }
}

#[async_trait]
impl EventGate for MemoryEventGate {
    async fn pass(&self, key: &str, gap: Duration) -> Result<bool, EventGateError> {
        Ok(self.gaps.admit(key.to_owned(), self.clock.now(), gap))
    }
}
