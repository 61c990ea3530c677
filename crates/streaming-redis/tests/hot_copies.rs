//! The progress hot copy and the subscription cache against a real Redis.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::adapters::{MemoryProgressStore, MemorySubscriptions};
use streaming_core::contract::{self, infra_var};
use streaming_core::domain::{
    Plan, PositionSeconds, SessionId, Subscription, SubscriptionStatus, UserId, WatchProgress,
};
use streaming_core::ports::{ProgressStore, RecordOutcome, SubscriptionDirectory, SubscriptionError};
use streaming_redis::{RedisConfig, RedisConnection, RedisProgressCache, RedisSubscriptionCache};
use time::OffsetDateTime;

async fn connect(url: &str) -> RedisConnection {
    let redis = RedisConnection::connect(&RedisConfig::new(url)).unwrap();
    redis.wait_connected(Duration::from_secs(5)).await.unwrap();
    redis
}

fn progress(user: &UserId, position: f64, session: SessionId, sequence: u64) -> WatchProgress {
    WatchProgress {
        user: user.clone(),
        media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
        position: PositionSeconds::new(position).unwrap(),
        last_watched_at: OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
        watched: false,
        session: Some(session),
        sequence,
    }
}

fn fresh_user() -> UserId {
    format!("hot-{}", SessionId::random()).parse().unwrap()
}

#[tokio::test]
async fn the_progress_hot_copy_keeps_the_progress_store_contract() {
    for url in [infra_var("STREAMGATE_REDIS_URL"), infra_var("STREAMGATE_REDIS_CLUSTER_URL")] {
        let cache = RedisProgressCache::new(connect(&url).await, MemoryProgressStore::new(), Duration::from_secs(60));
        contract::progress_store(&cache).await;
    }
}

#[tokio::test]
async fn reads_come_from_the_hot_copy_and_invalidation_drops_it() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let redis = connect(&url).await;
    let (user, session) = (fresh_user(), SessionId::random());
    let writer = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
    writer.record(progress(&user, 42.0, session, 1)).await.unwrap();
    writer.flush().await;

    // Another instance with an empty durable store still reads the hot copy.
    let reader = RedisProgressCache::new(redis, MemoryProgressStore::new(), Duration::from_secs(60));
    let media = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    assert_eq!(reader.get(&user, &media).await.unwrap().map(|p| p.position.get()), Some(42.0));
    let ttl = std::process::Command::new("redis-cli")
        .args(["-u", &url, "PTTL", &format!("progress:{{{user}}}:{media}")])
        .output()
        .unwrap();
    let ttl: i64 = String::from_utf8(ttl.stdout).unwrap().trim().parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");

    reader.invalidate(&user, &media).await.unwrap();
    assert_eq!(reader.get(&user, &media).await.unwrap(), None, "gone from Redis, absent from its own store");
}

