//! The driving port `StreamingService` and its implementation.

use crate::telemetry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::{debug, warn, Instrument};

use crate::access::{check_access, AccessError, SubscriptionLookup};
use crate::domain::{Media, MediaId, MediaKind, MediaStatus, UserId};
use crate::policy::Denial;
use crate::ports::{
    Clock, MediaCatalog, ObjectStore, ObjectStoreError, ReadinessCheck, StreamCacheKey, SubscriptionDirectory, UrlCache,
};
use crate::sealed_entry::{object_fingerprint, CacheKeyring, CachedStreamUrl};

/// A stream URL handed to a player.
#[derive(Clone, PartialEq)]
pub struct StreamUrl {
    /// The presigned URL (a bearer credential: never log it).
    pub url: String,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// MIME type of the object.
    pub content_type: String,
    /// Size of the object in bytes.
    pub file_size_bytes: u64,
    /// Whether `Range` requests are served.
    pub supports_range_requests: bool,
    /// Whether it came from the cache.
    pub cache_hit: bool,
}

impl fmt::Debug for StreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamUrl")
            .field("url", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("content_type", &self.content_type)
            .field("file_size_bytes", &self.file_size_bytes)
            .field("cache_hit", &self.cache_hit)
            .finish()
    }
}

/// A dependency the core could not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The media catalog.
    Catalog,
    /// The object store.
    ObjectStore,
    /// The URL cache (only for invalidation; reads and writes fail open).
    Cache,
    /// The subscription directory.
    Subscriptions,
    /// The watch-progress store.
    Progress,
    /// The stream-session store.
    Sessions,
    /// The trail of operators' changes (admin API).
    Audit,
}

impl Dependency {
    /// A stable lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::ObjectStore => "object_store",
            Self::Cache => "cache",
            Self::Subscriptions => "subscriptions",
            Self::Progress => "progress",
            Self::Sessions => "sessions",
            Self::Audit => "audit",
        }
    }
}

/// Why no stream URL was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// No such track (or it was deleted).
    #[error("media not found")]
    NotFound,
    /// The track exists but is not streamable yet.
    #[error("media is {status}, not Ready")]
    NotReady {
        /// Its current status.
        status: MediaStatus,
    },
    /// The user may not play it.
    #[error("access denied: {0:?}")]
    Forbidden(Denial),
    /// A dependency the answer needs is down; retry later.
    #[error("{} unavailable", dependency.as_str())]
    Unavailable {
        /// Which one.
        dependency: Dependency,
    },
}

/// The driving port: the Rust form of the seed's `IStreamingService`.
/// With the `mock` feature it has a mockall mock (`MockStreamingService`)
/// for code that drives it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait StreamingService: Send + Sync {
    /// A presigned URL for `media` on behalf of `user`, from the cache while
    /// it is valid for at least the buffer, freshly signed otherwise.
    ///
    /// # Errors
    /// [`StreamError`]: not found, not ready, forbidden, or a dependency unavailable.
    async fn get_stream_url(&self, media: &MediaId, user: &UserId) -> Result<StreamUrl, StreamError>;

    /// Forgets the cached URL of `media` for `user`.
    ///
    /// # Errors
    /// [`StreamError::Unavailable`] if the cache cannot be reached.
    async fn invalidate(&self, media: &MediaId, user: &UserId) -> Result<(), StreamError>;

    /// Forgets every cached URL of `user`, in O(1).
    ///
    /// # Errors
    /// [`StreamError::Unavailable`] if the cache cannot be reached.
    async fn invalidate_user(&self, user: &UserId) -> Result<(), StreamError>;
}

/// Settings of the URL issuing path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingSettings {
    /// How long presigned URLs live (default 120 s).
    pub presign_expiry: Duration,
    /// A cached URL is served only while it has more than this left (default 30 s);
    /// cache entries live `presign_expiry - cache_buffer`.
    pub cache_buffer: Duration,
    /// Prepended to every cache key (default empty).
    pub cache_key_prefix: String,
    /// Whether log lines may carry user ids (`UserId`; default true).
    pub log_user_ids: bool,
}

