//! Settings of the services: track URLs, movie playback, per-user limits, demo mode.

use secrecy::SecretString;
use serde::Deserialize;

/// Presign expiry and cache semantics.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingSection {
    /// Lifetime of presigned URLs in seconds (default 120).
    pub presign_expiry_seconds: u64,
    /// Cached URLs are served only with more than this left, in seconds (default 30).
    pub cache_buffer_seconds: u64,
    /// Prefix of every cache key (default empty).
    pub cache_key_prefix: String,
}

impl Default for StreamingSection {
    fn default() -> Self {
        Self { presign_expiry_seconds: 120, cache_buffer_seconds: 30, cache_key_prefix: String::new() }
    }
}

/// Movie playback: manifests, progress, sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackSection {
    /// Lifetime of manifest URLs in seconds (default 3600).
    pub manifest_expiry_seconds: u64,
    /// How far past a movie's duration a position may be, in seconds (default 10).
    pub position_slack_seconds: f64,
    /// Fraction of the duration from which a movie counts as watched (default 0.95).
    pub watched_fraction: f64,
    /// At most one progress event per session per this many seconds (default 10).
    pub progress_event_interval_seconds: u64,
    /// A session without a heartbeat for this many seconds no longer counts
    /// towards the plan's `max_devices` (default 90).
    pub session_idle_timeout_seconds: u64,
    /// A session nobody stopped is closed, at its last heartbeat, after this
    /// many seconds without a sign of life (default 600; 0: never). At
    /// least `session_idle_timeout_seconds`.
    pub session_close_after_seconds: u64,
    /// Signs manifest grants (at least 32 bytes; a secret). Unset: a random
    /// key per process, so grants only work on the instance that issued them.
    pub grant_secret: Option<SecretString>,
    /// Object URLs in a served manifest are signed at the start of a window
    /// of this many seconds, so fetches within it get identical URLs (default 60).
    pub url_window_seconds: u64,
    /// Lifetime of the object URLs in a served manifest, from the window's start (default 3600).
    pub object_url_expiry_seconds: u64,
    /// A movie the catalog has no row for exists when its manifest is in the
    /// store under `movies/{id}/`, for subscribers (the cinema service's
    /// behaviour; default false). A catalog row's rules always win.
    pub stored_movies: bool,
}

impl Default for PlaybackSection {
    fn default() -> Self {
        Self {
            manifest_expiry_seconds: 3600,
            position_slack_seconds: 10.0,
            watched_fraction: 0.95,
            progress_event_interval_seconds: 10,
            session_idle_timeout_seconds: 90,
            session_close_after_seconds: 600,
            grant_secret: None,
            url_window_seconds: 60,
            object_url_expiry_seconds: 3600,
            stored_movies: false,
        }
    }
}

/// Per-user request limits.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Seed demo media, print a demo token and serve the demo player.
    /// Unset (the default): on only when nothing real is configured (no
    /// PostgreSQL, Redis, S3, Kafka, user service, token secret or JWKS).
    /// `true` beside a real store stops the start.
    pub enabled: Option<bool>,
}
