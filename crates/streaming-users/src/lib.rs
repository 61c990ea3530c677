//! The user service as a [`SubscriptionDirectory`]: `GET
//! {base_url}{path}` (default `/api/v1/subscriptions/current`), answered for
//! the caller.
//!
//! * **Who asks**: with [`Credentials::Caller`] the request carries the
//!   caller's own bearer token, which the HTTP layer puts in scope for the
//!   request with [`with_caller_token`]; with [`Credentials::Service`] it
//!   carries a service token and names the user in `X-User-Id`.
//! * **Bounds**: every attempt has a timeout (5 s by default); connection
//!   failures, timeouts and 5xx are retried with jittered exponential backoff
//!   (2 retries by default); a circuit breaker (5 consecutive failures, a
//!   trial after 30 s) fails fast while the service is down.
//! * **Answers**: `200` with either `{"is_active": bool, …}` or `{"status":
//!   "active"|"cancelled"|"expired"|"pending", "end_date"?, "plan"?:
//!   {"max_devices", "supports_hd", "supports_4k"}}`; `404` means no
//!   subscription. Anything else — another status, a timeout, a body that is
//!   neither shape — is [`SubscriptionError::Unavailable`], never "no
//!   subscription".
//!
//! Caching is not here: the service puts this directory behind the Redis or
//! in-process cache, which `subscription.changed` events invalidate.

mod settings;
#[cfg(feature = "test-support")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use streaming_core::circuit_breaker::CircuitBreaker;
use streaming_core::domain::{parse_instant, Plan, Subscription, SubscriptionStatus, UserId};
use streaming_core::ports::{SubscriptionDirectory, SubscriptionError};
use tracing::warn;

pub use settings::{UserCredentials, UserServiceSettings};

tokio::task_local! {
    static CALLER_TOKEN: SecretString;
}

/// Runs `future` with `token` as the caller's bearer token, for directories
/// configured with [`Credentials::Caller`].
pub async fn with_caller_token<F: std::future::Future>(token: SecretString, future: F) -> F::Output {
    CALLER_TOKEN.scope(token, future).await
}

/// How requests to the user service authenticate.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Forward the caller's own token (in scope through [`with_caller_token`]).
    Caller,
    /// A service token; the user is named in `X-User-Id`.
    Service(SecretString),
}

/// Where the user service is and how to call it.
#[derive(Debug, Clone)]
pub struct UserServiceConfig {
    /// `https://users.internal` (no trailing slash needed).
    pub base_url: String,
    /// The endpoint's path (default `/api/v1/subscriptions/current`).
    pub path: String,
    /// How requests authenticate.
    pub credentials: Credentials,
    /// Bound of each attempt (default 5 s).
    pub timeout: Duration,
    /// Retries after a failed attempt (default 2).
    pub retries: u32,
    /// First retry delay, doubled each time and jittered ±50 % (default 100 ms).
    pub backoff: Duration,
    /// The plan assumed when the service answers the `{"is_active": …}`
    /// shape, which has none (default: 1 device, no HD, no 4K).
    pub default_plan: Plan,
}

impl UserServiceConfig {
    /// A config for `base_url` with the defaults.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.into(),
            path: "/api/v1/subscriptions/current".into(),
            credentials,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(100),
            default_plan: Plan { max_devices: Some(1), supports_hd: false, supports_4k: false },
        }
    }
}

/// Why building the client failed.
#[derive(Debug, thiserror::Error)]
#[error("user service client: {0}")]
pub struct ConfigError(String);

/// [`SubscriptionDirectory`] over HTTP.
#[derive(Debug)]
pub struct UserServiceDirectory {
    client: reqwest::Client,
    url: String,
    config: UserServiceConfig,
    breaker: CircuitBreaker,
}

/// What one attempt ended with.
enum Attempt {
    Answer(Option<Subscription>),
    /// Worth another attempt (connection, timeout, 5xx).
    Transient(String),
    /// Not worth another attempt (4xx other than 404, a garbage body).
    Permanent(String),
}

