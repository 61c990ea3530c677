//! Layered configuration: built-in defaults < optional TOML file < `STREAMING__*`
//! environment variables (`__` separates sections: `STREAMING__SERVER__PORT=9000`).
//! Secrets are [`SecretString`]s and never appear in `Debug` output.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use streaming_auth::Algorithm;

/// Everything the service can be told.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where and how to listen.
    pub server: ServerSettings,
    /// Bearer-token verification.
    pub auth: AuthSettings,
    /// Presign expiry and cache semantics.
    pub streaming: StreamingSection,
    /// Movie playback: manifests, progress, sessions.
    pub playback: PlaybackSection,
    /// Where playback events go.
    pub events: EventsSettings,
    /// The URL cache.
    pub cache: CacheSettings,
    /// Per-user request limits.
    pub rate_limit: RateLimitSettings,
    /// Redis, shared by every instance (cache, rate limits).
    pub redis: RedisSection,
    /// PostgreSQL: catalog, progress, sessions.
    pub postgres: PostgresSection,
    /// Kafka: where playback events are published.
    pub kafka: KafkaSection,
    /// The user service: who has which subscription.
    pub users: UsersSection,
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

/// The internal admin API (`/internal/v1/`): catalog, grants, user status
/// and cache invalidation for operators and services without Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Serve it (default false).
    pub enabled: bool,
    /// Its own address (default `127.0.0.1`: loopback only).
    pub host: String,
    /// Its own port (default 8081; 0 picks a free one).
    pub port: u16,
    /// The service credentials, `name:key` pairs separated by commas; each
    /// key at least 32 bytes. The name is what the audit trail records as
    /// the actor. Required when enabled.
    pub keys: Option<SecretString>,
    /// The audit trail's JSON-lines file when there is no PostgreSQL
    /// (default `data/admin-audit.jsonl`; with PostgreSQL: `admin_audit`).
    pub audit_path: PathBuf,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 8081,
            keys: None,
            audit_path: PathBuf::from("data/admin-audit.jsonl"),
        }
    }
}

/// Where and how to listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Interface to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind (default 8080; 0 picks a free one).
    pub port: u16,
    /// The URL players use to reach this service (default `http://{host}:{port}`);
    /// the embedded object store's URLs start with it.
    pub public_url: Option<String>,
    /// Worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Largest accepted request body in bytes (default 16 KiB).
    pub max_body_bytes: usize,
    /// Time a client gets to send its request head, in milliseconds (default 5000).
    pub client_request_timeout_ms: u64,
    /// Seconds to let in-flight requests finish on shutdown (default 30).
    pub shutdown_timeout_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            public_url: None,
            workers: None,
            max_body_bytes: 16 * 1024,
            client_request_timeout_ms: 5_000,
            shutdown_timeout_seconds: 30,
        }
    }
}

/// Bearer-token verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret (at least 32 bytes). Unset: a random one is generated at
    /// start and only the printed demo token works (embedded mode).
    pub secret: Option<SecretString>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Required `type` claim (e.g. `access`).
    pub token_type: Option<String>,
    /// `sub` must be a hyphenated UUID, kept in lower case (default false).
    /// Required when the database holds the cinema service's tables.
    pub uuid_subjects: bool,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds (default 30).
    pub leeway_seconds: u64,
    /// Verified tokens remembered for up to 30 s, so a repeated token skips
    /// its signature check (default 10 000; 0 checks every request in full).
    pub remembered_tokens: u64,
    /// The accepted algorithms, comma-separated: `HS256` (default), `RS256`, `ES256`.
    pub algorithms: Algorithms,
    /// RS256/ES256 public keys: a JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// RS256/ES256 public keys: the issuer's JWKS URL.
    pub jwks_url: Option<String>,
    /// A token naming an unknown key id makes the JWKS be read again, at most
    /// once per this many seconds (default 30); it is also read every 15 minutes.
    pub jwks_min_refresh_seconds: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            secret: None,
            issuer: None,
            audience: None,
            token_type: None,
            uuid_subjects: false,
            leeway_seconds: 30,
            remembered_tokens: 10_000,
            algorithms: Algorithms::default(),
            jwks_file: None,
            jwks_url: None,
            jwks_min_refresh_seconds: 30,
        }
    }
}

