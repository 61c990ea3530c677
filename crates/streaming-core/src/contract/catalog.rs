//! The suites of the catalog: its writer and its listing.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use super::{fresh_media, fresh_user};
use crate::domain::{
    CatalogChange, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, UserStatus, Viewer,
    Visibility,
};
use crate::ports::{CatalogWriter, MediaCandidate, MediaCatalog, MediaListing};

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
