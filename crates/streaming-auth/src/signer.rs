//! Minting HS256 tokens (the demo token, `streaming-api token`, tests).

use crate::{AuthError, PrivateClaims};
use std::fmt;

use biscuit::jwa::SignatureAlgorithm;
use biscuit::jws::{RegisteredHeader, Secret};
use biscuit::{ClaimsSet, RegisteredClaims, SingleOrMultiple, Timestamp, JWT};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

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
