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

/// How much a check may rely on the subscription directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriptionLookup {
    /// A decision that needs the subscription waits for it; the directory
    /// being unavailable is [`AccessError::Unavailable`].
    Required,
    /// The caller holds proof of a full check made earlier (a manifest
    /// grant): a subscription the directory says is gone still refuses, but
    /// a directory that cannot answer (it is down, or it needs a caller
    /// token the request does not carry) leaves that proof standing.
    VouchedFor,
}

/// The media if `user` may play it as a `kind`, relying on the
/// subscription directory as `lookup` says.
pub(crate) async fn check_access(
    catalog: &dyn MediaCatalog,
    subscriptions: &dyn SubscriptionDirectory,
    media_id: &MediaId,
    user: &UserId,
    kind: MediaKind,
    now: OffsetDateTime,
    lookup: SubscriptionLookup,
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
        let subscription = subscriptions.current(user).instrument(debug_span!("subscriptions.current")).await;
        decision = match (subscription, lookup) {
            (Ok(subscription), _) => {
                decide(Some(&media), user, viewer, SubscriptionFact::Known(subscription.as_ref()), now)
            }
            (Err(_), SubscriptionLookup::VouchedFor) => {
                metrics::counter!(crate::telemetry::SUBSCRIPTION_VOUCHED).increment(1);
                Decision::Allowed
            }
            (Err(_), SubscriptionLookup::Required) => return Err(AccessError::Unavailable(Dependency::Subscriptions)),
        };
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
