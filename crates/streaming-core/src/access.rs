//! The access check both services run: catalog facts, the pure policy, and
//! the subscription directory only when the policy needs it.

use time::OffsetDateTime;
use tracing::{debug_span, Instrument};

use crate::domain::{Media, MediaId, MediaKind, UserId, Visibility};
use crate::policy::{decide, Decision, Denial, SubscriptionFact};
use crate::ports::{MediaCatalog, SubscriptionDirectory};
use crate::service::Dependency;

/// Why access was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// The policy refused (including "no such media of this kind").
    Denied(Denial),
    /// A dependency the decision needs is down.
    Unavailable(Dependency),
}

/// The media if `user` may play it as a `kind`.
pub(crate) async fn check_access(
    catalog: &dyn MediaCatalog,
    subscriptions: &dyn SubscriptionDirectory,
    media_id: &MediaId,
    user: &UserId,
    kind: MediaKind,
    now: OffsetDateTime,
) -> Result<Media, AccessError> {
    let media = existing(catalog, media_id, kind).await?;
    // A grant decides only for private media the user does not own.
    let grant_on = (media.visibility != Visibility::Public && media.owner.as_ref() != Some(user)).then_some(media_id);
    let viewer = catalog
        .viewer(user, grant_on)
        .instrument(debug_span!("catalog.viewer"))
        .await
        .map_err(|_| AccessError::Unavailable(Dependency::Catalog))?;
    let mut decision = decide(Some(&media), user, viewer, SubscriptionFact::NotLooked, now);
    if decision == Decision::NeedsSubscription {
        let subscription = subscriptions
            .current(user)
            .instrument(debug_span!("subscriptions.current"))
            .await
            .map_err(|_| AccessError::Unavailable(Dependency::Subscriptions))?;
        decision = decide(Some(&media), user, viewer, SubscriptionFact::Known(subscription.as_ref()), now);
    }
    match decision {
        Decision::Allowed => Ok(media),
        Decision::Denied(denial) => Err(AccessError::Denied(denial)),
        // `decide` asks for the subscription only while it has not been looked up.
        Decision::NeedsSubscription => Err(AccessError::Denied(Denial::SubscriptionRequired)),
    }
}

/// The media if it exists as a `kind` and is not deleted (no access rules).
pub(crate) async fn existing(
    catalog: &dyn MediaCatalog,
    media_id: &MediaId,
    kind: MediaKind,
) -> Result<Media, AccessError> {
    let media = catalog
        .media(media_id)
        .instrument(debug_span!("catalog.media"))
        .await
        .map_err(|_| AccessError::Unavailable(Dependency::Catalog))?;
    match media {
        Some(media) if media.kind == kind && media.status != crate::domain::MediaStatus::Deleted => Ok(media),
        Some(media) if media.kind == kind => Err(AccessError::Denied(Denial::Deleted)),
        _ => Err(AccessError::Denied(Denial::NotFound)),
    }
}
