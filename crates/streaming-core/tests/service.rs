//! Every branch of `StreamUrlService`, against mocked ports.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mockall::predicate::{always, eq};
use streaming_core::adapters::{ManualClock, MemoryCatalog, MemoryObjectStore, MemorySubscriptions, MemoryUrlCache};
use streaming_core::domain::{
    Media, MediaId, MediaKind, MediaStatus, ObjectKey, Plan, PlanFeatures, Subscription, SubscriptionStatus, UserId,
    UserStatus, Viewer, Visibility,
};
use streaming_core::policy::Denial;
use streaming_core::ports::{
    CacheError, CacheLookup, CatalogError, MockMediaCatalog, MockObjectStore, MockSubscriptionDirectory, MockUrlCache,
    ObjectStoreError, PresignedUrl, StreamCacheKey, SubscriptionError,
};
use streaming_core::{
    CacheKeyring, CachedStreamUrl, Dependency, StreamError, StreamUrlService, StreamingPorts, StreamingService,
    StreamingSettings,
};
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const TRACK: &str = "01HXKZ3Y8Q4N7W2M5V6B9C0D1E";
const PRESIGNED: &str = "https://store.test/tracks/a.mp3?sig=fresh";

fn owner() -> UserId {
    "01HXKZ3Y8Q4N7W2M5V6B9C0AAA".parse().unwrap()
}

fn track_id() -> MediaId {
    TRACK.parse().unwrap()
}

fn track(status: MediaStatus, visibility: Visibility) -> Media {
    Media {
        id: track_id(),
        kind: MediaKind::Track,
        owner: Some(owner()),
        status,
        object_key: ObjectKey::try_from("tracks/a.mp3").unwrap(),
        content_type: "audio/mpeg".into(),
        size_bytes: 15_728_640,
        duration_seconds: Some(180.0),
        visibility,
        required_features: PlanFeatures::default(),
    }
}

fn keyring() -> CacheKeyring {
    CacheKeyring::new(2, [(1, [1u8; 32]), (2, [2u8; 32])]).unwrap()
}

fn key() -> StreamCacheKey {
    StreamCacheKey::new("", &owner(), &track_id())
}

fn cached(url: &str, expires_at: OffsetDateTime, generation: u64) -> CachedStreamUrl {
    CachedStreamUrl {
        url: url.into(),
        expires_at,
        content_type: "audio/mpeg".into(),
        file_size_bytes: 15_728_640,
        supports_range_requests: true,
        generation,
        object: streaming_core::object_fingerprint("tracks/a.mp3"),
    }
}

fn catalog_with(media: Option<Media>, viewer: Viewer) -> MockMediaCatalog {
    let mut catalog = MockMediaCatalog::new();
    catalog.expect_media().with(eq(track_id())).returning(move |_| Ok(media.clone()));
    catalog.expect_viewer().returning(move |_, _| Ok(viewer));
    catalog
}

fn ready_catalog() -> MockMediaCatalog {
    catalog_with(Some(track(MediaStatus::Ready, Visibility::Private)), Viewer::default())
}

fn presigning_store() -> MockObjectStore {
    let mut store = MockObjectStore::new();
    store.expect_presign_get().times(1).returning(|_, signed_at, expires_in| {
        Ok(PresignedUrl { url: PRESIGNED.into(), expires_at: signed_at + expires_in })
    });
    store
}

fn no_subscriptions() -> MockSubscriptionDirectory {
    let mut directory = MockSubscriptionDirectory::new();
    directory.expect_current().never();
    directory
}

fn service(
    catalog: MockMediaCatalog,
    objects: MockObjectStore,
    cache: MockUrlCache,
    subscriptions: MockSubscriptionDirectory,
) -> StreamUrlService {
    StreamUrlService::new(
        StreamingPorts {
            catalog: Arc::new(catalog),
            objects: Arc::new(objects),
            cache: Arc::new(cache),
            subscriptions: Arc::new(subscriptions),
            clock: Arc::new(ManualClock::new(NOW)),
        },
        keyring(),
        StreamingSettings::default(),
    )
}

fn cache_returning(entry: Option<Vec<u8>>, generation: u64) -> MockUrlCache {
    let mut cache = MockUrlCache::new();
    cache.expect_get().with(eq(key())).returning(move |_| Ok(CacheLookup { entry: entry.clone(), generation }));
    cache
}

