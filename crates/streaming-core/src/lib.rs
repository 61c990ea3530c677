#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod access;
pub mod adapters;
pub mod admin;
mod browse;
pub mod changes;
pub mod circuit_breaker;
pub mod config;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod domain;
pub mod encoding;
pub mod group_commit;
pub mod manifest;
mod playback;
pub mod policy;
pub mod ports;
pub mod rate_limit;
mod sealed_entry;
mod service;
pub mod telemetry;
pub mod url_signing;

#[cfg(any(test, feature = "mock"))]
pub use browse::MockBrowse;
pub use browse::{Browse, BrowsePage, BrowsePorts, MediaBrowser, MAX_PAGE};
#[cfg(any(test, feature = "mock"))]
pub use playback::MockPlayback;
pub use playback::{
    ManifestGrants, Playback, PlaybackError, PlaybackLimits, PlaybackPorts, PlaybackService, PlaybackSettings,
    PlaybackStarted, PlaybackStats, ProgressAck, ProgressReport, ServedManifest, StartPlayback, StopOutcome,
    MAX_MANIFEST_BYTES,
};
pub use sealed_entry::{object_fingerprint, CacheKeyring, CachedStreamUrl, KeyringError, OpenError, SealError};
#[cfg(any(test, feature = "mock"))]
pub use service::MockStreamingService;
pub use service::{
    Dependency, StreamError, StreamStats, StreamUrl, StreamUrlService, StreamingPorts, StreamingService,
    StreamingSettings,
};
