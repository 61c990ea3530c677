//! The port contract suites against the in-memory and moka adapters.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use streaming_core::adapters::{
    ManualClock, MemoryCatalog, MemoryEventGate, MemoryObjectStore, MemoryOffsetStore, MemoryProgressStore,
    MemoryRateLimiter, MemorySessionStore, MemoryUrlCache, MokaUrlCache, SystemClock,
};
use streaming_core::contract;
use streaming_core::domain::ObjectKey;
use time::macros::datetime;

#[tokio::test]
async fn memory_url_cache_keeps_the_contract() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 0:00 UTC)));
    let cache = MemoryUrlCache::new(clock.clone());
    contract::url_cache(&cache, |by| {
        clock.advance(by);
        std::future::ready(())
    })
    .await;
}

#[tokio::test]
async fn moka_url_cache_keeps_the_contract() {
    let cache = MokaUrlCache::new(1 << 20);
    contract::url_cache(&cache, tokio::time::sleep).await;
}

#[tokio::test]
async fn memory_rate_limiter_keeps_the_contract() {
    contract::rate_limiter(&MemoryRateLimiter::new(Arc::new(SystemClock))).await;
}

#[tokio::test]
async fn memory_offset_store_keeps_the_contract() {
    contract::offset_store(&MemoryOffsetStore::default(), &MemoryOffsetStore::default()).await;
}

#[tokio::test]
async fn memory_event_gate_keeps_the_contract() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 0:00 UTC)));
    let gate = MemoryEventGate::new(clock.clone());
    contract::event_gate(&gate, |by| {
        clock.advance(by);
        std::future::ready(())
    })
    .await;
}

#[tokio::test]
async fn memory_progress_store_keeps_the_contract() {
    contract::progress_store(&MemoryProgressStore::new()).await;
}

#[tokio::test]
async fn memory_session_store_keeps_the_contract() {
    contract::session_store(&MemorySessionStore::new()).await;
}

#[tokio::test]
async fn memory_object_store_keeps_the_contract() {
    let store = MemoryObjectStore::new();
    let key = ObjectKey::try_from("tracks/a.wav").unwrap();
    store.put(key.clone(), b"RIFF....WAVE".to_vec(), Some("audio/wav"));
    contract::object_store(&store, &key, b"RIFF....WAVE", &ObjectKey::try_from("tracks/none.wav").unwrap()).await;
}

#[tokio::test]
async fn memory_rate_limiter_refills_at_the_sustained_rate() {
    use streaming_core::ports::{RateDecision, RateLimitPolicy, RateLimiter};
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 0:00 UTC)));
    let limiter = MemoryRateLimiter::new(clock.clone());
    let user = "alice".parse().unwrap();
    let policy = RateLimitPolicy { name: "stream-url".into(), limit: 60, period: Duration::from_secs(60) };
    for _ in 0..60 {
        assert!(matches!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { .. }));
    }
    assert_eq!(
        limiter.check(&user, &policy).await.unwrap(),
        RateDecision::Limited { retry_after: Duration::from_secs(1) },
        "the 61st request in a minute waits exactly one emission interval"
    );
    clock.advance(Duration::from_millis(999));
    assert!(matches!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Limited { .. }));
    clock.advance(Duration::from_millis(1));
    assert_eq!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { remaining: 0 });
    clock.advance(Duration::from_secs(60));
    assert_eq!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { remaining: 59 }, "fully refilled");
}

#[tokio::test]
async fn memory_catalog_keeps_the_writer_contract() {
    contract::catalog_writer(&MemoryCatalog::new()).await;
}

#[tokio::test]
async fn memory_catalog_keeps_the_listing_contract() {
    let catalog = MemoryCatalog::new();
    contract::media_listing(&catalog, |media, user| {
        catalog.set_grant(&media, &user, true);
        async {}
    })
    .await;
}