impl UserServiceDirectory {
    /// A directory for `config`.
    ///
    /// # Errors
    /// [`ConfigError`] if the URL is not http(s) or the client cannot be built.
    pub fn new(config: UserServiceConfig) -> Result<Self, ConfigError> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError("base_url must start with http:// or https://".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| ConfigError(e.to_string()))?;
        let url = format!("{base}{}", config.path);
        Ok(Self { client, url, config, breaker: CircuitBreaker::standard().named("user_service") })
    }

    /// With a breaker of its own (tests, tuning).
    pub fn with_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = breaker;
        self
    }

    /// The breaker's state (metrics, readiness).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    async fn attempt(&self, user: &UserId) -> Attempt {
        let request = self.client.get(&self.url).header(reqwest::header::ACCEPT, "application/json");
        let request = match &self.config.credentials {
            Credentials::Caller => match CALLER_TOKEN.try_with(|t| t.expose_secret().to_owned()) {
                Ok(token) => request.bearer_auth(token),
                Err(_) => return Attempt::Permanent("no caller token in scope".into()),
            },
            Credentials::Service(token) => {
                request.bearer_auth(token.expose_secret()).header("X-User-Id", user.as_str())
            }
        };
        let response = match request.send().await {
            Ok(response) => response,
            // reqwest's error names the URL, never the token.
            Err(error) if error.is_timeout() => return Attempt::Transient("timed out".into()),
            Err(error) => return Attempt::Transient(format!("request failed: {}", without_url(&error))),
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Attempt::Answer(None);
        }
        if status.is_server_error() {
            return Attempt::Transient(format!("answered {status}"));
        }
        if !status.is_success() {
            return Attempt::Permanent(format!("answered {status}"));
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) if error.is_timeout() => return Attempt::Transient("timed out reading the body".into()),
            Err(error) => return Attempt::Transient(format!("reading the body failed: {}", without_url(&error))),
        };
        match parse(&body, self.config.default_plan) {
            Ok(subscription) => Attempt::Answer(subscription),
            Err(reason) => Attempt::Permanent(format!("unusable answer: {reason}")),
        }
    }
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<user service>");
    }
    text
}

