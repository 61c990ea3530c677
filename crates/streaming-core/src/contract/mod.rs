//! Port contract suites: one test suite per port, run against every adapter
//! of it (memory and moka here; Redis, Postgres and S3 in their crates, with
//! the `contract-tests` feature).
//!
//! Each suite panics on the first broken promise, like a test.
// Test support: failing loudly is the point, so panicking helpers are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{MediaId, ObjectKey, SessionId, UserId};
use crate::ports::{
    AuditLog, AuditRecord, Broadcast, DeadLetter, DeadLetters, EventGate, ObjectStore, ObjectStoreError, OffsetStore,
    PendingWrite, PendingWrites, RateDecision, RateLimitPolicy, RateLimiter, StreamCacheKey, UrlCache,
};

/// A loopback port free at the time of asking, for a server a test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where a real test server is: the variable `name` from the environment
/// (`cargo xtask test` sets it), else from `target/infra/env`, found by
/// walking up from the current directory (after `cargo xtask infra up`).
/// Panics with instructions when neither has it: tests that need a server
/// fail loudly instead of skipping.
pub fn infra_var(name: &str) -> String {
    if let Ok(value) = std::env::var(name) {
        return value;
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(current) = dir {
        let file = current.join("target").join("infra").join("env");
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(value) = text.lines().find_map(|l| l.strip_prefix(&format!("{name}="))) {
                return value.to_owned();
            }
        }
        dir = current.parent().map(std::path::Path::to_path_buf);
    }
    panic!("{name} is not set: run the tests with `cargo xtask test` (or `cargo xtask infra up` first)")
}

mod catalog;
mod playback;

pub use catalog::{catalog_writer, media_listing};
pub use playback::{progress_store, session_store};

fn user(id: &str) -> UserId {
    UserId::try_from(id).unwrap()
}

/// A media id unique to this run, so suites can share a real backend.
fn fresh_media() -> MediaId {
    MediaId::parse_uuid(&SessionId::random().to_string()).unwrap()
}

/// A user id unique to this run: a UUID, the one spelling every store holds
/// (the cinema service's tables keep user ids as `uuid`).
fn fresh_user() -> UserId {
    user(&SessionId::random().to_string())
}

/// Everything a [`UrlCache`] promises. `pass_time` must let at least the given
/// duration pass for the cache (advance a manual clock, or sleep).
pub async fn url_cache<C, F, Fut>(cache: &C, pass_time: F)
where
    C: UrlCache + ?Sized,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let alice = fresh_user();
    let bob = fresh_user();
    let (m1, m2) = (fresh_media(), fresh_media());
    let a1 = StreamCacheKey::new("contract:", &alice, &m1);
    let a2 = StreamCacheKey::new("contract:", &alice, &m2);
    let b1 = StreamCacheKey::new("contract:", &bob, &m1);
    let long = Duration::from_secs(60);

    let empty = cache.get(&a1).await.unwrap();
    assert_eq!(empty.entry, None, "a fresh cache has no entry");
    assert_eq!(empty.generation, 0, "a user without generation reads 0");

    cache.set(&a1, b"first".to_vec(), long).await.unwrap();
    assert_eq!(cache.get(&a1).await.unwrap().entry.as_deref(), Some(&b"first"[..]));
    cache.set(&a1, b"second".to_vec(), long).await.unwrap();
    assert_eq!(cache.get(&a1).await.unwrap().entry.as_deref(), Some(&b"second"[..]), "set replaces");

    assert_eq!(cache.get(&a2).await.unwrap().entry, None, "keys of other media are separate");
    assert_eq!(cache.get(&b1).await.unwrap().entry, None, "keys of other users are separate");

    let binary: Vec<u8> = (0..=255).collect();
    cache.set(&b1, binary.clone(), long).await.unwrap();
    assert_eq!(cache.get(&b1).await.unwrap().entry, Some(binary), "blobs are stored byte for byte");

    cache.delete(&a1).await.unwrap();
    assert_eq!(cache.get(&a1).await.unwrap().entry, None, "delete removes");
    cache.delete(&a1).await.unwrap();
    assert!(cache.get(&b1).await.unwrap().entry.is_some(), "delete touches nothing else");

    cache.set_generation(&alice, 7, long).await.unwrap();
    assert_eq!(cache.get(&a1).await.unwrap().generation, 7);
    assert_eq!(cache.get(&a2).await.unwrap().generation, 7, "the generation is per user");
    assert_eq!(cache.get(&b1).await.unwrap().generation, 0, "other users keep theirs");
    cache.set_generation(&alice, 9, long).await.unwrap();
    assert_eq!(cache.get(&a1).await.unwrap().generation, 9, "set_generation replaces");

    let short = Duration::from_millis(400);
    cache.set(&a2, b"short-lived".to_vec(), short).await.unwrap();
    cache.set_generation(&bob, 5, short).await.unwrap();
    cache.set(&a1, b"long-lived".to_vec(), long).await.unwrap();
    pass_time(Duration::from_millis(1_500)).await;
    assert_eq!(cache.get(&a2).await.unwrap().entry, None, "entries expire after their TTL");
    assert_eq!(cache.get(&b1).await.unwrap().generation, 0, "generations expire after their TTL");
    assert!(cache.get(&a1).await.unwrap().entry.is_some(), "unexpired entries stay");
}

