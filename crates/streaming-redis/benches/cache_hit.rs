//! `get_stream_url` on a cache hit with Redis: behind the in-process level,
//! and with that level off (one round trip to Redis per request). Needs the
//! Redis of `cargo xtask bench` (or `cargo xtask infra up`).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use streaming_core::adapters::{MemoryCatalog, MemoryObjectStore, MemorySubscriptions, SystemClock};
use streaming_core::contract::infra_var;
use streaming_core::domain::{Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, Visibility};
use streaming_core::ports::UrlCache;
use streaming_core::{CacheKeyring, StreamUrlService, StreamingPorts, StreamingService, StreamingSettings};
use streaming_redis::{LocalLevel, RedisConfig, RedisConnection, RedisUrlCache, TwoLevelUrlCache};

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("{s}: {e:?}"),
    }
}

fn service(cache: Arc<dyn UrlCache>, track: &MediaId) -> StreamUrlService {
    let catalog = Arc::new(MemoryCatalog::new());
    let key = match ObjectKey::try_from("tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E-a1b2c3.mp3") {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    };
    catalog.upsert(Media {
        id: track.clone(),
        kind: MediaKind::Track,
        owner: None,
        status: MediaStatus::Ready,
        object_key: key,
        content_type: "audio/mpeg".into(),
        size_bytes: 15_728_640,
        duration_seconds: Some(240.0),
        visibility: Visibility::Public,
        required_features: PlanFeatures::default(),
    });
    StreamUrlService::new(
        StreamingPorts {
            catalog,
            objects: Arc::new(MemoryObjectStore::new()),
            cache,
            subscriptions: Arc::new(MemorySubscriptions::new()),
            clock: Arc::new(SystemClock),
        },
        CacheKeyring::random(),
        StreamingSettings::default(),
    )
}

fn cache_hit(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => panic!("{e}"),
    };
    let redis = runtime.block_on(async {
        let redis = match RedisConnection::connect(&RedisConfig {
            key_prefix: "bench:".into(),
            ..RedisConfig::new(infra_var("STREAMGATE_REDIS_URL"))
        }) {
            Ok(redis) => redis,
            Err(e) => panic!("{e}"),
        };
        if let Err(e) = redis.wait_connected(Duration::from_secs(5)).await {
            panic!("{e}");
        }
        redis
    });
    let track: MediaId = parse("01HXKZ3Y8Q4N7W2M5V6B9C0D1E");
    let user: UserId = parse("bench-user");

    let remote_only = service(Arc::new(RedisUrlCache::new(redis.clone())), &track);
    let two_level = runtime.block_on(async {
        match streaming_redis::RedisBroadcast::start(redis.clone()) {
            Ok(peers) => {
                let level = LocalLevel { ttl: Duration::from_secs(60), max_bytes: 16 << 20 };
                service(TwoLevelUrlCache::start(redis, level, peers), &track)
            }
            Err(e) => panic!("{e}"),
        }
    });
    for (name, service) in [("redis_behind_moka", &two_level), ("redis_only", &remote_only)] {
        // Warm: the first call signs and stores, the second must hit.
        let warm = runtime.block_on(async {
            let _ = service.get_stream_url(&track, &user).await;
            service.get_stream_url(&track, &user).await
        });
        assert!(warm.is_ok_and(|u| u.cache_hit), "{name}: not a cache hit");
        c.bench_function(&format!("get_stream_url/cache_hit/{name}"), |b| {
            b.iter(|| runtime.block_on(service.get_stream_url(std::hint::black_box(&track), &user)));
        });
    }
}

criterion_group!(benches, cache_hit);
criterion_main!(benches);
