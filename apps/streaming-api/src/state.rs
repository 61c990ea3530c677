//! What every handler can reach.

use std::sync::Arc;

use streaming_auth::TokenVerifier;
use streaming_core::ports::Clock;
use streaming_core::rate_limit::UserLimit;
use streaming_core::{Playback, StreamingService};
use streaming_localfs::LocalObjectStore;

/// A dependency `/readyz` reports on.
pub trait ReadinessCheck: Send + Sync {
    /// Why it cannot serve now (`None`: it can), e.g. "circuit breaker open".
    fn unready_reason(&self) -> Option<&'static str>;
}

impl ReadinessCheck for crate::storage::Storage {
    fn unready_reason(&self) -> Option<&'static str> {
        crate::storage::Storage::unready_reason(self)
    }
}

impl ReadinessCheck for streaming_postgres::PgDatabase {
    fn unready_reason(&self) -> Option<&'static str> {
        (!self.reachable()).then_some("circuit breaker open")
    }
}

/// Shared application state.
pub struct AppState {
    /// The core's track URL service (its driving port).
    pub streaming: Arc<dyn StreamingService>,
    /// The core's movie playback (its driving port).
    pub playback: Arc<dyn Playback>,
    /// What a user may play (its driving port).
    pub browser: Arc<dyn streaming_core::Browse>,
    /// The demo token, while demo mode is on: the player page is served with it.
    pub demo_token: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Bearer-token verification.
    pub verifier: TokenVerifier,
    /// Track URL requests per user (policy `stream-url`); `None` when off.
    pub stream_url_limit: Option<UserLimit>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The embedded object store, when it is the configured store (serves `/objects`).
    pub local_objects: Option<Arc<LocalObjectStore>>,
    /// What `/readyz` reports on, by name (`object_store`, `database`).
    pub readiness: Vec<(&'static str, Arc<dyn ReadinessCheck>)>,
    /// The Prometheus recorder, when `/metrics` is served.
    pub metrics: Option<&'static metrics_exporter_prometheus::PrometheusHandle>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("stream_url_limit", &self.stream_url_limit).finish_non_exhaustive()
    }
}
