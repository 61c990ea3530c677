//! Manifest grants: what a player presents to fetch a movie's manifests
//! without a bearer token. A grant names the user, the movie and the
//! session, expires, and is signed (HMAC-SHA256) by the service; the
//! manifest endpoint also checks, on every fetch, that the session is still
//! open and the user may still play the movie, so a grant is revoked by
//! stopping the session, a suspension, or a change of the movie.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use time::OffsetDateTime;

use crate::domain::{MediaId, SessionId, UserId};
use crate::url_signing::{SignatureError, UrlSigner};

/// What a grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestGrant {
    /// Whose.
    pub user: UserId,
    /// Which movie.
    pub movie: MediaId,
    /// Which session.
    pub session: SessionId,
    /// Until when.
    pub expires_at: OffsetDateTime,
}

/// Why a grant was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a grant, or not signed by this service.
    #[error("invalid manifest grant")]
    Invalid,
    /// Past its expiry.
    #[error("expired manifest grant")]
    Expired,
}

const PURPOSE: &str = "MANIFEST-GRANT";
/// Grants longer than this are refused before decoding.
const MAX_GRANT_LEN: usize = 1024;

impl ManifestGrant {
    /// The grant as a URL-safe string: `payload.expiry.signature`.
    pub fn encode(&self, signer: &UrlSigner) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!("{}\n{}\n{}", self.user, self.movie, self.session));
        let expires = self.expires_at.unix_timestamp();
        let signature = signer.sign(PURPOSE, &payload, expires);
        format!("{payload}.{expires}.{signature}")
    }

    /// The grant in `text`, if `signer` signed it and it has not expired at `now`.
    ///
    /// # Errors
    /// [`GrantError`].
    pub fn decode(text: &str, signer: &UrlSigner, now: OffsetDateTime) -> Result<Self, GrantError> {
        if text.len() > MAX_GRANT_LEN {
            return Err(GrantError::Invalid);
        }
        let mut parts = text.split('.');
        let (Some(payload), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GrantError::Invalid);
        };
        let expires: i64 = expires.parse().map_err(|_| GrantError::Invalid)?;
        signer.verify(PURPOSE, payload, expires, signature, now).map_err(|e| match e {
            SignatureError::Expired => GrantError::Expired,
            SignatureError::Invalid => GrantError::Invalid,
        })?;
        let decoded = URL_SAFE_NO_PAD.decode(payload).map_err(|_| GrantError::Invalid)?;
        let decoded = String::from_utf8(decoded).map_err(|_| GrantError::Invalid)?;
        let mut fields = decoded.split('\n');
        let (Some(user), Some(movie), Some(session), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(GrantError::Invalid);
        };
        Ok(Self {
            user: user.parse().map_err(|_| GrantError::Invalid)?,
            movie: movie.parse().map_err(|_| GrantError::Invalid)?,
            session: session.parse().map_err(|_| GrantError::Invalid)?,
            expires_at: OffsetDateTime::from_unix_timestamp(expires).map_err(|_| GrantError::Invalid)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn signer() -> UrlSigner {
        UrlSigner::new(&[7; 32]).unwrap()
    }

    fn grant() -> ManifestGrant {
        ManifestGrant {
            user: "01JG0DEM0VSER00000000000A1".parse().unwrap(),
            movie: "5eed0000-0000-4000-8000-000000000001".parse().unwrap(),
            session: "6a1f0e8e-4b4c-4e59-9d7e-0a4b8b1c2d3e".parse().unwrap(),
            expires_at: datetime!(2026-11-23 12:00 UTC),
        }
    }

    #[test]
    fn a_grant_round_trips_until_it_expires() {
        let text = grant().encode(&signer());
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "URL-safe: {text}");
        assert_eq!(ManifestGrant::decode(&text, &signer(), datetime!(2026-11-23 11:59 UTC)), Ok(grant()));
        assert_eq!(ManifestGrant::decode(&text, &signer(), datetime!(2026-11-23 12:00 UTC)), Err(GrantError::Expired));
    }

    #[test]
    fn tampered_foreign_and_garbage_grants_are_invalid() {
        let now = datetime!(2026-11-23 11:00 UTC);
        let text = grant().encode(&signer());
        let other = UrlSigner::new(&[8; 32]).unwrap();
        assert_eq!(ManifestGrant::decode(&text, &other, now), Err(GrantError::Invalid));
        let (payload, rest) = text.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD
            .encode("someone-else\n5eed0000-0000-4000-8000-000000000001\n6a1f0e8e-4b4c-4e59-9d7e-0a4b8b1c2d3e");
        assert_eq!(ManifestGrant::decode(&format!("{forged}.{rest}"), &signer(), now), Err(GrantError::Invalid));
        let later = text.replace(".1795", ".1895");
        assert_eq!(ManifestGrant::decode(&later, &signer(), now), Err(GrantError::Invalid), "expiry is signed");
        for garbage in ["", "a.b", "a.b.c.d", &"x".repeat(2000), &format!("{payload}.nan.sig")] {
            assert_eq!(ManifestGrant::decode(garbage, &signer(), now), Err(GrantError::Invalid), "{garbage}");
        }
    }
}
