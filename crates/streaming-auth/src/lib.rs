//! # streaming-auth
//!
//! Bearer-token verification. HS256 with the algorithm pinned by
//! configuration: a token whose header names another algorithm (`none`,
//! `HS384`, `RS256`, ...) is refused even when its signature would verify.
//! `exp` is required; `exp` and `nbf` are checked with a leeway; `iss` and
//! `aud` are checked when configured; `sub` must be a valid [`UserId`].

use std::fmt;
use std::time::Duration;

use biscuit::jwa::SignatureAlgorithm;
use biscuit::jws::{RegisteredHeader, Secret};
use biscuit::{
    ClaimPresenceOptions, ClaimsSet, Empty, Presence, RegisteredClaims, SingleOrMultiple, TemporalOptions, Timestamp,
    Validation, ValidationOptions, JWT,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use streaming_core::domain::UserId;
use time::OffsetDateTime;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;

/// Why a token was refused. Every variant means 401 to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a compact JWS, too long, or not decodable.
    #[error("the token is malformed")]
    Malformed,
    /// The signature does not verify with the configured key and algorithm.
    #[error("the token signature is invalid")]
    BadSignature,
    /// The header names an algorithm other than the pinned one.
    #[error("the token uses an algorithm that is not accepted")]
    WrongAlgorithm,
    /// A required claim (`exp`, `sub`, or a configured `iss`/`aud`) is missing.
    #[error("the token lacks a required claim")]
    MissingClaim,
    /// Past `exp` (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token issuer is not accepted")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token audience is not accepted")]
    WrongAudience,
    /// The `type` claim is not the required one (e.g. a refresh token).
    #[error("the token type is not accepted")]
    WrongTokenType,
    /// `sub` is not a valid user id.
    #[error("the token subject is not a valid user id")]
    BadSubject,
}

/// Why a verifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The HS256 secret is too short to be safe.
    #[error("the token secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
}

/// What a verifier checks besides the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierOptions {
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required member of `aud`, if any.
    pub audience: Option<String>,
    /// Required value of the `type` claim, if any (e.g. `access`).
    pub token_type: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        Self { issuer: None, audience: None, token_type: None, leeway: Duration::from_secs(30) }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who (the `sub` claim).
    pub user: UserId,
    /// When the token expires.
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PrivateClaims {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
}

/// Verifies HS256 bearer tokens.
pub struct TokenVerifier {
    secret: Secret,
    options: VerifierOptions,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &"HS256")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for HS256 tokens signed with `secret`.
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] for a secret shorter than [`MIN_SECRET_LEN`].
    pub fn hs256(secret: &SecretString, options: VerifierOptions) -> Result<Self, ConfigError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(ConfigError::WeakSecret);
        }
        Ok(Self { secret: Secret::Bytes(bytes.to_vec()), options })
    }

    /// Verifies `token` as of `now`.
    ///
    /// # Errors
    /// [`AuthError`] says which check failed.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Principal, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(AuthError::Malformed);
        }
        let encoded: JWT<PrivateClaims, Empty> = JWT::new_encoded(token);
        let decoded = encoded.decode(&self.secret, SignatureAlgorithm::HS256).map_err(classify)?;
        let claims = decoded.payload().map_err(|_| AuthError::Malformed)?;

        let to_validation = |value: &Option<String>| match value {
            Some(v) => Validation::Validate(v.clone()),
            None => Validation::Ignored,
        };
        let required_if = |value: &Option<String>| {
            if value.is_some() {
                Presence::Required
            } else {
                Presence::Optional
            }
        };
        let leeway = chrono::Duration::from_std(self.options.leeway).map_err(|_| AuthError::Malformed)?;
        let now_chrono =
            chrono::DateTime::from_timestamp(now.unix_timestamp(), now.nanosecond()).ok_or(AuthError::Malformed)?;
        let validation = ValidationOptions {
            claim_presence_options: ClaimPresenceOptions {
                expiry: Presence::Required,
                subject: Presence::Required,
                issuer: required_if(&self.options.issuer),
                audience: required_if(&self.options.audience),
                ..ClaimPresenceOptions::default()
            },
            temporal_options: TemporalOptions { epsilon: leeway, now: Some(now_chrono) },
            issued_at: Validation::Ignored,
            not_before: Validation::Validate(()),
            expiry: Validation::Validate(()),
            issuer: to_validation(&self.options.issuer),
            audience: to_validation(&self.options.audience),
        };
        decoded.validate(validation).map_err(classify)?;

        if let Some(required) = &self.options.token_type {
            if claims.private.token_type.as_deref() != Some(required.as_str()) {
                return Err(AuthError::WrongTokenType);
            }
        }
        let subject = claims.registered.subject.as_deref().ok_or(AuthError::MissingClaim)?;
        let user = UserId::try_from(subject).map_err(|_| AuthError::BadSubject)?;
        let expiry = claims.registered.expiry.as_ref().ok_or(AuthError::MissingClaim)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(expiry.timestamp()).map_err(|_| AuthError::Malformed)?;
        Ok(Principal { user, expires_at })
    }
}

