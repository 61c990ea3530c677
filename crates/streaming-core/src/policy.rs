//! Who may play what: a pure function of the facts, so every rule is table-tested.

use time::OffsetDateTime;

use crate::domain::{Media, MediaStatus, Subscription, UserId, UserStatus, Viewer, Visibility};

/// What is known of the user's subscription when the policy runs. It is only
/// looked up when a rule needs it (subscriber-only media the user neither
/// owns nor was granted), so most requests never call the user service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionFact<'a> {
    /// Not looked up yet.
    NotLooked,
    /// Looked up: the current subscription, or `None`.
    Known(Option<&'a Subscription>),
}

/// Why access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No such media.
    NotFound,
    /// The media was deleted; to callers it no longer exists.
    Deleted,
    /// The media exists but is not streamable yet (or failed).
    NotReady(MediaStatus),
    /// The user's account is suspended.
    Suspended,
    /// Neither owner, grantee, nor is the media public or for subscribers.
    NotPermitted,
    /// Subscriber-only media and no active subscription.
    SubscriptionRequired,
    /// Active subscription, but its plan lacks a feature the media needs.
    PlanUpgradeRequired,
}

/// The policy's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Play it.
    Allowed,
    /// Look up the subscription and ask again.
    NeedsSubscription,
    /// Refused.
    Denied(Denial),
}

