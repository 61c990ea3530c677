//! The `storage.s3` section of a configuration, as the service reads it:
//! serde with documented defaults, and the store it names.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::{S3Config, S3ConfigError, S3Credentials, S3ObjectStore};

/// The S3 store.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// `http(s)://host[:port]` of an S3-compatible server; unset for AWS.
    pub endpoint: Option<String>,
    /// Signing region (default `us-east-1`).
    pub region: String,
    /// The private bucket.
    pub bucket: String,
    /// Access key id; with `secret_key` unset too, the standard AWS chain is used.
    pub access_key: String,
    /// Secret access key.
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub secret_key: Option<SecretString>,
    /// Timeout of each HEAD/GET to the store, in milliseconds (default 5000).
    pub request_timeout_ms: u64,
    /// After 5 failed requests to the store in a row, what needs it is 503
    /// at once for this many milliseconds, then one tries again (default 30000).
    pub breaker_cool_down_ms: u64,
    /// How often the store is asked whether it answers (a HEAD of the
    /// bucket), in milliseconds (default 5000; 0 never): presigning is local,
    /// so without it a store that is down goes unnoticed by the track path.
    pub probe_interval_ms: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: String::new(),
            access_key: String::new(),
            secret_key: None,
            request_timeout_ms: 5_000,
            breaker_cool_down_ms: 30_000,
            probe_interval_ms: 5_000,
        }
    }
}

impl S3Settings {
    /// The store these settings name. Both keys, or neither: then the
    /// standard AWS chain (environment, profile, container or instance role).
    ///
    /// # Errors
    /// [`S3ConfigError`] for one key without the other, no bucket, or a bad endpoint.
    pub fn open(&self) -> Result<S3ObjectStore, S3ConfigError> {
        let credentials = match (self.access_key.is_empty(), &self.secret_key) {
            (false, Some(secret_key)) => {
                S3Credentials::Static { access_key: self.access_key.clone(), secret_key: secret_key.clone() }
            }
            (true, None) => S3Credentials::Default,
            _ => return Err(S3ConfigError::HalfAKey),
        };
        S3ObjectStore::new(S3Config {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            credentials,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            breaker_cool_down: Duration::from_millis(self.breaker_cool_down_ms),
        })
    }
}
