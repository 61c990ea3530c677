//! The `redis` section of a configuration, as the service reads it: serde
//! with documented defaults, and the connection it names.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{HotCopyLayout, RedisConfig, RedisConnection};

/// Redis, shared by every instance.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://`, `rediss://`, `redis-cluster://…?node=…` or `redis-sentinel://…`.
    /// When set, rate limits are shared through Redis.
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub url: Option<SecretString>,
    /// Connections in the pool (default 4).
    pub pool_size: usize,
    /// Timeout of every command in milliseconds (default 500).
    pub command_timeout_ms: u64,
    /// After 5 failed commands in a row, Redis is skipped (cache misses,
    /// local rate limits) for this many milliseconds, then one command
    /// tries again (default 30000).
    pub breaker_cool_down_ms: u64,
    /// Prefix of every key (default empty).
    pub key_prefix: String,
    /// PEM file of an extra CA to trust for `rediss://` (a private CA).
    pub tls_ca_file: Option<PathBuf>,
    /// Life of the watch-progress hot copy in seconds (default 86400, the seed's 24 h).
    pub progress_ttl_seconds: u64,
    /// Life of cached subscription answers in seconds (default 300).
    pub subscription_ttl_seconds: u64,
    /// Keys and values of the progress and subscription hot copies:
    /// `tagged` (default) or `cinema` (the cinema service's, on a standalone
    /// Redis it shares; set by its variables).
    pub hot_copy_keys: HotCopyLayout,
    /// With PostgreSQL too: hold every acknowledged progress update, queued
    /// heartbeat and progress event in Redis until it is flushed, so that
    /// another instance writes it if this one dies first (default true).
    pub pending_writes: bool,
    /// Held writes older than this many milliseconds belong to an instance
    /// presumed gone, and another writes them (default 5000: five flushes).
    pub rescue_after_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 4,
            command_timeout_ms: 500,
            breaker_cool_down_ms: 30_000,
            key_prefix: String::new(),
            tls_ca_file: None,
            progress_ttl_seconds: 86_400,
            subscription_ttl_seconds: 300,
            hot_copy_keys: HotCopyLayout::Tagged,
            pending_writes: true,
            rescue_after_ms: 5_000,
        }
    }
}

impl RedisSettings {
    /// The connection these settings name; `None` without a URL.
    ///
    /// # Errors
    /// [`SettingsError`] for an unreadable CA file or a URL that is not a
    /// Redis URL (the URL is never repeated: it may carry a password).
    pub fn connect(&self) -> Result<Option<RedisConnection>, SettingsError> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let tls_ca_certificate = match &self.tls_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| SettingsError::CaFile { path: path.clone(), problem: e.to_string() })?,
            ),
            None => None,
        };
        let config = RedisConfig {
            url: url.expose_secret().to_owned(),
            pool_size: self.pool_size,
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            breaker_cool_down: Duration::from_millis(self.breaker_cool_down_ms),
            key_prefix: self.key_prefix.clone(),
            tls_ca_certificate,
        };
        RedisConnection::connect(&config).map(Some).map_err(|_| SettingsError::Url)
    }

    /// The hot copies' layout on `redis`: the cinema service's needs a
    /// standalone Redis (its keys have no hash tags).
    ///
    /// # Errors
    /// [`SettingsError::CinemaLayoutOnCluster`].
    pub fn layout_on(&self, redis: &RedisConnection) -> Result<HotCopyLayout, SettingsError> {
        match self.hot_copy_keys {
            HotCopyLayout::Cinema if redis.is_clustered() => Err(SettingsError::CinemaLayoutOnCluster),
            layout => Ok(layout),
        }
    }
}

/// Why the Redis settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `redis.tls_ca_file` cannot be read.
    #[error("redis.tls_ca_file {}: {problem}", .path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        problem: String,
    },
    /// `redis.url` is not a Redis URL.
    #[error("redis.url is not a valid Redis URL")]
    Url,
    /// The cinema layout on a cluster.
    #[error("redis.hot_copy_keys = \"cinema\" needs a standalone Redis: on a cluster keep \"tagged\" (the cinema service's keys have no hash tags)")]
    CinemaLayoutOnCluster,
}