/// Everything a [`RateLimiter`] promises (without moving time).
pub async fn rate_limiter<L: RateLimiter + ?Sized>(limiter: &L) {
    let alice = fresh_user();
    let bob = fresh_user();
    let policy = RateLimitPolicy { name: "contract".into(), limit: 3, period: Duration::from_secs(60) };
    let other = RateLimitPolicy { name: "contract-other".into(), ..policy.clone() };

    let mut remaining = Vec::new();
    for _ in 0..3 {
        match limiter.check(&alice, &policy).await.unwrap() {
            RateDecision::Allowed { remaining: r } => remaining.push(r),
            RateDecision::Limited { .. } => panic!("a burst up to the limit is allowed"),
        }
    }
    assert_eq!(remaining, vec![2, 1, 0], "remaining counts down to zero");
    match limiter.check(&alice, &policy).await.unwrap() {
        RateDecision::Limited { retry_after } => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20), "{retry_after:?}");
        }
        allowed => panic!("the request after the limit must be refused, got {allowed:?}"),
    }
    assert!(matches!(limiter.check(&bob, &policy).await.unwrap(), RateDecision::Allowed { .. }), "users are separate");
    assert!(
        matches!(limiter.check(&alice, &other).await.unwrap(), RateDecision::Allowed { .. }),
        "policies are separate"
    );
}

/// Everything an [`OffsetStore`] promises. `mine` and `theirs` are the
/// offsets of two consumers in one store; each starts empty.
pub async fn offset_store<S: OffsetStore + ?Sized>(mine: &S, theirs: &S) {
    assert_eq!(mine.load("media.deleted", 0).await.unwrap(), None, "nothing stored yet");
    mine.store("media.deleted", 0, 42).await.unwrap();
    mine.store("media.deleted", 0, 40).await.unwrap();
    mine.store("media.deleted", 1, 7).await.unwrap();
    assert_eq!(mine.load("media.deleted", 0).await.unwrap(), Some(42), "a late store does not move it back");
    assert_eq!(mine.load("media.deleted", 1).await.unwrap(), Some(7), "partitions are separate");
    assert_eq!(mine.load("media.upserted", 0).await.unwrap(), None, "topics are separate");
    assert_eq!(theirs.load("media.deleted", 0).await.unwrap(), None, "each consumer has its own");
    mine.reset("media.deleted", 0, 3).await.unwrap();
    assert_eq!(mine.load("media.deleted", 0).await.unwrap(), Some(3), "a reset moves it back");
    mine.store("media.deleted", 0, 5).await.unwrap();
    assert_eq!(mine.load("media.deleted", 0).await.unwrap(), Some(5), "and it moves forward from there");
}

