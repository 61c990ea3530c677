//! The cinema streaming service's environment variables, read as settings:
//! a team replacing that service keeps its environment. Each variable maps
//! onto our own keys (`docs/configuration.md`, "The cinema service's
//! variables"); `STREAMING__*` variables win where both name a key. One of
//! the variables of a real dependency (`POSTGRES_HOST`, `REDIS_HOST`,
//! `S3_ENDPOINT_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `ENABLE_KAFKA`,
//! `USER_SERVICE_URL`, `JWT_SECRET_KEY`) switches demo mode off — the drop-in
//! serves the team's catalog, not demo media — unless
//! `STREAMING__DEMO__ENABLED` says otherwise; `HOST` or `PORT` alone (common
//! in shells and platforms) do not.

use std::collections::{BTreeMap, HashMap};

/// Every variable read, as the cinema service names them.
pub const VARIABLES: [&str; 28] = [
    "HOST",
    "PORT",
    "API_V1_PREFIX",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
    "REDIS_PROGRESS_TTL",
    "REDIS_SUBSCRIPTION_CACHE_TTL",
    "S3_ENDPOINT_URL",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_BUCKET_NAME",
    "S3_REGION",
    "S3_USE_SSL",
    "SIGNED_URL_EXPIRATION",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPIC_PREFIX",
    "ENABLE_KAFKA",
    "USER_SERVICE_URL",
    "USER_SERVICE_TIMEOUT",
    "JWT_SECRET_KEY",
    "JWT_ALGORITHM",
];

