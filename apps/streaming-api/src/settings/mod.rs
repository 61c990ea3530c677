//! Layered configuration: built-in defaults < optional TOML file < `STREAMING__*`
//! environment variables (`__` separates sections: `STREAMING__SERVER__PORT=9000`).
//! Secrets are [`SecretString`](secrecy::SecretString)s and never appear in `Debug` output.

mod auth;
mod events;
mod http;
mod playback;
mod stores;
mod telemetry;

pub use auth::{Algorithms, AuthSettings};
pub use events::EventsSettings;
pub use http::{AdminSettings, ProblemSettings, ServerSettings};
pub use playback::{DemoSettings, RateLimitSettings};
pub use stores::{CacheKind, CacheSettings, StorageKind, StorageSettings};
pub use telemetry::{InvalidSetting, LogFormat, LogSettings, MetricsListener, MetricsSettings, OtlpSettings};

use std::path::Path;

use serde::Deserialize;

/// Everything the service can be told.
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where and how to listen.
    pub server: ServerSettings,
    /// Bearer-token verification.
    pub auth: AuthSettings,
    /// Presign expiry and cache semantics.
    pub streaming: streaming_core::config::StreamingSection,
    /// Movie playback: manifests, progress, sessions.
    pub playback: streaming_core::config::PlaybackSection,
    /// Where playback events go.
    pub events: EventsSettings,
    /// The URL cache.
    pub cache: CacheSettings,
    /// Per-user request limits.
    pub rate_limit: RateLimitSettings,
    /// Redis, shared by every instance (cache, rate limits).
    pub redis: streaming_redis::RedisSettings,
    /// PostgreSQL: catalog, progress, sessions.
    pub postgres: streaming_postgres::PgSettings,
    /// Kafka: where playback events are published.
    pub kafka: streaming_kafka::KafkaSettings,
    /// The user service: who has which subscription.
    pub users: streaming_users::UserServiceSettings,
    /// Where media objects live.
    pub storage: StorageSettings,
    /// Demo media and the printed demo token.
    pub demo: DemoSettings,
    /// Logging.
    pub log: LogSettings,
    /// `/metrics`.
    pub metrics: MetricsSettings,
    /// Trace export over OTLP (builds with the `otlp` feature).
    pub otlp: OtlpSettings,
    /// Problem documents.
    pub problems: ProblemSettings,
    /// The internal admin API, on a listener of its own.
    pub admin: AdminSettings,
}

/// Why the configuration could not be loaded: every problem found, each
/// naming its key (or file) and, for a value, where it came from.
#[derive(Debug)]
pub struct SettingsError(Vec<String>);

impl SettingsError {
    fn one(problem: impl Into<String>) -> Self {
        Self(vec![problem.into()])
    }

    /// Each problem, one line each.
    pub fn problems(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "configuration: {one}"),
            problems => write!(f, "configuration: {} problems: {}", problems.len(), problems.join("; ")),
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Loads defaults, then `file` (if given; it must exist), then the
    /// `STREAMING__*` variables of `env`.
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending file, or every key whose value
    /// cannot be read (each key of a section is tried on its own).
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml).required(true));
        }
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        // The cinema service's variables, below our own names.
        let cinema =
            crate::cinema_env::settings(&env).map_err(|e| SettingsError::one(format!("cinema variables: {e}")))?;
        let cinema: config::Map<String, String> = cinema
            .into_iter()
            .map(|(key, value)| (format!("CINEMA__{}", key.replace('.', "__").to_uppercase()), value))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("CINEMA")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(cinema)),
        );
        let env: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("STREAMING__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("STREAMING")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let config = builder.build().map_err(|e| SettingsError::one(e.to_string()))?;
        let layered = config.cache.clone();
        config.try_deserialize().map_err(|first| SettingsError(unreadable(layered, &first)))
    }
}

