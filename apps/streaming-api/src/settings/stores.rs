//! Settings of the stores: objects, the URL cache, PostgreSQL, Redis.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

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
