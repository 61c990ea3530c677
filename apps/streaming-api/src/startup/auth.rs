//! Token verification: which algorithms, whose keys, which secret.

use super::StartupError;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::SecretString;
use streaming_auth::{Algorithm, KeySource, KeyStore, TokenVerifier, VerifierOptions};

use crate::settings::Settings;

/// The least `auth.jwks_min_refresh_seconds` accepted.
const MIN_JWKS_REFRESH_SECONDS: u64 = 5;

/// The token verifier the settings ask for; whether its HS256 secret was
/// generated for this process; the HS256 secret, if HS256 is accepted.
pub(super) async fn verifier(settings: &Settings) -> Result<(TokenVerifier, bool, Option<SecretString>), StartupError> {
    let auth = &settings.auth;
    let config = |message: String| StartupError::Config(message);
    let algorithms = &auth.algorithms.0;
    let hs256 = algorithms.contains(&Algorithm::Hs256);
    let keys = if let Some(source) = key_source(settings)? {
        let min_refresh = Duration::from_secs(auth.jwks_min_refresh_seconds);
        let keys = Arc::new(KeyStore::load(source, min_refresh).await.map_err(|e| config(format!("auth: {e}")))?);
        // Keys the issuer withdrew disappear within 15 minutes.
        let weak = Arc::downgrade(&keys);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15 * 60)).await;
                let Some(keys) = weak.upgrade() else { break };
                if let Err(error) = keys.refresh().await {
                    tracing::warn!(%error, "refreshing the JWKS failed; the current keys stay");
                }
            }
        });
        Some(keys)
    } else {
        None
    };
    let ephemeral = hs256 && auth.secret.is_none();
    let secret = hs256.then(|| auth.secret.clone().unwrap_or_else(random_secret));
    let options = VerifierOptions {
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        token_type: auth.token_type.clone(),
        leeway: Duration::from_secs(auth.leeway_seconds),
        remembered_tokens: auth.remembered_tokens,
        uuid_subjects: auth.uuid_subjects,
    };
    let verifier = TokenVerifier::new(algorithms, secret.as_ref(), keys, options).map_err(|e| match e {
        streaming_auth::ConfigError::WeakSecret => config(format!("auth.secret: {e}")),
        other => config(format!("auth: {other}")),
    })?;
    Ok((verifier, ephemeral, secret))
}

/// Where the RS256/ES256 public keys come from, when those are accepted.
///
/// # Errors
/// [`StartupError::Config`] when the settings for them are incomplete.
pub(super) fn key_source(settings: &Settings) -> Result<Option<KeySource>, StartupError> {
    let auth = &settings.auth;
    if auth.algorithms.0.iter().all(|a| *a == Algorithm::Hs256) {
        return Ok(None);
    }
    // Tokens from an identity provider: say whose and for whom.
    if auth.issuer.is_none() || auth.audience.is_none() {
        return Err(StartupError::Config("auth.issuer and auth.audience are required with RS256/ES256".into()));
    }
    let source = match (&auth.jwks_file, &auth.jwks_url) {
        (Some(file), None) => KeySource::File(file.clone()),
        (None, Some(url)) => KeySource::Url(url.clone()),
        _ => {
            return Err(StartupError::Config("RS256/ES256 need exactly one of auth.jwks_file and auth.jwks_url".into()))
        }
    };
    // An unknown key id makes the set be read again: not more often than this.
    if auth.jwks_min_refresh_seconds < MIN_JWKS_REFRESH_SECONDS {
        return Err(StartupError::Config(format!(
            "auth.jwks_min_refresh_seconds must be at least {MIN_JWKS_REFRESH_SECONDS}: every token naming an \
             unknown key would otherwise fetch the issuer's key set"
        )));
    }
    Ok(Some(source))
}

/// Whether `auth.secret`, when set and HS256 is accepted, is strong enough.
///
/// # Errors
/// [`StartupError::Config`] naming `auth.secret`.
pub(super) fn check_secret(settings: &Settings) -> Result<(), StartupError> {
    match &settings.auth.secret {
        Some(secret) if settings.auth.algorithms.accepts(Algorithm::Hs256) => {
            TokenVerifier::hs256(secret, VerifierOptions::default())
                .map(drop)
                .map_err(|e| StartupError::Config(format!("auth.secret: {e}")))
        }
        _ => Ok(()),
    }
}

pub(super) fn random_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(STANDARD.encode(bytes))
}