/// Presign expiry and cache semantics.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingSection {
    /// Lifetime of presigned URLs in seconds (default 120).
    pub presign_expiry_seconds: u64,
    /// Cached URLs are served only with more than this left, in seconds (default 30).
    pub cache_buffer_seconds: u64,
    /// Prefix of every cache key (default empty).
    pub cache_key_prefix: String,
}

impl Default for StreamingSection {
    fn default() -> Self {
        Self { presign_expiry_seconds: 120, cache_buffer_seconds: 30, cache_key_prefix: String::new() }
    }
}

/// Movie playback: manifests, progress, sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackSection {
    /// Lifetime of manifest URLs in seconds (default 3600).
    pub manifest_expiry_seconds: u64,
    /// How far past a movie's duration a position may be, in seconds (default 10).
    pub position_slack_seconds: f64,
    /// Fraction of the duration from which a movie counts as watched (default 0.95).
    pub watched_fraction: f64,
    /// At most one progress event per session per this many seconds (default 10).
    pub progress_event_interval_seconds: u64,
    /// A session without a heartbeat for this many seconds no longer counts
    /// towards the plan's `max_devices` (default 90).
    pub session_idle_timeout_seconds: u64,
    /// A session nobody stopped is closed, at its last heartbeat, after this
    /// many seconds without a sign of life (default 600; 0: never). At
    /// least `session_idle_timeout_seconds`.
    pub session_close_after_seconds: u64,
    /// Signs manifest grants (at least 32 bytes; a secret). Unset: a random
    /// key per process, so grants only work on the instance that issued them.
    pub grant_secret: Option<SecretString>,
    /// Object URLs in a served manifest are signed at the start of a window
    /// of this many seconds, so fetches within it get identical URLs (default 60).
    pub url_window_seconds: u64,
    /// Lifetime of the object URLs in a served manifest, from the window's start (default 3600).
    pub object_url_expiry_seconds: u64,
    /// A movie the catalog has no row for exists when its manifest is in the
    /// store under `movies/{id}/`, for subscribers (the cinema service's
    /// behaviour; default false). A catalog row's rules always win.
    pub stored_movies: bool,
}

impl Default for PlaybackSection {
    fn default() -> Self {
        Self {
            manifest_expiry_seconds: 3600,
            position_slack_seconds: 10.0,
            watched_fraction: 0.95,
            progress_event_interval_seconds: 10,
            session_idle_timeout_seconds: 90,
            session_close_after_seconds: 600,
            grant_secret: None,
            url_window_seconds: 60,
            object_url_expiry_seconds: 3600,
            stored_movies: false,
        }
    }
}

/// Where playback events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// The JSON-lines file of the embedded mode (default `data/events.jsonl`).
    pub path: PathBuf,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self { path: PathBuf::from("data/events.jsonl") }
    }
}

