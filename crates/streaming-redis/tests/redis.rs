//! The Redis adapters against real servers: a standalone Redis and a
//! 3-node cluster (`cargo xtask test` starts both; see `xtask/src/infra`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streaming_core::circuit_breaker::BreakerState;
use streaming_core::contract::{self, infra_var};
use streaming_core::ports::{
    CacheError, EventGate, RateDecision, RateLimitPolicy, RateLimiter, StreamCacheKey, UrlCache,
};
use streaming_redis::{RedisConfig, RedisConnection, RedisEventGate, RedisRateLimiter, RedisUrlCache, LEASE_FOR};

async fn connect(url: &str) -> RedisConnection {
    let redis = RedisConnection::connect(&RedisConfig { key_prefix: "test:".into(), ..RedisConfig::new(url) }).unwrap();
    redis.wait_connected(Duration::from_secs(5)).await.unwrap();
    redis
}

fn dead_url() -> String {
    let port = streaming_core::contract::free_port();
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_url_cache_keeps_the_contract_on_a_standalone_redis() {
    let cache = RedisUrlCache::new(connect(&infra_var("STREAMGATE_REDIS_URL")).await);
    contract::url_cache(&cache, tokio::time::sleep).await;
}

#[tokio::test]
async fn the_url_cache_keeps_the_contract_on_a_cluster() {
    let cache = RedisUrlCache::new(connect(&infra_var("STREAMGATE_REDIS_CLUSTER_URL")).await);
    contract::url_cache(&cache, tokio::time::sleep).await;
}

/// Two instances, each with its own connections and subscriber.
#[tokio::test]
async fn the_broadcast_keeps_the_contract_on_a_standalone_redis_and_a_cluster() {
    for url in ["STREAMGATE_REDIS_URL", "STREAMGATE_REDIS_CLUSTER_URL"] {
        let here = streaming_redis::RedisBroadcast::start(connect(&infra_var(url)).await).unwrap();
        let there = streaming_redis::RedisBroadcast::start(connect(&infra_var(url)).await).unwrap();
        contract::broadcast(&*here, &*there, tokio::time::sleep).await;
    }
}

#[tokio::test]
async fn the_rate_limiter_keeps_the_contract_on_a_standalone_redis() {
    contract::rate_limiter(&RedisRateLimiter::new(connect(&infra_var("STREAMGATE_REDIS_URL")).await)).await;
}

#[tokio::test]
async fn the_rate_limiter_keeps_the_contract_on_a_cluster() {
    contract::rate_limiter(&RedisRateLimiter::new(connect(&infra_var("STREAMGATE_REDIS_CLUSTER_URL")).await)).await;
}

#[tokio::test]
async fn the_event_gate_keeps_the_contract_on_a_standalone_redis_and_a_cluster() {
    for url in ["STREAMGATE_REDIS_URL", "STREAMGATE_REDIS_CLUSTER_URL"] {
        contract::event_gate(&RedisEventGate::new(connect(&infra_var(url)).await), tokio::time::sleep).await;
    }
}

/// Two instances' gates on one Redis, asked at the same moment many times:
/// exactly one event passes per key.
#[tokio::test]
async fn the_event_gate_passes_one_of_many_concurrent_askers_across_connections() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let gates = [RedisEventGate::new(connect(&url).await), RedisEventGate::new(connect(&url).await)];
    let key = format!("concurrent:{}", streaming_core::domain::SessionId::random());
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (gate, key) = (gates[i % 2].clone(), key.clone());
        tasks.push(tokio::spawn(async move { gate.pass(&key, Duration::from_secs(60)).await.unwrap() }));
    }
    let mut passed = 0;
    for task in tasks {
        passed += usize::from(task.await.unwrap());
    }
    assert_eq!(passed, 1, "one of 32 askers on two connections passes");
}

