//! Verifying bearer tokens: pinned algorithms, their own keys, the
//! claims checked, and verified tokens remembered briefly.

use crate::{Algorithm, AuthError, ConfigError, KeyStore, PrivateClaims, MAX_TOKEN_LEN, MIN_SECRET_LEN};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use biscuit::jwa::SignatureAlgorithm;
use biscuit::jws::Secret;
use biscuit::{ClaimPresenceOptions, Empty, Presence, TemporalOptions, Validation, ValidationOptions, JWT};
use secrecy::{ExposeSecret, SecretString};
use streaming_core::domain::UserId;
use time::OffsetDateTime;

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