#[tokio::test]
async fn a_racing_older_write_never_replaces_a_newer_hot_copy() {
    let redis = connect(&infra_var("STREAMGATE_REDIS_CLUSTER_URL")).await;
    let (user, session) = (fresh_user(), SessionId::random());
    // Two instances whose durable stores each accept their own write, as racing writers would.
    let a = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
    let b = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
    assert_eq!(a.record(progress(&user, 50.0, session, 5)).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(b.record(progress(&user, 30.0, session, 3)).await.unwrap(), RecordOutcome::Applied);
    a.flush().await;
    b.flush().await;
    let fresh = RedisProgressCache::new(redis, MemoryProgressStore::new(), Duration::from_secs(60));
    let media = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    assert_eq!(fresh.get(&user, &media).await.unwrap().map(|p| p.sequence), Some(5));
}

#[tokio::test]
async fn a_flush_of_many_viewers_writes_every_copy_and_still_refuses_older_ones() {
    let media = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    for url in [infra_var("STREAMGATE_REDIS_URL"), infra_var("STREAMGATE_REDIS_CLUSTER_URL")] {
        let redis = connect(&url).await;
        // More viewers than one script call carries, spread over many cluster slots.
        let viewers: Vec<(UserId, SessionId)> = (0..300).map(|_| (fresh_user(), SessionId::random())).collect();
        let ahead = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
        for (user, session) in viewers.iter().step_by(2) {
            ahead.record(progress(user, 90.0, *session, 10)).await.unwrap();
        }
        ahead.flush().await;

        let writer = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
        for (user, session) in &viewers {
            writer.record(progress(user, 40.0, *session, 4)).await.unwrap();
        }
        writer.flush().await;
        assert_eq!(writer.pending(), 0, "every copy went out ({url})");

        let fresh = RedisProgressCache::new(redis, MemoryProgressStore::new(), Duration::from_secs(60));
        for (i, (user, _)) in viewers.iter().enumerate() {
            let stored = fresh.get(user, &media).await.unwrap().map(|p| (p.sequence, p.position.get()));
            let expected = if i % 2 == 0 { (10, 90.0) } else { (4, 40.0) };
            assert_eq!(stored, Some(expected), "viewer {i}: an older report never replaces a newer copy ({url})");
        }
    }
}

#[tokio::test]
async fn a_report_s_copy_goes_out_within_the_interval_and_a_stop_s_at_once() {
    let redis = connect(&infra_var("STREAMGATE_REDIS_URL")).await;
    let (user, session) = (fresh_user(), SessionId::random());
    let media = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    let writer = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
    let reader = RedisProgressCache::new(redis, MemoryProgressStore::new(), Duration::from_secs(60));

    writer.record(progress(&user, 10.0, session, 1)).await.unwrap();
    writer.record(progress(&user, 20.0, session, 2)).await.unwrap();
    assert_eq!(writer.pending(), 1, "one waiting copy per (user, movie): the newest");
    assert_eq!(writer.get(&user, &media).await.unwrap().map(|p| p.sequence), Some(2), "read your own writes");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while reader.get(&user, &media).await.unwrap().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(streaming_redis::HOT_COPY_INTERVAL / 5).await;
    }
    assert_eq!(reader.get(&user, &media).await.unwrap().map(|p| p.sequence), Some(2), "out by the flusher");
    assert_eq!(writer.pending(), 0);

    writer.record_durably(progress(&user, 30.0, session, 3)).await.unwrap();
    assert_eq!(writer.pending(), 0);
    assert_eq!(reader.get(&user, &media).await.unwrap().map(|p| p.sequence), Some(3), "a stop's copy at once");
}

#[tokio::test]
async fn a_dead_redis_leaves_progress_to_the_durable_store() {
    let port = streaming_core::contract::free_port();
    let redis = RedisConnection::connect(&RedisConfig::new(format!("redis://127.0.0.1:{port}"))).unwrap();
    let cache = RedisProgressCache::new(redis, MemoryProgressStore::new(), Duration::from_secs(60));
    contract::progress_store(&cache).await;
}

/// Counts the calls that reach the source.
struct Counting {
    inner: MemorySubscriptions,
    calls: Arc<AtomicUsize>,
    down: bool,
}

#[async_trait]
impl SubscriptionDirectory for Counting {
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.down {
            return Err(SubscriptionError::Unavailable("user service down".into()));
        }
        self.inner.current(user).await
    }
}

#[tokio::test]
async fn subscriptions_are_cached_none_included_and_outages_are_not() {
    let redis = connect(&infra_var("STREAMGATE_REDIS_URL")).await;
    let (subscriber, stranger) = (fresh_user(), fresh_user());
    let calls = Arc::new(AtomicUsize::new(0));
    let source = Counting { inner: MemorySubscriptions::new(), calls: calls.clone(), down: false };
    let subscription = Subscription {
        status: SubscriptionStatus::Active,
        end_date: Some(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()),
        plan: Plan { max_devices: Some(3), supports_hd: true, supports_4k: false },
    };
    source.inner.set(&subscriber, Some(subscription.clone()));
    let cache = RedisSubscriptionCache::new(redis.clone(), source, Duration::from_secs(60));

    for _ in 0..3 {
        assert_eq!(cache.current(&subscriber).await.unwrap(), Some(subscription.clone()));
        assert_eq!(cache.current(&stranger).await.unwrap(), None);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 2, "one call per user; the rest from Redis, 'none' included");
    cache.invalidate(&subscriber).await.unwrap();
    assert_eq!(cache.current(&subscriber).await.unwrap(), Some(subscription));
    assert_eq!(calls.load(Ordering::Relaxed), 3, "invalidation sends the next read to the source");

    let down_calls = Arc::new(AtomicUsize::new(0));
    let down = RedisSubscriptionCache::new(
        redis,
        Counting { inner: MemorySubscriptions::new(), calls: down_calls.clone(), down: true },
        Duration::from_secs(60),
    );
    let someone = fresh_user();
    assert!(down.current(&someone).await.is_err());
    assert!(down.current(&someone).await.is_err());
    assert_eq!(down_calls.load(Ordering::Relaxed), 2, "an outage is asked again, never cached as 'none'");
}
