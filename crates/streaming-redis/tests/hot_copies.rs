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
use streaming_redis::{HotCopyLayout, RedisConfig, RedisConnection, RedisProgressCache, RedisSubscriptionCache};
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
    let redis = connect(&infra_var("STREAMGATE_REDIS_URL")).await;
    let ttl = Duration::from_secs(60);
    contract::progress_store(&RedisProgressCache::with_layout(
        redis,
        MemoryProgressStore::new(),
        ttl,
        HotCopyLayout::Cinema,
    ))
    .await;
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

fn redis_cli(url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli").args(["-u", url]).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn uuid_user() -> UserId {
    SessionId::random().to_string().parse().unwrap()
}

/// During a switch-over both services run on one Redis: with the cinema
/// layout each reads the other's hot copies, under the cinema's keys and in
/// its value shapes.
#[tokio::test]
async fn with_the_cinema_layout_both_services_read_each_others_hot_copies() {
    let url = infra_var("STREAMGATE_REDIS_URL");
    let redis = connect(&url).await;
    let media = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
    let (user, session) = (uuid_user(), SessionId::random());
    let key = format!("progress:{user}:{media}");

    // What the cinema service writes: its key, its three fields, whole seconds.
    let theirs = format!(r#"{{"user_id": "{user}", "movie_id": "{media}", "position_seconds": 754}}"#);
    redis_cli(&url, &["SET", &key, &theirs, "PX", "60000"]);
    let tagged = RedisProgressCache::new(redis.clone(), MemoryProgressStore::new(), Duration::from_secs(60));
    assert_eq!(tagged.get(&user, &media).await.unwrap(), None, "this service's own layout does not see it");
    let durable = MemoryProgressStore::new();
    durable.record(progress(&user, 600.0, session, 9)).await.unwrap();
    let cinema =
        RedisProgressCache::with_layout(redis.clone(), durable, Duration::from_secs(60), HotCopyLayout::Cinema);
    let read = cinema.get(&user, &media).await.unwrap().unwrap();
    assert_eq!(read.position.get(), 754.0, "the cinema's copy is ahead of the rows");
    assert_eq!((read.session, read.sequence), (Some(session), 9), "the rest from the durable row");
    let newcomer = uuid_user();
    let theirs = format!(r#"{{"user_id": "{newcomer}", "movie_id": "{media}", "position_seconds": 12}}"#);
    redis_cli(&url, &["SET", &format!("progress:{newcomer}:{media}"), &theirs, "PX", "60000"]);
    assert_eq!(cinema.get(&newcomer, &media).await.unwrap().map(|p| p.position.get()), Some(12.0), "no row yet");

    // What this service writes, the cinema service reads: its key, its fields and types.
    cinema.record_durably(progress(&user, 800.7, session, 10)).await.unwrap();
    let ours: serde_json::Value = serde_json::from_str(&redis_cli(&url, &["GET", &key])).unwrap();
    assert_eq!(ours["user_id"], user.as_str());
    assert_eq!(ours["movie_id"], media.as_str());
    assert!(ours["position_seconds"].is_u64(), "whole seconds: {ours}");
    assert_eq!(ours["position_seconds"], 800);
    let ttl: i64 = redis_cli(&url, &["PTTL", &key]).parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    assert_eq!(cinema.get(&user, &media).await.unwrap().map(|p| p.sequence), Some(10), "and reads it back whole");

    // Subscriptions: the cinema's answer is read with the default plan; ours carry its fields.
    let plan = Plan { max_devices: None, supports_hd: true, supports_4k: false };
    let calls = Arc::new(AtomicUsize::new(0));
    let source = Counting { inner: MemorySubscriptions::new(), calls: calls.clone(), down: false };
    let (theirs_user, our_user, nobody) = (uuid_user(), uuid_user(), uuid_user());
    let ours_subscription = Subscription {
        status: SubscriptionStatus::Active,
        end_date: Some(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()),
        plan,
    };
    source.inner.set(&our_user, Some(ours_subscription.clone()));
    let subscriptions =
        RedisSubscriptionCache::new(redis.clone(), source, Duration::from_secs(60)).with_cinema_layout(plan);
    let answer = r#"{"is_active": true, "plan_id": "premium", "expires_at": "2030-01-01T00:00:00"}"#;
    redis_cli(&url, &["SET", &format!("subscription:{theirs_user}"), answer, "PX", "60000"]);
    let read = subscriptions.current(&theirs_user).await.unwrap().unwrap();
    assert_eq!(read.status, SubscriptionStatus::Active);
    assert_eq!(read.end_date, Some(time::macros::datetime!(2030-01-01 00:00:00 UTC)), "naive: UTC");
    assert_eq!(read.plan, plan);
    assert_eq!(calls.load(Ordering::Relaxed), 0, "answered from the cinema's copy");

    assert_eq!(subscriptions.current(&our_user).await.unwrap(), Some(ours_subscription.clone()));
    let cached: serde_json::Value =
        serde_json::from_str(&redis_cli(&url, &["GET", &format!("subscription:{our_user}")])).unwrap();
    assert_eq!(cached["is_active"], true);
    assert_eq!(cached["expires_at"], "2030-03-17T17:46:40+00:00");
    assert!(cached.get("plan_id").is_some_and(serde_json::Value::is_null), "{cached}");
    assert_eq!(subscriptions.current(&our_user).await.unwrap(), Some(ours_subscription), "read back whole");
    assert_eq!(subscriptions.current(&nobody).await.unwrap(), None);
    let none: serde_json::Value =
        serde_json::from_str(&redis_cli(&url, &["GET", &format!("subscription:{nobody}")])).unwrap();
    assert_eq!(none["is_active"], false, "no subscription: not active, for the cinema service too");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}
