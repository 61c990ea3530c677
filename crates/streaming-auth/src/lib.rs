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
//! `token_use`) claim when configured; `sub` must be a valid [`UserId`](streaming_core::domain::UserId).

mod jwks;
mod service_credentials;
mod signer;
mod verifier;

use biscuit::jwa::SignatureAlgorithm;
use serde::{Deserialize, Serialize};

pub use jwks::{JwksError, KeySource, KeyStore, MAX_JWKS_BYTES, MIN_REFRESH_FLOOR};
pub use service_credentials::{CredentialsError, ServiceCredentials};
pub use signer::{TokenClaims, TokenSigner};
pub use verifier::{Principal, TokenVerifier, VerifierOptions, REMEMBER_FOR};

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
    /// The JOSE name (`HS256`, `RS256`, `ES256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PrivateClaims {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    /// The same idea under another name (AWS Cognito).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_use: Option<String>,
}

#[cfg(test)]
mod tests;
