//! HMAC-SHA256 signatures for URLs the service serves itself (the embedded
//! object store, and later manifest grants).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Well-formed but past its expiry.
    #[error("signature expired")]
    Expired,
    /// Not a signature of this request by this key.
    #[error("signature invalid")]
    Invalid,
}

/// Signs and verifies `(method, resource, expiry)` triples.
#[derive(Clone)]
pub struct UrlSigner {
    keyed: HmacSha256,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlSigner(<key redacted>)")
    }
}

impl UrlSigner {
    /// The shortest key accepted, in bytes.
    pub const MIN_KEY_LEN: usize = 32;

    /// A signer with `key` (at least 32 bytes).
    ///
    /// # Errors
    /// [`ShortKey`] if the key is shorter than [`Self::MIN_KEY_LEN`].
    pub fn new(key: &[u8]) -> Result<Self, ShortKey> {
        if key.len() < Self::MIN_KEY_LEN {
            return Err(ShortKey);
        }
        // HMAC takes keys of any length; this cannot fail.
        let keyed = HmacSha256::new_from_slice(key).map_err(|_| ShortKey)?;
        Ok(Self { keyed })
    }

    /// The URL-safe base64 signature of `method resource expires`.
    pub fn sign(&self, method: &str, resource: &str, expires_unix: i64) -> String {
        let mac = self.mac(method, resource, expires_unix);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Checks a signature in constant time, then its expiry against `now`.
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] for a wrong or malformed signature,
    /// [`SignatureError::Expired`] for a valid one past its expiry.
    pub fn verify(
        &self,
        method: &str,
        resource: &str,
        expires_unix: i64,
        signature: &str,
        now: OffsetDateTime,
    ) -> Result<(), SignatureError> {
        // A SHA-256 MAC is 43 base64 characters; refuse anything else before decoding.
        if signature.len() != 43 {
            return Err(SignatureError::Invalid);
        }
        let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SignatureError::Invalid)?;
        self.mac(method, resource, expires_unix).verify_slice(&given).map_err(|_| SignatureError::Invalid)?;
        if now.unix_timestamp() >= expires_unix {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    fn mac(&self, method: &str, resource: &str, expires_unix: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        // Length-prefix the variable parts so no two triples share an encoding.
        mac.update(&(method.len() as u64).to_be_bytes());
        mac.update(method.as_bytes());
        mac.update(&(resource.len() as u64).to_be_bytes());
        mac.update(resource.as_bytes());
        mac.update(&expires_unix.to_be_bytes());
        mac
    }
}

/// The signing key is shorter than [`UrlSigner::MIN_KEY_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("URL signing key must be at least 32 bytes")]
pub struct ShortKey;

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    fn signer() -> UrlSigner {
        UrlSigner::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_fresh_signature_verifies() {
        let exp = NOW.unix_timestamp() + 60;
        let sig = signer().sign("GET", "tracks/a.wav", exp);
        assert_eq!(signer().verify("GET", "tracks/a.wav", exp, &sig, NOW), Ok(()));
    }

    #[test]
    fn any_change_invalidates() {
        let exp = NOW.unix_timestamp() + 60;
        let sig = signer().sign("GET", "tracks/a.wav", exp);
        let s = signer();
        assert_eq!(s.verify("PUT", "tracks/a.wav", exp, &sig, NOW), Err(SignatureError::Invalid));
        assert_eq!(s.verify("GET", "tracks/b.wav", exp, &sig, NOW), Err(SignatureError::Invalid));
        assert_eq!(s.verify("GET", "tracks/a.wav", exp + 1, &sig, NOW), Err(SignatureError::Invalid));
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(s.verify("GET", "tracks/a.wav", exp, &flipped, NOW), Err(SignatureError::Invalid));
        assert_eq!(s.verify("GET", "tracks/a.wav", exp, "", NOW), Err(SignatureError::Invalid));
        assert_eq!(s.verify("GET", "tracks/a.wav", exp, &"!".repeat(43), NOW), Err(SignatureError::Invalid));
        let other = UrlSigner::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify("GET", "tracks/a.wav", exp, &sig, NOW), Err(SignatureError::Invalid));
    }

    #[test]
    fn an_expired_signature_is_refused_only_after_checking_it() {
        let exp = NOW.unix_timestamp();
        let sig = signer().sign("GET", "k", exp);
        assert_eq!(signer().verify("GET", "k", exp, &sig, NOW), Err(SignatureError::Expired));
        assert_eq!(
            signer().verify("GET", "k", exp, &signer().sign("GET", "x", exp), NOW),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(UrlSigner::new(&[0u8; 31]).unwrap_err(), ShortKey);
        assert!(!format!("{:?}", signer()).contains('7'));
    }
}