/// Kafka: playback events go to `{topic_prefix}stream.{start|progress|stop}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Publish to Kafka (default false: without it, events stay in the
    /// PostgreSQL outbox or go to `events.path`).
    pub enabled: bool,
    /// Bootstrap brokers, comma-separated `host:port` (default `127.0.0.1:9092`).
    pub brokers: String,
    /// Prepended to every topic name (default empty), e.g. `prod.`.
    pub topic_prefix: String,
    /// The client id the brokers see (default `streamgate`).
    pub client_id: String,
    /// Bound of every broker call, retries included, in milliseconds (default 5000).
    pub timeout_ms: u64,
    /// Without PostgreSQL: events buffered in memory while the broker is slow
    /// or down (default 10 000); beyond it events are dropped and counted.
    pub buffer_capacity: usize,
    /// With PostgreSQL: outbox rows sent per relay round (default 500).
    pub relay_batch_size: u32,
    /// With PostgreSQL: how often an idle relay looks for new rows, in milliseconds (default 200).
    pub relay_poll_interval_ms: u64,
    /// Published outbox rows are deleted after this many hours (default 24).
    pub outbox_retention_hours: u64,
    /// Consume the upstream catalog events (default true when Kafka is enabled).
    pub consume: bool,
    /// The name under which consumer offsets are kept in PostgreSQL (default
    /// `streamgate`; instances may share it: each reads every event, and
    /// applying one twice changes nothing).
    pub consumer_id: String,
    /// Where a partition with no stored offset starts: `earliest` (default:
    /// rebuilds the read model from what the broker keeps) or `latest`.
    pub consume_from: ConsumeFrom,
    /// Topic names of the upstream events, by their default names
    /// (`media.upserted`, `media.status_changed`, `media.deleted`,
    /// `user.suspended`, `user.logout_all`, `subscription.changed`); unset ones
    /// use the default name. The prefix applies to all.
    pub upstream_topics: std::collections::HashMap<String, String>,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self {
            enabled: false,
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            client_id: "streamgate".into(),
            timeout_ms: 5_000,
            buffer_capacity: 10_000,
            relay_batch_size: 500,
            relay_poll_interval_ms: 200,
            outbox_retention_hours: 24,
            consume: true,
            consumer_id: "streamgate".into(),
            consume_from: ConsumeFrom::Earliest,
            upstream_topics: std::collections::HashMap::new(),
        }
    }
}

impl KafkaSection {
    /// The brokers as a list, blanks dropped.
    pub fn broker_list(&self) -> Vec<String> {
        self.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
    }
}

/// The user service (`GET {url}{path}`): subscriptions and plans.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSection {
    /// `https://users.internal`; unset keeps subscriptions in memory (the demo's).
    pub url: Option<String>,
    /// The endpoint (default `/api/v1/subscriptions/current`).
    pub path: String,
    /// `caller` (default: forward the caller's bearer token) or `service`
    /// (send `service_token` and name the user in `X-User-Id`).
    pub credentials: UserCredentials,
    /// The token for `credentials = "service"` (a secret).
    pub service_token: Option<SecretString>,
    /// Bound of each attempt in milliseconds (default 5000).
    pub timeout_ms: u64,
    /// Retries of a failed idempotent call (default 2), jittered exponential backoff.
    pub retries: u32,
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

impl Default for UsersSection {
    fn default() -> Self {
        Self {
            url: None,
            path: "/api/v1/subscriptions/current".into(),
            credentials: UserCredentials::Caller,
            service_token: None,
            timeout_ms: 5_000,
            retries: 2,
            cache_ttl_seconds: 300,
            default_max_devices: 1,
            default_supports_hd: false,
            default_supports_4k: false,
        }
    }
}

/// Token algorithms, written comma-separated (`HS256,RS256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Algorithms(pub Vec<Algorithm>);

impl Default for Algorithms {
    fn default() -> Self {
        Self(vec![Algorithm::Hs256])
    }
}

impl std::str::FromStr for Algorithms {
    type Err = streaming_auth::ConfigError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Algorithm::parse_list(list).map(Self)
    }
}

impl<'de> Deserialize<'de> for Algorithms {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Algorithms {
    /// Whether `algorithm` is accepted.
    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.0.contains(&algorithm)
    }
}

/// Where the upstream consumer starts a partition with no stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConsumeFrom {
    /// The oldest record the broker keeps (rebuilds the read model).
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// How the user service client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserCredentials {
    /// Forwards the caller's bearer token.
    #[default]
    Caller,
    /// Sends `users.service_token` and names the user in `X-User-Id`.
    Service,
}

/// Which URL cache to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    /// In-process, bounded (moka).
    #[default]
    Moka,
    /// In-process, unbounded map (tests only).
    Memory,
    /// Redis (`redis.url`), shared by every instance.
    Redis,
    /// No cache: every request presigns, and the URL differs each time.
    Off,
}