#[tokio::test]
async fn keys_keep_the_seed_layout_with_the_user_as_hash_tag() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let cache = RedisUrlCache::new(connect(&url).await);
    let user = "layout-user".parse().unwrap();
    let media = "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap();
    let key = StreamCacheKey::new("test:", &user, &media);
    cache.set(&key, b"sealed".to_vec(), Duration::from_secs(30)).await.unwrap();
    cache.set_generation(&user, 42, Duration::from_secs(30)).await.unwrap();
    let cli = |args: &[&str]| {
        let output = std::process::Command::new("redis-cli").args(["-u", &url, "--raw"]).args(args).output().unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(cli(&["GET", "test:stream:{layout-user}:01HXKZ3Y8Q4N7W2M5V6B9C0D1E"]), "sealed");
    assert_eq!(cli(&["GET", "test:stream-gen:{layout-user}"]), "42");
    let ttl: i64 = cli(&["PTTL", "test:stream:{layout-user}:01HXKZ3Y8Q4N7W2M5V6B9C0D1E"]).parse().unwrap();
    assert!((1..=30_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn two_instances_share_one_limit() {
    let url = infra_var("STREAMGATE_REDIS_CLUSTER_URL");
    let (a, b) = (RedisRateLimiter::new(connect(&url).await), RedisRateLimiter::new(connect(&url).await));
    let user = format!("shared-{}", streaming_core::domain::SessionId::random()).parse().unwrap();
    let policy = RateLimitPolicy { name: "shared".into(), limit: 4, period: Duration::from_secs(60) };
    let mut allowed = 0;
    for i in 0..8 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if matches!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { .. }) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4, "the limit holds across instances");
    match a.check(&user, &policy).await.unwrap() {
        RateDecision::Limited { retry_after } => {
            assert!(retry_after > Duration::from_secs(10) && retry_after <= Duration::from_secs(15), "{retry_after:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_and_open() {
    let redis = RedisConnection::connect(&RedisConfig::new(dead_url())).unwrap();
    let cache = RedisUrlCache::new(redis.clone());
    let limiter = RedisRateLimiter::new(redis.clone());
    let key = StreamCacheKey::new("", &"u".parse().unwrap(), &"01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap());

    let started = Instant::now();
    for _ in 0..5 {
        assert!(matches!(cache.get(&key).await, Err(CacheError::Unavailable(_))));
    }
    assert!(started.elapsed() < Duration::from_secs(4), "each failure is bounded by the 500 ms timeout");
    assert_eq!(redis.breaker_state(), BreakerState::Open);
    let fast = Instant::now();
    assert!(cache.get(&key).await.is_err());
    assert!(fast.elapsed() < Duration::from_millis(20), "an open breaker fails fast");

    let policy = RateLimitPolicy { name: "p".into(), limit: 2, period: Duration::from_secs(60) };
    let user = "u".parse().unwrap();
    let mut allowed = 0;
    for _ in 0..3 {
        if matches!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { .. }) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 2, "the local fallback still limits");
    assert_eq!(limiter.fallback_decisions().load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn the_url_cache_keeps_the_contract_through_a_sentinel() {
    let cache = RedisUrlCache::new(connect(&infra_var("STREAMGATE_REDIS_SENTINEL_URL")).await);
    contract::url_cache(&cache, tokio::time::sleep).await;
}

#[tokio::test]
async fn tls_works_with_a_trusted_ca_and_refuses_an_unknown_one() {
    let url = infra_var("STREAMGATE_REDIS_TLS_URL");
    let ca = std::fs::read(infra_var("STREAMGATE_REDIS_TLS_CA")).unwrap();
    let trusted =
        RedisConnection::connect(&RedisConfig { tls_ca_certificate: Some(ca), ..RedisConfig::new(url.clone()) })
            .unwrap();
    trusted.wait_connected(Duration::from_secs(5)).await.unwrap();
    contract::url_cache(&RedisUrlCache::new(trusted), tokio::time::sleep).await;

    // The system roots alone do not know the test CA: the handshake must fail.
    let untrusted = RedisConnection::connect(&RedisConfig::new(url)).unwrap();
    assert!(untrusted.wait_connected(Duration::from_secs(2)).await.is_err(), "an unverified certificate was accepted");
    let key = StreamCacheKey::new("", &"u".parse().unwrap(), &"01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap());
    assert!(RedisUrlCache::new(untrusted).get(&key).await.is_err());
}

#[tokio::test]
async fn a_busy_user_spends_reservations_without_asking_redis_each_time() {
    let limiter = RedisRateLimiter::new(connect(&infra_var("STREAMGATE_REDIS_URL")).await);
    let user = format!("busy-{}", streaming_core::domain::SessionId::random()).parse().unwrap();
    let policy = RateLimitPolicy { name: "busy".into(), limit: 1_000_000, period: Duration::from_secs(60) };
    for _ in 0..2_000 {
        assert!(matches!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { .. }));
    }
    let asked = limiter.redis_decisions().load(Ordering::Relaxed);
    assert!(asked <= 20, "1, 2, 4 … 256, then 256 at a time: {asked} round trips for 2 000 requests");
}

#[tokio::test]
async fn reservations_never_let_two_instances_past_the_limit() {
    let url = infra_var("STREAMGATE_REDIS_CLUSTER_URL");
    let (a, b) = (RedisRateLimiter::new(connect(&url).await), RedisRateLimiter::new(connect(&url).await));
    let user = format!("leased-{}", streaming_core::domain::SessionId::random()).parse().unwrap();
    let policy = RateLimitPolicy { name: "leased".into(), limit: 40, period: Duration::from_secs(60) };
    let mut allowed = 0;
    for i in 0..120 {
        let limiter = if (i / 3) % 2 == 0 { &a } else { &b };
        if matches!(limiter.check(&user, &policy).await.unwrap(), RateDecision::Allowed { .. }) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 40, "every reserved request was spent, none beyond the limit");
    assert!(a.redis_decisions().load(Ordering::Relaxed) + b.redis_decisions().load(Ordering::Relaxed) < 120);
}

#[tokio::test]
async fn what_a_reservation_leaves_unspent_is_given_back() {
    let limiter = RedisRateLimiter::new(connect(&infra_var("STREAMGATE_REDIS_URL")).await);
    let user = format!("refund-{}", streaming_core::domain::SessionId::random()).parse().unwrap();
    let policy = RateLimitPolicy { name: "refund".into(), limit: 100, period: Duration::from_secs(60) };
    // Reservations of 1, 2, 4 and 8 spent in full, then one of 10 (the cap) with one spent.
    for _ in 0..16 {
        limiter.check(&user, &policy).await.unwrap();
    }
    tokio::time::sleep(LEASE_FOR + Duration::from_millis(50)).await;
    match limiter.check(&user, &policy).await.unwrap() {
        // 17 spent of 100; what regenerated in the pause (under one) is not a whole request.
        RateDecision::Allowed { remaining } => assert!((83..=84).contains(&remaining), "{remaining}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pending_writes_keep_the_contract_on_a_standalone_redis_and_a_cluster() {
    for url in ["STREAMGATE_REDIS_URL", "STREAMGATE_REDIS_CLUSTER_URL"] {
        let pending = streaming_redis::RedisPendingWrites::start(connect(&infra_var(url)).await);
        contract::pending_writes(&pending).await;
    }
}

/// Thousands of concurrent holds through one instance go out in a few rounds
/// of script calls, every one answered, and another instance claims them all.
#[tokio::test]
async fn concurrent_holds_are_committed_together_and_claimed_by_another_instance() {
    use streaming_core::ports::{PendingWrite, PendingWrites};
    let url = infra_var("STREAMGATE_REDIS_URL");
    let here = streaming_redis::RedisPendingWrites::start(connect(&url).await);
    let there = streaming_redis::RedisPendingWrites::start(connect(&url).await);
    let kind = format!("together-{}", streaming_core::ports::claim_stamp());
    let holds = (0..3_000).map(|i| {
        let (here, kind) = (here.clone(), kind.clone());
        tokio::spawn(async move {
            let write =
                PendingWrite { id: format!("id-{i}"), stamp: format!("s{i}"), order: None, body: format!("body {i}") };
            here.hold(&kind, vec![write]).await
        })
    });
    for hold in futures_util::future::join_all(holds).await {
        hold.unwrap().unwrap();
    }
    let hour = Duration::from_secs(3_600);
    let claimed = there.claim(&kind, Duration::ZERO, hour, 5_000).await.unwrap();
    assert_eq!(claimed.len(), 3_000);
    assert!(claimed.iter().all(|w| w.body == format!("body {}", &w.id[3..])));
    let stamps = claimed.into_iter().map(|w| (w.id, w.stamp)).collect();
    there.release(&kind, stamps).await.unwrap();
    assert!(there.claim(&kind, Duration::ZERO, Duration::ZERO, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_hold_fails_at_once_when_redis_cannot_be_reached() {
    use streaming_core::ports::{PendingWrite, PendingWrites};
    let mut config = RedisConfig::new(dead_url());
    config.command_timeout = Duration::from_millis(200);
    let pending = streaming_redis::RedisPendingWrites::start(RedisConnection::connect(&config).unwrap());
    let write = PendingWrite { id: "a".into(), stamp: "a".into(), order: None, body: "b".into() };
    let started = std::time::Instant::now();
    assert!(pending.hold("down", vec![write]).await.is_err(), "nothing is acknowledged as held");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// Callers that go away while their hold is on its way (a client hung up)
/// never leave the others' holds without a round to carry them.
#[tokio::test]
async fn holds_whose_callers_went_away_leave_the_rest_answered() {
    use streaming_core::ports::{PendingWrite, PendingWrites};
    let pending = streaming_redis::RedisPendingWrites::start(connect(&infra_var("STREAMGATE_REDIS_URL")).await);
    let kind = format!("cancelled-{}", streaming_core::ports::claim_stamp());
    let write = |i: usize| PendingWrite { id: format!("id-{i}"), stamp: "s".into(), order: None, body: "b".into() };
    for round in 0..20 {
        let given_up: Vec<_> = (0..8)
            .map(|i| {
                let (pending, kind) = (pending.clone(), kind.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::ZERO, pending.hold(&kind, vec![write(round * 100 + i)])).await;
                })
            })
            .collect();
        for task in given_up {
            task.await.unwrap();
        }
        let answered = tokio::time::timeout(Duration::from_secs(2), pending.hold(&kind, vec![write(round * 100 + 99)]));
        answered.await.expect("answered within 2 s").unwrap();
    }
}