impl Default for StreamingSettings {
    fn default() -> Self {
        Self {
            presign_expiry: Duration::from_secs(120),
            cache_buffer: Duration::from_secs(30),
            cache_key_prefix: String::new(),
            log_user_ids: true,
        }
    }
}

/// Counters of the URL path, read by the app's metrics.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Served from the cache.
    pub cache_hits: AtomicU64,
    /// Not served from the cache (absent, near expiry, undecryptable, stale generation, cache down).
    pub cache_misses: AtomicU64,
    /// Cache reads or writes that failed.
    pub cache_errors: AtomicU64,
    /// Entries that did not decrypt (tampered, truncated, unknown key version).
    pub cache_decrypt_failures: AtomicU64,
    /// URLs signed.
    pub presigns: AtomicU64,
    /// Invalidations performed (single entries and whole users).
    pub invalidations: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The driven ports the streaming service needs.
#[derive(Clone)]
pub struct StreamingPorts {
    /// Media, ownership, grants, user status.
    pub catalog: Arc<dyn MediaCatalog>,
    /// The private bucket.
    pub objects: Arc<dyn ObjectStore>,
    /// Encrypted URL cache.
    pub cache: Arc<dyn UrlCache>,
    /// Subscriptions, asked only for subscriber-only media.
    pub subscriptions: Arc<dyn SubscriptionDirectory>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for StreamingPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingPorts").finish_non_exhaustive()
    }
}

/// [`StreamingService`] over the driven ports, with the seed's cache semantics.
pub struct StreamUrlService {
    ports: StreamingPorts,
    keyring: CacheKeyring,
    settings: StreamingSettings,
    stats: Arc<StreamStats>,
    metrics: std::sync::OnceLock<telemetry::UrlMetrics>,
    store_health: Option<Arc<dyn ReadinessCheck>>,
}

impl fmt::Debug for StreamUrlService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamUrlService")
            .field("settings", &self.settings)
            .field("store_health", &self.store_health.is_some())
            .finish_non_exhaustive()
    }
}

impl StreamUrlService {
    /// A service over `ports`, sealing cache entries with `keyring`.
    pub fn new(ports: StreamingPorts, keyring: CacheKeyring, settings: StreamingSettings) -> Self {
        Self {
            ports,
            keyring,
            settings,
            stats: Arc::default(),
            metrics: std::sync::OnceLock::new(),
            store_health: None,
        }
    }

    /// Refuses URLs (`Unavailable`, naming the object store) while `health`
    /// says the store cannot serve: presigning is local, so a URL signed or
    /// cached while the store is down is one no player can fetch.
    pub fn with_store_health(mut self, health: Arc<dyn ReadinessCheck>) -> Self {
        self.store_health = Some(health);
        self
    }

    fn metrics(&self) -> &telemetry::UrlMetrics {
        self.metrics.get_or_init(telemetry::UrlMetrics::register)
    }

    /// The service's counters.
    pub fn stats(&self) -> Arc<StreamStats> {
        Arc::clone(&self.stats)
    }

    /// The cache key of `media` for `user`.
    pub fn cache_key(&self, user: &UserId, media: &MediaId) -> StreamCacheKey {
        StreamCacheKey::new(&self.settings.cache_key_prefix, user, media)
    }

    async fn authorize(&self, media_id: &MediaId, user: &UserId, now: OffsetDateTime) -> Result<Media, StreamError> {
        let ports = &self.ports;
        let lookup = SubscriptionLookup::Required;
        check_access(&*ports.catalog, &*ports.subscriptions, media_id, user, MediaKind::Track, now, lookup)
            .await
            .map_err(|error| match error {
                AccessError::Denied(Denial::NotFound | Denial::Deleted) => StreamError::NotFound,
                AccessError::Denied(Denial::NotReady(status)) => {
                    warn!(Status = status.as_str(), "track not ready");
                    StreamError::NotReady { status }
                }
                AccessError::Denied(denial) => {
                    warn!(reason = ?denial, "access denied");
                    StreamError::Forbidden(denial)
                }
                AccessError::Unavailable(dependency) => StreamError::Unavailable { dependency },
            })
    }

