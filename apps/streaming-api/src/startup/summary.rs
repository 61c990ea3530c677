//! What a start tells its operator: one line naming the version, the
//! adapters, the token algorithms and the listeners, and one warning per
//! shared secret made up at random (it is lost with the process).

use streaming_auth::Algorithm;

use crate::settings::{CacheKind, MetricsListener, Settings, StorageKind};

/// The start's summary, gathered once the settings are complete (the
/// secrets derived where they can be).
#[derive(Debug, Clone)]
pub(super) struct Summary {
    storage: &'static str,
    cache: &'static str,
    database: &'static str,
    events: &'static str,
    users: &'static str,
    token_algorithms: String,
    metrics: &'static str,
    /// The secrets no setting gave and none could be derived: random.
    random_secrets: Vec<&'static str>,
}

impl Summary {
    /// The summary of `settings` (after `secrets::complete`).
    pub(super) fn of(settings: &Settings) -> Self {
        let algorithms = &settings.auth.algorithms;
        let mut random_secrets = Vec::new();
        if algorithms.accepts(Algorithm::Hs256) && settings.auth.secret.is_none() {
            random_secrets.push("auth.secret");
        }
        if settings.playback.grant_secret.is_none() {
            random_secrets.push("playback.grant_secret");
        }
        if settings.cache.kind != CacheKind::Off && settings.cache.encryption_keys.is_none() {
            random_secrets.push("cache.encryption_keys");
        }
        if settings.storage.kind == StorageKind::Localfs && settings.storage.signing_key.is_none() {
            random_secrets.push("storage.signing_key");
        }
        Self {
            storage: match settings.storage.kind {
                StorageKind::Localfs => "localfs",
                StorageKind::S3 => "s3",
            },
            cache: match settings.cache.kind {
                CacheKind::Moka | CacheKind::Memory => "memory",
                CacheKind::Redis => "redis",
                CacheKind::Off => "off",
            },
            database: if settings.postgres.url.is_some() { "postgres" } else { "memory" },
            events: if settings.kafka.enabled { "kafka" } else { "file" },
            users: if settings.users.url.is_some() { "user service" } else { "memory" },
            token_algorithms: algorithms.0.iter().map(|algorithm| algorithm.name()).collect::<Vec<_>>().join(","),
            metrics: match (settings.metrics.enabled, settings.metrics.listener) {
                (false, _) => "off",
                (true, MetricsListener::Public) => "public",
                (true, MetricsListener::Admin) => "admin",
            },
            random_secrets,
        }
    }

    /// Logs the summary line, with `listening` (the public URL) and the
    /// admin listener's port, then a warning per random secret.
    pub(super) fn log(&self, listening: &str, admin_port: Option<u16>) {
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            storage = self.storage,
            cache = self.cache,
            database = self.database,
            events = self.events,
            users = self.users,
            token_algorithms = %self.token_algorithms,
            metrics = self.metrics,
            listening,
            admin_port,
            "streaming service started"
        );
        for secret in &self.random_secrets {
            let consequence = match *secret {
                "auth.secret" => "only the printed demo token works, and no token survives a restart",
                "playback.grant_secret" => "manifest grants do not survive a restart nor work on another instance",
                "cache.encryption_keys" => "cached entries do not survive a restart nor open on another instance",
                _ => "object URLs do not survive a restart nor work on another instance",
            };
            tracing::warn!(secret, "{secret} is not set: made up at random for this process; {consequence}");
        }
    }
}