/// The URL cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Which cache.
    pub kind: CacheKind,
    /// Most bytes of cached URLs in process with `kind = "moka"` (keys,
    /// sealed entries and a fixed overhead each; default 32 MiB).
    pub max_bytes: u64,
    /// Most bytes of the in-process level in front of Redis (`kind =
    /// "redis"`). Its entries live `local_ttl_ms`, so it only holds what is
    /// asked for again within that time (default 8 MiB).
    pub local_max_bytes: u64,
    /// Largest number of subscription answers cached in process (with a
    /// remote user service and no Redis; default 100 000).
    pub max_entries: u64,
    /// With `kind = "redis"`: how long an in-process copy is served without
    /// asking Redis, in milliseconds (default 5000; 0 turns the in-process level off).
    /// Invalidations reach every instance through pub/sub at once; this bounds
    /// staleness only when such a message is lost.
    pub local_ttl_ms: u64,
    /// Version of the key that seals new entries.
    pub current_key_version: Option<u16>,
    /// Keys as `version:base64-32-bytes`, comma-separated (e.g. `1:AAAA…,2:BBBB…`).
    /// Unset: a random key per process.
    pub encryption_keys: Option<SecretString>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            kind: CacheKind::Moka,
            max_bytes: 32 << 20,
            local_max_bytes: 8 << 20,
            max_entries: 100_000,
            local_ttl_ms: 5_000,
            current_key_version: None,
            encryption_keys: None,
        }
    }
}

/// PostgreSQL: the catalog read model, watch progress and stream sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSection {
    /// `postgres://user:password@host:port/database`; unset keeps everything in memory.
    pub url: Option<SecretString>,
    /// Connections in the pool (default 16).
    pub pool_size: u32,
    /// `statement_timeout` of every connection in milliseconds (default 2000).
    pub statement_timeout_ms: u64,
    /// After 5 failed connection attempts in a row, requests that need the
    /// database are 503 at once for this many milliseconds, then one tries
    /// again (default 5000, the `Retry-After` of those 503s).
    pub breaker_cool_down_ms: u64,
    /// Apply pending migrations at start instead of refusing to start (default false;
    /// `streaming-api migrate` applies them explicitly).
    pub migrate_on_start: bool,
    /// Progress is written behind: the pending updates are flushed in one
    /// batch at least this often, in milliseconds (default 1000).
    pub progress_flush_interval_ms: u64,
    /// Most (user, movie) updates waiting to be flushed; beyond it updates are
    /// written straight through (default 100 000).
    pub progress_queue_capacity: usize,
    /// How long an instance keeps catalog answers (media, user status and
    /// grants) in memory, in milliseconds (default 30 000; 0 reads the database
    /// on every request). Catalog events invalidate sooner.
    pub catalog_cache_ttl_ms: u64,
    /// Most catalog answers kept (default 100 000).
    pub catalog_cache_max_entries: u64,
    /// How long an instance keeps a stream session it has seen in memory, in
    /// milliseconds (default 30 000; 0 reads and writes the database on every
    /// progress report). Heartbeats are then written behind with progress.
    pub session_cache_ttl_ms: u64,
}

impl Default for PostgresSection {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            statement_timeout_ms: 2_000,
            breaker_cool_down_ms: 5_000,
            migrate_on_start: false,
            progress_flush_interval_ms: 1_000,
            progress_queue_capacity: 100_000,
            catalog_cache_ttl_ms: 30_000,
            catalog_cache_max_entries: 100_000,
            session_cache_ttl_ms: 30_000,
        }
    }
}

/// Redis, shared by every instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://`, `rediss://`, `redis-cluster://…?node=…` or `redis-sentinel://…`.
    /// When set, rate limits are shared through Redis.
    pub url: Option<SecretString>,
    /// Connections in the pool (default 4).
    pub pool_size: usize,
    /// Timeout of every command in milliseconds (default 500).
    pub command_timeout_ms: u64,
    /// After 5 failed commands in a row, Redis is skipped (cache misses,
    /// local rate limits) for this many milliseconds, then one command
    /// tries again (default 30000).
    pub breaker_cool_down_ms: u64,
    /// Prefix of every key (default empty).
    pub key_prefix: String,
    /// PEM file of an extra CA to trust for `rediss://` (a private CA).
    pub tls_ca_file: Option<PathBuf>,
    /// Life of the watch-progress hot copy in seconds (default 86400, the seed's 24 h).
    pub progress_ttl_seconds: u64,
    /// Life of cached subscription answers in seconds (default 300).
    pub subscription_ttl_seconds: u64,
    /// Keys and values of the progress and subscription hot copies:
    /// `tagged` (default) or `cinema` (the cinema service's, on a standalone
    /// Redis it shares; set by its variables).
    pub hot_copy_keys: HotCopyKeys,
}

