//! The admin use cases on the memory catalog with a mocked audit trail and
//! URL cache: audit first, preconditions, one change at a time.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod support;

use streaming_core::adapters::{ManualClock, MemoryCatalog, MemorySessionStore};
use streaming_core::admin::{entity_tag, AdminError, AdminPorts, CatalogAdmin, Preconditions, Upserted};
use streaming_core::changes::{CatalogChanges, ChangePorts};
use streaming_core::domain::{
    Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, UserStatus, Viewer, Visibility,
};
use streaming_core::ports::{AuditError, CatalogError, MediaCatalog, MockAuditLog};
use streaming_core::{Dependency, MockStreamingService};
use time::macros::datetime;

const TRACK: &str = "01HXKZ3Y8Q4N7W2M5V6B9C0D1E";

fn track(size_bytes: u64) -> Media {
    Media {
        id: TRACK.parse().unwrap(),
        kind: MediaKind::Track,
        owner: Some("artist".parse().unwrap()),
        status: MediaStatus::Ready,
        object_key: ObjectKey::try_from("tracks/a.mp3").unwrap(),
        content_type: "audio/mpeg".into(),
        size_bytes,
        duration_seconds: Some(180.0),
        visibility: Visibility::Private,
        required_features: PlanFeatures::default(),
    }
}

/// The memory catalog, answering late: every read lets other tasks run
/// before its answer arrives (as a database round trip would), so racing
/// changes interleave.
struct Yielding(Arc<MemoryCatalog>);

#[async_trait::async_trait]
impl MediaCatalog for Yielding {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        let read = self.0.media(id).await;
        tokio::task::yield_now().await;
        read
    }

    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        let read = self.0.viewer(user, grant_on).await;
        tokio::task::yield_now().await;
        read
    }
}

struct World {
    catalog: Arc<MemoryCatalog>,
    recorded: Arc<AtomicUsize>,
    admin: Arc<CatalogAdmin>,
}

