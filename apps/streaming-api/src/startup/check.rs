//! Every problem of a configuration at once, found without opening a
//! listener, a connection or a file of the stores: `streaming-api config
//! check`, and the binary before it starts. Each check is the one the start
//! itself makes (the same functions), run on its own so that one problem
//! does not hide the next.

use super::StartupError;
use crate::settings::{CacheKind, Settings};
use crate::storage::Storage;

impl Settings {
    /// Every problem the start would stop at, that the settings alone
    /// show, each naming its setting; empty when there is none. What only
    /// the dependencies can tell (a database that does not answer, a JWKS
    /// URL that does not serve keys) is left to the start.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = Vec::new();
        let mut note = |result: Result<(), StartupError>| {
            if let Err(error) = result {
                problems.push(match error {
                    StartupError::Config(problem) => problem,
                    other => other.to_string(),
                });
            }
        };
        // The shared secrets first: the checks after them see what the
        // start would (secrets derived from auth.secret).
        let mut completed = self.clone();
        note(crate::secrets::complete(&mut completed).map(drop));
        let settings = &completed;
        note(super::http::metrics_listener(settings));
        note(super::demo_mode(settings).map(drop));
        note(settings.streaming.settings(settings.log.user_ids).map(drop).map_err(super::config));
        note(settings.playback.settings().map(drop).map_err(super::config));
        note(settings.playback.grants("http://127.0.0.1", super::random_secret).map(drop).map_err(super::config));
        note(super::auth::key_source(settings).map(drop));
        note(super::auth::check_secret(settings));
        note(Storage::check(settings));
        note(super::redis_connection(settings).map(drop));
        if settings.cache.kind == CacheKind::Redis && settings.redis.url.is_none() {
            note(Err(super::redis::no_redis_for_the_cache()));
        }
        note(super::keyring(settings).map(drop));
        note(settings.kafka.upstream_topics().map(drop).map_err(|e| StartupError::Config(e.to_string())));
        note(settings.kafka.producer().map(drop).map_err(|e| StartupError::Config(e.to_string())));
        note(settings.users.directory().map(drop).map_err(|e| StartupError::Config(e.to_string())));
        if settings.admin.enabled {
            note(super::http::admin_credentials(settings).map(drop));
        }
        problems
            .extend(crate::telemetry::check_settings(&settings.log, &settings.otlp).iter().map(ToString::to_string));
        problems
    }
}
