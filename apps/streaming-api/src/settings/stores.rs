//! Settings of the stores: objects and the URL cache (PostgreSQL's are
//! `streaming_postgres::PgSettings`, Redis's `streaming_redis::RedisSettings`).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Which URL cache to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    #[serde(serialize_with = "streaming_core::config::redacted")]
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

/// Which object store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local directory served by this service with signed URLs.
    #[default]
    Localfs,
    /// S3 or an S3-compatible server (MinIO), presigned URLs straight to it.
    S3,
}

/// Where media objects live.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Which store.
    pub kind: StorageKind,
    /// The local store's directory (default `./data/objects`).
    pub root: PathBuf,
    /// HMAC key of the local store's URLs (at least 32 bytes). Unset: random per process.
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub signing_key: Option<SecretString>,
    /// The S3 store (`kind = "s3"`).
    pub s3: streaming_s3::S3Settings,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            kind: StorageKind::Localfs,
            root: PathBuf::from("data/objects"),
            signing_key: None,
            s3: streaming_s3::S3Settings::default(),
        }
    }
}
