//! The credential chain of [`S3Credentials::Default`](crate::S3Credentials):
//! keys in the environment, else a web identity (a Kubernetes service
//! account's token exchanged at STS for a role's credentials: EKS IRSA, or
//! any OIDC-federated role), else rusoto's standard chain (profile file,
//! container, instance metadata). The whole chain's answer is cached and
//! renewed half-way through its life.
//!
//! The cache is ours, not rusoto's `AutoRefreshingProvider`: that one keeps
//! a failed answer for good (one STS or metadata hiccup at the first
//! request and the store has no credentials until a restart), and asks
//! again in a loop while the answer it got is about to expire (credentials
//! shorter-lived than its 20 s margin: a tight loop of STS calls).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusoto_core::{Client, HttpClient, Region};
use rusoto_credential::{AwsCredentials, ChainProvider, CredentialsError, EnvironmentProvider, ProvideAwsCredentials};
use rusoto_sts::{AssumeRoleWithWebIdentityRequest, Sts, StsClient};

use crate::S3ConfigError;

/// The session name when `AWS_ROLE_SESSION_NAME` is unset.
const SESSION_NAME: &str = "streamgate";

/// The chain, cached: what [`S3Credentials::Default`](crate::S3Credentials) uses.
pub(crate) type CachedChain = Cached<Chain>;

/// After a failed renewal, while the credentials at hand are still valid,
/// the source is asked again no sooner than this.
const RETRY_AFTER: chrono::Duration = chrono::Duration::seconds(10);

/// A provider's answer, kept until half-way through its life. Clones share it.
#[derive(Clone)]
pub(crate) struct Cached<P> {
    provider: P,
    current: Arc<tokio::sync::Mutex<Option<Held>>>,
}

/// Credentials at hand, and when to ask for new ones (never, without expiry).
struct Held {
    credentials: AwsCredentials,
    renew_at: Option<DateTime<Utc>>,
}

impl<P> Cached<P> {
    pub(crate) fn new(provider: P) -> Self {
        Self { provider, current: Arc::default() }
    }
}

#[async_trait]
impl<P: ProvideAwsCredentials + Send + Sync> ProvideAwsCredentials for Cached<P> {
    async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
        // One renewal at a time; the others wait for its answer.
        let mut current = self.current.lock().await;
        let now = Utc::now();
        if let Some(held) = current.as_ref() {
            if held.renew_at.is_none_or(|at| now < at) {
                return Ok(held.credentials.clone());
            }
        }
        match self.provider.credentials().await {
            Ok(fresh) => {
                let renew_at = fresh.expires_at().map(|expires_at| renew_at(now, expires_at));
                *current = Some(Held { credentials: fresh.clone(), renew_at });
                Ok(fresh)
            }
            // Still valid: used while the source is asked again, a little later.
            Err(error) => match current.as_mut() {
                Some(held) if held.credentials.expires_at().is_none_or(|expires_at| now < expires_at) => {
                    tracing::warn!(%error, "renewing the object store's credentials failed; the current ones stay");
                    held.renew_at = Some(now + RETRY_AFTER);
                    Ok(held.credentials.clone())
                }
                _ => Err(error),
            },
        }
    }
}

/// Keys in the environment, then the web identity when configured, then the
/// rest of the standard chain.
#[derive(Clone)]
pub(crate) struct Chain {
    web_identity: Option<WebIdentity>,
    rest: ChainProvider,
}

impl Chain {
    /// The chain as the process environment configures it; `region` is
    /// the store's, STS's unless `AWS_REGION`/`AWS_DEFAULT_REGION` says
    /// otherwise.
    pub(crate) fn from_environment(region: &str) -> Result<CachedChain, S3ConfigError> {
        let web_identity = WebIdentity::configured(|name| std::env::var(name).ok(), region)?;
        Ok(Cached::new(Self { web_identity, rest: ChainProvider::new() }))
    }
}

#[async_trait]
impl ProvideAwsCredentials for Chain {
    async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
        let Some(web_identity) = &self.web_identity else {
            // Keys in the environment first, as rusoto's chain asks.
            return self.rest.credentials().await;
        };
        if let Ok(keys) = EnvironmentProvider::default().credentials().await {
            return Ok(keys);
        }
        // Configured, it is the answer: its failure is not hidden by the
        // instance's own role further down the chain.
        web_identity.credentials().await
    }
}

/// A role's credentials for a web identity token read from a file that the
/// platform rotates (the token is read again at every exchange).
#[derive(Clone)]
pub(crate) struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: String,
    sts: StsClient,
}

impl WebIdentity {
    /// Configured by `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (both,
    /// or neither), `AWS_ROLE_SESSION_NAME`, `AWS_ENDPOINT_URL_STS` (default
    /// `https://sts.{region}.amazonaws.com`), and `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` (default `region`), read through `var`.
    pub(crate) fn configured(
        var: impl Fn(&str) -> Option<String>,
        region: &str,
    ) -> Result<Option<Self>, S3ConfigError> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let (token_file, role_arn) = match (set("AWS_WEB_IDENTITY_TOKEN_FILE"), set("AWS_ROLE_ARN")) {
            (Some(file), Some(role)) => (PathBuf::from(file), role),
            (None, None) => return Ok(None),
            _ => return Err(S3ConfigError::HalfAWebIdentity),
        };
        let region = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")).unwrap_or_else(|| region.to_owned());
        let endpoint = set("AWS_ENDPOINT_URL_STS").unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if crate::split_endpoint(&endpoint).is_none() {
            return Err(S3ConfigError::BadEndpoint(endpoint));
        }
        let http = HttpClient::new().map_err(|e| S3ConfigError::Client(e.to_string()))?;
        // The request carries the token: it is not signed with other credentials.
        let sts = StsClient::new_with_client(Client::new_not_signing(http), Region::Custom { name: region, endpoint });
        let session_name = set("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| SESSION_NAME.to_owned());
        Ok(Some(Self { token_file, role_arn, session_name, sts }))
    }
}

