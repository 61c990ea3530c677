//! The subscription hot copy: `subscription:{user}` in front of a
//! [`SubscriptionDirectory`], in either layout.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface};
use fred::types::Value;
use serde_json::{json, Value as Json};
use streaming_core::domain::{parse_instant, Plan, Subscription, SubscriptionStatus, UserId};
use streaming_core::ports::{SubscriptionDirectory, SubscriptionError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{millis, text, HotCopyLayout};
use crate::connection::RedisConnection;

/// A [`SubscriptionDirectory`] with answers cached in Redis, "no subscription"
/// included. An outage of the source is never cached.
#[derive(Debug)]
pub struct RedisSubscriptionCache<D> {
    redis: RedisConnection,
    inner: D,
    ttl: Duration,
    layout: HotCopyLayout,
    /// The plan of a cinema-written answer, which names none.
    default_plan: Plan,
}

impl<D: SubscriptionDirectory> RedisSubscriptionCache<D> {
    /// Answers of `inner` cached for `ttl` (the seed's default is 300 s).
    pub fn new(redis: RedisConnection, inner: D, ttl: Duration) -> Self {
        let default_plan = Plan { max_devices: None, supports_hd: false, supports_4k: false };
        Self { redis, inner, ttl, layout: HotCopyLayout::Tagged, default_plan }
    }

    /// Keys and values of the cinema service's layout; answers it wrote
    /// (`{is_active, plan_id, expires_at}`) get `default_plan`, as its user
    /// service's answers do.
    pub fn with_cinema_layout(self, default_plan: Plan) -> Self {
        Self { layout: HotCopyLayout::Cinema, default_plan, ..self }
    }

    fn key(&self, user: &UserId) -> String {
        self.layout.subscription_key(self.redis.prefix(), user)
    }

    /// Forgets the cached answer for `user` (on `subscription.changed`).
    ///
    /// # Errors
    /// [`SubscriptionError::Unavailable`] if Redis cannot be reached.
    pub async fn invalidate(&self, user: &UserId) -> Result<(), SubscriptionError> {
        let pool = self.redis.pool();
        let key = self.key(user);
        self.redis
            .guarded("DEL", || pool.del::<i64, _>(key))
            .await
            .map(drop)
            .map_err(|e| SubscriptionError::Unavailable(e.to_string()))
    }
}

/// The cached answer: `{"subscription": …}` with every field this service
/// keeps; in the cinema layout, the cinema's `{is_active, plan_id,
/// expires_at}` beside it.
fn encode_subscription(subscription: Option<&Subscription>, layout: HotCopyLayout) -> String {
    let mut encoded = ours(subscription);
    if let (HotCopyLayout::Cinema, Json::Object(fields)) = (layout, &mut encoded) {
        let now = OffsetDateTime::now_utc();
        let end = subscription.and_then(|s| s.end_date).and_then(|d| d.format(&Rfc3339).ok());
        fields.insert("is_active".into(), json!(subscription.is_some_and(|s| s.is_active_at(now))));
        // Not kept by this service; the cinema service only reads is_active.
        fields.insert("plan_id".into(), Json::Null);
        // Python's fromisoformat before 3.11 refuses the "Z" suffix.
        fields.insert("expires_at".into(), json!(end.map(|d| d.replace('Z', "+00:00"))));
    }
    encoded.to_string()
}

fn ours(subscription: Option<&Subscription>) -> Json {
    match subscription {
        None => json!({ "subscription": null }),
        Some(s) => json!({ "subscription": {
            "status": match s.status {
                SubscriptionStatus::Active => "active",
                SubscriptionStatus::Cancelled => "cancelled",
                SubscriptionStatus::Expired => "expired",
                SubscriptionStatus::Pending => "pending",
            },
            "end_date": s.end_date.and_then(|d| d.format(&Rfc3339).ok()),
            "plan": { "max_devices": s.plan.max_devices, "supports_hd": s.plan.supports_hd, "supports_4k": s.plan.supports_4k },
        }}),
    }
}

/// `Some(answer)` for a well-formed cached answer (of this service, or in
/// the cinema layout of the cinema service), `None` for anything else.
fn decode_subscription(text: &str, layout: HotCopyLayout, default_plan: Plan) -> Option<Option<Subscription>> {
    let json: Json = serde_json::from_str(text).ok()?;
    let Some(s) = json.get("subscription") else {
        return match layout {
            HotCopyLayout::Tagged => None,
            HotCopyLayout::Cinema => {
                let active = json.get("is_active")?.as_bool()?;
                let end_date = match &json["expires_at"] {
                    Json::String(d) => Some(parse_instant(d)?),
                    _ => None,
                };
                let status = if active { SubscriptionStatus::Active } else { SubscriptionStatus::Expired };
                Some(Some(Subscription { status, end_date, plan: default_plan }))
            }
        };
    };
    if s.is_null() {
        return Some(None);
    }
    let status = match s["status"].as_str()? {
        "active" => SubscriptionStatus::Active,
        "cancelled" => SubscriptionStatus::Cancelled,
        "expired" => SubscriptionStatus::Expired,
        "pending" => SubscriptionStatus::Pending,
        _ => return None,
    };
    let end_date = match &s["end_date"] {
        Json::String(d) => Some(OffsetDateTime::parse(d, &Rfc3339).ok()?),
        _ => None,
    };
    let plan = &s["plan"];
    Some(Some(Subscription {
        status,
        end_date,
        plan: Plan {
            max_devices: match &plan["max_devices"] {
                Json::Null => None,
                limit => Some(u32::try_from(limit.as_u64()?).ok()?),
            },
            supports_hd: plan["supports_hd"].as_bool()?,
            supports_4k: plan["supports_4k"].as_bool()?,
        },
    }))
}

#[async_trait]
impl<D: SubscriptionDirectory> streaming_core::ports::SubscriptionCache for RedisSubscriptionCache<D> {
    async fn forget(&self, user: &UserId) -> Result<(), SubscriptionError> {
        self.invalidate(user).await
    }
}

#[async_trait]
impl<D: SubscriptionDirectory> SubscriptionDirectory for RedisSubscriptionCache<D> {
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        let pool = self.redis.pool();
        let key = self.key(user);
        if let Ok(value) = self.redis.guarded("GET", || pool.get::<Value, _>(key.clone())).await {
            let decoded = text(value).and_then(|t| decode_subscription(&t, self.layout, self.default_plan));
            if let Some(answer) = decoded {
                return Ok(answer);
            }
        }
        let answer = self.inner.current(user).await?;
        let encoded = encode_subscription(answer.as_ref(), self.layout);
        let ttl = Expiration::PX(millis(self.ttl));
        let _ = self.redis.guarded("SET", || pool.set::<(), _, _>(key, encoded, Some(ttl), None, false)).await;
        Ok(answer)
    }
}