#[async_trait]
impl SubscriptionDirectory for UserServiceDirectory {
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        // No call can be made without the caller's token: that says nothing
        // about the user service, so the breaker is not asked or told.
        if matches!(self.config.credentials, Credentials::Caller) && CALLER_TOKEN.try_with(|_| ()).is_err() {
            return Err(SubscriptionError::Unavailable("user service: no caller token in scope".into()));
        }
        let Some(breaker) = self.breaker.call() else {
            return Err(SubscriptionError::Unavailable("user service circuit open".into()));
        };
        let mut delay = self.config.backoff;
        let mut attempts_left = self.config.retries;
        loop {
            match self.attempt(user).await {
                Attempt::Answer(subscription) => {
                    breaker.succeeded();
                    return Ok(subscription);
                }
                Attempt::Transient(reason) if attempts_left > 0 => {
                    attempts_left -= 1;
                    let jittered = delay.mul_f64(rand::rng().random_range(0.5..1.5));
                    warn!(%reason, retry_in = ?jittered, "user service call failed; retrying");
                    tokio::time::sleep(jittered).await;
                    delay *= 2;
                }
                // Transport errors, timeouts and 5xx: the service is failing.
                Attempt::Transient(reason) => {
                    breaker.failed();
                    return Err(SubscriptionError::Unavailable(format!("user service: {reason}")));
                }
                // A 4xx or an unusable body is an answer about this caller:
                // the service is up, and one caller must not open the
                // breaker for everyone.
                Attempt::Permanent(reason) => {
                    breaker.succeeded();
                    return Err(SubscriptionError::Unavailable(format!("user service: {reason}")));
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Wire {
    is_active: Option<bool>,
    status: Option<String>,
    /// The cinema's user service names it `expires_at`.
    #[serde(alias = "expires_at")]
    end_date: Option<String>,
    plan: Option<PlanWire>,
}

#[derive(Deserialize)]
struct PlanWire {
    max_devices: u32,
    #[serde(default)]
    supports_hd: bool,
    #[serde(default)]
    supports_4k: bool,
}

/// What is wrong with a user service's subscription body (it names a
/// field, never a value: the body is about a user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSubscription {
    /// The body is not JSON.
    #[error("not JSON")]
    NotJson,
    /// The body (or its `subscription`) is not a JSON object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A field has the wrong type.
    #[error("fields of the wrong type")]
    WrongTypes,
    /// `end_date` is not a date-time.
    #[error("end_date is not an RFC 3339 or ISO 8601 date-time")]
    EndDate,
    /// `status` is not one of the known statuses.
    #[error("status is not a subscription status")]
    UnknownStatus,
    /// Neither `status` nor `is_active` says whether it is active.
    #[error("neither status nor is_active")]
    NoStatus,
}

/// The subscription in a `200` body of either shape; `Ok(None)` for an
/// explicit `null` subscription.
///
/// # Errors
/// [`InvalidSubscription`] says what is wrong with the body.
pub fn parse(body: &[u8], default_plan: Plan) -> Result<Option<Subscription>, InvalidSubscription> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| InvalidSubscription::NotJson)?;
    // Some services wrap the answer: {"subscription": {...}} or {"subscription": null}.
    let value = match value.get("subscription") {
        Some(serde_json::Value::Null) => return Ok(None),
        Some(inner) => inner.clone(),
        None => value,
    };
    if !value.is_object() {
        return Err(InvalidSubscription::NotAnObject);
    }
    let wire: Wire = serde_json::from_value(value).map_err(|_| InvalidSubscription::WrongTypes)?;
    let plan = match wire.plan {
        Some(p) => Plan { max_devices: Some(p.max_devices), supports_hd: p.supports_hd, supports_4k: p.supports_4k },
        None => default_plan,
    };
    let end_date =
        wire.end_date.as_deref().map(|d| parse_instant(d).ok_or(InvalidSubscription::EndDate)).transpose()?;
    let status = match (wire.status.as_deref(), wire.is_active) {
        (Some(status), _) => match status.to_ascii_lowercase().as_str() {
            "active" => SubscriptionStatus::Active,
            "cancelled" | "canceled" => SubscriptionStatus::Cancelled,
            "expired" => SubscriptionStatus::Expired,
            "pending" => SubscriptionStatus::Pending,
            _ => return Err(InvalidSubscription::UnknownStatus),
        },
        (None, Some(true)) => SubscriptionStatus::Active,
        (None, Some(false)) => SubscriptionStatus::Expired,
        (None, None) => return Err(InvalidSubscription::NoStatus),
    };
    Ok(Some(Subscription { status, end_date, plan }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: Plan = Plan { max_devices: Some(1), supports_hd: false, supports_4k: false };

    #[test]
    fn both_shapes_parse() {
        let full = br#"{"status":"active","end_date":"2027-01-01T00:00:00Z","plan":{"max_devices":4,"supports_hd":true,"supports_4k":false},"plan_id":"premium"}"#;
        let s = parse(full, BASIC).unwrap().unwrap();
        assert_eq!(s.status, SubscriptionStatus::Active);
        assert_eq!(s.plan, Plan { max_devices: Some(4), supports_hd: true, supports_4k: false });
        assert_eq!(s.end_date.unwrap().year(), 2027);

        let simple = br#"{"is_active":true,"plan_id":"basic","expires_at":"2027-01-01T00:00:00Z"}"#;
        let s = parse(simple, BASIC).unwrap().unwrap();
        assert_eq!((s.status, s.plan), (SubscriptionStatus::Active, BASIC), "the configured default plan");
        assert_eq!(s.end_date.map(|d| d.year()), Some(2027), "the cinema's expires_at is the end date");
        let naive = br#"{"is_active":true,"plan_id":"basic","expires_at":"2027-01-01T10:00:00.5"}"#;
        let end = parse(naive, BASIC).unwrap().unwrap().end_date.unwrap();
        assert_eq!((end.hour(), end.offset().is_utc()), (10, true), "Python's naive isoformat(): UTC");
        assert_eq!(parse(br#"{"is_active":false}"#, BASIC).unwrap().unwrap().status, SubscriptionStatus::Expired);
        assert_eq!(parse(br#"{"status":"Canceled"}"#, BASIC).unwrap().unwrap().status, SubscriptionStatus::Cancelled);
        assert_eq!(parse(br#"{"subscription":null}"#, BASIC).unwrap(), None);
        assert!(parse(br#"{"subscription":{"status":"pending"}}"#, BASIC).unwrap().is_some());
    }

    #[test]
    fn garbage_is_an_error_not_no_subscription() {
        for body in [
            &b"<html>502</html>"[..],
            b"[]",
            b"{}",
            b"{\"status\":\"gold\"}",
            b"{\"is_active\":\"yes\"}",
            b"{\"status\":\"active\",\"end_date\":\"soon\"}",
            b"{\"status\":\"active\",\"plan\":{\"max_devices\":-1}}",
        ] {
            assert!(parse(body, BASIC).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
