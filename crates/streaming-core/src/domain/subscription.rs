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
