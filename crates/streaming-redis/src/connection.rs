//! One pooled client with the request-path guard shared by every adapter.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, ClientLike, Config, Pool, ReconnectPolicy, TlsConnector};
use streaming_core::circuit_breaker::{BreakerState, CircuitBreaker};
use tracing::warn;

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://` URL.
    pub url: String,
    /// Connections in the pool (default 4).
    pub pool_size: usize,
    /// Timeout of every command (default 500 ms).
    pub command_timeout: Duration,
    /// After 5 failed commands in a row, commands fail at once for this
    /// long, then one tries again (default 30 s, the design's).
    pub breaker_cool_down: Duration,
    /// Prefix of every key (default empty).
    pub key_prefix: String,
    /// PEM of an extra CA to trust for `rediss://` (a private CA); the
    /// system's roots are trusted either way.
    pub tls_ca_certificate: Option<Vec<u8>>,
}

/// The URL without its credentials or query (see [`streaming_core::telemetry::redacted_url`]).
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &streaming_core::telemetry::redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("command_timeout", &self.command_timeout)
            .field("breaker_cool_down", &self.breaker_cool_down)
            .field("key_prefix", &self.key_prefix)
            .field("tls_ca_certificate", &self.tls_ca_certificate.as_ref().map(Vec::len))
            .finish()
    }
}

impl RedisConfig {
    /// A config for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 4,
            command_timeout: Duration::from_millis(500),
            breaker_cool_down: Duration::from_secs(30),
            key_prefix: String::new(),
            tls_ca_certificate: None,
        }
    }
}

/// Why Redis could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The URL or settings are invalid.
    #[error("redis configuration: {0}")]
    Config(String),
    /// A command failed, timed out, or the breaker is open.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

/// The fred builder for `config`: command timeout, no retry, background reconnects.
fn builder(config: &RedisConfig) -> Result<Builder, RedisError> {
    let mut fred_config = Config::from_url(&config.url).map_err(|e| RedisError::Config(e.to_string()))?;
    if let Some(pem) = &config.tls_ca_certificate {
        let ca = native_tls::Certificate::from_pem(pem).map_err(|e| RedisError::Config(format!("TLS CA: {e}")))?;
        let connector = native_tls::TlsConnector::builder()
            .add_root_certificate(ca)
            .build()
            .map_err(|e| RedisError::Config(format!("TLS: {e}")))?;
        fred_config.tls = Some(TlsConnector::from(connector).into());
    }
    let timeout = config.command_timeout;
    let mut builder = Builder::from_config(fred_config);
    builder
        .with_performance_config(|performance| performance.default_command_timeout = timeout)
        .with_connection_config(|connection| {
            // One attempt: the request path never waits for a retry.
            connection.max_command_attempts = 1;
            connection.connection_timeout = Duration::from_secs(2);
            connection.internal_command_timeout = Duration::from_secs(2);
        })
        // Reconnect forever in the background: 100 ms doubling to 5 s.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    Ok(builder)
}

/// A pooled connection, its breaker and the key prefix, shared by the adapters.
#[derive(Clone)]
pub struct RedisConnection {
    pool: Pool,
    breaker: Arc<CircuitBreaker>,
    prefix: Arc<str>,
    config: Arc<RedisConfig>,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("prefix", &self.prefix)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Builds the pool and starts connecting in the background. Does not wait
    /// for Redis: a cache that is down at start is a cache miss, not a crash.
    ///
    /// # Errors
    /// [`RedisError::Config`] for a malformed URL or pool size.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisError> {
        let pool =
            builder(config)?.build_pool(config.pool_size.max(1)).map_err(|e| RedisError::Config(e.to_string()))?;
        // The handle is the background connection task; it lives as long as the pool.
        drop(pool.connect());
        Ok(Self {
            pool,
            breaker: Arc::new(CircuitBreaker::new(5, config.breaker_cool_down).named("redis")),
            prefix: config.key_prefix.as_str().into(),
            config: Arc::new(config.clone()),
        })
    }

    /// A client for subscriptions on the same server, resubscribing after reconnects.
    pub(crate) fn subscriber(&self) -> Result<SubscriberClient, RedisError> {
        builder(&self.config)?.build_subscriber_client().map_err(|e| RedisError::Config(e.to_string()))
    }

    /// Waits until every connection is up, for at most `timeout` (tests, readiness).
    ///
    /// # Errors
    /// [`RedisError::Unavailable`] if Redis did not answer in time.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), RedisError> {
        tokio::time::timeout(timeout, self.pool.wait_for_connect())
            .await
            .map_err(|_| RedisError::Unavailable("not connected".into()))?
            .map_err(|e| RedisError::Unavailable(e.to_string()))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this is a Redis Cluster (keys of one script call must then
    /// share a hash slot).
    pub fn is_clustered(&self) -> bool {
        self.pool.next().is_clustered()
    }

    /// The breaker's state (readiness, metrics).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs one command through the breaker; its own timeout bounds it.
    pub(crate) async fn guarded<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, RedisError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, fred::error::Error>>,
    {
        let Some(breaker) = self.breaker.call() else {
            return Err(RedisError::Unavailable("circuit breaker open".into()));
        };
        match call().await {
            Ok(value) => {
                breaker.succeeded();
                Ok(value)
            }
            Err(error) => {
                breaker.failed();
                warn!(command = what, error = %error.kind().to_str(), "redis command failed");
                Err(RedisError::Unavailable(format!("{what}: {}", error.kind().to_str())))
            }
        }
    }
}
