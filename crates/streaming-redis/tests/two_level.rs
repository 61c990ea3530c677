//! The two-level cache (moka in front of Redis) against real servers.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use streaming_core::adapters::{MemoryCatalog, MemoryObjectStore, MemorySubscriptions, SystemClock};
use streaming_core::contract::{self, infra_var};
use streaming_core::domain::{Media, MediaKind, MediaStatus, ObjectKey, PlanFeatures, SessionId, Visibility};
use streaming_core::ports::{StreamCacheKey, UrlCache};
use streaming_core::{CacheKeyring, StreamUrlService, StreamingPorts, StreamingService, StreamingSettings};
use streaming_redis::{LocalLevel, RedisConfig, RedisConnection, TwoLevelUrlCache};

async fn two_level(url: &str, prefix: &str, local_ttl: Duration) -> Arc<TwoLevelUrlCache> {
    let redis = RedisConnection::connect(&RedisConfig { key_prefix: prefix.into(), ..RedisConfig::new(url) }).unwrap();
    redis.wait_connected(Duration::from_secs(5)).await.unwrap();
    let peers = streaming_redis::RedisBroadcast::start(redis.clone()).unwrap();
    let cache = TwoLevelUrlCache::start(redis, LocalLevel { ttl: local_ttl, max_bytes: 1 << 20 }, peers);
    // Let the subscriber connect and subscribe before the test publishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cache
}

fn prefix() -> String {
    format!("two-level-{}:", SessionId::random())
}

/// Polls `check` for up to two seconds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn keeps_the_url_cache_contract_on_a_standalone_redis() {
    let cache = two_level(&infra_var("STREAMGATE_REDIS_URL"), &prefix(), Duration::from_secs(5)).await;
    contract::url_cache(&*cache, tokio::time::sleep).await;
}

#[tokio::test]
async fn keeps_the_url_cache_contract_on_a_cluster() {
    let cache = two_level(&infra_var("STREAMGATE_REDIS_CLUSTER_URL"), &prefix(), Duration::from_secs(5)).await;
    contract::url_cache(&*cache, tokio::time::sleep).await;
}

#[tokio::test]
async fn invalidations_reach_the_other_instance_through_pub_sub() {
    let url = infra_var("STREAMGATE_REDIS_CLUSTER_URL");
    let prefix = prefix();
    // A local TTL far longer than the test: only the broadcast can explain a prompt drop.
    let (a, b) = (
        two_level(&url, &prefix, Duration::from_secs(60)).await,
        two_level(&url, &prefix, Duration::from_secs(60)).await,
    );
    let user = format!("u-{}", SessionId::random()).parse().unwrap();
    let key = StreamCacheKey::new("", &user, &"01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap());

    a.set(&key, b"sealed".to_vec(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        b.get(&key).await.unwrap().entry.as_deref(),
        Some(&b"sealed"[..]),
        "b reads a's entry and keeps it locally"
    );

    a.delete(&key).await.unwrap();
    eventually("the deletion reaching b", async || b.get(&key).await.unwrap().entry.is_none()).await;

    a.set(&key, b"again".to_vec(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().generation, 0);
    a.set_generation(&user, 77, Duration::from_secs(60)).await.unwrap();
    eventually("the new generation reaching b", async || b.get(&key).await.unwrap().generation == 77).await;
}

fn service(cache: Arc<TwoLevelUrlCache>, catalog: Arc<MemoryCatalog>) -> StreamUrlService {
    StreamUrlService::new(
        StreamingPorts {
            catalog,
            objects: Arc::new(MemoryObjectStore::new()),
            cache,
            subscriptions: Arc::new(MemorySubscriptions::new()),
            clock: Arc::new(SystemClock),
        },
        CacheKeyring::new(1, [(1, [5u8; 32])]).unwrap(),
        StreamingSettings::default(),
    )
}

#[tokio::test]
async fn a_user_invalidated_on_one_instance_misses_on_the_other() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let prefix = prefix();
    let catalog = Arc::new(MemoryCatalog::new());
    let track = "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap();
    catalog.upsert(Media {
        id: track,
        kind: MediaKind::Track,
        owner: None,
        status: MediaStatus::Ready,
        object_key: ObjectKey::try_from("tracks/a.mp3").unwrap(),
        content_type: "audio/mpeg".into(),
        size_bytes: 1,
        duration_seconds: None,
        visibility: Visibility::Public,
        required_features: PlanFeatures::default(),
    });
    let a = service(two_level(&url, &prefix, Duration::from_secs(60)).await, catalog.clone());
    let b = service(two_level(&url, &prefix, Duration::from_secs(60)).await, catalog);
    let track = "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap();
    let user = format!("v-{}", SessionId::random()).parse().unwrap();

    assert!(!a.get_stream_url(&track, &user).await.unwrap().cache_hit);
    assert!(b.get_stream_url(&track, &user).await.unwrap().cache_hit, "b serves the URL a cached");
    a.invalidate_user(&user).await.unwrap();
    eventually("the user invalidation reaching b", async || !b.get_stream_url(&track, &user).await.unwrap().cache_hit)
        .await;
}
