//! The `users` section of a configuration, as the service reads it: serde
//! with documented defaults, and the client it describes.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use streaming_core::domain::Plan;

use crate::{ConfigError, Credentials, UserServiceConfig, UserServiceDirectory};

/// The user service (`GET {url}{path}`): subscriptions and plans.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserServiceSettings {
    /// `https://users.internal`; unset keeps subscriptions in memory (the demo's).
    pub url: Option<String>,
    /// The endpoint (default `/api/v1/subscriptions/current`).
    pub path: String,
    /// `caller` (default: forward the caller's bearer token) or `service`
    /// (send `service_token` and name the user in `X-User-Id`).
    pub credentials: UserCredentials,
    /// The token for `credentials = "service"` (a secret).
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub service_token: Option<SecretString>,
    /// Bound of each attempt in milliseconds (default 5000).
    pub timeout_ms: u64,
    /// Retries of a failed idempotent call (default 2), jittered exponential backoff.
    pub retries: u32,
    /// After 5 failed lookups in a row (transport errors, timeouts, 5xx),
    /// lookups are 503 at once for this many milliseconds, then one tries
    /// again (default 30000).
    pub breaker_cool_down_ms: u64,
    /// Without Redis: answers kept in process this long (default 300; with
    /// Redis, `redis.subscription_ttl_seconds` applies).
    pub cache_ttl_seconds: u64,
    /// The plan assumed for the `{"is_active": …}` answer, which names none:
    /// devices (default 1; 0: no limit, the default with the cinema
    /// service's variables), HD (default false), 4K (default false).
    pub default_max_devices: u32,
    /// See `default_max_devices`.
    pub default_supports_hd: bool,
    /// See `default_max_devices`.
    pub default_supports_4k: bool,
}

impl Default for UserServiceSettings {
    fn default() -> Self {
        Self {
            url: None,
            path: "/api/v1/subscriptions/current".into(),
            credentials: UserCredentials::Caller,
            service_token: None,
            timeout_ms: 5_000,
            retries: 2,
            breaker_cool_down_ms: 30_000,
            cache_ttl_seconds: 300,
            default_max_devices: 1,
            default_supports_hd: false,
            default_supports_4k: false,
        }
    }
}

/// How the user service client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserCredentials {
    /// Forwards the caller's bearer token.
    #[default]
    Caller,
    /// Sends `users.service_token` and names the user in `X-User-Id`.
    Service,
}

impl UserServiceSettings {
    /// The plan of an answer that names none (`{"is_active": …}`).
    pub fn default_plan(&self) -> Plan {
        Plan {
            max_devices: (self.default_max_devices > 0).then_some(self.default_max_devices),
            supports_hd: self.default_supports_hd,
            supports_4k: self.default_supports_4k,
        }
    }

    /// The client these settings describe; `None` without a URL.
    ///
    /// # Errors
    /// [`ConfigError`] for a service credential without its token, a zero
    /// timeout, or a URL that is not http(s).
    pub fn directory(&self) -> Result<Option<UserServiceDirectory>, ConfigError> {
        let Some(url) = &self.url else { return Ok(None) };
        let credentials = match (self.credentials, &self.service_token) {
            (UserCredentials::Caller, _) => Credentials::Caller,
            (UserCredentials::Service, Some(token)) if !token.expose_secret().is_empty() => {
                Credentials::Service(token.clone())
            }
            (UserCredentials::Service, _) => {
                return Err(ConfigError("users.credentials = \"service\" needs users.service_token".into()))
            }
        };
        if self.timeout_ms == 0 {
            return Err(ConfigError("users.timeout_ms must be positive".into()));
        }
        let config = UserServiceConfig {
            path: self.path.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            default_plan: self.default_plan(),
            ..UserServiceConfig::new(url.clone(), credentials)
        };
        let breaker = streaming_core::circuit_breaker::CircuitBreaker::new(
            5,
            Duration::from_millis(self.breaker_cool_down_ms.max(1)),
        )
        .named("user_service");
        UserServiceDirectory::new(config)
            .map(|directory| Some(directory.with_breaker(breaker)))
            .map_err(|e| ConfigError(format!("users.url: {e}")))
    }
}