/// Everything an [`EventGate`] promises. `pass_time` must let at least the
/// given duration pass for the gate (advance a manual clock, or sleep).
pub async fn event_gate<G, F, Fut>(gate: &G, pass_time: F)
where
    G: EventGate + ?Sized,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let key = format!("contract:{}", SessionId::random());
    let other = format!("contract:{}", SessionId::random());
    let gap = Duration::from_millis(300);
    assert!(gate.pass(&key, gap).await.unwrap(), "the first event passes");
    assert!(!gate.pass(&key, gap).await.unwrap(), "the next one within the gap does not");
    assert!(gate.pass(&other, gap).await.unwrap(), "keys are separate");
    assert!(gate.pass(&key, Duration::ZERO).await.unwrap(), "a zero gap passes everything");
    pass_time(gap + Duration::from_millis(50)).await;
    assert!(gate.pass(&key, gap).await.unwrap(), "after the gap one passes again");
    assert!(!gate.pass(&key, gap).await.unwrap(), "and starts a new gap");
}

/// Everything an [`ObjectStore`] promises. `existing` must hold exactly `bytes`;
/// `missing` must not exist.
pub async fn object_store<S: ObjectStore + ?Sized>(store: &S, existing: &ObjectKey, bytes: &[u8], missing: &ObjectKey) {
    let info = store.head(existing).await.unwrap();
    assert_eq!(info.size_bytes, bytes.len() as u64);
    assert_eq!(store.head(missing).await, Err(ObjectStoreError::NotFound));

    assert_eq!(store.read_small(existing, bytes.len() as u64).await.unwrap(), bytes);
    assert!(matches!(store.read_small(existing, bytes.len() as u64 - 1).await, Err(ObjectStoreError::Invalid(_))));
    assert_eq!(store.read_small(missing, 1024).await, Err(ObjectStoreError::NotFound));

    let signed_at = OffsetDateTime::now_utc();
    let url = store.presign_get(existing, signed_at, Duration::from_secs(120)).await.unwrap();
    assert_eq!(url.expires_at.unix_timestamp(), signed_at.unix_timestamp() + 120);
    assert!(!url.url.is_empty());
    let again = store.presign_get(existing, signed_at, Duration::from_secs(120)).await.unwrap();
    assert_eq!(url, again, "signing is deterministic for the same instant");
    assert!(matches!(
        store.presign_get(existing, signed_at, Duration::from_secs(8 * 24 * 3600)).await,
        Err(ObjectStoreError::Invalid(_))
    ));
}

/// Everything a [`Broadcast`] promises: `here` and `there` are two
/// instances' ends of one channel (the same object for an in-process one);
/// `pause` waits the given time (a sleep).
pub async fn broadcast<B, F, Fut>(here: &B, there: &B, pause: F)
where
    B: Broadcast + ?Sized,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    use std::sync::{Arc, Mutex};
    let topic = format!("contract-{}", fresh_user());
    let heard_here = Arc::new(Mutex::new(Vec::new()));
    let heard_there = Arc::new(Mutex::new(Vec::new()));
    let sink = |heard: &Arc<Mutex<Vec<String>>>| {
        let heard = heard.clone();
        Arc::new(move |message: &str| heard.lock().unwrap().push(message.to_owned())) as crate::ports::Listener
    };
    here.listen(&topic, sink(&heard_here));
    there.listen(&topic, sink(&heard_there));
    here.listen(&format!("{topic}-other"), Arc::new(|message: &str| panic!("another topic heard {message:?}")));
    // A subscription may take a moment to be in place across a network.
    pause(Duration::from_millis(200)).await;
    for message in ["session 1", "user a b", ""] {
        here.publish(&topic, message).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while heard_there.lock().unwrap().len() < 3 || heard_here.lock().unwrap().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "not every message arrived");
        pause(Duration::from_millis(10)).await;
    }
    let expected = vec!["session 1".to_owned(), "user a b".to_owned(), String::new()];
    assert_eq!(*heard_there.lock().unwrap(), expected, "the other instance hears every message, in order");
    assert_eq!(*heard_here.lock().unwrap(), expected, "and so does the one that sent them");
}

