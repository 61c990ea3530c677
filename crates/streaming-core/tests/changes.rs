//! The catalog-change rules, on the memory adapters with mocked caches:
//! which caches each change clears, and what a failure names.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

mod support;

use mockall::predicate::eq;
use streaming_core::adapters::{ManualClock, MemoryCatalog, MemorySessionStore};
use streaming_core::changes::{CatalogChanges, ChangePorts};
use streaming_core::domain::{
    CatalogChange, CatalogEvent, ManifestKind, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures,
    SessionId, StreamSession, UserId, UserStatus, Visibility,
};
use streaming_core::ports::{
    CatalogEventHandler, MediaCatalog, MockCatalogCache, MockSubscriptionCache, SessionStore, SubscriptionError,
};
use streaming_core::{Dependency, MockStreamingService, StreamError};
use time::macros::datetime;
use time::OffsetDateTime;

const TRACK: &str = "01HXKZ3Y8Q4N7W2M5V6B9C0D1E";
const AT: OffsetDateTime = datetime!(2026-03-01 20:00 UTC);

fn user(id: &str) -> UserId {
    id.parse().unwrap()
}

fn track() -> Media {
    Media {
        id: TRACK.parse().unwrap(),
        kind: MediaKind::Track,
        owner: Some(user("artist")),
        status: MediaStatus::Ready,
        object_key: ObjectKey::try_from("tracks/a.mp3").unwrap(),
        content_type: "audio/mpeg".into(),
        size_bytes: 42,
        duration_seconds: Some(180.0),
        visibility: Visibility::Private,
        required_features: PlanFeatures::default(),
    }
}

struct World {
    catalog: Arc<MemoryCatalog>,
    sessions: Arc<MemorySessionStore>,
    changes: CatalogChanges,
}

/// A world whose URL cache, catalog cache and subscription cache are the
/// given mocks (each expecting exactly what a test says).
fn world(
    streaming: MockStreamingService,
    catalog_cache: MockCatalogCache,
    subscriptions: MockSubscriptionCache,
) -> World {
    let catalog = Arc::new(MemoryCatalog::new());
    catalog.upsert(track());
    let sessions = Arc::new(MemorySessionStore::new());
    let playback = support::memory_playback(catalog.clone(), sessions.clone(), Arc::new(ManualClock::new(AT)));
    let changes = CatalogChanges::new(ChangePorts {
        writer: catalog.clone(),
        catalog: catalog.clone(),
        catalog_cache: Some(Arc::new(catalog_cache)),
        subscription_cache: Some(Arc::new(subscriptions)),
        streaming: Arc::new(streaming),
        playback: Some(Arc::new(playback)),
        peers: None,
    });
    World { catalog, sessions, changes }
}

fn nothing_else() -> (MockStreamingService, MockCatalogCache, MockSubscriptionCache) {
    (MockStreamingService::new(), MockCatalogCache::new(), MockSubscriptionCache::new())
}