/// Every value of `layered` that cannot be read, found by reading each
/// section, then each key of a section that fails, on its own (every
/// section and key has a default, so one alone is a whole configuration).
/// `first` is the error of the whole, kept when no single key explains it.
fn unreadable(layered: config::Value, first: &config::ConfigError) -> Vec<String> {
    use config::{Map, Value, ValueKind};
    let alone = |section: &str, value: Value| {
        let root = Value::new(None, ValueKind::Table(Map::from([(section.to_owned(), value)])));
        root.try_deserialize::<Settings>().err().map(|e| e.to_string())
    };
    let sorted = |table: Map<String, Value>| {
        let mut entries: Vec<(String, Value)> = table.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    };
    let mut problems = Vec::new();
    for (section, value) in sorted(layered.into_table().unwrap_or_default()) {
        let Some(section_problem) = alone(&section, value.clone()) else { continue };
        let before = problems.len();
        if let ValueKind::Table(keys) = value.kind {
            for (key, value) in sorted(keys) {
                let single = Value::new(None, ValueKind::Table(Map::from([(key, value)])));
                problems.extend(alone(&section, single));
            }
        }
        if problems.len() == before {
            problems.push(section_problem);
        }
    }
    if problems.is_empty() {
        problems.push(first.to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let settings = Settings::load(None, env(&[])).unwrap();
        assert_eq!(settings.server.host, "127.0.0.1");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.streaming.presign_expiry_seconds, 120);
        assert_eq!(settings.rate_limit.stream_url_per_minute, 60);
        assert_eq!(settings.demo.enabled, None, "decided from what is configured");
        assert!(settings.auth.secret.is_none());
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("streaming.toml");
        std::fs::write(&file, "[server]\nport = 9000\nhost = \"0.0.0.0\"\n[streaming]\npresign_expiry_seconds = 60\n")
            .unwrap();
        let settings = Settings::load(
            Some(&file),
            env(&[
                ("STREAMING__SERVER__PORT", "9100"),
                ("STREAMING__AUTH__SECRET", "s3cr3t-from-the-environment-0123456789"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.port, 9100, "env beats file");
        assert_eq!(settings.server.host, "0.0.0.0", "file beats defaults");
        assert_eq!(settings.streaming.presign_expiry_seconds, 60);
        assert_eq!(settings.auth.secret.as_ref().unwrap().expose_secret(), "s3cr3t-from-the-environment-0123456789");
    }

    #[test]
    fn cinema_variables_set_our_keys_and_ours_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("streaming.toml");
        std::fs::write(&file, "[server]\nport = 7000\n[kafka]\nbrokers = \"file:9092\"\n").unwrap();
        let settings = Settings::load(
            Some(&file),
            env(&[
                ("PORT", "8005"),
                ("KAFKA_BOOTSTRAP_SERVERS", "cinema:9092"),
                ("STREAMING__KAFKA__BROKERS", "ours:9092"),
                ("JWT_SECRET_KEY", "a-cinema-secret-of-at-least-32-bytes!"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.port, 8005, "a cinema variable over the file");
        assert_eq!(settings.kafka.brokers, "ours:9092", "our name over the cinema's");
        assert_eq!(settings.auth.token_type.as_deref(), Some("access"));
        assert_eq!(settings.demo.enabled, Some(false), "a real dependency named: no demo media");
        let refused = Settings::load(None, env(&[("ENABLE_KAFKA", "perhaps")])).unwrap_err().to_string();
        assert!(refused.contains("ENABLE_KAFKA"), "{refused}");
    }

    #[test]
    fn the_cinema_variables_lift_the_stream_limit_and_thinning_and_ours_set_them_back() {
        let cinema =
            [("USER_SERVICE_URL", "http://users:8002"), ("JWT_SECRET_KEY", "a-cinema-secret-of-at-least-32-bytes!")];
        let settings = Settings::load(None, env(&cinema)).unwrap();
        assert_eq!(settings.users.default_max_devices, 0, "no limit unless a plan names one");
        assert_eq!(settings.playback.progress_event_interval_seconds, 0, "an event per report");
        let mut ours = cinema.to_vec();
        ours.extend([
            ("STREAMING__USERS__DEFAULT_MAX_DEVICES", "3"),
            ("STREAMING__PLAYBACK__PROGRESS_EVENT_INTERVAL_SECONDS", "10"),
        ]);
        let settings = Settings::load(None, env(&ours)).unwrap();
        assert_eq!(settings.users.default_max_devices, 3);
        assert_eq!(settings.playback.progress_event_interval_seconds, 10);
        let plain = Settings::load(None, env(&[])).unwrap();
        assert_eq!(plain.users.default_max_devices, 1, "our own default keeps one stream");
        assert_eq!(plain.playback.progress_event_interval_seconds, 10);
        assert_eq!(plain.redis.hot_copy_keys, streaming_redis::HotCopyLayout::Tagged);
    }

    #[test]
    fn the_cinema_redis_variables_choose_the_cinema_hot_copy_keys() {
        let cinema = [("REDIS_HOST", "redis"), ("REDIS_PORT", "6380")];
        let settings = Settings::load(None, env(&cinema)).unwrap();
        assert_eq!(settings.redis.hot_copy_keys, streaming_redis::HotCopyLayout::Cinema);
        let mut ours = cinema.to_vec();
        ours.push(("STREAMING__REDIS__HOT_COPY_KEYS", "tagged"));
        assert_eq!(
            Settings::load(None, env(&ours)).unwrap().redis.hot_copy_keys,
            streaming_redis::HotCopyLayout::Tagged
        );
        let refused = Settings::load(None, env(&[("STREAMING__REDIS__HOT_COPY_KEYS", "braces")])).unwrap_err();
        assert!(refused.to_string().contains("hot_copy_keys"), "{refused}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let settings = Settings::load(
            None,
            env(&[
                ("STREAMING__AUTH__SECRET", "visible-if-leaked-0123456789abcdef"),
                ("STREAMING__CACHE__ENCRYPTION_KEYS", "1:c2VjcmV0"),
            ]),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("visible-if-leaked"));
        assert!(!debug.contains("c2VjcmV0"));
    }

    #[test]
    fn otlp_endpoint_is_checked_and_completed() {
        let otlp = |endpoint: &str, ratio: f64| OtlpSettings {
            endpoint: Some(endpoint.into()),
            sample_ratio: ratio,
            ..OtlpSettings::default()
        };
        assert_eq!(OtlpSettings::default().traces_url(), Ok(None));
        assert_eq!(otlp("", 1.0).traces_url(), Ok(None));
        assert_eq!(
            otlp("http://collector:4318", 1.0).traces_url().unwrap().unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(otlp("https://c/v1/traces/", 0.5).traces_url().unwrap().unwrap(), "https://c/v1/traces");
        for bad in ["collector:4318", "ftp://c", "http://", "http://a b"] {
            assert!(otlp(bad, 1.0).traces_url().is_err(), "{bad}");
        }
        for ratio in [-0.1, 1.5, f64::NAN] {
            assert!(otlp("http://c", ratio).traces_url().unwrap_err().key == "otlp.sample_ratio");
        }
    }

    /// What `config check` prints reads back as the same settings.
    #[test]
    fn the_printed_settings_read_back_as_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().join("given.toml");
        std::fs::write(&given, "[kafka.upstream_topics]\n\"user.suspended\" = \"accounts.suspended\"\n").unwrap();
        let settings = Settings::load(
            Some(&given),
            env(&[("STREAMING__SERVER__WORKERS", "3"), ("STREAMING__AUTH__ALGORITHMS", "HS256,ES256")]),
        )
        .unwrap();
        assert_eq!(settings.kafka.upstream_topics.len(), 1, "{:?}", settings.kafka.upstream_topics);
        let printed = toml::to_string(&settings).unwrap();
        let file = dir.path().join("printed.toml");
        std::fs::write(&file, &printed).unwrap();
        let read = Settings::load(Some(&file), env(&[])).unwrap();
        assert_eq!(format!("{read:?}"), format!("{settings:?}"), "{printed}");
    }

    #[test]
    fn every_unreadable_value_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("streaming.toml");
        std::fs::write(&file, "[server]\nport = \"eighty\"\nprot = 1\nhost = \"0.0.0.0\"\n[sever]\nport = 1\n")
            .unwrap();
        let error = Settings::load(Some(&file), env(&[("STREAMING__LOG__USER_IDS", "perhaps")])).unwrap_err();
        let problems = error.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for (problem, names) in problems.iter().zip(["user_ids", "port", "prot", "sever"]) {
            assert!(problem.contains(names), "{names}: {problem}");
        }
        assert!(error.to_string().starts_with("configuration: 4 problems: "), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Settings::load(None, env(&[("STREAMING__SERVER__PORT", "eighty")])).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("typo.toml");
        std::fs::write(&file, "[server]\nprot = 1\n").unwrap();
        let error = Settings::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(error.contains("prot"), "{error}");
        assert!(Settings::load(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
    }
}
