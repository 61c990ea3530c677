//! `MediaBrowser`: what a user may play, decided by the access policy.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use streaming_core::adapters::{ManualClock, MemoryCatalog, MemorySubscriptions};
use streaming_core::domain::{
    Media, MediaId, MediaKind, MediaStatus, ObjectKey, Plan, PlanFeatures, Subscription, SubscriptionStatus, UserId,
    UserStatus, Visibility,
};
use streaming_core::policy::Denial;
use streaming_core::ports::{CatalogError, MockMediaListing, MockSubscriptionDirectory, SubscriptionDirectory};
use streaming_core::{BrowsePorts, Dependency, MediaBrowser, StreamError, MAX_PAGE};
use time::OffsetDateTime;

const NOW: i64 = 1_767_225_600;

fn user(name: &str) -> UserId {
    UserId::try_from(name).unwrap()
}

fn movie(n: u8, owner: Option<&UserId>, visibility: Visibility, hd: bool) -> Media {
    let id = MediaId::parse_uuid(&format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap();
    Media {
        object_key: ObjectKey::try_from(format!("movies/{id}")).unwrap(),
        id,
        kind: MediaKind::Movie,
        owner: owner.cloned(),
        status: MediaStatus::Ready,
        content_type: "application/vnd.apple.mpegurl".into(),
        size_bytes: 1,
        duration_seconds: Some(60.0),
        visibility,
        required_features: PlanFeatures { hd, uhd_4k: false },
    }
}

fn subscription(supports_hd: bool) -> Subscription {
    Subscription {
        status: SubscriptionStatus::Active,
        end_date: None,
        plan: Plan { max_devices: Some(1), supports_hd, supports_4k: false },
    }
}

fn browser(catalog: Arc<MemoryCatalog>, subscriptions: Arc<dyn SubscriptionDirectory>) -> MediaBrowser {
    MediaBrowser::new(BrowsePorts {
        listing: catalog.clone(),
        catalog,
        subscriptions,
        clock: Arc::new(ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap())),
    })
}

fn ids(items: &[Media]) -> Vec<u8> {
    items.iter().map(|m| m.id.as_str()[34..].parse().unwrap()).collect()
}

#[tokio::test]
async fn subscriber_items_follow_the_plan_and_the_directory_is_asked_once() {
    let viewer = user("viewer");
    let catalog = Arc::new(MemoryCatalog::new());
    catalog.upsert(movie(1, None, Visibility::Subscribers, false));
    catalog.upsert(movie(2, None, Visibility::Subscribers, true));
    catalog.upsert(movie(3, None, Visibility::Public, true));
    catalog.upsert(movie(4, Some(&user("other")), Visibility::Private, false));
    let mut directory = MockSubscriptionDirectory::new();
    directory.expect_current().times(1).returning(|_| Ok(Some(subscription(false))));
    let page = browser(catalog.clone(), Arc::new(directory)).playable(&viewer, None, 10).await.unwrap();
    assert_eq!(ids(&page.items), vec![1, 3], "the SD plan covers 1, not the HD movie 2; 3 is public; 4 is private");
    assert_eq!(page.next, None);

    let hd = Arc::new(MemorySubscriptions::new());
    hd.set(&viewer, Some(subscription(true)));
    let page = browser(catalog.clone(), hd).playable(&viewer, None, 10).await.unwrap();
    assert_eq!(ids(&page.items), vec![1, 2, 3]);

    let none = Arc::new(MemorySubscriptions::new());
    let page = browser(catalog, none).playable(&viewer, None, 10).await.unwrap();
    assert_eq!(ids(&page.items), vec![3], "no subscription: the public one");
}

#[tokio::test]
async fn owned_granted_and_processing_items_are_listed_without_asking_the_directory() {
    let viewer = user("viewer");
    let catalog = Arc::new(MemoryCatalog::new());
    let mut processing = movie(1, Some(&viewer), Visibility::Private, false);
    processing.status = MediaStatus::Processing;
    catalog.upsert(processing);
    let granted = movie(2, Some(&user("other")), Visibility::Private, false);
    catalog.set_grant(&granted.id, &viewer, true);
    catalog.upsert(granted);
    let mut deleted = movie(3, Some(&viewer), Visibility::Private, false);
    deleted.status = MediaStatus::Deleted;
    catalog.upsert(deleted);
    let mut directory = MockSubscriptionDirectory::new();
    directory.expect_current().never();
    let page = browser(catalog, Arc::new(directory)).playable(&viewer, None, 10).await.unwrap();
    assert_eq!(ids(&page.items), vec![1, 2]);
    assert_eq!(page.items[0].status, MediaStatus::Processing, "listed with its status");
}

#[tokio::test]
async fn a_full_page_points_at_the_next_and_the_limit_is_clamped() {
    let viewer = user("viewer");
    let catalog = Arc::new(MemoryCatalog::new());
    for n in 1..=5 {
        catalog.upsert(movie(n, None, Visibility::Public, false));
    }
    let browse = browser(catalog, Arc::new(MemorySubscriptions::new()));
    let first = browse.playable(&viewer, None, 2).await.unwrap();
    assert_eq!(ids(&first.items), vec![1, 2]);
    let next = first.next.unwrap();
    let second = browse.playable(&viewer, Some(&next), 2).await.unwrap();
    assert_eq!(ids(&second.items), vec![3, 4]);
    let last = browse.playable(&viewer, second.next.as_ref(), 2).await.unwrap();
    assert_eq!(ids(&last.items), vec![5]);
    assert_eq!(last.next, None);
    assert_eq!(ids(&browse.playable(&viewer, None, 0).await.unwrap().items), vec![1], "at least one");
    assert_eq!(browse.playable(&viewer, None, usize::MAX).await.unwrap().items.len(), 5.min(MAX_PAGE));
}

#[tokio::test]
async fn a_suspended_user_is_refused_and_outages_are_unavailable() {
    let viewer = user("viewer");
    let catalog = Arc::new(MemoryCatalog::new());
    catalog.upsert(movie(1, None, Visibility::Subscribers, false));
    catalog.set_user_status(&viewer, UserStatus::Suspended);
    let outcome = browser(catalog.clone(), Arc::new(MemorySubscriptions::new())).playable(&viewer, None, 10).await;
    assert_eq!(outcome, Err(StreamError::Forbidden(Denial::Suspended)));
    catalog.set_user_status(&viewer, UserStatus::Active);

    let mut down = MockSubscriptionDirectory::new();
    down.expect_current().returning(|_| Err(streaming_core::ports::SubscriptionError::Unavailable("down".into())));
    let outcome = browser(catalog.clone(), Arc::new(down)).playable(&viewer, None, 10).await;
    assert_eq!(outcome, Err(StreamError::Unavailable { dependency: Dependency::Subscriptions }));

    let mut listing = MockMediaListing::new();
    listing.expect_candidates().returning(|_, _, _| Err(CatalogError::Unavailable("down".into())));
    let browse = MediaBrowser::new(BrowsePorts {
        listing: Arc::new(listing),
        catalog,
        subscriptions: Arc::new(MemorySubscriptions::new()),
        clock: Arc::new(ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap())),
    });
    let outcome = browse.playable(&viewer, None, 10).await;
    assert_eq!(outcome, Err(StreamError::Unavailable { dependency: Dependency::Catalog }));
}
