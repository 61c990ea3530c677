//! Settings of the per-user limits and demo mode (the services' own are
//! `streaming_core::config`).

use serde::Deserialize;

/// Per-user request limits.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Stream-URL requests per minute per user (policy `stream-url`, default 60; 0 disables).
    pub stream_url_per_minute: u32,
    /// Movie starts per minute per user (policy `stream-start`, default 30;
    /// 0 disables): each start is a session row.
    pub stream_start_per_minute: u32,
    /// Manifest fetches per minute per user, counted against the grant's
    /// user (policy `stream-manifest`, default 120; 0 disables): a player
    /// fetches a handful per start (the master and its variants).
    pub manifest_per_minute: u32,
    /// With Redis: the most requests one reservation takes for a busy user
    /// (default 256, and never above a tenth of the limit); 1 asks Redis for every request.
    pub max_lease: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            stream_url_per_minute: 60,
            stream_start_per_minute: 30,
            manifest_per_minute: 120,
            max_lease: streaming_redis::DEFAULT_MAX_LEASE,
        }
    }
}

/// Demo media and the printed demo token.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Seed demo media, print a demo token and serve the demo player.
    /// Unset (the default): on only when nothing real is configured (no
    /// PostgreSQL, Redis, S3, Kafka, user service, token secret or JWKS).
    /// `true` beside a real store stops the start.
    pub enabled: Option<bool>,
}
