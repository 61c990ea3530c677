//! # streaming-auth
//!
//! Bearer-token verification. The accepted algorithms are pinned by
//! configuration (HS256 with a shared secret; RS256 and ES256 with public
//! keys from a JWKS file or URL): a token whose header names any other
//! algorithm (`none`, `HS384`, an HS256 token where only RS256 is accepted,
//! ...) is refused before its signature is looked at, and each algorithm
//! only ever uses its own kind of key, so a public key can never serve as an
//! HMAC secret. `exp` is required; `exp` and `nbf` are checked with a
//! leeway; `iss` and `aud` are checked when configured; the `type` (or
//! `token_use`) claim when configured; `sub` must be a valid [`UserId`].

mod jwks;
mod service_credentials;

use std::fmt;
use std::sync::Arc;
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

pub use jwks::{JwksError, KeySource, KeyStore, MAX_JWKS_BYTES, MIN_REFRESH_FLOOR};
pub use service_credentials::{CredentialsError, ServiceCredentials};

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
    /// `sub` is not a valid user id (or not a UUID where UUIDs are required).
    #[error("the token subject is not a valid user id")]
    BadSubject,
    /// No key of the token's algorithm and `kid` is known.
    #[error("the token was signed by an unknown key")]
    UnknownKey,
}

/// Why a verifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The HS256 secret is too short to be safe.
    #[error("the token secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    /// An algorithm name this verifier does not support.
    #[error("unsupported token algorithm {0:?} (HS256, RS256, ES256)")]
    UnknownAlgorithm(String),
    /// No algorithm, or an algorithm without its key (HS256 needs a secret, RS256/ES256 a JWKS).
    #[error("{0}")]
    MissingKey(&'static str),
}

/// A signature algorithm a verifier may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, public keys from a JWKS.
    Rs256,
    /// ECDSA P-256 with SHA-256, public keys from a JWKS.
    Es256,
}

impl Algorithm {
    fn signature(self) -> SignatureAlgorithm {
        match self {
            Self::Hs256 => SignatureAlgorithm::HS256,
            Self::Rs256 => SignatureAlgorithm::RS256,
            Self::Es256 => SignatureAlgorithm::ES256,
        }
    }

    /// Parses a comma-separated list (`"RS256,ES256"`).
    ///
    /// # Errors
    /// [`ConfigError::UnknownAlgorithm`] naming the first unknown one.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, ConfigError> {
        list.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.to_ascii_uppercase().as_str() {
                "HS256" => Ok(Self::Hs256),
                "RS256" => Ok(Self::Rs256),
                "ES256" => Ok(Self::Es256),
                _ => Err(ConfigError::UnknownAlgorithm(a.to_owned())),
            })
            .collect()
    }
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
    /// How many verified tokens to remember (default 10 000; 0 remembers
    /// none). A remembered token is accepted again without its signature
    /// being checked for at most [`REMEMBER_FOR`], and only while its `exp`
    /// and `nbf` still allow it; a key removed from the JWKS therefore stops
    /// working for tokens seen before within that time.
    pub remembered_tokens: u64,
    /// Whether `sub` must be a hyphenated UUID (the cinema auth service's
    /// user ids, and all the cinema service's tables can hold); the user is
    /// then its lower-case spelling.
    pub uuid_subjects: bool,
}

/// Whether `text` is a UUID in its hyphenated form (`8-4-4-4-12` hex digits).
fn is_hyphenated_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// How long a verified token is remembered (see [`VerifierOptions::remembered_tokens`]).
pub const REMEMBER_FOR: Duration = Duration::from_secs(30);

impl Default for VerifierOptions {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            token_type: None,
            leeway: Duration::from_secs(30),
            remembered_tokens: 10_000,
            uuid_subjects: false,
        }
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
    /// The same idea under another name (AWS Cognito).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_use: Option<String>,
}

/// Verifies bearer tokens.
pub struct TokenVerifier {
    algorithms: Vec<Algorithm>,
    secret: Option<Secret>,
    keys: Option<Arc<KeyStore>>,
    options: VerifierOptions,
    /// Verified tokens by their SHA-256 (the token itself is not kept).
    remembered: Option<moka::sync::Cache<[u8; 32], Verified>>,
}

