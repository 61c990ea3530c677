//! The core's services: their settings from ours, the idle-session sweeper, demo mode.

use super::auth::random_secret;
use super::StartupError;
use crate::catalog::Catalog;
use crate::demo::{self, DemoInfo};
use crate::storage::Storage;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use streaming_core::adapters::MemorySubscriptions;
use streaming_core::ports::{RateLimiter, ReadinessCheck};
use streaming_core::rate_limit::UserLimit;
use streaming_core::{PlaybackLimits, PlaybackPorts};
use streaming_redis::{RedisConnection, RedisEventGate};

use streaming_core::PlaybackService;

use crate::settings::{Settings, StorageKind};

pub(super) fn config(error: streaming_core::config::ConfigError) -> StartupError {
    StartupError::Config(error.to_string())
}

/// Closes the sessions nobody stopped, every [`PlaybackService::sweep_interval`],
/// for as long as the service lives.
fn sweep_idle_sessions(playback: &Arc<PlaybackService>) {
    let Some(every) = playback.sweep_interval() else { return };
    let weak = Arc::downgrade(playback);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(playback) = weak.upgrade() else { break };
            match playback.close_idle_sessions().await {
                Ok(0) => {}
                Ok(closed) => tracing::debug!(closed, "idle sessions closed"),
                Err(error) => tracing::warn!(%error, "closing idle sessions failed; the next sweep tries again"),
            }
        }
    });
}

/// Whether demo mode is on: as asked, else only when nothing real is
/// configured. Asked for beside a real store, the start stops: the demo
/// media would be written into it.
pub(super) fn demo_mode(settings: &Settings) -> Result<bool, StartupError> {
    let stores = [
        (settings.postgres.url.is_some(), "postgres.url"),
        (settings.redis.url.is_some(), "redis.url"),
        (settings.storage.kind == StorageKind::S3, "storage.kind = \"s3\""),
        (settings.kafka.enabled, "kafka.enabled"),
        (settings.users.url.is_some(), "users.url"),
    ];
    let store = stores.iter().find(|(configured, _)| *configured).map(|(_, name)| *name);
    let auth = &settings.auth;
    let identity = auth.secret.is_some() || auth.jwks_url.is_some() || auth.jwks_file.is_some();
    match (settings.demo.enabled, store) {
        (Some(true), Some(store)) => Err(StartupError::Config(format!(
            "demo.enabled = true with {store}: demo mode writes its media into the configured stores; \
             leave demo.enabled unset (or false) with real stores"
        ))),
        (Some(enabled), _) => Ok(enabled),
        (None, store) => Ok(store.is_none() && !identity),
    }
}

/// Movie playback over `ports`: manifests served through grants, the start
/// and manifest limits, the progress-event gate shared through Redis when
/// there is one, and the idle-session sweeper running.
pub(super) fn playback_service(
    settings: &Settings,
    ports: PlaybackPorts,
    base_url: &str,
    limiter: &Arc<dyn RateLimiter>,
    redis: Option<&RedisConnection>,
    store_health: Arc<dyn ReadinessCheck>,
) -> Result<Arc<PlaybackService>, StartupError> {
    let limits = &settings.rate_limit;
    let mut playback = PlaybackService::new(ports, settings.playback.settings().map_err(config)?)
        .with_store_health(store_health)
        .with_manifest_grants(settings.playback.grants(base_url, random_secret).map_err(config)?)
        .with_limits(PlaybackLimits {
            start: UserLimit::per_minute(limiter.clone(), "stream-start", limits.stream_start_per_minute),
            manifest: UserLimit::per_minute(limiter.clone(), "stream-manifest", limits.manifest_per_minute),
        });
    // With Redis, progress events are thinned out across every instance.
    if let Some(redis) = redis {
        playback = playback.with_shared_event_gate(Arc::new(RedisEventGate::new(redis.clone())));
    }
    let playback = Arc::new(playback);
    sweep_idle_sessions(&playback);
    Ok(playback)
}

/// Demo mode: the demo media written into the configured stores, the demo
/// user's subscription, and (with HS256; with RS256/ES256 the issuer mints
/// tokens) a 12-hour token for the demo user.
pub(super) async fn demo_media(
    settings: &Settings,
    catalog: &Catalog,
    storage: &Storage,
    subscriptions: &MemorySubscriptions,
    auth_secret: Option<&SecretString>,
    now: time::OffsetDateTime,
) -> Result<DemoInfo, StartupError> {
    let (user, tracks) = demo::seed(catalog, storage).await?;
    let movie = demo::seed_movie(catalog, storage).await?;
    subscriptions.set(&user, Some(demo::demo_subscription()));
    let token = match auth_secret {
        Some(secret) => {
            crate::auth::mint_token(&settings.auth, secret, user.as_str(), Duration::from_secs(12 * 3600), now)
                .map_err(|e| StartupError::Config(format!("demo token: {e}")))?
        }
        None => String::new(),
    };
    Ok(DemoInfo { user, token, tracks, movie })
}
