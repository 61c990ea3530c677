//! Driven ports: what the core needs from the outside world. One small trait
//! per file, each with its own error enum whose variants say what the core can
//! do about a failure; adapters translate their drivers' errors into them.
//!
//! With the `mock` feature every port has a mockall mock (`MockMediaCatalog`, ...).

mod audit;
mod broadcast;
mod caches;
mod catalog;
mod clock;
mod consumer;
mod event_gate;
mod events;
mod listing;
mod object_store;
mod outbox;
mod pending;
mod progress;
mod rate_limiter;
mod readiness;
mod sessions;
mod subscriptions;
mod url_cache;

pub use audit::{AuditError, AuditLog, AuditRecord};
pub use broadcast::{Broadcast, BroadcastError, Listener};
pub use caches::{CatalogCache, SubscriptionCache};
pub use catalog::{CatalogError, CatalogWriter, MediaCatalog};
pub use clock::Clock;
pub use consumer::{ApplyError, CatalogEventHandler, DeadLetter, DeadLetters, OffsetError, OffsetStore};
pub use event_gate::{EventGate, EventGateError};
pub use events::{EventPublisher, PublishError};
pub use listing::{MediaCandidate, MediaListing};
pub use object_store::{
    check_presign_expiry, ObjectInfo, ObjectStore, ObjectStoreError, PresignedUrl, MAX_PRESIGN_EXPIRY,
};
pub use outbox::{OutboxRecord, OutboxSink, SinkError};
pub use pending::{claim_stamp, PendingError, PendingWrite, PendingWrites};
pub use progress::{ProgressError, ProgressStore, RecordOutcome};
pub use rate_limiter::{RateDecision, RateLimitError, RateLimitPolicy, RateLimiter};
pub use readiness::ReadinessCheck;
pub use sessions::{CloseOutcome, EventHandling, SessionError, SessionStore};
pub use subscriptions::{SubscriptionDirectory, SubscriptionError};
pub use url_cache::{CacheError, CacheLookup, StreamCacheKey, UrlCache};

#[cfg(any(test, feature = "mock"))]
pub use {
    audit::MockAuditLog, caches::MockCatalogCache, caches::MockSubscriptionCache, catalog::MockCatalogWriter,
    catalog::MockMediaCatalog, clock::MockClock, consumer::MockCatalogEventHandler, consumer::MockDeadLetters,
    consumer::MockOffsetStore, event_gate::MockEventGate, events::MockEventPublisher, listing::MockMediaListing,
    object_store::MockObjectStore, outbox::MockOutboxSink, progress::MockProgressStore, rate_limiter::MockRateLimiter,
    readiness::MockReadinessCheck, sessions::MockSessionStore, subscriptions::MockSubscriptionDirectory,
    url_cache::MockUrlCache,
};