fn classify(error: biscuit::errors::Error) -> AuthError {
    use biscuit::errors::{Error, ValidationError as V};
    match error {
        Error::ValidationError(V::InvalidSignature) => AuthError::BadSignature,
        Error::ValidationError(V::WrongAlgorithmHeader) => AuthError::WrongAlgorithm,
        Error::ValidationError(V::MissingRequiredClaims(_)) => AuthError::MissingClaim,
        Error::ValidationError(V::Expired(_)) => AuthError::Expired,
        Error::ValidationError(V::NotYetValid(_)) => AuthError::NotYetValid,
        Error::ValidationError(V::InvalidIssuer(_)) => AuthError::WrongIssuer,
        Error::ValidationError(V::InvalidAudience(_)) => AuthError::WrongAudience,
        _ => AuthError::Malformed,
    }
}

/// Claims of a token to issue (the demo token, and tests).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenClaims {
    /// `sub`.
    pub subject: String,
    /// `exp`.
    pub expires_at: Option<OffsetDateTime>,
    /// `nbf`.
    pub not_before: Option<OffsetDateTime>,
    /// `iss`.
    pub issuer: Option<String>,
    /// `aud`.
    pub audience: Option<String>,
    /// The `type` claim.
    pub token_type: Option<String>,
}

/// Signs HS256 tokens (the embedded mode's demo token; tests).
pub struct TokenSigner {
    secret: Secret,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSigner(<secret redacted>)")
    }
}

impl TokenSigner {
    /// A signer with `secret`.
    pub fn hs256(secret: &SecretString) -> Self {
        Self { secret: Secret::Bytes(secret.expose_secret().as_bytes().to_vec()) }
    }

    /// An HS256 token with `claims`.
    ///
    /// # Errors
    /// [`AuthError::Malformed`] if a timestamp is out of range.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, AuthError> {
        let timestamp = |at: Option<OffsetDateTime>| -> Result<Option<Timestamp>, AuthError> {
            at.map(|at| {
                chrono::DateTime::from_timestamp(at.unix_timestamp(), 0)
                    .map(Timestamp::from)
                    .ok_or(AuthError::Malformed)
            })
            .transpose()
        };
        let registered = RegisteredClaims {
            subject: Some(claims.subject.clone()),
            expiry: timestamp(claims.expires_at)?,
            not_before: timestamp(claims.not_before)?,
            issuer: claims.issuer.clone(),
            audience: claims.audience.clone().map(SingleOrMultiple::Single),
            ..RegisteredClaims::default()
        };
        let header = RegisteredHeader { algorithm: SignatureAlgorithm::HS256, ..RegisteredHeader::default() };
        let jwt = JWT::new_decoded(
            header.into(),
            ClaimsSet { registered, private: PrivateClaims { token_type: claims.token_type.clone() } },
        );
        let encoded = jwt.into_encoded(&self.secret).map_err(|_| AuthError::Malformed)?;
        encoded.encoded().map(|e| e.to_string()).map_err(|_| AuthError::Malformed)
    }
}

#[cfg(test)]
mod tests;