/// The layout of the Redis hot copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HotCopyKeys {
    /// `progress:{<user>}:<movie>`, `subscription:{<user>}`: the user id a
    /// Redis Cluster hash tag.
    #[default]
    Tagged,
    /// `progress:<user>:<movie>`, `subscription:<user>` in the cinema
    /// service's value shapes; standalone Redis only.
    Cinema,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 4,
            command_timeout_ms: 500,
            breaker_cool_down_ms: 30_000,
            key_prefix: String::new(),
            tls_ca_file: None,
            progress_ttl_seconds: 86_400,
            subscription_ttl_seconds: 300,
            hot_copy_keys: HotCopyKeys::Tagged,
        }
    }
}

/// Per-user request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Stream-URL requests per minute per user (policy `stream-url`, default 60; 0 disables).
    pub stream_url_per_minute: u32,
    /// Movie starts per minute per user (policy `stream-start`, default 30;
    /// 0 disables): each start is a session row.
    pub stream_start_per_minute: u32,
    /// Manifest fetches per minute per user, counted against the grant's
    /// user (policy `stream-manifest`, default 120; 0 disables): a player
    /// fetches a handful per start (the master and its variants).
    pub manifest_per_minute: u32,
    /// With Redis: the most requests one reservation takes for a busy user
    /// (default 256, and never above a tenth of the limit); 1 asks Redis for every request.
    pub max_lease: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            stream_url_per_minute: 60,
            stream_start_per_minute: 30,
            manifest_per_minute: 120,
            max_lease: streaming_redis::DEFAULT_MAX_LEASE,
        }
    }
}

/// Which object store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local directory served by this service with signed URLs.
    #[default]
    Localfs,
    /// S3 or an S3-compatible server (MinIO), presigned URLs straight to it.
    S3,
}

/// Where media objects live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Which store.
    pub kind: StorageKind,
    /// The local store's directory (default `./data/objects`).
    pub root: PathBuf,
    /// HMAC key of the local store's URLs (at least 32 bytes). Unset: random per process.
    pub signing_key: Option<SecretString>,
    /// The S3 store (`kind = "s3"`).
    pub s3: S3Section,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            kind: StorageKind::Localfs,
            root: PathBuf::from("data/objects"),
            signing_key: None,
            s3: S3Section::default(),
        }
    }
}

/// The S3 store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Section {
    /// `http(s)://host[:port]` of an S3-compatible server; unset for AWS.
    pub endpoint: Option<String>,
    /// Signing region (default `us-east-1`).
    pub region: String,
    /// The private bucket.
    pub bucket: String,
    /// Access key id; with `secret_key` unset too, the standard AWS chain is used.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Option<SecretString>,
    /// Timeout of each HEAD/GET to the store, in milliseconds (default 5000).
    pub request_timeout_ms: u64,
    /// After 5 failed requests to the store in a row, what needs it is 503
    /// at once for this many milliseconds, then one tries again (default 30000).
    pub breaker_cool_down_ms: u64,
}

impl Default for S3Section {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: String::new(),
            access_key: String::new(),
            secret_key: None,
            request_timeout_ms: 5_000,
            breaker_cool_down_ms: 30_000,
        }
    }
}