#[async_trait]
impl ProvideAwsCredentials for WebIdentity {
    async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
        // A small file on a memory volume, rewritten by the kubelet.
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            CredentialsError::new(format!("web identity token file {}: {e}", self.token_file.display()))
        })?;
        let request = AssumeRoleWithWebIdentityRequest {
            role_arn: self.role_arn.clone(),
            role_session_name: self.session_name.clone(),
            web_identity_token: token.trim().to_owned(),
            ..AssumeRoleWithWebIdentityRequest::default()
        };
        let answer = self
            .sts
            .assume_role_with_web_identity(request)
            .await
            .map_err(|e| CredentialsError::new(format!("STS AssumeRoleWithWebIdentity: {e}")))?;
        let credentials = answer
            .credentials
            .ok_or_else(|| CredentialsError::new("STS AssumeRoleWithWebIdentity answered without credentials"))?;
        let expires_at = credentials
            .expiration
            .parse::<DateTime<Utc>>()
            .map_err(|e| CredentialsError::new(format!("STS expiration {:?}: {e}", credentials.expiration)))?;
        Ok(AwsCredentials::new(
            credentials.access_key_id,
            credentials.secret_access_key,
            Some(credentials.session_token),
            Some(expires_at),
        ))
    }
}

/// When credentials that expire at `expires_at`, obtained at `now`, are
/// renewed: half-way through their life. A URL presigned with them is valid only while they
/// are, so each URL signed before the renewal keeps at least half their
/// lifetime (30 minutes of a one-hour session).
fn renew_at(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
    if expires_at <= now {
        return expires_at;
    }
    now + (expires_at - now) / 2
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    }

    #[test]
    fn a_web_identity_needs_its_token_file_and_role_together() {
        assert!(WebIdentity::configured(vars(&[]), "eu-west-1").unwrap().is_none());
        for half in [&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")][..], &[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]] {
            let pairs: &'static [(&str, &str)] = half;
            assert!(matches!(WebIdentity::configured(vars(pairs), "eu-west-1"), Err(S3ConfigError::HalfAWebIdentity)));
        }
        let both = &[("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"), ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")];
        let web = WebIdentity::configured(vars(both), "eu-west-1").unwrap().unwrap();
        assert_eq!(web.session_name, SESSION_NAME);
        assert_eq!(web.token_file, PathBuf::from("/var/run/token"));
        let bad_endpoint = &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ENDPOINT_URL_STS", "sts.local"),
        ];
        assert!(matches!(WebIdentity::configured(vars(bad_endpoint), "x"), Err(S3ConfigError::BadEndpoint(_))));
    }

    /// Answers from a list, one per call, counting the calls.
    struct Answers(std::sync::Mutex<Vec<Result<AwsCredentials, CredentialsError>>>, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl ProvideAwsCredentials for Answers {
        async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.lock().unwrap().remove(0)
        }
    }

    fn keys(id: &str, lifetime: Option<chrono::Duration>) -> AwsCredentials {
        AwsCredentials::new(id, "secret", Some("token".into()), lifetime.map(|l| Utc::now() + l))
    }

    #[tokio::test]
    async fn a_failure_is_not_remembered_and_short_lived_credentials_do_not_loop() {
        let answers = vec![
            Err(CredentialsError::new("STS is down")),
            Ok(keys("short", Some(chrono::Duration::zero()))),
            Ok(keys("long", Some(chrono::Duration::hours(1)))),
        ];
        let cached = Cached::new(Answers(std::sync::Mutex::new(answers), std::sync::atomic::AtomicUsize::new(0)));
        assert!(cached.credentials().await.is_err());
        assert_eq!(cached.credentials().await.unwrap().aws_access_key_id(), "short", "asked again after a failure");
        assert_eq!(cached.credentials().await.unwrap().aws_access_key_id(), "long", "renewed, once");
        assert_eq!(cached.credentials().await.unwrap().aws_access_key_id(), "long", "then kept");
        assert_eq!(cached.provider.1.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn valid_credentials_outlive_a_failed_renewal() {
        let answers =
            vec![Ok(keys("first", Some(chrono::Duration::seconds(30)))), Err(CredentialsError::new("STS is down"))];
        let cached = Cached::new(Answers(std::sync::Mutex::new(answers), std::sync::atomic::AtomicUsize::new(0)));
        // Past half its life at once? No: 15 s left before renewal. Force it.
        cached.credentials().await.unwrap();
        cached.current.lock().await.as_mut().unwrap().renew_at = Some(Utc::now());
        assert_eq!(cached.credentials().await.unwrap().aws_access_key_id(), "first", "still valid: kept");
        assert_eq!(cached.credentials().await.unwrap().aws_access_key_id(), "first", "no new ask within 10 s");
        assert_eq!(cached.provider.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn credentials_are_renewed_half_way_through_their_life() {
        let now = Utc::now();
        assert_eq!(renew_at(now, now + chrono::Duration::hours(1)), now + chrono::Duration::minutes(30));
        assert_eq!(renew_at(now, now - chrono::Duration::seconds(1)), now - chrono::Duration::seconds(1));
    }
}