    /// The cached URL if it is intact, of the user's current generation,
    /// valid beyond the buffer, and signed for the media as the catalog has
    /// it now (same object, content type and size: an item changed since,
    /// for whatever viewer, is presigned again); otherwise `None`. The second
    /// value is the generation to seal a fresh entry with, or `None` if the
    /// cache is down.
    async fn cached(
        &self,
        key: &StreamCacheKey,
        media: &Media,
        now: OffsetDateTime,
    ) -> (Option<CachedStreamUrl>, Option<u64>) {
        let lookup = match self.ports.cache.get(key).instrument(tracing::debug_span!("cache.get")).await {
            Ok(lookup) => lookup,
            Err(error) => {
                bump(&self.stats.cache_errors);
                metrics::counter!(telemetry::STREAM_CACHE_ERRORS, "op" => "get").increment(1);
                warn!(%error, "cache read failed; serving without cache");
                return (None, None);
            }
        };
        let Some(blob) = lookup.entry else {
            return (None, Some(lookup.generation));
        };
        let entry = match self.keyring.open(key, blob) {
            Ok(entry) => entry,
            Err(error) => {
                bump(&self.stats.cache_decrypt_failures);
                metrics::counter!(telemetry::STREAM_CACHE_DECRYPT_FAILURES).increment(1);
                debug!(%error, "cached entry did not open; treating as a miss");
                return (None, Some(lookup.generation));
            }
        };
        let fresh = entry.expires_at > now + self.settings.cache_buffer;
        let current = entry.generation == lookup.generation;
        let same_object = (entry.object == 0 || entry.object == object_fingerprint(media.object_key.as_str()))
            && entry.content_type == media.content_type
            && entry.file_size_bytes == media.size_bytes;
        ((fresh && current && same_object).then_some(entry), Some(lookup.generation))
    }

    async fn store(&self, key: &StreamCacheKey, entry: &CachedStreamUrl, now: OffsetDateTime) {
        let ttl = entry.expires_at - now - self.settings.cache_buffer;
        let Ok(ttl) = Duration::try_from(ttl) else {
            return; // expires within the buffer: never a hit, not worth storing
        };
        if ttl.is_zero() {
            return;
        }
        let sealed = match self.keyring.seal(key, entry) {
            Ok(sealed) => sealed,
            Err(error) => {
                warn!(%error, "could not seal cache entry");
                return;
            }
        };
        let written = self.ports.cache.set(key, sealed, ttl).instrument(tracing::debug_span!("cache.set")).await;
        if let Err(error) = written {
            bump(&self.stats.cache_errors);
            metrics::counter!(telemetry::STREAM_CACHE_ERRORS, "op" => "set").increment(1);
            warn!(%error, "cache write failed; URL served uncached");
        } else {
            debug!(KeyVersion = self.keyring.current_version(), "cache entry encrypted and stored");
        }
    }
}

