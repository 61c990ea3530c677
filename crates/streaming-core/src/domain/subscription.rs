use time::OffsetDateTime;

use super::PlanFeatures;

/// The state of a user's subscription as the user service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Paid up and usable.
    Active,
    /// Cancelled by the user.
    Cancelled,
    /// Ran out.
    Expired,
    /// Not yet active (e.g. payment pending).
    Pending,
}

/// What a subscription plan allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// How many streams may be open at once; `None`: no limit.
    pub max_devices: Option<u32>,
    /// HD renditions allowed.
    pub supports_hd: bool,
    /// 4K renditions allowed.
    pub supports_4k: bool,
}

impl Plan {
    /// Whether this plan covers every feature in `required`.
    pub fn covers(&self, required: PlanFeatures) -> bool {
        (!required.hd || self.supports_hd) && (!required.uhd_4k || self.supports_4k)
    }
}

/// An instant as user services and the cinema service write one: RFC 3339,
/// or an ISO 8601 date-time without an offset (what Python's `isoformat()`
/// gives for a naive `datetime`), taken as UTC.
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).ok().map(|t| t.assume_utc()))
}

/// A user's current subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its status.
    pub status: SubscriptionStatus,
    /// When it ends, if it has an end.
    pub end_date: Option<OffsetDateTime>,
    /// The plan.
    pub plan: Plan,
}

impl Subscription {
    /// Active and not past its end date at `now`.
    pub fn is_active_at(&self, now: OffsetDateTime) -> bool {
        self.status == SubscriptionStatus::Active && self.end_date.is_none_or(|end| end > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn plan(hd: bool, uhd: bool) -> Plan {
        Plan { max_devices: Some(2), supports_hd: hd, supports_4k: uhd }
    }

    #[test]
    fn plans_cover_only_what_they_support() {
        let hd_only = PlanFeatures { hd: true, uhd_4k: false };
        let uhd = PlanFeatures { hd: true, uhd_4k: true };
        assert!(plan(false, false).covers(PlanFeatures::default()));
        assert!(!plan(false, false).covers(hd_only));
        assert!(plan(true, false).covers(hd_only));
        assert!(!plan(true, false).covers(uhd));
        assert!(plan(true, true).covers(uhd));
    }

    #[test]
    fn activity_respects_status_and_end_date() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let mut sub = Subscription { status: SubscriptionStatus::Active, end_date: None, plan: plan(true, true) };
        assert!(sub.is_active_at(now));
        sub.end_date = Some(datetime!(2025-12-31 0:00 UTC));
        assert!(!sub.is_active_at(now));
        sub.end_date = Some(datetime!(2026-02-01 0:00 UTC));
        assert!(sub.is_active_at(now));
        sub.status = SubscriptionStatus::Cancelled;
        assert!(!sub.is_active_at(now));
    }
}

#[cfg(test)]
mod instant_tests {
    use super::parse_instant;

    #[test]
    fn instants_with_and_without_an_offset_are_read_as_utc() {
        let utc = time::macros::datetime!(2030-01-01 12:30:00 UTC);
        assert_eq!(parse_instant("2030-01-01T12:30:00Z"), Some(utc));
        assert_eq!(parse_instant("2030-01-01T14:30:00+02:00"), Some(utc));
        assert_eq!(parse_instant("2030-01-01T12:30:00"), Some(utc), "naive: UTC");
        assert_eq!(parse_instant("2030-01-01T12:30:00.250000").map(|t| t.millisecond()), Some(250));
        assert_eq!(parse_instant("next tuesday"), None);
        assert_eq!(parse_instant(""), None);
    }
}
