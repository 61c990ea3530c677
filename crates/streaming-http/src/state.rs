//! What every handler can reach.

use std::sync::Arc;

use streaming_auth::TokenVerifier;
use streaming_core::ports::{Clock, ReadinessCheck};
use streaming_core::rate_limit::UserLimit;
use streaming_core::{Browse, Playback, StreamingService};

/// What the public routes need: the core's driving ports and the request
/// limits. Built by the program that mounts the routes.
pub struct ApiState {
    /// The core's track URL service (its driving port).
    pub streaming: Arc<dyn StreamingService>,
    /// The core's movie playback (its driving port).
    pub playback: Arc<dyn Playback>,
    /// What a user may play (its driving port).
    pub browser: Arc<dyn Browse>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Bearer-token verification.
    pub verifier: TokenVerifier,
    /// Track URL requests per user (policy `stream-url`); `None` when off.
    pub stream_url_limit: Option<UserLimit>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// What `/readyz` reports on, by name (`object_store`, `database`).
    pub readiness: Vec<(&'static str, Arc<dyn ReadinessCheck>)>,
    /// The OpenAPI document `/openapi.json` serves: [`crate::document`], or
    /// that merged with the routes of the program mounting these.
    pub openapi: &'static [u8],
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").field("stream_url_limit", &self.stream_url_limit).finish_non_exhaustive()
    }
}
