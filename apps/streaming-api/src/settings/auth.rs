//! Settings of token verification and of the user service.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use streaming_auth::Algorithm;

/// Bearer-token verification.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret (at least 32 bytes). Unset: a random one is generated at
    /// start and only the printed demo token works (embedded mode).
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub secret: Option<SecretString>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Required `type` claim (e.g. `access`).
    pub token_type: Option<String>,
    /// `sub` must be a hyphenated UUID, kept in lower case (default false).
    /// Required when the database holds the cinema service's tables.
    pub uuid_subjects: bool,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds (default 30).
    pub leeway_seconds: u64,
    /// Verified tokens remembered for up to 30 s, so a repeated token skips
    /// its signature check (default 10 000; 0 checks every request in full).
    pub remembered_tokens: u64,
    /// The accepted algorithms, comma-separated: `HS256` (default), `RS256`, `ES256`.
    pub algorithms: Algorithms,
    /// RS256/ES256 public keys: a JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// RS256/ES256 public keys: the issuer's JWKS URL.
    pub jwks_url: Option<String>,
    /// A token naming an unknown key id makes the JWKS be read again, at most
    /// once per this many seconds (default 30); it is also read every 15 minutes.
    pub jwks_min_refresh_seconds: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            secret: None,
            issuer: None,
            audience: None,
            token_type: None,
            uuid_subjects: false,
            leeway_seconds: 30,
            remembered_tokens: 10_000,
            algorithms: Algorithms::default(),
            jwks_file: None,
            jwks_url: None,
            jwks_min_refresh_seconds: 30,
        }
    }
}

/// Token algorithms, written comma-separated (`HS256,RS256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Algorithms(pub Vec<Algorithm>);

impl Default for Algorithms {
    fn default() -> Self {
        Self(vec![Algorithm::Hs256])
    }
}

impl std::str::FromStr for Algorithms {
    type Err = streaming_auth::ConfigError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Algorithm::parse_list(list).map(Self)
    }
}

impl<'de> Deserialize<'de> for Algorithms {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Algorithms {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = self.0.iter().map(|algorithm| algorithm.name()).collect();
        serializer.serialize_str(&names.join(","))
    }
}

impl Algorithms {
    /// Whether `algorithm` is accepted.
    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.0.contains(&algorithm)
    }
}
