//! The configured subscription directory: in memory (embedded, the demo's),
//! or the user service over HTTP; behind Redis when configured, else behind
//! an in-process cache when it is remote.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use streaming_core::adapters::CachedSubscriptions;
use streaming_core::domain::Plan;
use streaming_core::ports::SubscriptionDirectory;
use streaming_redis::RedisSubscriptionCache;
use streaming_users::{Credentials, UserServiceConfig, UserServiceDirectory};

use crate::settings::{Settings, UserCredentials, UsersSection};
use crate::startup::StartupError;

/// The cache in front of the directory, which `subscription.changed` invalidates.
#[derive(Clone)]
pub enum SubscriptionCache {
    /// Shared by every instance.
    Redis(Arc<RedisSubscriptionCache<Arc<dyn SubscriptionDirectory>>>),
    /// This instance's own.
    Local(Arc<CachedSubscriptions<Arc<dyn SubscriptionDirectory>>>),
}

impl std::fmt::Debug for SubscriptionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Redis(_) => "SubscriptionCache::Redis",
            Self::Local(_) => "SubscriptionCache::Local",
        })
    }
}

impl SubscriptionCache {
    /// The cache as the core's port.
    pub fn port(&self) -> Arc<dyn SubscriptionDirectory> {
        match self {
            Self::Redis(cache) => cache.clone(),
            Self::Local(cache) => cache.clone(),
        }
    }

    /// The cache as a catalog change clears it.
    pub fn control(&self) -> Arc<dyn streaming_core::ports::SubscriptionCache> {
        match self {
            Self::Redis(cache) => cache.clone(),
            Self::Local(cache) => cache.clone(),
        }
    }
}

/// The plan of a user service answer that names none (`{"is_active": …}`).
pub fn default_plan(users: &UsersSection) -> Plan {
    Plan {
        max_devices: (users.default_max_devices > 0).then_some(users.default_max_devices),
        supports_hd: users.default_supports_hd,
        supports_4k: users.default_supports_4k,
    }
}

/// The user service client, when `users.url` is set.
///
/// # Errors
/// [`StartupError::Config`] for inconsistent `users.*` settings.
pub fn user_service(settings: &Settings) -> Result<Option<Arc<UserServiceDirectory>>, StartupError> {
    let users = &settings.users;
    let Some(url) = &users.url else { return Ok(None) };
    let credentials = match (users.credentials, &users.service_token) {
        (UserCredentials::Caller, _) => Credentials::Caller,
        (UserCredentials::Service, Some(token)) if !token.expose_secret().is_empty() => {
            Credentials::Service(token.clone())
        }
        (UserCredentials::Service, _) => {
            return Err(StartupError::Config("users.credentials = \"service\" needs users.service_token".into()))
        }
    };
    if users.timeout_ms == 0 {
        return Err(StartupError::Config("users.timeout_ms must be positive".into()));
    }
    let config = UserServiceConfig {
        path: users.path.clone(),
        timeout: Duration::from_millis(users.timeout_ms),
        retries: users.retries,
        default_plan: default_plan(users),
        ..UserServiceConfig::new(url.clone(), credentials)
    };
    UserServiceDirectory::new(config)
        .map(|d| Some(Arc::new(d)))
        .map_err(|e| StartupError::Config(format!("users.url: {e}")))
}
