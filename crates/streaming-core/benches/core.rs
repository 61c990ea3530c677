//! Hot paths of the core, on the in-memory adapters:
//! * `get_stream_url/cache_hit` — the whole service call when the URL is cached (moka);
//! * `sealed_entry/seal_open` — encrypt + decrypt of one cache entry;
//! * `url_signing/sign_verify` — HMAC sign + verify of one object URL.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use streaming_core::adapters::{MemoryCatalog, MemorySubscriptions, MokaUrlCache, SystemClock};
use streaming_core::domain::{Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, Visibility};
use streaming_core::ports::{ObjectInfo, ObjectStore, ObjectStoreError, PresignedUrl, StreamCacheKey};
use streaming_core::url_signing::UrlSigner;
use streaming_core::{
    CacheKeyring, CachedStreamUrl, StreamUrlService, StreamingPorts, StreamingService, StreamingSettings,
};
use time::OffsetDateTime;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio runtime: {error}"),
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("{s}: {e:?}"),
    }
}

/// A SigV4 presigned URL of realistic length (~420 bytes).
fn s3_length_url(key: &str) -> String {
    format!(
        "https://minio.example.com/audio/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z\
         &X-Amz-Expires=120&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
        "a".repeat(64)
    )
}

/// An object store whose URLs are as long as real S3 ones, so the cache-hit
/// benchmark decrypts a realistic entry.
struct S3LengthUrls;

#[async_trait::async_trait]
impl ObjectStore for S3LengthUrls {
    async fn head(&self, _: &ObjectKey) -> Result<ObjectInfo, ObjectStoreError> {
        Err(ObjectStoreError::NotFound)
    }
    async fn presign_get(
        &self,
        key: &ObjectKey,
        at: OffsetDateTime,
        ttl: Duration,
    ) -> Result<PresignedUrl, ObjectStoreError> {
        Ok(PresignedUrl { url: s3_length_url(key.as_str()), expires_at: at + ttl })
    }
    async fn read_small(&self, _: &ObjectKey, _: u64) -> Result<Vec<u8>, ObjectStoreError> {
        Err(ObjectStoreError::NotFound)
    }
}

fn cache_hit(c: &mut Criterion) {
    let user: UserId = parse("01HXKZ3Y8Q4N7W2M5V6B9C0AAA");
    let track: MediaId = parse("01HXKZ3Y8Q4N7W2M5V6B9C0D1E");
    let catalog = Arc::new(MemoryCatalog::new());
    let object_key = match ObjectKey::try_from("tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E-a1b2c3.mp3") {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    };
    catalog.upsert(Media {
        id: track.clone(),
        kind: MediaKind::Track,
        owner: Some(user.clone()),
        status: MediaStatus::Ready,
        object_key,
        content_type: "audio/mpeg".into(),
        size_bytes: 15_728_640,
        duration_seconds: Some(240.0),
        visibility: Visibility::Private,
        required_features: PlanFeatures::default(),
    });
    let service = StreamUrlService::new(
        StreamingPorts {
            catalog,
            objects: Arc::new(S3LengthUrls),
            cache: Arc::new(MokaUrlCache::new(32 << 20)),
            subscriptions: Arc::new(MemorySubscriptions::new()),
            clock: Arc::new(SystemClock),
        },
        CacheKeyring::random(),
        StreamingSettings::default(),
    );
    let rt = runtime();
    // Warm the cache: every measured call is a hit.
    let first = rt.block_on(service.get_stream_url(&track, &user));
    assert!(first.is_ok_and(|u| !u.cache_hit));
    assert!(rt.block_on(service.get_stream_url(&track, &user)).is_ok_and(|u| u.cache_hit));

    c.bench_function("get_stream_url/cache_hit", |b| {
        b.iter(|| rt.block_on(service.get_stream_url(std::hint::black_box(&track), &user)));
    });
}

fn seal_open(c: &mut Criterion) {
    let keyring = CacheKeyring::random();
    let key = StreamCacheKey::new("", &parse("01HXKZ3Y8Q4N7W2M5V6B9C0AAA"), &parse("01HXKZ3Y8Q4N7W2M5V6B9C0D1E"));
    let s3_url = s3_length_url("tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E-a1b2c3.mp3");
    let embedded_url = "http://127.0.0.1:8080/objects/tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E.wav?exp=1795422430\
                        &sig=sKs7O-WEz9yXvXaqbNijAuFX2p-jCq3rqP4vveKt0cw"
        .to_owned();
    for (name, url) in [("seal_open_s3_url", s3_url), ("seal_open_embedded_url", embedded_url)] {
        let entry = CachedStreamUrl {
            url,
            expires_at: OffsetDateTime::now_utc() + Duration::from_secs(120),
            content_type: "audio/mpeg".into(),
            file_size_bytes: 15_728_640,
            supports_range_requests: true,
            generation: 0,
            object: streaming_core::object_fingerprint("tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E-a1b2c3.mp3"),
        };
        c.bench_function(&format!("sealed_entry/{name}"), |b| {
            b.iter(|| {
                let sealed = keyring.seal(&key, std::hint::black_box(&entry));
                sealed.ok().and_then(|blob| keyring.open(&key, blob).ok())
            });
        });
    }
}

fn sign_verify(c: &mut Criterion) {
    let signer = match UrlSigner::new(&[7u8; 32]) {
        Ok(signer) => signer,
        Err(e) => panic!("{e}"),
    };
    let now = OffsetDateTime::now_utc();
    let exp = now.unix_timestamp() + 120;
    let key = "tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E-a1b2c3.mp3";
    c.bench_function("url_signing/sign_verify", |b| {
        b.iter(|| {
            let sig = signer.sign("GET", std::hint::black_box(key), exp);
            signer.verify("GET", key, exp, &sig, now)
        });
    });
}

/// The reference crate's XChaCha20-Poly1305 on the same 450 bytes: why the
/// core builds the AEAD from HChaCha20 + ring instead (docs/benchmarks.md).
fn reference_aead(c: &mut Criterion) {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(&[1u8; 32].into());
    let nonce = [2u8; 24].into();
    let mut buf = vec![0u8; 450];
    c.bench_function("reference/chacha20poly1305_crate_encrypt_450", |b| {
        b.iter(|| cipher.encrypt_in_place_detached(&nonce, b"stream:a:b", &mut buf));
    });
}

criterion_group!(benches, cache_hit, seal_open, sign_verify, reference_aead);
criterion_main!(benches);