/// Decides whether `user` may play `media`, in the seed's order: exists
/// (and not deleted) → user not suspended → owner, grant or public, else a
/// subscription whose plan covers the media → `Ready`. The media's status
/// comes last, so only someone who may play it learns it.
pub fn decide(
    media: Option<&Media>,
    user: &UserId,
    viewer: Viewer,
    subscription: SubscriptionFact<'_>,
    now: OffsetDateTime,
) -> Decision {
    let Some(media) = media else {
        return Decision::Denied(Denial::NotFound);
    };
    if media.status == MediaStatus::Deleted {
        return Decision::Denied(Denial::Deleted);
    }
    if viewer.status == UserStatus::Suspended {
        return Decision::Denied(Denial::Suspended);
    }
    let permitted = if media.owner.as_ref() == Some(user) || viewer.granted || media.visibility == Visibility::Public {
        Decision::Allowed
    } else if media.visibility == Visibility::Private {
        Decision::Denied(Denial::NotPermitted)
    } else {
        match subscription {
            SubscriptionFact::NotLooked => Decision::NeedsSubscription,
            SubscriptionFact::Known(Some(sub)) if sub.is_active_at(now) => {
                if sub.plan.covers(media.required_features) {
                    Decision::Allowed
                } else {
                    Decision::Denied(Denial::PlanUpgradeRequired)
                }
            }
            SubscriptionFact::Known(_) => Decision::Denied(Denial::SubscriptionRequired),
        }
    };
    match (permitted, media.status) {
        (Decision::Allowed, MediaStatus::Ready) => Decision::Allowed,
        (Decision::Allowed, status) => Decision::Denied(Denial::NotReady(status)),
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MediaId, MediaKind, ObjectKey, Plan, PlanFeatures, SubscriptionStatus};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

    fn user(id: &str) -> UserId {
        UserId::try_from(id).unwrap()
    }

    fn media(status: MediaStatus, visibility: Visibility, features: PlanFeatures) -> Media {
        Media {
            id: MediaId::try_from("01HXKZ3Y8Q4N7W2M5V6B9C0D1E").unwrap(),
            kind: MediaKind::Track,
            owner: Some(user("owner")),
            status,
            object_key: ObjectKey::try_from("tracks/a.mp3").unwrap(),
            content_type: "audio/mpeg".into(),
            size_bytes: 1,
            duration_seconds: Some(1.0),
            visibility,
            required_features: features,
        }
    }

    fn sub(status: SubscriptionStatus, hd: bool, end: Option<OffsetDateTime>) -> Subscription {
        Subscription { status, end_date: end, plan: Plan { max_devices: Some(2), supports_hd: hd, supports_4k: false } }
    }

    /// name, media, user, viewer facts, subscription facts, expected decision
    type Case<'a> = (&'a str, Option<Media>, &'a str, Viewer, SubscriptionFact<'a>, Decision);

    #[test]
    fn the_rules_apply_in_order() {
        use Decision::*;
        use Denial::*;
        use MediaStatus::*;
        use Visibility::*;

        let none = PlanFeatures::default();
        let hd = PlanFeatures { hd: true, uhd_4k: false };
        let active = Viewer { status: UserStatus::Active, granted: false };
        let granted = Viewer { status: UserStatus::Active, granted: true };
        let suspended = Viewer { status: UserStatus::Suspended, granted: true };
        let basic = sub(SubscriptionStatus::Active, false, None);
        let premium = sub(SubscriptionStatus::Active, true, None);
        let lapsed = sub(SubscriptionStatus::Active, true, Some(datetime!(2026-05-01 0:00 UTC)));
        let cancelled = sub(SubscriptionStatus::Cancelled, true, None);
        let unknown = SubscriptionFact::NotLooked;

        #[rustfmt::skip]
        let table: Vec<Case<'_>> = vec![
            ("missing",               None,                                   "owner",    active,    unknown, Denied(NotFound)),
            ("deleted, even owner",   Some(media(MediaStatus::Deleted, Public, none)), "owner", active, unknown, Denied(Denial::Deleted)),
            ("processing",            Some(media(Processing, Public, none)),  "owner",    active,    unknown, Denied(NotReady(Processing))),
            ("failed, owner",         Some(media(Failed, Private, none)),     "owner",    active,    unknown, Denied(NotReady(Failed))),
            ("failed, stranger",      Some(media(Failed, Private, none)),     "stranger", active,    unknown, Denied(NotPermitted)),
            ("processing, suspended", Some(media(Processing, Private, none)), "owner",    suspended, unknown, Denied(Suspended)),
            ("processing subscribers: look up", Some(media(Processing, Subscribers, none)), "stranger", active, unknown, NeedsSubscription),
            ("processing subscribers: none",    Some(media(Processing, Subscribers, none)), "stranger", active, SubscriptionFact::Known(None), Denied(SubscriptionRequired)),
            ("processing subscribers: active",  Some(media(Processing, Subscribers, none)), "stranger", active, SubscriptionFact::Known(Some(&basic)), Denied(NotReady(Processing))),
            ("suspended owner",       Some(media(Ready, Private, none)),      "owner",    suspended, unknown, Denied(Suspended)),
            ("owner",                 Some(media(Ready, Private, none)),      "owner",    active,    unknown, Allowed),
            ("grantee",               Some(media(Ready, Private, none)),      "friend",   granted,   unknown, Allowed),
            ("public",                Some(media(Ready, Public, hd)),         "stranger", active,    unknown, Allowed),
            ("private stranger",      Some(media(Ready, Private, none)),      "stranger", active,    unknown, Denied(NotPermitted)),
            ("subscribers: look up",  Some(media(Ready, Subscribers, none)),  "stranger", active,    unknown, NeedsSubscription),
            ("subscribers: none",     Some(media(Ready, Subscribers, none)),  "stranger", active,    SubscriptionFact::Known(None), Denied(SubscriptionRequired)),
            ("subscribers: active",   Some(media(Ready, Subscribers, none)),  "stranger", active,    SubscriptionFact::Known(Some(&basic)), Allowed),
            ("subscribers: lapsed",   Some(media(Ready, Subscribers, none)),  "stranger", active,    SubscriptionFact::Known(Some(&lapsed)), Denied(SubscriptionRequired)),
            ("subscribers: cancelled",Some(media(Ready, Subscribers, none)),  "stranger", active,    SubscriptionFact::Known(Some(&cancelled)), Denied(SubscriptionRequired)),
            ("hd needs hd plan",      Some(media(Ready, Subscribers, hd)),    "stranger", active,    SubscriptionFact::Known(Some(&basic)), Denied(PlanUpgradeRequired)),
            ("hd plan plays hd",      Some(media(Ready, Subscribers, hd)),    "stranger", active,    SubscriptionFact::Known(Some(&premium)), Allowed),
            ("owner skips the plan",  Some(media(Ready, Subscribers, hd)),    "owner",    active,    unknown, Allowed),
        ];
        for (name, media, who, viewer, subscription, expected) in table {
            assert_eq!(decide(media.as_ref(), &user(who), viewer, subscription, NOW), expected, "{name}");
        }
    }
}