#[tokio::test]
async fn a_valid_cached_entry_is_served_without_signing() {
    let sealed = keyring().seal(&key(), &cached("https://cached", NOW + Duration::from_secs(90), 0)).unwrap();
    let mut store = MockObjectStore::new();
    store.expect_presign_get().never();
    let mut cache = cache_returning(Some(sealed), 0);
    cache.expect_set().never();
    let service = service(ready_catalog(), store, cache, no_subscriptions());

    let url = service.get_stream_url(&track_id(), &owner()).await.unwrap();
    assert_eq!(url.url, "https://cached");
    assert_eq!(url.expires_at, NOW + Duration::from_secs(90));
    assert_eq!(
        (url.content_type.as_str(), url.file_size_bytes, url.supports_range_requests),
        ("audio/mpeg", 15_728_640, true)
    );
    assert!(url.cache_hit);
    assert_eq!(service.stats().cache_hits.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_entry_signed_for_another_version_of_the_media_is_a_miss() {
    // The item changed since the entry was sealed — another object, content
    // type or size — whoever the viewer: presigned again for what it is now.
    let entries = [
        CachedStreamUrl {
            object: streaming_core::object_fingerprint("tracks/old.mp3"),
            ..cached("https://old", NOW + Duration::from_secs(90), 0)
        },
        CachedStreamUrl { content_type: "audio/ogg".into(), ..cached("https://old", NOW + Duration::from_secs(90), 0) },
        CachedStreamUrl { file_size_bytes: 1, ..cached("https://old", NOW + Duration::from_secs(90), 0) },
    ];
    for entry in entries {
        let sealed = keyring().seal(&key(), &entry).unwrap();
        let mut cache = cache_returning(Some(sealed), 0);
        cache.expect_set().times(1).returning(|_, _, _| Ok(()));
        let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());
        let url = service.get_stream_url(&track_id(), &owner()).await.unwrap();
        assert_eq!((url.url.as_str(), url.cache_hit), (PRESIGNED, false), "{entry:?}");
        assert_eq!(service.stats().cache_decrypt_failures.load(Ordering::Relaxed), 0, "a miss, not a failure");
    }
    // An entry of an earlier build does not name its object: served while it lasts.
    let legacy = CachedStreamUrl { object: 0, ..cached("https://cached", NOW + Duration::from_secs(90), 0) };
    let mut store = MockObjectStore::new();
    store.expect_presign_get().never();
    let cache = cache_returning(Some(keyring().seal(&key(), &legacy).unwrap()), 0);
    let service = service(ready_catalog(), store, cache, no_subscriptions());
    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, "https://cached");
}

#[tokio::test]
async fn an_entry_within_the_buffer_of_expiry_is_a_miss() {
    // Exactly 30 s left: the seed serves a hit only while more than 30 s remain.
    let sealed = keyring().seal(&key(), &cached("https://stale", NOW + Duration::from_secs(30), 0)).unwrap();
    let mut cache = cache_returning(Some(sealed), 0);
    cache.expect_set().times(1).returning(|_, _, _| Ok(()));
    let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());

    let url = service.get_stream_url(&track_id(), &owner()).await.unwrap();
    assert_eq!(url.url, PRESIGNED);
    assert!(!url.cache_hit);
}

#[tokio::test]
async fn an_entry_with_31_seconds_left_is_still_a_hit() {
    let sealed = keyring().seal(&key(), &cached("https://cached", NOW + Duration::from_secs(31), 0)).unwrap();
    let mut store = MockObjectStore::new();
    store.expect_presign_get().never();
    let service = service(ready_catalog(), store, cache_returning(Some(sealed), 0), no_subscriptions());
    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, "https://cached");
}