/// Everything a [`DeadLetters`] promises, on an empty store.
pub async fn dead_letters<D: DeadLetters + ?Sized>(letters: &D) {
    assert!(letters.recent(10).await.unwrap().is_empty());
    let letter = |offset: i64| DeadLetter {
        topic: "prod.media.deleted".into(),
        partition: 2,
        offset,
        event_id: (offset % 2 == 0).then(|| uuid::Uuid::from_u128(offset as u128 + 1)),
        payload: format!("{{\"n\":{offset}}}").into_bytes(),
        error: "catalog: unavailable".into(),
        attempts: 5,
    };
    for offset in [7, 8, 9] {
        letters.keep(&letter(offset)).await.unwrap();
    }
    letters.keep(&letter(8)).await.unwrap();
    assert_eq!(letters.recent(10).await.unwrap(), vec![letter(9), letter(8), letter(7)], "once each, newest first");
    assert_eq!(letters.recent(1).await.unwrap(), vec![letter(9)]);
}

/// Everything an [`AuditLog`] promises, on an empty trail.
pub async fn audit_log<A: AuditLog + ?Sized>(log: &A) {
    assert_eq!(log.recent(10).await.unwrap(), Vec::new(), "an empty trail");
    let at = |seconds: i64| OffsetDateTime::from_unix_timestamp(1_767_225_600 + seconds).unwrap();
    let records: Vec<AuditRecord> = (0..3)
        .map(|i| AuditRecord {
            at: at(i),
            actor: "ops-console".into(),
            action: if i == 1 { "user.status".into() } else { "media.upsert".into() },
            target: format!("media/{}", fresh_media()),
            before: (i > 0).then(|| serde_json::json!({ "status": "processing", "size_bytes": i })),
            after: Some(serde_json::json!({ "status": "ready", "nested": { "list": [1, 2.5, "x"] }, "none": null })),
        })
        .collect();
    for record in &records {
        log.record(record).await.unwrap();
    }
    let newest_first: Vec<AuditRecord> = records.iter().rev().cloned().collect();
    assert_eq!(log.recent(10).await.unwrap(), newest_first, "every record as written, newest first");
    assert_eq!(log.recent(2).await.unwrap(), newest_first[..2], "the newest ones");
    assert_eq!(log.recent(0).await.unwrap(), Vec::new());
}

