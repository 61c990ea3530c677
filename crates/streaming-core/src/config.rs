//! The core's settings as a configuration file writes them — the
//! `streaming` and `playback` sections, whole seconds, documented defaults —
//! and their validation into [`StreamingSettings`], [`PlaybackSettings`] and
//! [`ManifestGrants`]. The rules (a buffer shorter than the URL's life, a
//! close-after at least the idle timeout, …) are the core's.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::ports::check_presign_expiry;
use crate::url_signing::UrlSigner;
use crate::{ManifestGrants, PlaybackSettings, StreamingSettings};

/// A setting out of its range; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn refuse(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// What a secret setting that is set shows when the effective settings are
/// printed.
pub const REDACTED: &str = "<redacted>";

/// Serializes a secret setting as [`REDACTED`] (an unset one stays unset),
/// so that the effective settings can be shown without their secrets:
/// `#[serde(serialize_with = "streaming_core::config::redacted")]`.
///
/// # Errors
/// The serializer's.
#[allow(clippy::ref_option)] // the signature serde's `serialize_with` calls
pub fn redacted<S: serde::Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some(REDACTED),
        None => serializer.serialize_none(),
    }
}

/// Presign expiry and cache semantics.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    #[serde(serialize_with = "crate::config::redacted")]
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

impl StreamingSection {
    /// The URL service's settings (`log_user_ids`: whether its log lines name users).
    ///
    /// # Errors
    /// [`ConfigError`] for an expiry out of range or a buffer not shorter than it.
    pub fn settings(&self, log_user_ids: bool) -> Result<StreamingSettings, ConfigError> {
        check_presign_expiry(Duration::from_secs(self.presign_expiry_seconds))
            .map_err(|_| refuse("streaming.presign_expiry_seconds must be between 1 and 604800"))?;
        if self.cache_buffer_seconds >= self.presign_expiry_seconds {
            return Err(refuse("streaming.cache_buffer_seconds must be shorter than streaming.presign_expiry_seconds"));
        }
        Ok(StreamingSettings {
            presign_expiry: Duration::from_secs(self.presign_expiry_seconds),
            cache_buffer: Duration::from_secs(self.cache_buffer_seconds),
            cache_key_prefix: self.cache_key_prefix.clone(),
            log_user_ids,
        })
    }
}

impl PlaybackSection {
    /// The playback service's settings.
    ///
    /// # Errors
    /// [`ConfigError`] for a value out of its range.
    pub fn settings(&self) -> Result<PlaybackSettings, ConfigError> {
        check_presign_expiry(Duration::from_secs(self.manifest_expiry_seconds))
            .map_err(|_| refuse("playback.manifest_expiry_seconds must be between 1 and 604800"))?;
        if !(self.position_slack_seconds.is_finite() && self.position_slack_seconds >= 0.0) {
            return Err(refuse("playback.position_slack_seconds must be a number >= 0"));
        }
        if !(self.watched_fraction > 0.0 && self.watched_fraction <= 1.0) {
            return Err(refuse("playback.watched_fraction must be in (0, 1]"));
        }
        let idle_timeout = self.session_idle_timeout_seconds.max(1);
        if self.session_close_after_seconds != 0 && self.session_close_after_seconds < idle_timeout {
            return Err(refuse(format!(
                "playback.session_close_after_seconds must be 0 (never) or at least \
                 playback.session_idle_timeout_seconds ({idle_timeout})"
            )));
        }
        Ok(PlaybackSettings {
            manifest_expiry: Duration::from_secs(self.manifest_expiry_seconds),
            position_slack_seconds: self.position_slack_seconds,
            watched_fraction: self.watched_fraction,
            progress_event_interval: Duration::from_secs(self.progress_event_interval_seconds),
            session_idle_timeout: Duration::from_secs(idle_timeout),
            session_close_after: (self.session_close_after_seconds > 0)
                .then(|| Duration::from_secs(self.session_close_after_seconds)),
            ..PlaybackSettings::default()
        })
    }

    /// How manifests are served through grants at `base_url`, signed with
    /// `grant_secret` or, without one, `fallback` (a random key per process).
    ///
    /// # Errors
    /// [`ConfigError`] for a short secret or a window out of range.
    pub fn grants(&self, base_url: &str, fallback: fn() -> SecretString) -> Result<ManifestGrants, ConfigError> {
        let secret = self.grant_secret.clone().unwrap_or_else(fallback);
        let signer = UrlSigner::new(secret.expose_secret().as_bytes())
            .map_err(|_| refuse("playback.grant_secret must be at least 32 bytes"))?;
        check_presign_expiry(Duration::from_secs(self.object_url_expiry_seconds))
            .map_err(|_| refuse("playback.object_url_expiry_seconds must be between 1 and 604800"))?;
        if self.url_window_seconds == 0 || self.url_window_seconds >= self.object_url_expiry_seconds {
            return Err(refuse(
                "playback.url_window_seconds must be positive and shorter than playback.object_url_expiry_seconds",
            ));
        }
        Ok(ManifestGrants {
            signer,
            endpoint: format!("{}/api/v1/stream", base_url.trim_end_matches('/')),
            url_window: Duration::from_secs(self.url_window_seconds),
            object_url_expiry: Duration::from_secs(self.object_url_expiry_seconds),
        })
    }
}
