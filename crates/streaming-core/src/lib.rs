//! # streaming-core
//!
//! The pure core of a streaming-access service: it decides who may play which
//! media, hands out short-lived presigned URLs so that bytes flow straight
//! from a private object store to the player, and caches those URLs
//! encrypted. It knows nothing of HTTP, databases or networks: everything it
//! needs from outside comes through the driven ports in [`ports`], and
//! [`adapters`] has in-memory implementations of each.
//!
//! ```
//! use std::sync::Arc;
//! use streaming_core::adapters::{MemoryCatalog, MemoryObjectStore, MemorySubscriptions, MokaUrlCache, SystemClock};
//! use streaming_core::{CacheKeyring, StreamUrlService, StreamingPorts, StreamingSettings};
//!
//! let service = StreamUrlService::new(
//!     StreamingPorts {
//!         catalog: Arc::new(MemoryCatalog::new()),
//!         objects: Arc::new(MemoryObjectStore::new()),
//!         cache: Arc::new(MokaUrlCache::new(16 << 20)),
//!         subscriptions: Arc::new(MemorySubscriptions::new()),
//!         clock: Arc::new(SystemClock),
//!     },
//!     CacheKeyring::random(),
//!     StreamingSettings::default(),
//! );
//! # let _ = service;
//! ```

#![deny(missing_docs)]

mod access;
pub mod adapters;
pub mod circuit_breaker;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod domain;
pub mod manifest;
mod playback;
pub mod policy;
pub mod ports;
mod sealed_entry;
mod service;
pub mod telemetry;
pub mod url_signing;

pub use playback::{
    ManifestGrants, PlaybackError, PlaybackPorts, PlaybackService, PlaybackSettings, PlaybackStarted, PlaybackStats,
    ProgressAck, ProgressReport, ServedManifest, StartPlayback, StopOutcome, MAX_MANIFEST_BYTES,
};
pub use sealed_entry::{CacheKeyring, CachedStreamUrl, KeyringError, OpenError, SealError};
pub use service::{
    Dependency, StreamError, StreamStats, StreamUrl, StreamUrlService, StreamingPorts, StreamingService,
    StreamingSettings,
};
