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

use crate::domain::{
    CatalogChange, ManifestKind, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, PositionSeconds,
    SessionId, StreamSession, UserId, UserStatus, Viewer, Visibility, WatchProgress,
};
use crate::ports::{
    AuditLog, AuditRecord, CatalogWriter, CloseOutcome, EventGate, MediaCandidate, MediaCatalog, MediaListing,
    ObjectStore, ObjectStoreError, OffsetStore, ProgressStore, RateDecision, RateLimitPolicy, RateLimiter,
    RecordOutcome, SessionError, SessionStore, StreamCacheKey, UrlCache,
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

/// Everything a [`ProgressStore`] promises.
pub async fn progress_store<S: ProgressStore + ?Sized>(store: &S) {
    let alice = fresh_user();
    let movie = fresh_media();
    let at = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let session = SessionId::random();
    let progress = |position: f64, sequence: u64, session: Option<SessionId>| WatchProgress {
        user: alice.clone(),
        media: movie.clone(),
        position: PositionSeconds::new(position).unwrap(),
        last_watched_at: at + Duration::from_secs(sequence),
        watched: false,
        session,
        sequence,
    };

    assert_eq!(store.get(&alice, &movie).await.unwrap(), None);
    assert_eq!(store.record(progress(10.0, 1, Some(session))).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(store.record(progress(30.0, 3, Some(session))).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(store.record(progress(20.0, 2, Some(session))).await.unwrap(), RecordOutcome::Stale, "late update");
    assert_eq!(
        store.record(progress(25.0, 3, Some(session))).await.unwrap(),
        RecordOutcome::Stale,
        "replayed sequence"
    );
    let stored = store.get(&alice, &movie).await.unwrap().unwrap();
    assert_eq!(stored.position.get(), 30.0);
    assert_eq!(stored.sequence, 3);
    assert_eq!(stored.session, Some(session));

    let next = SessionId::random();
    assert_eq!(
        store.record(progress(5.0, 1, Some(next))).await.unwrap(),
        RecordOutcome::Applied,
        "a new session starts over"
    );
    assert_eq!(store.get(&alice, &movie).await.unwrap().unwrap().position.get(), 5.0);
    assert_eq!(store.get(&fresh_user(), &movie).await.unwrap(), None, "progress is per user");

    // A durable record (a stop) obeys the same rule and is read back at once.
    assert_eq!(store.record_durably(progress(7.0, 2, Some(next))).await.unwrap(), RecordOutcome::Applied);
    assert_eq!(store.record_durably(progress(6.0, 2, Some(next))).await.unwrap(), RecordOutcome::Stale);
    assert_eq!(store.record(progress(6.0, 1, Some(next))).await.unwrap(), RecordOutcome::Stale);
    assert_eq!(store.get(&alice, &movie).await.unwrap().unwrap().position.get(), 7.0);
}

/// Everything a [`SessionStore`] promises.
pub async fn session_store<S: SessionStore + ?Sized>(store: &S) {
    let alice = fresh_user();
    let start = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let session = |id: SessionId, started: OffsetDateTime| StreamSession {
        id,
        user: alice.clone(),
        media: fresh_media(),
        manifest: ManifestKind::Hls,
        started_at: started,
        ended_at: None,
        duration_seconds: None,
        user_agent: Some("contract/1.0".into()),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        last_heartbeat_at: started,
    };
    let first = session(SessionId::random(), start);
    let second = session(SessionId::random(), start + Duration::from_secs(10));

    store.open(first.clone()).await.unwrap();
    assert_eq!(store.open(first.clone()).await, Err(SessionError::Duplicate));
    store.open(second.clone()).await.unwrap();
    assert_eq!(store.get(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.get(&SessionId::random()).await.unwrap(), None);

    let open = store.open_sessions(&alice, start).await.unwrap();
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), vec![first.id, second.id], "oldest first");
    store.touch(&second.id, start + Duration::from_secs(100)).await.unwrap();
    let alive = store.open_sessions(&alice, start + Duration::from_secs(50)).await.unwrap();
    assert_eq!(alive.iter().map(|s| s.id).collect::<Vec<_>>(), vec![second.id], "idle sessions do not count");
    let heartbeat = |id| async move { store.get(&id).await.unwrap().unwrap().last_heartbeat_at };
    store
        .touch_many(vec![(second.id, start + Duration::from_secs(80)), (first.id, start + Duration::from_secs(60))])
        .await
        .unwrap();
    assert_eq!(heartbeat(second.id).await, start + Duration::from_secs(100), "a heartbeat never goes back");
    assert_eq!(heartbeat(first.id).await, start + Duration::from_secs(60), "a batch touches every session in it");
    store.touch_many(Vec::new()).await.unwrap();

    let end = start + Duration::from_secs(90);
    let closed = match store.close(&first.id, end).await.unwrap() {
        CloseOutcome::Closed(closed) => closed,
        other => panic!("closing an open session closes it, got {other:?}"),
    };
    assert_eq!(closed.ended_at, Some(end));
    assert_eq!(closed.duration_seconds, Some(90.0));
    match store.close(&first.id, end + Duration::from_secs(5)).await.unwrap() {
        CloseOutcome::AlreadyClosed(again) => {
            assert_eq!(again, closed, "a second close changes nothing")
        }
        other => panic!("closing twice is idempotent, got {other:?}"),
    }
    assert_eq!(store.close(&SessionId::random(), end).await.unwrap(), CloseOutcome::NotFound);
    assert!(store.open_sessions(&alice, start).await.unwrap().iter().all(|s| s.id != first.id));
    store.touch_many(vec![(first.id, end + Duration::from_secs(60))]).await.unwrap();
    assert_eq!(heartbeat(first.id).await, closed.last_heartbeat_at, "a closed session is not touched");

    // Sessions nobody stopped are closed once idle, at their last heartbeat,
    // in batches, each by one call only.
    let idle_before = start + Duration::from_secs(1_000);
    let idle: Vec<StreamSession> =
        (0..3).map(|i| session(SessionId::random(), start + Duration::from_secs(200 + i))).collect();
    for s in &idle {
        store.open(s.clone()).await.unwrap();
    }
    store.touch(&idle[0].id, start + Duration::from_secs(400)).await.unwrap();
    let lively = session(SessionId::random(), start + Duration::from_secs(300));
    store.open(lively.clone()).await.unwrap();
    store.touch(&lively.id, idle_before + Duration::from_secs(10)).await.unwrap();
    let mut swept = Vec::new();
    loop {
        let (batch, _) = store.close_idle(idle_before, 2).await.unwrap();
        assert!(batch.len() <= 2, "at most as many as asked");
        let last = batch.len() < 2;
        swept.extend(batch.into_iter().filter(|s| s.user == alice));
        if last {
            break;
        }
    }
    let mut swept_ids: Vec<SessionId> = swept.iter().map(|s| s.id).collect();
    swept_ids.sort_by_key(|id| id.as_uuid());
    let mut expected: Vec<SessionId> = idle.iter().map(|s| s.id).chain([second.id]).collect();
    expected.sort_by_key(|id| id.as_uuid());
    assert_eq!(swept_ids, expected, "every idle open session once; the stopped and the lively ones not");
    for s in &swept {
        assert_eq!(s.ended_at, Some(s.last_heartbeat_at), "ended at its last sign of life");
        let lasted = (s.last_heartbeat_at - s.started_at).as_seconds_f64();
        assert_eq!(s.duration_seconds, Some(lasted));
        assert_eq!(store.get(&s.id).await.unwrap().as_ref(), Some(s), "stored as returned");
    }
    assert_eq!(swept.iter().find(|s| s.id == idle[0].id).map(|s| s.duration_seconds), Some(Some(200.0)));
    let (again, _) = store.close_idle(idle_before, 100).await.unwrap();
    assert!(again.iter().all(|s| s.user != alice), "nothing is closed twice");
    let open = store.open_sessions(&alice, OffsetDateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), vec![lively.id]);
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

/// Everything a [`CatalogWriter`] promises, read back through its [`MediaCatalog`].
pub async fn catalog_writer<C: CatalogWriter + MediaCatalog + ?Sized>(catalog: &C) {
    let t = |seconds: u64| OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap() + Duration::from_secs(seconds);
    let id = fresh_media();
    let owner = fresh_user();
    let movie = |title: &str, status: MediaStatus| Media {
        id: id.clone(),
        kind: MediaKind::Movie,
        owner: Some(owner.clone()),
        status,
        object_key: ObjectKey::try_from(format!("movies/{id}/{title}")).unwrap(),
        content_type: "application/vnd.apple.mpegurl".into(),
        size_bytes: 1_000,
        duration_seconds: Some(5_400.0),
        visibility: Visibility::Subscribers,
        required_features: PlanFeatures { hd: true, uhd_4k: false },
    };
    let status = |status| CatalogChange::MediaStatusChanged { media: id.clone(), status };

    let v1 = CatalogChange::MediaUpserted(movie("v1", MediaStatus::Processing));
    assert!(catalog.apply(&v1, t(10)).await.unwrap());
    assert!(catalog.apply(&v1, t(10)).await.unwrap(), "the same change again is harmless");
    assert_eq!(catalog.media(&id).await.unwrap(), Some(movie("v1", MediaStatus::Processing)));
    let v0 = CatalogChange::MediaUpserted(movie("v0", MediaStatus::Ready));
    assert!(!catalog.apply(&v0, t(5)).await.unwrap(), "an older version is not applied");
    assert_eq!(catalog.media(&id).await.unwrap().unwrap().object_key.as_str(), format!("movies/{id}/v1"));

    assert!(catalog.apply(&status(MediaStatus::Ready), t(20)).await.unwrap());
    assert!(!catalog.apply(&status(MediaStatus::Failed), t(15)).await.unwrap(), "a late status is not applied");
    assert_eq!(catalog.media(&id).await.unwrap().unwrap().status, MediaStatus::Ready);

    assert!(catalog.apply(&CatalogChange::MediaDeleted { media: id.clone() }, t(30)).await.unwrap());
    let v2 = CatalogChange::MediaUpserted(movie("v2", MediaStatus::Ready));
    assert!(!catalog.apply(&v2, t(25)).await.unwrap(), "an update older than the deletion does not revive it");
    assert_eq!(catalog.media(&id).await.unwrap().unwrap().status, MediaStatus::Deleted, "deleted items are kept");

    let unknown = fresh_media();
    let change = CatalogChange::MediaStatusChanged { media: unknown.clone(), status: MediaStatus::Ready };
    assert!(!catalog.apply(&change, t(40)).await.unwrap(), "a status of an unknown item has nothing to change");
    assert_eq!(catalog.media(&unknown).await.unwrap(), None);

    let viewer = fresh_user();
    let user_status = |status| CatalogChange::UserStatusChanged { user: viewer.clone(), status };
    assert!(catalog.apply(&user_status(UserStatus::Suspended), t(10)).await.unwrap());
    assert_eq!(catalog.viewer(&viewer, Some(&id)).await.unwrap().status, UserStatus::Suspended);
    assert_eq!(catalog.viewer(&viewer, None).await.unwrap().status, UserStatus::Suspended, "status alone");
    assert!(!catalog.apply(&user_status(UserStatus::Active), t(5)).await.unwrap());
    assert_eq!(catalog.viewer(&viewer, Some(&id)).await.unwrap().status, UserStatus::Suspended);
    assert!(catalog.apply(&user_status(UserStatus::Active), t(20)).await.unwrap());
    assert_eq!(catalog.viewer(&viewer, Some(&id)).await.unwrap(), Viewer::default());
    assert_eq!(catalog.viewer(&viewer, None).await.unwrap(), Viewer::default());

    let logout = CatalogChange::UserLoggedOutEverywhere { user: viewer.clone() };
    assert!(catalog.apply(&logout, t(1)).await.unwrap(), "cache-only changes are accepted");
    assert!(catalog.apply(&CatalogChange::SubscriptionChanged { user: viewer.clone() }, t(1)).await.unwrap());

    let grant =
        |media: &MediaId, granted| CatalogChange::GrantChanged { media: media.clone(), user: viewer.clone(), granted };
    assert!(catalog.apply(&grant(&id, true), t(1)).await.unwrap());
    assert!(catalog.apply(&grant(&id, true), t(1)).await.unwrap(), "granting twice is harmless");
    assert!(catalog.viewer(&viewer, Some(&id)).await.unwrap().granted);
    assert!(catalog.apply(&grant(&id, false), t(1)).await.unwrap());
    assert!(catalog.apply(&grant(&id, false), t(1)).await.unwrap(), "revoking twice is harmless");
    assert!(!catalog.viewer(&viewer, Some(&id)).await.unwrap().granted);
    assert!(!catalog.apply(&grant(&unknown, true), t(1)).await.unwrap(), "no grant on an unknown item");
    assert!(!catalog.viewer(&viewer, Some(&unknown)).await.unwrap().granted);
}

/// Everything a [`MediaListing`] promises. Items go in through its
/// [`CatalogWriter`]; `grant(media, user)` gives a user a grant the adapter's
/// own way.
pub async fn media_listing<C, G, Fut>(catalog: &C, grant: G)
where
    C: MediaListing + CatalogWriter + ?Sized,
    G: Fn(MediaId, UserId) -> Fut,
    Fut: Future<Output = ()>,
{
    let at = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let viewer = fresh_user();
    let other = fresh_user();
    let item = |owner: Option<&UserId>, status: MediaStatus, visibility: Visibility| {
        let id = fresh_media();
        Media {
            object_key: ObjectKey::try_from(format!("movies/{id}")).unwrap(),
            id,
            kind: MediaKind::Movie,
            owner: owner.cloned(),
            status,
            content_type: "application/vnd.apple.mpegurl".into(),
            size_bytes: 1_000,
            duration_seconds: Some(60.0),
            visibility,
            required_features: PlanFeatures::default(),
        }
    };
    let own = item(Some(&viewer), MediaStatus::Ready, Visibility::Private);
    let own_processing = item(Some(&viewer), MediaStatus::Processing, Visibility::Private);
    let own_deleted = item(Some(&viewer), MediaStatus::Deleted, Visibility::Private);
    let granted = item(Some(&other), MediaStatus::Ready, Visibility::Private);
    let not_granted = item(Some(&other), MediaStatus::Ready, Visibility::Private);
    let public = item(None, MediaStatus::Ready, Visibility::Public);
    let for_subscribers = item(None, MediaStatus::Ready, Visibility::Subscribers);
    for media in [&own, &own_processing, &own_deleted, &granted, &not_granted, &public, &for_subscribers] {
        assert!(catalog.apply(&CatalogChange::MediaUpserted(media.clone()), at).await.unwrap());
    }
    grant(granted.id.clone(), viewer.clone()).await;

    let mut expected: Vec<MediaCandidate> = [&own, &own_processing, &public, &for_subscribers]
        .into_iter()
        .map(|media| MediaCandidate { media: media.clone(), granted: false })
        .chain([MediaCandidate { media: granted.clone(), granted: true }])
        .collect();
    expected.sort_by(|a, b| a.media.id.cmp(&b.media.id));
    assert_eq!(
        catalog.candidates(&viewer, None, 100).await.unwrap(),
        expected,
        "owned, granted, public, for subscribers"
    );

    // Page by page, in id order, each page after the previous one's last id.
    let first = catalog.candidates(&viewer, None, 2).await.unwrap();
    assert_eq!(first, expected[..2]);
    let second = catalog.candidates(&viewer, Some(&first[1].media.id), 2).await.unwrap();
    assert_eq!(second, expected[2..4]);
    let last = catalog.candidates(&viewer, Some(&second[1].media.id), 2).await.unwrap();
    assert_eq!(last, expected[4..]);
    assert!(catalog.candidates(&viewer, Some(&expected[4].media.id), 2).await.unwrap().is_empty());
    assert!(catalog.candidates(&viewer, None, 0).await.unwrap().is_empty(), "a limit of 0 lists nothing");

    // The other user sees their own items (granted or not to others) and the shared ones.
    let theirs: Vec<MediaId> =
        catalog.candidates(&other, None, 100).await.unwrap().into_iter().map(|c| c.media.id).collect();
    let mut expected_theirs =
        vec![granted.id.clone(), not_granted.id.clone(), public.id.clone(), for_subscribers.id.clone()];
    expected_theirs.sort();
    assert_eq!(theirs, expected_theirs);

    // A deletion takes an item out.
    assert!(catalog.apply(&CatalogChange::MediaDeleted { media: public.id.clone() }, at).await.unwrap());
    let listed = catalog.candidates(&viewer, None, 100).await.unwrap();
    assert!(listed.iter().all(|c| c.media.id != public.id), "deleted items are not listed");
    assert_eq!(listed.len(), expected.len() - 1);
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