#[tokio::test]
async fn a_deleted_media_item_clears_its_catalog_answers_and_its_owners_url() {
    let (mut streaming, mut catalog_cache, subscriptions) = nothing_else();
    let media: MediaId = TRACK.parse().unwrap();
    catalog_cache.expect_forget_media().with(eq(media.clone())).times(1).return_const(());
    streaming.expect_invalidate().with(eq(media.clone()), eq(user("artist"))).times(1).returning(|_, _| Ok(()));
    let w = world(streaming, catalog_cache, subscriptions);
    let applied = w.changes.apply(&CatalogChange::MediaDeleted { media: media.clone() }, AT).await.unwrap();
    assert!(applied);
    assert_eq!(w.catalog.media(&media).await.unwrap().unwrap().status, MediaStatus::Deleted);
    assert_eq!(w.changes.stats().deletion.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_older_change_is_not_applied_but_the_caches_are_cleared_anyway() {
    let (mut streaming, mut catalog_cache, subscriptions) = nothing_else();
    catalog_cache.expect_forget_media().times(2).return_const(());
    streaming.expect_invalidate().times(2).returning(|_, _| Ok(()));
    let w = world(streaming, catalog_cache, subscriptions);
    let media: MediaId = TRACK.parse().unwrap();
    let newer = CatalogChange::MediaStatusChanged { media: media.clone(), status: MediaStatus::Failed };
    assert!(w.changes.apply(&newer, AT).await.unwrap());
    let older = CatalogChange::MediaStatusChanged { media: media.clone(), status: MediaStatus::Ready };
    assert!(!w.changes.apply(&older, AT - time::Duration::minutes(1)).await.unwrap(), "a newer change wins");
    assert_eq!(w.catalog.media(&media).await.unwrap().unwrap().status, MediaStatus::Failed);
}

#[tokio::test]
async fn a_suspension_clears_the_users_catalog_answers_and_every_url() {
    let (mut streaming, mut catalog_cache, subscriptions) = nothing_else();
    catalog_cache.expect_forget_user().with(eq(user("viewer"))).times(1).return_const(());
    streaming.expect_invalidate_user().with(eq(user("viewer"))).times(1).returning(|_| Ok(()));
    let w = world(streaming, catalog_cache, subscriptions);
    let change = CatalogChange::UserStatusChanged { user: user("viewer"), status: UserStatus::Suspended };
    assert!(w.changes.apply(&change, AT).await.unwrap());
    assert_eq!(w.changes.stats().status_change.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_logout_everywhere_ends_the_users_sessions_and_drops_their_urls() {
    let (mut streaming, catalog_cache, subscriptions) = nothing_else();
    streaming.expect_invalidate_user().with(eq(user("viewer"))).times(1).returning(|_| Ok(()));
    let w = world(streaming, catalog_cache, subscriptions);
    let session = StreamSession {
        id: SessionId::random(),
        user: user("viewer"),
        media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
        manifest: ManifestKind::Hls,
        started_at: AT,
        ended_at: None,
        duration_seconds: None,
        user_agent: None,
        client_ip: None,
        last_heartbeat_at: AT,
    };
    w.sessions.open(session.clone()).await.unwrap();
    let event = CatalogEvent {
        event_id: uuid::Uuid::nil(),
        occurred_at: AT,
        change: CatalogChange::UserLoggedOutEverywhere { user: user("viewer") },
    };
    w.changes.handle(&event).await.unwrap();
    let stored = w.sessions.get(&session.id).await.unwrap().unwrap();
    assert!(stored.ended_at.is_some(), "the session is closed, and its manifest grant with it");
    assert_eq!(w.changes.stats().logout.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_subscription_change_clears_the_cached_subscription_and_every_url() {
    let (mut streaming, catalog_cache, mut subscriptions) = nothing_else();
    subscriptions.expect_forget().with(eq(user("viewer"))).times(1).returning(|_| Ok(()));
    streaming.expect_invalidate_user().with(eq(user("viewer"))).times(1).returning(|_| Ok(()));
    let w = world(streaming, catalog_cache, subscriptions);
    w.changes.apply(&CatalogChange::SubscriptionChanged { user: user("viewer") }, AT).await.unwrap();
    assert_eq!(w.changes.stats().subscription.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_grant_clears_the_users_catalog_answers_and_that_one_url() {
    let (mut streaming, mut catalog_cache, subscriptions) = nothing_else();
    let media: MediaId = TRACK.parse().unwrap();
    catalog_cache.expect_forget_user().with(eq(user("friend"))).times(1).return_const(());
    streaming.expect_invalidate().with(eq(media.clone()), eq(user("friend"))).times(1).returning(|_, _| Ok(()));
    let w = world(streaming, catalog_cache, subscriptions);
    let change = CatalogChange::GrantChanged { media, user: user("friend"), granted: true };
    w.changes.apply(&change, AT).await.unwrap();
    assert_eq!(w.changes.stats().grant.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_failure_names_the_dependency_and_nothing_is_counted() {
    let (mut streaming, catalog_cache, mut subscriptions) = nothing_else();
    subscriptions.expect_forget().returning(|_| Err(SubscriptionError::Unavailable("redis down".into())));
    streaming.expect_invalidate_user().returning(|_| Err(StreamError::Unavailable { dependency: Dependency::Cache }));
    let w = world(streaming, catalog_cache, subscriptions);
    let error = w.changes.apply(&CatalogChange::SubscriptionChanged { user: user("viewer") }, AT).await.unwrap_err();
    assert_eq!(error.dependency, Dependency::Subscriptions);
    let error = w.changes.forget_user(&user("viewer"), streaming_core::telemetry::InvalidationReason::Operator).await;
    assert_eq!(error.unwrap_err().dependency, Dependency::Cache);
    assert_eq!(w.changes.stats().subscription.load(Ordering::Relaxed), 0);
    assert_eq!(w.changes.stats().operator.load(Ordering::Relaxed), 0);
}