/// An admin whose audit trail takes records (counted) unless `audit_down`.
fn world(audit_down: bool) -> World {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 20:00 UTC)));
    let catalog = Arc::new(MemoryCatalog::new());
    let mut streaming = MockStreamingService::new();
    streaming.expect_invalidate().returning(|_, _| Ok(()));
    streaming.expect_invalidate_user().returning(|_| Ok(()));
    let playback = support::memory_playback(catalog.clone(), Arc::new(MemorySessionStore::new()), clock.clone());
    let changes = Arc::new(CatalogChanges::new(ChangePorts {
        writer: catalog.clone(),
        catalog: catalog.clone(),
        catalog_cache: None,
        subscription_cache: None,
        streaming: Arc::new(streaming),
        playback: Some(Arc::new(playback)),
        peers: None,
    }));
    let recorded = Arc::new(AtomicUsize::new(0));
    let mut audit = MockAuditLog::new();
    let count = recorded.clone();
    audit.expect_record().returning(move |_| {
        if audit_down {
            return Err(AuditError::Unavailable("disk full".into()));
        }
        count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let reads = Arc::new(Yielding(catalog.clone()));
    let admin = CatalogAdmin::new(AdminPorts { changes, catalog: reads, audit: Arc::new(audit), clock });
    World { catalog, recorded, admin: Arc::new(admin) }
}

fn none() -> Preconditions {
    Preconditions::default()
}

#[tokio::test]
async fn a_change_whose_audit_record_cannot_be_written_is_not_made() {
    let w = world(true);
    let refused = w.admin.put_media("ops", track(1), &none()).await;
    assert_eq!(refused, Err(AdminError::Unavailable(Dependency::Audit)));
    assert_eq!(w.catalog.media(&TRACK.parse().unwrap()).await.unwrap(), None, "nothing was written");
}

#[tokio::test]
async fn writing_the_same_item_again_records_and_changes_nothing() {
    let w = world(false);
    assert_eq!(w.admin.put_media("ops", track(1), &none()).await, Ok(Upserted::Created));
    assert_eq!(w.admin.put_media("ops", track(1), &none()).await, Ok(Upserted::Replaced));
    assert_eq!(w.recorded.load(Ordering::SeqCst), 1);
    assert_eq!(w.admin.put_media("ops", track(2), &none()).await, Ok(Upserted::Replaced));
    assert_eq!(w.recorded.load(Ordering::SeqCst), 2);
    let id: MediaId = TRACK.parse().unwrap();
    w.admin.delete_media("ops", &id, &none()).await.unwrap();
    w.admin.delete_media("ops", &id, &none()).await.unwrap();
    assert_eq!(w.recorded.load(Ordering::SeqCst), 3, "a second delete records nothing");
    assert_eq!(w.admin.media(&id).await.unwrap().status, MediaStatus::Deleted);
}

#[tokio::test]
async fn changes_go_ahead_only_when_their_preconditions_hold() {
    let w = world(false);
    let create_only = Preconditions { if_none_match: Some(vec!["*".into()]), ..none() };
    assert_eq!(w.admin.put_media("ops", track(1), &create_only).await, Ok(Upserted::Created));
    assert_eq!(w.admin.put_media("ops", track(2), &create_only).await, Err(AdminError::PreconditionFailed));
    let stale = Preconditions { if_match: Some(vec![entity_tag(&track(9))]), ..none() };
    assert_eq!(w.admin.put_media("ops", track(2), &stale).await, Err(AdminError::PreconditionFailed));
    let weak = Preconditions { if_match: Some(vec![format!("W/{}", entity_tag(&track(1)))]), ..none() };
    assert_eq!(w.admin.put_media("ops", track(2), &weak).await, Err(AdminError::PreconditionFailed), "strong");
    let current = Preconditions { if_match: Some(vec![entity_tag(&track(1))]), ..none() };
    assert_eq!(w.admin.put_media("ops", track(2), &current).await, Ok(Upserted::Replaced));
    assert_eq!(w.admin.media(&TRACK.parse().unwrap()).await.unwrap().size_bytes, 2);
}

/// One change at a time: of two creations racing with `If-None-Match: *`
/// (their reads interleaving), exactly one is made.
#[tokio::test]
async fn of_two_racing_creations_exactly_one_is_made() {
    let w = world(false);
    let create_only = Preconditions { if_none_match: Some(vec!["*".into()]), ..none() };
    let (a, b) =
        tokio::join!(w.admin.put_media("a", track(1), &create_only), w.admin.put_media("b", track(2), &create_only));
    let outcomes = [a, b];
    assert_eq!(outcomes.iter().filter(|o| **o == Ok(Upserted::Created)).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == Err(AdminError::PreconditionFailed)).count(), 1);
    assert_eq!(w.recorded.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn grants_go_to_live_items_and_active_users_only() {
    let w = world(false);
    let (id, fan): (MediaId, UserId) = (TRACK.parse().unwrap(), "fan".parse().unwrap());
    let nowhere: MediaId = "01HXKZ3Y8Q4N7W2M5V6B9C0D1F".parse().unwrap();
    assert_eq!(w.admin.set_grant("ops", &nowhere, &fan, true).await, Err(AdminError::MediaNotFound));
    w.admin.put_media("ops", track(1), &none()).await.unwrap();
    w.admin.set_grant("ops", &id, &fan, true).await.unwrap();
    w.admin.set_grant("ops", &id, &fan, true).await.unwrap();
    assert!(w.catalog.viewer(&fan, Some(&id)).await.unwrap().granted);
    assert_eq!(w.recorded.load(Ordering::SeqCst), 2, "the item and one grant");
    w.admin.set_user_status("ops", &fan, UserStatus::Suspended).await.unwrap();
    let other: UserId = "other".parse().unwrap();
    w.admin.set_user_status("ops", &other, UserStatus::Suspended).await.unwrap();
    assert_eq!(w.admin.set_grant("ops", &id, &other, true).await, Err(AdminError::UserSuspended));
    w.admin.set_grant("ops", &id, &fan, false).await.unwrap();
    w.admin.delete_media("ops", &id, &none()).await.unwrap();
    assert_eq!(w.admin.set_grant("ops", &id, &fan, true).await, Err(AdminError::MediaNotFound), "deleted");
}

#[test]
fn the_audit_state_keeps_a_fingerprint_of_the_object_key_only() {
    let item = track(1);
    let state = streaming_core::admin::media_audit_state(&item).to_string();
    assert!(!state.contains("tracks/a.mp3"), "{state}");
    assert!(state.contains("sha256:"), "{state}");
    let elsewhere = Media { object_key: ObjectKey::try_from("tracks/b.mp3").unwrap(), ..item.clone() };
    assert_ne!(streaming_core::admin::media_audit_state(&item), streaming_core::admin::media_audit_state(&elsewhere));
}

#[test]
fn entity_tags_are_quoted_and_change_with_the_item() {
    let tag = entity_tag(&track(1));
    assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34, "{tag}");
    assert_eq!(tag, entity_tag(&track(1)));
    assert_ne!(tag, entity_tag(&track(2)));
}