/// Demo media and the printed demo token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Seed demo media, print a demo token and serve the demo player.
    /// Unset (the default): on only when nothing real is configured (no
    /// PostgreSQL, Redis, S3, Kafka, user service, token secret or JWKS).
    /// `true` beside a real store stops the start.
    pub enabled: Option<bool>,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter (default `info`); `RUST_LOG` overrides it.
    pub filter: String,
    /// `text` (human-readable, the default) or `json` (one object per line,
    /// with the fields of the enclosing spans: `trace_id`, `route`, `TrackId`, …).
    pub format: LogFormat,
    /// Whether log lines may carry user ids (`UserId`; default true).
    pub user_ids: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { filter: "info".into(), format: LogFormat::Text, user_ids: true }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    Text,
    /// JSON lines, for collectors.
    Json,
}

/// Prometheus metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` (default true). Off, or when the embedding program
    /// installed its own `metrics` recorder first, the route is 404.
    pub enabled: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Trace export over OTLP/HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`; spans go
    /// to `{endpoint}/v1/traces`). Unset (the default): no export. Set on a
    /// build without the `otlp` feature, the service refuses to start.
    pub endpoint: Option<String>,
    /// `service.name` of the exported spans (default `streaming-api`).
    pub service_name: String,
    /// Fraction of new traces exported, 0 to 1 (default 1). A request that
    /// arrives with a `traceparent` follows its caller's sampling decision.
    pub sample_ratio: f64,
    /// Which spans are exported, as a `tracing` filter (default
    /// `info,streaming_core=debug,streaming_api=debug`: requests, operations
    /// and every port call).
    pub filter: String,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "streaming-api".into(),
            sample_ratio: 1.0,
            filter: "info,streaming_core=debug,streaming_api=debug".into(),
        }
    }
}

/// A setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidSetting {
    /// The setting's dotted key (`otlp.endpoint`).
    pub key: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl OtlpSettings {
    /// Where spans are posted: `endpoint` with `/v1/traces` appended unless present.
    ///
    /// # Errors
    /// [`InvalidSetting`] when the endpoint is not an http(s) URL or the
    /// ratio is outside 0..=1.
    pub fn traces_url(&self) -> Result<Option<String>, InvalidSetting> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            let problem = format!("must be within 0 and 1, not {}", self.sample_ratio);
            return Err(InvalidSetting { key: "otlp.sample_ratio", problem });
        }
        let Some(endpoint) = self.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        let scheme_ok = ["http://", "https://"].iter().any(|s| endpoint.starts_with(s) && endpoint.len() > s.len());
        if !scheme_ok || endpoint.contains(char::is_whitespace) {
            return Err(InvalidSetting { key: "otlp.endpoint", problem: "must be an http:// or https:// URL".into() });
        }
        let base = endpoint.trim_end_matches('/');
        Ok(Some(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }))
    }
}

/// Problem documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProblemSettings {
    /// Base of the `type` URIs (default `https://streamgate.dev/problems/`).
    pub type_base: String,
}

impl Default for ProblemSettings {
    fn default() -> Self {
        Self { type_base: "https://streamgate.dev/problems/".into() }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads defaults, then `file` (if given; it must exist), then the
    /// `STREAMING__*` variables of `env`.
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending key or file.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml).required(true));
        }
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        // The cinema service's variables, below our own names.
        let cinema = crate::cinema_env::settings(&env).map_err(|e| SettingsError(format!("cinema variables: {e}")))?;
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
        let config = builder.build().map_err(|e| SettingsError(e.to_string()))?;
        config.try_deserialize().map_err(|e| SettingsError(e.to_string()))
    }
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
        assert_eq!(plain.redis.hot_copy_keys, HotCopyKeys::Tagged);
    }

    #[test]
    fn the_cinema_redis_variables_choose_the_cinema_hot_copy_keys() {
        let cinema = [("REDIS_HOST", "redis"), ("REDIS_PORT", "6380")];
        let settings = Settings::load(None, env(&cinema)).unwrap();
        assert_eq!(settings.redis.hot_copy_keys, HotCopyKeys::Cinema);
        let mut ours = cinema.to_vec();
        ours.push(("STREAMING__REDIS__HOT_COPY_KEYS", "tagged"));
        assert_eq!(Settings::load(None, env(&ours)).unwrap().redis.hot_copy_keys, HotCopyKeys::Tagged);
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