/// Percent-encodes the characters a URL's user or password part cannot hold.
fn userinfo(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A cinema variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct CinemaEnvError {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

fn refused(variable: &'static str, problem: impl Into<String>) -> CinemaEnvError {
    CinemaEnvError { variable, problem: problem.into() }
}

fn truthy(name: &'static str, value: &str) -> Result<bool, CinemaEnvError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(refused(name, format!("{other:?} is not true or false"))),
    }
}

fn whole(name: &'static str, value: &str) -> Result<u64, CinemaEnvError> {
    value.trim().parse().map_err(|_| refused(name, format!("{value:?} is not a whole number")))
}

/// Our settings (`section.key` → value) that the cinema variables in `env`
/// stand for. Empty when none is set.
///
/// # Errors
/// [`CinemaEnvError`] naming the variable whose value cannot be used.
pub fn settings(env: &HashMap<String, String>) -> Result<BTreeMap<String, String>, CinemaEnvError> {
    let get = |name: &str| env.get(name).map(String::as_str).filter(|v| !v.trim().is_empty());
    let mut out = BTreeMap::new();
    if !VARIABLES.iter().any(|name| get(name).is_some()) {
        return Ok(out);
    }
    let mut set = |key: &str, value: String| {
        out.insert(key.to_owned(), value);
    };
    let real = ["POSTGRES_HOST", "REDIS_HOST", "S3_ENDPOINT_URL", "KAFKA_BOOTSTRAP_SERVERS", "ENABLE_KAFKA"]
        .into_iter()
        .chain(["USER_SERVICE_URL", "JWT_SECRET_KEY"])
        .any(|name| get(name).is_some());
    if real {
        set("demo.enabled", "false".into());
        // As the cinema service: a movie exists when its manifest does.
        set("playback.stored_movies", "true".into());
        // As the cinema service: no limit on concurrent streams unless the
        // user service names one (its `{"is_active": …}` answer names no
        // plan) or `STREAMING__USERS__DEFAULT_MAX_DEVICES` sets one. Its
        // clients never send a session id, so a reload starts a new session.
        set("users.default_max_devices", "0".into());
        // As the cinema service: one `stream.progress` event per accepted
        // report (its consumers count them).
        set("playback.progress_event_interval_seconds", "0".into());
    }

    if let Some(host) = get("HOST") {
        set("server.host", host.to_owned());
    }
    if let Some(port) = get("PORT") {
        set("server.port", whole("PORT", port)?.to_string());
    }
    if let Some(prefix) = get("API_V1_PREFIX") {
        if prefix.trim_end_matches('/') != "/api/v1" {
            return Err(refused("API_V1_PREFIX", format!("only /api/v1 is served, not {prefix:?}")));
        }
    }

    if let Some(host) = get("POSTGRES_HOST") {
        let user = get("POSTGRES_USER").unwrap_or("postgres");
        let password = get("POSTGRES_PASSWORD").map(|p| format!(":{}", userinfo(p))).unwrap_or_default();
        let port = whole("POSTGRES_PORT", get("POSTGRES_PORT").unwrap_or("5432"))?;
        let database = get("POSTGRES_DB").unwrap_or("postgres");
        set("postgres.url", format!("postgres://{}{password}@{host}:{port}/{}", userinfo(user), userinfo(database)));
    }

    if let Some(host) = get("REDIS_HOST") {
        let password = get("REDIS_PASSWORD").map(|p| format!(":{}@", userinfo(p))).unwrap_or_default();
        let port = whole("REDIS_PORT", get("REDIS_PORT").unwrap_or("6379"))?;
        let database = whole("REDIS_DB", get("REDIS_DB").unwrap_or("0"))?;
        set("redis.url", format!("redis://{password}{host}:{port}/{database}"));
        set("cache.kind", "redis".into());
        // Its keys and value shapes: both services see each other's hot copies.
        set("redis.hot_copy_keys", "cinema".into());
    }
    if let Some(ttl) = get("REDIS_PROGRESS_TTL") {
        set("redis.progress_ttl_seconds", whole("REDIS_PROGRESS_TTL", ttl)?.to_string());
    }
    if let Some(ttl) = get("REDIS_SUBSCRIPTION_CACHE_TTL") {
        set("redis.subscription_ttl_seconds", whole("REDIS_SUBSCRIPTION_CACHE_TTL", ttl)?.to_string());
    }

    if let Some(endpoint) = get("S3_ENDPOINT_URL") {
        let endpoint = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            let secure = get("S3_USE_SSL").map(|v| truthy("S3_USE_SSL", v)).transpose()?.unwrap_or(false);
            format!("{}://{endpoint}", if secure { "https" } else { "http" })
        };
        set("storage.kind", "s3".into());
        set("storage.s3.endpoint", endpoint);
    }
    for (name, key) in [
        ("S3_ACCESS_KEY", "storage.s3.access_key"),
        ("S3_SECRET_KEY", "storage.s3.secret_key"),
        ("S3_BUCKET_NAME", "storage.s3.bucket"),
        ("S3_REGION", "storage.s3.region"),
    ] {
        if let Some(value) = get(name) {
            set(key, value.to_owned());
        }
    }
    if let Some(seconds) = get("SIGNED_URL_EXPIRATION") {
        set("playback.manifest_expiry_seconds", whole("SIGNED_URL_EXPIRATION", seconds)?.to_string());
    }

    if let Some(brokers) = get("KAFKA_BOOTSTRAP_SERVERS") {
        set("kafka.brokers", brokers.to_owned());
    }
    if let Some(enabled) = get("ENABLE_KAFKA") {
        set("kafka.enabled", truthy("ENABLE_KAFKA", enabled)?.to_string());
    }
    if let Some(prefix) = get("KAFKA_TOPIC_PREFIX") {
        // The cinema's topics are `{prefix}.start`; ours `{topic_prefix}stream.start`.
        let ours = prefix.strip_suffix("stream").ok_or_else(|| {
            refused(
                "KAFKA_TOPIC_PREFIX",
                format!("topics are named …stream.start here, so it must end with \"stream\", not {prefix:?}"),
            )
        })?;
        set("kafka.topic_prefix", ours.to_owned());
    }

    if let Some(url) = get("USER_SERVICE_URL") {
        set("users.url", url.to_owned());
    }
    if let Some(timeout) = get("USER_SERVICE_TIMEOUT") {
        let seconds: f64 = timeout
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .ok_or_else(|| refused("USER_SERVICE_TIMEOUT", format!("{timeout:?} is not a number of seconds")))?;
        set("users.timeout_ms", ((seconds * 1000.0).round() as u64).max(1).to_string());
    }

    if let Some(secret) = get("JWT_SECRET_KEY") {
        set("auth.secret", secret.to_owned());
        // The cinema auth service's access tokens say so; its refresh tokens are refused.
        set("auth.token_type", "access".into());
        // Its subjects are user UUIDs, all the cinema service's tables hold.
        set("auth.uuid_subjects", "true".into());
    }
    if let Some(algorithm) = get("JWT_ALGORITHM") {
        if !algorithm.trim().eq_ignore_ascii_case("HS256") {
            return Err(refused("JWT_ALGORITHM", format!("only HS256 goes with JWT_SECRET_KEY, not {algorithm:?}")));
        }
        set("auth.algorithms", "HS256".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn nothing_set_maps_to_nothing() {
        assert!(settings(&env(&[("PATH", "/usr/bin"), ("LANG", "C.UTF-8")])).unwrap().is_empty());
    }

    #[test]
    fn the_cinema_example_environment_maps_onto_our_keys() {
        let mapped = settings(&env(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "8005"),
            ("API_V1_PREFIX", "/api/v1"),
            ("POSTGRES_HOST", "db"),
            ("POSTGRES_PORT", "5435"),
            ("POSTGRES_USER", "streaming_service"),
            ("POSTGRES_PASSWORD", "p@ss:w/rd"),
            ("POSTGRES_DB", "streaming_db"),
            ("REDIS_HOST", "redis"),
            ("REDIS_DB", "2"),
            ("REDIS_PASSWORD", "secret"),
            ("REDIS_PROGRESS_TTL", "86400"),
            ("REDIS_SUBSCRIPTION_CACHE_TTL", "300"),
            ("S3_ENDPOINT_URL", "minio:9000"),
            ("S3_USE_SSL", "true"),
            ("S3_ACCESS_KEY", "minioadmin"),
            ("S3_SECRET_KEY", "minioadmin"),
            ("S3_BUCKET_NAME", "vod"),
            ("S3_REGION", "eu-west-1"),
            ("SIGNED_URL_EXPIRATION", "7200"),
            ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092"),
            ("KAFKA_TOPIC_PREFIX", "stream"),
            ("ENABLE_KAFKA", "true"),
            ("USER_SERVICE_URL", "http://users:8002"),
            ("USER_SERVICE_TIMEOUT", "2.5"),
            ("JWT_SECRET_KEY", "your-secret-key-change-in-production"),
            ("JWT_ALGORITHM", "HS256"),
        ]))
        .unwrap();
        let expect = [
            ("demo.enabled", "false"),
            ("playback.stored_movies", "true"),
            ("users.default_max_devices", "0"),
            ("playback.progress_event_interval_seconds", "0"),
            ("server.host", "0.0.0.0"),
            ("server.port", "8005"),
            ("postgres.url", "postgres://streaming_service:p%40ss%3Aw%2Frd@db:5435/streaming_db"),
            ("redis.url", "redis://:secret@redis:6379/2"),
            ("cache.kind", "redis"),
            ("redis.hot_copy_keys", "cinema"),
            ("redis.progress_ttl_seconds", "86400"),
            ("redis.subscription_ttl_seconds", "300"),
            ("storage.kind", "s3"),
            ("storage.s3.endpoint", "https://minio:9000"),
            ("storage.s3.access_key", "minioadmin"),
            ("storage.s3.secret_key", "minioadmin"),
            ("storage.s3.bucket", "vod"),
            ("storage.s3.region", "eu-west-1"),
            ("playback.manifest_expiry_seconds", "7200"),
            ("kafka.brokers", "kafka:9092"),
            ("kafka.enabled", "true"),
            ("kafka.topic_prefix", ""),
            ("users.url", "http://users:8002"),
            ("users.timeout_ms", "2500"),
            ("auth.secret", "your-secret-key-change-in-production"),
            ("auth.token_type", "access"),
            ("auth.uuid_subjects", "true"),
            ("auth.algorithms", "HS256"),
        ];
        for (key, value) in expect {
            assert_eq!(mapped.get(key).map(String::as_str), Some(value), "{key}");
        }
        assert_eq!(mapped.len(), expect.len(), "{mapped:?}");
    }

    #[test]
    fn host_and_port_alone_keep_demo_mode() {
        let mapped = settings(&env(&[("HOST", "127.0.0.1"), ("PORT", "9000")])).unwrap();
        assert_eq!(mapped.get("demo.enabled"), None);
        assert_eq!(mapped["server.port"], "9000");
    }

    #[test]
    fn values_that_cannot_be_used_name_their_variable() {
        for (vars, said) in [
            (env(&[("PORT", "http")]), "PORT"),
            (env(&[("API_V1_PREFIX", "/v2")]), "API_V1_PREFIX"),
            (env(&[("ENABLE_KAFKA", "maybe")]), "ENABLE_KAFKA"),
            (env(&[("KAFKA_TOPIC_PREFIX", "events")]), "must end with \"stream\""),
            (env(&[("USER_SERVICE_TIMEOUT", "-1")]), "USER_SERVICE_TIMEOUT"),
            (env(&[("JWT_ALGORITHM", "RS256")]), "only HS256"),
            (env(&[("REDIS_HOST", "r"), ("REDIS_PORT", "six")]), "REDIS_PORT"),
            (env(&[("POSTGRES_HOST", "db"), ("POSTGRES_PORT", "")]), ""),
        ] {
            match settings(&vars) {
                Err(error) => assert!(!said.is_empty() && error.to_string().contains(said), "{vars:?}: {error}"),
                // An empty variable counts as unset.
                Ok(mapped) => assert!(said.is_empty() && mapped["postgres.url"].ends_with("@db:5432/postgres")),
            }
        }
        assert_eq!(
            settings(&env(&[("KAFKA_TOPIC_PREFIX", "prod.stream")])).unwrap()["kafka.topic_prefix"],
            "prod.",
            "prod.stream.start is prod. + stream.start"
        );
    }
}