#[async_trait]
impl StreamingService for StreamUrlService {
    async fn get_stream_url(&self, media_id: &MediaId, user: &UserId) -> Result<StreamUrl, StreamError> {
        // The spec's field names; the user id only where the operator allows it.
        // Made with every field it shows in the request's lines: a field
        // recorded later formats the span's fields again.
        let span = if self.settings.log_user_ids {
            tracing::info_span!(
                "stream.get_url",
                TrackId = %media_id,
                UserId = %user,
                CacheHit = tracing::field::Empty,
            )
        } else {
            tracing::info_span!("stream.get_url", TrackId = %media_id, CacheHit = tracing::field::Empty)
        };
        let started = std::time::Instant::now();
        let result = async {
            tracing::info!("stream URL requested");
            let now = self.ports.clock.now();
            let media = self.authorize(media_id, user, now).await?;
            if self.store_health.as_ref().is_some_and(|health| health.unready_reason().is_some()) {
                return Err(StreamError::Unavailable { dependency: Dependency::ObjectStore });
            }
            let key = self.cache_key(user, media_id);

            let (cached, generation) = self.cached(&key, &media, now).await;
            if let Some(entry) = cached {
                bump(&self.stats.cache_hits);
                self.metrics().hits.increment(1);
                tracing::Span::current().record("CacheHit", true);
                debug!(ExpiresAt = %entry.expires_at, "cache hit");
                return Ok(StreamUrl {
                    url: entry.url,
                    expires_at: entry.expires_at,
                    content_type: entry.content_type,
                    file_size_bytes: entry.file_size_bytes,
                    supports_range_requests: entry.supports_range_requests,
                    cache_hit: true,
                });
            }
            bump(&self.stats.cache_misses);
            self.metrics().misses.increment(1);
            tracing::Span::current().record("CacheHit", false);
            debug!("cache miss; generating URL");

            let presigned = self
                .ports
                .objects
                .presign_get(&media.object_key, now, self.settings.presign_expiry)
                .instrument(tracing::debug_span!("storage.presign"))
                .await
                .map_err(|error| match error {
                    ObjectStoreError::NotFound => StreamError::NotFound,
                    ObjectStoreError::Unavailable(_) | ObjectStoreError::Invalid(_) => {
                        StreamError::Unavailable { dependency: Dependency::ObjectStore }
                    }
                })?;
            bump(&self.stats.presigns);
            self.metrics().presigns.increment(1);
            debug!(ExpiresAt = %presigned.expires_at, "presigned URL generated");

            let entry = CachedStreamUrl {
                url: presigned.url,
                expires_at: presigned.expires_at,
                content_type: media.content_type,
                file_size_bytes: media.size_bytes,
                supports_range_requests: true,
                generation: generation.unwrap_or(0),
                object: object_fingerprint(media.object_key.as_str()),
            };
            // A cache that just failed a read is skipped rather than paying a
            // second timeout on the write.
            if generation.is_some() {
                self.store(&key, &entry, now).await;
            }
            Ok(StreamUrl {
                url: entry.url,
                expires_at: entry.expires_at,
                content_type: entry.content_type,
                file_size_bytes: entry.file_size_bytes,
                supports_range_requests: entry.supports_range_requests,
                cache_hit: false,
            })
        }
        .instrument(span)
        .await;
        let metrics = self.metrics();
        let outcome = match &result {
            Ok(url) if url.cache_hit => &metrics.served_hit,
            Ok(_) => &metrics.served_miss,
            Err(_) => &metrics.failed,
        };
        outcome.increment(1);
        metrics.duration_ms.record(started.elapsed().as_secs_f64() * 1_000.0);
        result
    }

    async fn invalidate(&self, media: &MediaId, user: &UserId) -> Result<(), StreamError> {
        let key = self.cache_key(user, media);
        self.ports
            .cache
            .delete(&key)
            .instrument(tracing::debug_span!("cache.delete"))
            .await
            .map_err(|_| StreamError::Unavailable { dependency: Dependency::Cache })?;
        bump(&self.stats.invalidations);
        if self.settings.log_user_ids {
            debug!(TrackId = %media, UserId = %user, "cache invalidated");
        } else {
            debug!(TrackId = %media, "cache invalidated");
        }
        Ok(())
    }

    async fn invalidate_user(&self, user: &UserId) -> Result<(), StreamError> {
        // A fresh random generation (never 0, the "none" value) rather than a
        // counter: if the generation record expires and a later bump starts
        // over, a counter could repeat a value still sealed in a live entry.
        let generation = rand::random::<u64>().max(1);
        // The record must outlive every entry sealed under the old generation.
        let ttl = self.settings.presign_expiry;
        self.ports
            .cache
            .set_generation(user, generation, ttl)
            .instrument(tracing::debug_span!("cache.set_generation"))
            .await
            .map_err(|_| StreamError::Unavailable { dependency: Dependency::Cache })?;
        bump(&self.stats.invalidations);
        debug!("all stream URLs of a user invalidated");
        Ok(())
    }
}