#[tokio::test]
async fn a_miss_signs_for_two_minutes_and_caches_for_ninety_seconds() {
    let mut store = MockObjectStore::new();
    store
        .expect_presign_get()
        .withf(|key, signed_at, expires_in| {
            key.as_str() == "tracks/a.mp3" && *signed_at == NOW && *expires_in == Duration::from_secs(120)
        })
        .times(1)
        .returning(|_, at, expiry| Ok(PresignedUrl { url: PRESIGNED.into(), expires_at: at + expiry }));
    let mut cache = cache_returning(None, 77);
    cache
        .expect_set()
        .withf(|k, blob, ttl| {
            let opened = keyring().open(k, blob.clone()).unwrap();
            *k == key()
                && *ttl == Duration::from_secs(90)
                && opened == cached(PRESIGNED, NOW + Duration::from_secs(120), 77)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let service = service(ready_catalog(), store, cache, no_subscriptions());

    let url = service.get_stream_url(&track_id(), &owner()).await.unwrap();
    assert_eq!(url.url, PRESIGNED);
    assert_eq!(url.expires_at, NOW + Duration::from_secs(120));
    let stats = service.stats();
    assert_eq!(stats.cache_misses.load(Ordering::Relaxed), 1);
    assert_eq!(stats.presigns.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_cache_read_error_is_a_miss_and_the_url_is_still_served() {
    let mut cache = MockUrlCache::new();
    cache.expect_get().returning(|_| Err(CacheError::Unavailable("down".into())));
    cache.expect_set().never(); // no second timeout against a cache that just failed
    let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());

    let url = service.get_stream_url(&track_id(), &owner()).await.unwrap();
    assert_eq!(url.url, PRESIGNED);
    assert_eq!(service.stats().cache_errors.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_cache_write_error_still_serves_the_url() {
    let mut cache = cache_returning(None, 0);
    cache.expect_set().times(1).returning(|_, _, _| Err(CacheError::Unavailable("full".into())));
    let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());

    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, PRESIGNED);
    assert_eq!(service.stats().cache_errors.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_catalog_outage_is_unavailable() {
    let mut catalog = MockMediaCatalog::new();
    catalog.expect_media().returning(|_| Err(CatalogError::Unavailable("timeout".into())));
    let mut cache = MockUrlCache::new();
    cache.expect_get().never();
    let service = service(catalog, MockObjectStore::new(), cache, no_subscriptions());

    assert_eq!(
        service.get_stream_url(&track_id(), &owner()).await,
        Err(StreamError::Unavailable { dependency: Dependency::Catalog })
    );
}

#[tokio::test]
async fn a_catalog_outage_on_the_viewer_lookup_is_unavailable() {
    let mut catalog = MockMediaCatalog::new();
    catalog.expect_media().returning(|_| Ok(Some(track(MediaStatus::Ready, Visibility::Private))));
    catalog.expect_viewer().returning(|_, _| Err(CatalogError::Unavailable("timeout".into())));
    let service = service(catalog, MockObjectStore::new(), MockUrlCache::new(), no_subscriptions());
    assert_eq!(
        service.get_stream_url(&track_id(), &owner()).await,
        Err(StreamError::Unavailable { dependency: Dependency::Catalog })
    );
}

#[tokio::test]
async fn a_storage_outage_is_unavailable() {
    let mut store = MockObjectStore::new();
    store.expect_presign_get().returning(|_, _, _| Err(ObjectStoreError::Unavailable("breaker open".into())));
    let mut cache = cache_returning(None, 0);
    cache.expect_set().never();
    let service = service(ready_catalog(), store, cache, no_subscriptions());

    assert_eq!(
        service.get_stream_url(&track_id(), &owner()).await,
        Err(StreamError::Unavailable { dependency: Dependency::ObjectStore })
    );
}

#[tokio::test]
async fn refusals_come_before_the_cache() {
    let stranger: UserId = "stranger".parse().unwrap();
    let suspended = Viewer { status: UserStatus::Suspended, granted: false };
    let cases: Vec<(&str, Option<Media>, Viewer, UserId, StreamError)> = vec![
        ("not found", None, Viewer::default(), owner(), StreamError::NotFound),
        (
            "deleted",
            Some(track(MediaStatus::Deleted, Visibility::Public)),
            Viewer::default(),
            owner(),
            StreamError::NotFound,
        ),
        (
            "processing",
            Some(track(MediaStatus::Processing, Visibility::Private)),
            Viewer::default(),
            owner(),
            StreamError::NotReady { status: MediaStatus::Processing },
        ),
        (
            "failed",
            Some(track(MediaStatus::Failed, Visibility::Private)),
            Viewer::default(),
            owner(),
            StreamError::NotReady { status: MediaStatus::Failed },
        ),
        (
            "not the owner",
            Some(track(MediaStatus::Ready, Visibility::Private)),
            Viewer::default(),
            stranger.clone(),
            StreamError::Forbidden(Denial::NotPermitted),
        ),
        (
            "suspended",
            Some(track(MediaStatus::Ready, Visibility::Private)),
            suspended,
            owner(),
            StreamError::Forbidden(Denial::Suspended),
        ),
    ];
    for (name, media, viewer, user, expected) in cases {
        let mut cache = MockUrlCache::new();
        cache.expect_get().never();
        let mut store = MockObjectStore::new();
        store.expect_presign_get().never();
        let service = service(catalog_with(media, viewer), store, cache, no_subscriptions());
        assert_eq!(service.get_stream_url(&track_id(), &user).await, Err(expected), "{name}");
    }
}

#[tokio::test]
async fn a_movie_is_not_a_track() {
    let mut movie = track(MediaStatus::Ready, Visibility::Public);
    movie.kind = MediaKind::Movie;
    let service = service(
        catalog_with(Some(movie), Viewer::default()),
        MockObjectStore::new(),
        MockUrlCache::new(),
        no_subscriptions(),
    );
    assert_eq!(service.get_stream_url(&track_id(), &owner()).await, Err(StreamError::NotFound));
}

#[tokio::test]
async fn grants_and_public_media_let_others_in() {
    let friend: UserId = "friend".parse().unwrap();
    for (visibility, viewer) in [
        (Visibility::Private, Viewer { status: UserStatus::Active, granted: true }),
        (Visibility::Public, Viewer::default()),
    ] {
        let friend_key = StreamCacheKey::new("", &friend, &track_id());
        let mut cache = MockUrlCache::new();
        cache.expect_get().with(eq(friend_key)).returning(|_| Ok(CacheLookup::default()));
        cache.expect_set().returning(|_, _, _| Ok(()));
        let service = service(
            catalog_with(Some(track(MediaStatus::Ready, visibility)), viewer),
            presigning_store(),
            cache,
            no_subscriptions(),
        );
        assert!(service.get_stream_url(&track_id(), &friend).await.is_ok(), "{visibility:?}");
    }
}

#[tokio::test]
async fn subscriber_media_asks_the_directory_and_an_outage_is_not_a_refusal() {
    let fan: UserId = "fan".parse().unwrap();
    let catalog = || catalog_with(Some(track(MediaStatus::Ready, Visibility::Subscribers)), Viewer::default());

    let mut down = MockSubscriptionDirectory::new();
    down.expect_current().with(eq(fan.clone())).returning(|_| Err(SubscriptionError::Unavailable("503".into())));
    let service1 = service(catalog(), MockObjectStore::new(), MockUrlCache::new(), down);
    assert_eq!(
        service1.get_stream_url(&track_id(), &fan).await,
        Err(StreamError::Unavailable { dependency: Dependency::Subscriptions })
    );

    let mut none = MockSubscriptionDirectory::new();
    none.expect_current().returning(|_| Ok(None));
    let service2 = service(catalog(), MockObjectStore::new(), MockUrlCache::new(), none);
    assert_eq!(
        service2.get_stream_url(&track_id(), &fan).await,
        Err(StreamError::Forbidden(Denial::SubscriptionRequired))
    );

    let mut active = MockSubscriptionDirectory::new();
    active.expect_current().returning(|_| {
        Ok(Some(Subscription {
            status: SubscriptionStatus::Active,
            end_date: None,
            plan: Plan { max_devices: Some(1), supports_hd: false, supports_4k: false },
        }))
    });
    let mut cache = MockUrlCache::new();
    cache.expect_get().returning(|_| Ok(CacheLookup::default()));
    cache.expect_set().returning(|_, _, _| Ok(()));
    let service3 = service(catalog(), presigning_store(), cache, active);
    assert!(service3.get_stream_url(&track_id(), &fan).await.is_ok());
}

#[tokio::test]
async fn a_tampered_entry_is_a_counted_miss() {
    let mut sealed = keyring().seal(&key(), &cached("https://cached", NOW + Duration::from_secs(90), 0)).unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x80;
    let mut cache = cache_returning(Some(sealed), 0);
    cache.expect_set().times(1).returning(|_, _, _| Ok(()));
    let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());

    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, PRESIGNED);
    assert_eq!(service.stats().cache_decrypt_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_entry_sealed_with_the_previous_key_still_hits() {
    let previous = CacheKeyring::new(1, [(1, [1u8; 32])]).unwrap();
    let sealed = previous.seal(&key(), &cached("https://old-key", NOW + Duration::from_secs(90), 0)).unwrap();
    let mut store = MockObjectStore::new();
    store.expect_presign_get().never();
    let service = service(ready_catalog(), store, cache_returning(Some(sealed), 0), no_subscriptions());
    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, "https://old-key");
}

#[tokio::test]
async fn an_entry_sealed_with_an_unknown_key_version_is_a_miss() {
    let retired = CacheKeyring::new(9, [(9, [9u8; 32])]).unwrap();
    let sealed = retired.seal(&key(), &cached("https://retired", NOW + Duration::from_secs(90), 0)).unwrap();
    let mut cache = cache_returning(Some(sealed), 0);
    cache.expect_set().returning(|_, _, _| Ok(()));
    let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());
    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, PRESIGNED);
    assert_eq!(service.stats().cache_decrypt_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_entry_of_an_older_generation_is_a_miss() {
    let sealed = keyring().seal(&key(), &cached("https://before-logout", NOW + Duration::from_secs(90), 3)).unwrap();
    let mut cache = cache_returning(Some(sealed), 4);
    cache.expect_set().returning(|_, _, _| Ok(()));
    let service = service(ready_catalog(), presigning_store(), cache, no_subscriptions());
    assert_eq!(service.get_stream_url(&track_id(), &owner()).await.unwrap().url, PRESIGNED);
}

#[tokio::test]
async fn invalidate_deletes_exactly_that_entry() {
    let mut cache = MockUrlCache::new();
    cache.expect_delete().with(eq(key())).times(1).returning(|_| Ok(()));
    let service = service(MockMediaCatalog::new(), MockObjectStore::new(), cache, no_subscriptions());
    service.invalidate(&track_id(), &owner()).await.unwrap();
}

#[tokio::test]
async fn invalidate_user_sets_a_fresh_nonzero_generation_that_outlives_entries() {
    let mut cache = MockUrlCache::new();
    cache
        .expect_set_generation()
        .with(eq(owner()), always(), eq(Duration::from_secs(120)))
        .withf(|_, generation, _| *generation != 0)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let service = service(MockMediaCatalog::new(), MockObjectStore::new(), cache, no_subscriptions());
    service.invalidate_user(&owner()).await.unwrap();
}

#[tokio::test]
async fn invalidation_failures_are_reported() {
    let mut cache = MockUrlCache::new();
    cache.expect_delete().returning(|_| Err(CacheError::Unavailable("down".into())));
    cache.expect_set_generation().returning(|_, _, _| Err(CacheError::Unavailable("down".into())));
    let service = service(MockMediaCatalog::new(), MockObjectStore::new(), cache, no_subscriptions());
    let down = Err(StreamError::Unavailable { dependency: Dependency::Cache });
    assert_eq!(service.invalidate(&track_id(), &owner()).await, down);
    assert_eq!(service.invalidate_user(&owner()).await, down);
}

/// The whole flow over the memory adapters: cache hit on the second call,
/// per-entry invalidation, and per-user invalidation that leaves others alone.
#[tokio::test]
async fn invalidation_end_to_end_on_memory_adapters() {
    let clock = Arc::new(ManualClock::new(NOW));
    let catalog = Arc::new(MemoryCatalog::new());
    let mut public = track(MediaStatus::Ready, Visibility::Public);
    catalog.upsert(public.clone());
    public.id = "01HXKZ3Y8Q4N7W2M5V6B9C0D2F".parse().unwrap();
    catalog.upsert(public.clone());
    let cache = Arc::new(MemoryUrlCache::new(clock.clone()));
    let service = StreamUrlService::new(
        StreamingPorts {
            catalog,
            objects: Arc::new(MemoryObjectStore::new()),
            cache: cache.clone(),
            subscriptions: Arc::new(MemorySubscriptions::new()),
            clock: clock.clone(),
        },
        keyring(),
        StreamingSettings::default(),
    );
    let (alice, bob): (UserId, UserId) = ("alice".parse().unwrap(), "bob".parse().unwrap());
    let (t1, t2) = (track_id(), public.id.clone());

    for user in [&alice, &bob] {
        for track in [&t1, &t2] {
            assert!(!service.get_stream_url(track, user).await.unwrap().cache_hit);
            assert!(service.get_stream_url(track, user).await.unwrap().cache_hit);
        }
    }
    service.invalidate(&t1, &alice).await.unwrap();
    assert!(!service.get_stream_url(&t1, &alice).await.unwrap().cache_hit, "invalidated entry");
    assert!(service.get_stream_url(&t2, &alice).await.unwrap().cache_hit, "sibling entry untouched");

    service.invalidate_user(&alice).await.unwrap();
    assert!(!service.get_stream_url(&t1, &alice).await.unwrap().cache_hit);
    assert!(!service.get_stream_url(&t2, &alice).await.unwrap().cache_hit);
    assert!(service.get_stream_url(&t1, &bob).await.unwrap().cache_hit, "other users untouched");
    assert!(service.get_stream_url(&t2, &bob).await.unwrap().cache_hit, "other users untouched");
    assert!(service.get_stream_url(&t1, &alice).await.unwrap().cache_hit, "new entries hit again");

    // 91 s later the 90 s cache entry is gone and the URL is signed anew.
    clock.advance(Duration::from_secs(91));
    assert!(!service.get_stream_url(&t1, &bob).await.unwrap().cache_hit);
}