/// A verified token's caller and the instants (Unix seconds, leeway
/// applied) between which its claims accept it.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    valid_from: i64,
    valid_until: i64,
}

impl Verified {
    /// Whether `now` is inside the window with a second to spare on each
    /// side, so a remembered answer never accepts what a full check would
    /// refuse (sub-second instants included); at the edges the full check decides.
    fn covers(&self, now: OffsetDateTime) -> bool {
        let now = now.unix_timestamp();
        self.valid_from < now.saturating_sub(1) && now.saturating_add(1) < self.valid_until
    }
}

fn fingerprint(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.algorithms)
            .field("keys", &self.keys)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn hs256_secret(secret: &SecretString) -> Result<Secret, ConfigError> {
    let bytes = secret.expose_secret().as_bytes();
    if bytes.len() < MIN_SECRET_LEN {
        return Err(ConfigError::WeakSecret);
    }
    Ok(Secret::Bytes(bytes.to_vec()))
}

impl TokenVerifier {
    /// A verifier for HS256 tokens signed with `secret`.
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] for a secret shorter than [`MIN_SECRET_LEN`].
    pub fn hs256(secret: &SecretString, options: VerifierOptions) -> Result<Self, ConfigError> {
        Self::new(&[Algorithm::Hs256], Some(secret), None, options)
    }

    /// A verifier accepting exactly `algorithms`: HS256 needs `secret`,
    /// RS256 and ES256 need `keys`.
    ///
    /// # Errors
    /// [`ConfigError`] for an empty list, a missing key or a weak secret.
    pub fn new(
        algorithms: &[Algorithm],
        secret: Option<&SecretString>,
        keys: Option<Arc<KeyStore>>,
        options: VerifierOptions,
    ) -> Result<Self, ConfigError> {
        if algorithms.is_empty() {
            return Err(ConfigError::MissingKey("at least one token algorithm must be accepted"));
        }
        let hs256 = algorithms.contains(&Algorithm::Hs256);
        let secret = match (hs256, secret) {
            (true, Some(secret)) => Some(hs256_secret(secret)?),
            (true, None) => return Err(ConfigError::MissingKey("HS256 needs a secret")),
            (false, _) => None,
        };
        if algorithms.iter().any(|a| *a != Algorithm::Hs256) && keys.is_none() {
            return Err(ConfigError::MissingKey("RS256 and ES256 need a JWKS (file or URL)"));
        }
        let remembered = (options.remembered_tokens > 0).then(|| {
            moka::sync::Cache::builder().max_capacity(options.remembered_tokens).time_to_live(REMEMBER_FOR).build()
        });
        Ok(Self { algorithms: algorithms.to_vec(), secret, keys, options, remembered })
    }

    /// [`TokenVerifier::verify`], and when the token names a key the set
    /// lacks, reads the JWKS again (rate-limited) and tries once more: the
    /// issuer may have rotated its keys.
    ///
    /// # Errors
    /// As [`TokenVerifier::verify`].
    pub async fn verify_refreshing(&self, token: &str, now: OffsetDateTime) -> Result<Principal, AuthError> {
        match self.verify(token, now) {
            Err(AuthError::UnknownKey) => match &self.keys {
                Some(keys) if keys.refresh().await.unwrap_or(false) => self.verify(token, now),
                _ => Err(AuthError::UnknownKey),
            },
            other => other,
        }
    }

    /// The key for a token's header, if its algorithm is accepted.
    fn key_for(&self, algorithm: SignatureAlgorithm, kid: Option<&str>) -> Result<Arc<Secret>, AuthError> {
        let accepted = self.algorithms.iter().any(|a| a.signature() == algorithm);
        if !accepted {
            return Err(AuthError::WrongAlgorithm);
        }
        match algorithm {
            SignatureAlgorithm::HS256 => match &self.secret {
                Some(Secret::Bytes(bytes)) => Ok(Arc::new(Secret::Bytes(bytes.clone()))),
                _ => Err(AuthError::WrongAlgorithm),
            },
            _ => {
                let keys = self.keys.as_ref().ok_or(AuthError::WrongAlgorithm)?;
                keys.current().find(kid, algorithm).map(|k| k.secret).ok_or(AuthError::UnknownKey)
            }
        }
    }

    /// Verifies `token` as of `now`.
    ///
    /// # Errors
    /// [`AuthError`] says which check failed.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Principal, AuthError> {
        // The shape first: nothing malformed is hashed or remembered.
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(AuthError::Malformed);
        }
        let Some(remembered) = &self.remembered else {
            return self.verify_fully(token, now).map(|verified| verified.principal);
        };
        let key = fingerprint(token);
        if let Some(verified) = remembered.get(&key).filter(|verified| verified.covers(now)) {
            return Ok(verified.principal);
        }
        let verified = self.verify_fully(token, now)?;
        remembered.insert(key, verified.clone());
        Ok(verified.principal)
    }

    /// Every check after the shape's, and the window the token's claims allow.
    fn verify_fully(&self, token: &str, now: OffsetDateTime) -> Result<Verified, AuthError> {
        if !times_in_range(token) {
            return Err(AuthError::Malformed);
        }
        let encoded: JWT<PrivateClaims, Empty> = JWT::new_encoded(token);
        let header = encoded.unverified_header().map_err(|_| AuthError::Malformed)?;
        let algorithm = header.registered.algorithm;
        let secret = self.key_for(algorithm, header.registered.key_id.as_deref())?;
        let decoded = encoded.decode(&secret, algorithm).map_err(classify)?;
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
            let private = &claims.private;
            let named = private.token_type.as_deref().or(private.token_use.as_deref());
            if named != Some(required.as_str()) {
                return Err(AuthError::WrongTokenType);
            }
        }
        let subject = claims.registered.subject.as_deref().ok_or(AuthError::MissingClaim)?;
        let user = if self.options.uuid_subjects {
            // One spelling per user, as the cinema service's `uuid` columns keep it.
            if !is_hyphenated_uuid(subject) {
                return Err(AuthError::BadSubject);
            }
            UserId::try_from(subject.to_ascii_lowercase().as_str())
        } else {
            UserId::try_from(subject)
        }
        .map_err(|_| AuthError::BadSubject)?;
        let expiry = claims.registered.expiry.as_ref().ok_or(AuthError::MissingClaim)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(expiry.timestamp()).map_err(|_| AuthError::Malformed)?;
        let leeway = i64::try_from(self.options.leeway.as_secs()).unwrap_or(i64::MAX);
        let valid_from =
            claims.registered.not_before.as_ref().map_or(i64::MIN, |nbf| nbf.timestamp().saturating_sub(leeway));
        Ok(Verified {
            principal: Principal { user, expires_at },
            valid_from,
            valid_until: expiry.timestamp().saturating_add(leeway),
        })
    }
}

/// Whether the token's `exp`, `nbf` and `iat`, where they are integers, are
/// instants chrono can represent. biscuit decodes them with an `unwrap` and
/// panics otherwise (found by the `token` fuzz target: a correctly signed
/// token expiring in the year 562 000), so such a token is refused before it
/// decodes them. A payload that is not base64url JSON is malformed anyway.
fn times_in_range(token: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let Some(payload) = token.split('.').nth(1) else { return false };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else { return false };
    let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(&bytes) else { return false };
    ["exp", "nbf", "iat"].iter().all(|name| match claims.get(*name).and_then(serde_json::Value::as_i64) {
        Some(seconds) => chrono::DateTime::from_timestamp(seconds, 0).is_some(),
        None => true,
    })
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
            ClaimsSet { registered, private: PrivateClaims { token_type: claims.token_type.clone(), token_use: None } },
        );
        let encoded = jwt.into_encoded(&self.secret).map_err(|_| AuthError::Malformed)?;
        encoded.encoded().map(|e| e.to_string()).map_err(|_| AuthError::Malformed)
    }
}

#[cfg(test)]
mod tests;