/// Everything a [`PendingWrites`] promises, on writes of a kind of its own.
pub async fn pending_writes<P: PendingWrites + ?Sized>(pending: &P) {
    let kind = format!("contract-{}", fresh_user());
    let hour = Duration::from_secs(3_600);
    let write = |id: &str, stamp: &str, order: Option<(&str, u64)>, body: &str| PendingWrite {
        id: id.into(),
        stamp: stamp.into(),
        order: order.map(|(group, number)| (group.into(), number)),
        body: body.into(),
    };
    let claim_all = || pending.claim(&kind, Duration::ZERO, hour, 100);
    let bodies = |claimed: &[PendingWrite]| {
        let mut bodies: Vec<(String, String)> = claimed.iter().map(|w| (w.id.clone(), w.body.clone())).collect();
        bodies.sort();
        bodies
    };

    // Held writes are claimed once old enough, with a stamp of the claim's.
    pending
        .hold(&kind, vec![write("a", "a1", None, "first"), write("b", "b1", Some(("s", 5)), "b at 5")])
        .await
        .unwrap();
    assert!(pending.claim(&kind, hour, hour, 100).await.unwrap().is_empty(), "nothing is an hour old");
    assert!(pending.claim(&format!("{kind}-other"), Duration::ZERO, hour, 100).await.unwrap().is_empty());
    let claimed = claim_all().await.unwrap();
    assert_eq!(bodies(&claimed), [("a".into(), "first".into()), ("b".into(), "b at 5".into())]);
    assert!(claimed.iter().all(|w| w.stamp != "a1" && w.stamp != "b1"), "a claim stamps what it takes");
    assert!(claim_all().await.unwrap().is_empty(), "claimed writes are leased");

    // A release names a stamp: the holder's after a claim forgets nothing, the claim's does.
    pending.release(&kind, vec![("a".into(), "a1".into())]).await.unwrap();
    let stamps: Vec<(String, String)> = claimed.iter().map(|w| (w.id.clone(), w.stamp.clone())).collect();
    pending.release(&kind, stamps).await.unwrap();
    assert!(claim_all().await.unwrap().is_empty());
    let short = pending.claim(&kind, Duration::ZERO, Duration::ZERO, 100).await.unwrap();
    assert!(short.is_empty(), "released writes are gone, not only leased");

    // Order: a lower number of the same group does not replace the held write.
    pending.hold(&kind, vec![write("c", "c7", Some(("s", 7)), "c at 7")]).await.unwrap();
    pending.hold(&kind, vec![write("c", "c3", Some(("s", 3)), "c at 3")]).await.unwrap();
    pending.release(&kind, vec![("c".into(), "c3".into())]).await.unwrap();
    assert_eq!(bodies(&claim_all().await.unwrap()), [("c".into(), "c at 7".into())], "the late write lost");
    pending.hold(&kind, vec![write("d", "d7", Some(("s", 7)), "d at 7")]).await.unwrap();
    pending.hold(&kind, vec![write("d", "d1", Some(("t", 1)), "d, another session")]).await.unwrap();
    pending.hold(&kind, vec![write("e", "e7", Some(("s", 7)), "e at 7")]).await.unwrap();
    pending.hold(&kind, vec![write("e", "e0", None, "e, unordered")]).await.unwrap();
    // A release of the replaced write leaves the newer one.
    pending.release(&kind, vec![("d".into(), "d7".into()), ("e".into(), "e7".into())]).await.unwrap();
    assert_eq!(
        bodies(&claim_all().await.unwrap()),
        [("d".into(), "d, another session".into()), ("e".into(), "e, unordered".into())]
    );

    // A release with the holder's own stamp forgets it; `max` bounds a claim.
    let many: Vec<PendingWrite> = (0..5).map(|i| write(&format!("m{i}"), &format!("m{i}"), None, "many")).collect();
    pending.hold(&kind, many).await.unwrap();
    pending.release(&kind, vec![("m0".into(), "m0".into())]).await.unwrap();
    assert_eq!(pending.claim(&kind, Duration::ZERO, hour, 3).await.unwrap().len(), 3);
    assert_eq!(claim_all().await.unwrap().len(), 1, "four were held");

    // A lease that ran out lets another claim take the write again; bodies
    // with newlines and other bytes come back whole.
    let odd = "line one\nline two\n{\"x\":\"ü\"}";
    pending.hold(&kind, vec![write("odd id\n1", "o", Some(("g", 1)), odd)]).await.unwrap();
    let first = pending.claim(&kind, Duration::ZERO, Duration::ZERO, 10).await.unwrap();
    assert_eq!(bodies(&first), [("odd id\n1".into(), odd.into())]);
    let again = pending.claim(&kind, Duration::ZERO, Duration::ZERO, 10).await.unwrap();
    assert_eq!(bodies(&again), bodies(&first), "the lease ran out");
    assert_ne!(again[0].stamp, first[0].stamp);
    pending.release(&kind, vec![(first[0].id.clone(), first[0].stamp.clone())]).await.unwrap();
    let short = pending.claim(&kind, Duration::ZERO, Duration::ZERO, 10).await.unwrap();
    assert_eq!(short.len(), 1, "the first claim's stamp no longer releases it");
}
