//! The configured subscription directory: in memory (embedded, the demo's),
//! or the user service over HTTP; behind Redis when configured, else behind
//! an in-process cache when it is remote.

use std::sync::Arc;

use streaming_core::adapters::CachedSubscriptions;
use streaming_core::ports::SubscriptionDirectory;
use streaming_redis::RedisSubscriptionCache;
use streaming_users::UserServiceDirectory;

use crate::settings::Settings;
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

/// The user service client, when `users.url` is set.
///
/// # Errors
/// [`StartupError::Config`] for inconsistent `users.*` settings.
pub fn user_service(settings: &Settings) -> Result<Option<Arc<UserServiceDirectory>>, StartupError> {
    Ok(settings.users.directory().map_err(|e| StartupError::Config(e.to_string()))?.map(Arc::new))
}
