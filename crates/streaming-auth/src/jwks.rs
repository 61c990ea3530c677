//! Public keys for RS256 and ES256 tokens from a JWKS document (RFC 7517),
//! read from a file or fetched from a URL, kept in memory and refreshed
//! when a token names a key id the set does not have (at most once per
//! `min_refresh_interval`, so unknown ids cannot hammer the issuer).
//!
//! Only asymmetric signing keys are taken: an `oct` (symmetric) key in the
//! set is ignored, so an RS256 public key can never be used as an HS256
//! secret, and so is a key whose `use` is not `sig`.
//!
//! A URL must be `https` (plain `http` only on loopback); a redirect is
//! followed only within the same origin, the document may be at most
//! [`MAX_JWKS_BYTES`], and the set is read again at most once per
//! [`MIN_REFRESH_FLOOR`] whatever interval is asked for.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use biscuit::jwa::SignatureAlgorithm;
use biscuit::jwk::{AlgorithmParameters, EllipticCurve, JWKSet, PublicKeyUse};
use biscuit::jws::Secret;
use biscuit::Empty;
use tokio::sync::Mutex;

/// The largest JWKS document read (an issuer's set is a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The shortest interval between two reads of the set a [`KeyStore`] accepts.
pub const MIN_REFRESH_FLOOR: Duration = Duration::from_millis(100);

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS file.
    File(PathBuf),
    /// A JWKS URL (the issuer's `jwks_uri`).
    Url(String),
}

/// One usable key.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub(crate) algorithm: SignatureAlgorithm,
    pub(crate) secret: Arc<Secret>,
}

/// The keys by id, and the id-less ones (usable when a token names no `kid`
/// and exactly one key of its algorithm exists).
#[derive(Clone, Default)]
pub(crate) struct Keys {
    by_id: HashMap<String, PublicKey>,
    without_id: Vec<PublicKey>,
}

impl Keys {
    /// The key for a token with `kid` and `algorithm`, if there is exactly one.
    pub(crate) fn find(&self, kid: Option<&str>, algorithm: SignatureAlgorithm) -> Option<PublicKey> {
        match kid {
            Some(kid) => self.by_id.get(kid).filter(|k| k.algorithm == algorithm).cloned(),
            None => {
                let mut candidates =
                    self.by_id.values().chain(self.without_id.iter()).filter(|k| k.algorithm == algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.by_id.len() + self.without_id.len()
    }
}

/// Why keys could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWKS: {0}")]
pub struct JwksError(pub String);

/// Parses a JWKS document into the keys this verifier can use.
///
/// # Errors
/// [`JwksError`] if it is not a JWKS or holds no usable RS256/ES256 key.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<Keys, JwksError> {
    let set: JWKSet<Empty> = serde_json::from_slice(bytes).map_err(|_| JwksError("not a JWKS document".into()))?;
    let mut keys = Keys::default();
    for jwk in set.keys {
        if jwk.common.public_key_use.as_ref().is_some_and(|u| !matches!(u, PublicKeyUse::Signature)) {
            continue;
        }
        let declared = match jwk.common.algorithm {
            Some(biscuit::jwa::Algorithm::Signature(algorithm)) => Some(algorithm),
            Some(_) => continue,
            None => None,
        };
        let (algorithm, secret) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => (SignatureAlgorithm::RS256, rsa.jws_public_key_secret()),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                (SignatureAlgorithm::ES256, ec.jws_public_key_secret())
            }
            // Symmetric keys, other curves: never.
            _ => continue,
        };
        if declared.is_some_and(|declared| declared != algorithm) {
            continue;
        }
        let key = PublicKey { algorithm, secret: Arc::new(secret) };
        match jwk.common.key_id {
            Some(kid) => {
                keys.by_id.insert(kid, key);
            }
            None => keys.without_id.push(key),
        }
    }
    if keys.len() == 0 {
        return Err(JwksError("no RS256 or ES256 key in the set".into()));
    }
    Ok(keys)
}

/// The current keys of a [`KeySource`].
pub struct KeyStore {
    source: KeySource,
    client: Option<reqwest::Client>,
    keys: RwLock<Keys>,
    last_refresh: Mutex<Instant>,
    min_refresh_interval: Duration,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("source", &self.source).field("keys", &self.current().len()).finish()
    }
}

impl KeyStore {
    /// Loads the keys (a service must not start without them).
    ///
    /// # Errors
    /// [`JwksError`] if the source cannot be read or holds no usable key.
    pub async fn load(source: KeySource, min_refresh_interval: Duration) -> Result<Self, JwksError> {
        let client = match &source {
            KeySource::Url(url) => {
                check_url(url)?;
                Some(
                    reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .redirect(same_origin_redirects())
                        .build()
                        .map_err(|e| JwksError(e.to_string()))?,
                )
            }
            KeySource::File(_) => None,
        };
        let keys = fetch(&source, client.as_ref()).await?;
        Ok(Self {
            source,
            client,
            keys: RwLock::new(keys),
            last_refresh: Mutex::new(Instant::now()),
            min_refresh_interval: min_refresh_interval.max(MIN_REFRESH_FLOOR),
        })
    }

    pub(crate) fn current(&self) -> Keys {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Reads the source again, unless that was done less than
    /// `min_refresh_interval` ago; returns whether it did. On failure the
    /// old keys stay.
    ///
    /// # Errors
    /// [`JwksError`] if the source cannot be read.
    pub async fn refresh(&self) -> Result<bool, JwksError> {
        let mut last = self.last_refresh.lock().await;
        if last.elapsed() < self.min_refresh_interval {
            return Ok(false);
        }
        *last = Instant::now();
        let keys = fetch(&self.source, self.client.as_ref()).await?;
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(true)
    }
}

async fn fetch(source: &KeySource, client: Option<&reqwest::Client>) -> Result<Keys, JwksError> {
    let bytes = match (source, client) {
        (KeySource::File(path), _) => {
            tokio::fs::read(path).await.map_err(|e| JwksError(format!("{}: {e}", path.display())))?
        }
        (KeySource::Url(url), Some(client)) => {
            let mut response = client.get(url).send().await.map_err(|e| JwksError(format!("fetching: {e}")))?;
            if !response.status().is_success() {
                return Err(JwksError(format!("fetching answered {}", response.status())));
            }
            let too_large = || JwksError(format!("the document is larger than {MAX_JWKS_BYTES} bytes"));
            if response.content_length().is_some_and(|length| length > MAX_JWKS_BYTES as u64) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| JwksError(format!("reading: {e}")))? {
                if body.len() + chunk.len() > MAX_JWKS_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            body
        }
        (KeySource::Url(_), None) => return Err(JwksError("no HTTP client".into())),
    };
    parse_jwks(&bytes)
}

/// A JWKS URL this store will fetch: `https`, or `http` on loopback.
fn check_url(url: &str) -> Result<(), JwksError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| JwksError("the JWKS URL is not a URL".into()))?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(JwksError("the JWKS URL must be https (plain http only on loopback)".into())),
    }
}

/// Redirects are followed (at most 5) only within the URL's own origin.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if same_origin && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}
