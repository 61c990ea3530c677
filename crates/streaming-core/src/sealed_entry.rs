//! Encryption of cached stream URLs (XChaCha20-Poly1305).
//!
//! A sealed entry is `[format 2][key version u16 BE][nonce 24][ciphertext][tag 16]`
//! (format 1, written by earlier builds, lacks the object fingerprint and is still read).
//! The nonce is fresh and random for every entry; the cache key is the
//! associated data, so an entry copied under another key does not open.
//! Several keys can open entries (rotation); one key seals new ones.
//!
//! XChaCha20-Poly1305 is built as its specification defines it
//! (draft-irtf-cfrg-xchacha §2.3): HChaCha20 (RustCrypto's `chacha20`) derives
//! a subkey from the key and the nonce's first 16 bytes, then the IETF
//! ChaCha20-Poly1305 AEAD (ring's assembly) runs under that subkey with the
//! nonce `[0; 4] ‖ nonce[16..24]`. The output is byte-identical to the
//! `chacha20poly1305` crate's `XChaCha20Poly1305` (a test proves it) and
//! faster, because the portable Poly1305 of that crate does not reach its
//! SIMD code under runtime CPU detection: seal + open of an S3-length entry
//! 1.17 µs against 4.49, a whole cache hit 1.83 µs against 2.94, about 1.6
//! times (`cargo bench -p streaming-core --bench core`; docs/benchmarks.md).

use std::collections::HashMap;
use std::fmt;

use chacha20::cipher::consts::U10;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use time::OffsetDateTime;

use crate::ports::StreamCacheKey;

const FORMAT: u8 = 2;
/// Entries of earlier builds: no object fingerprint.
const FORMAT_WITHOUT_OBJECT: u8 = 1;
const HEADER_LEN: usize = 1 + 2 + NONCE_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// generation (8) + expires_at millis (8) + size (8) + flags (1) + content-type length (2),
/// then (format 2) the object fingerprint (8)
const FIXED_PLAINTEXT_LEN: usize = 8 + 8 + 8 + 1 + 2;
const OBJECT_LEN: usize = 8;
const FLAG_RANGE: u8 = 1;

/// A cached stream URL, in the clear (only ever in memory).
#[derive(Clone, PartialEq)]
pub struct CachedStreamUrl {
    /// The presigned URL.
    pub url: String,
    /// When the URL's signature expires.
    pub expires_at: OffsetDateTime,
    /// MIME type of the object.
    pub content_type: String,
    /// Size of the object in bytes.
    pub file_size_bytes: u64,
    /// Whether the URL serves byte ranges.
    pub supports_range_requests: bool,
    /// The user's cache generation when the entry was sealed.
    pub generation: u64,
    /// [`object_fingerprint`] of the object the URL was signed for; 0 for
    /// an entry of an earlier build, which does not say.
    pub object: u64,
}

/// A stable 64-bit fingerprint of an object key (never 0), the same in every
/// instance and build: an entry signed for another object than the media's
/// current one is not served.
pub fn object_fingerprint(key: &str) -> u64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first).max(1)
}

impl fmt::Debug for CachedStreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStreamUrl")
            .field("url", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("content_type", &self.content_type)
            .field("file_size_bytes", &self.file_size_bytes)
            .field("generation", &self.generation)
            .field("object", &self.object)
            .finish()
    }
}

/// Why a keyring could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The key chosen for sealing is not among the keys.
    #[error("the current key version {0} has no key")]
    MissingCurrentKey(u16),
    /// Two keys share a version.
    #[error("key version {0} is given twice")]
    DuplicateVersion(u16),
    /// An entry of a key list is not `version:base64`.
    #[error("each key must be version:base64")]
    NotVersionAndKey,
    /// A version is not a number from 0 to 65535.
    #[error("a key version is not a number")]
    BadVersion,
    /// A key is not valid base64.
    #[error("a key is not valid base64")]
    NotBase64,
    /// A key is not 32 bytes.
    #[error("every key must be 32 bytes")]
    WrongLength,
    /// The list holds no key.
    #[error("no keys given")]
    NoKeys,
}

/// Why a sealed entry did not open. Every variant is a cache miss for the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than a header and a tag.
    #[error("entry is truncated")]
    Truncated,
    /// Written in a format this version does not know.
    #[error("entry has an unknown format")]
    UnknownFormat,
    /// Sealed with a key that is no longer (or not yet) configured.
    #[error("entry was sealed with unknown key version {0}")]
    UnknownKeyVersion(u16),
    /// Authentication failed: tampered, wrong key, or moved under another cache key.
    #[error("entry failed authentication")]
    Tampered,
    /// Authenticated but not decodable (written by an incompatible build).
    #[error("entry is malformed")]
    Malformed,
}

/// Why an entry could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The content type does not fit the entry's length field.
    #[error("content type is too long to cache")]
    ContentTypeTooLong,
    /// The cipher refused (never expected with valid inputs).
    #[error("encryption failed")]
    Encryption,
}

/// One XChaCha20-Poly1305 key.
#[derive(Clone)]
struct XChaChaKey([u8; 32]);

impl XChaChaKey {
    /// The IETF ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305 with
    /// `nonce` reduces to.
    fn subkey(&self, nonce: &[u8; NONCE_LEN]) -> Option<(LessSafeKey, Nonce)> {
        let (head, tail) = nonce.split_at(16);
        let subkey = chacha20::hchacha::<U10>((&self.0).into(), head.into());
        let key = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice()).ok()?;
        let mut ietf_nonce = [0u8; 12];
        ietf_nonce[4..].copy_from_slice(tail);
        Some((LessSafeKey::new(key), Nonce::assume_unique_for_key(ietf_nonce)))
    }

    /// Encrypts `in_out` in place and returns the tag.
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let (key, nonce) = self.subkey(nonce)?;
        let tag = key.seal_in_place_separate_tag(nonce, Aad::from(aad), in_out).ok()?;
        tag.as_ref().try_into().ok()
    }

    /// Decrypts `ciphertext ‖ tag` in place; the plaintext is the first `len - 16` bytes.
    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> bool {
        self.subkey(nonce).is_some_and(|(key, nonce)| key.open_in_place(nonce, Aad::from(aad), in_out).is_ok())
    }
}

/// The keys that seal and open cached stream URLs.
#[derive(Clone)]
pub struct CacheKeyring {
    current: u16,
    ciphers: HashMap<u16, XChaChaKey>,
}

impl fmt::Debug for CacheKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut versions: Vec<_> = self.ciphers.keys().collect();
        versions.sort();
        f.debug_struct("CacheKeyring")
            .field("current", &self.current)
            .field("versions", &versions)
            .finish_non_exhaustive()
    }
}

impl std::str::FromStr for CacheKeyring {
    type Err = KeyringError;

    /// Parses `version:base64, version:base64` (32-byte keys, standard
    /// base64); the highest version seals (see [`CacheKeyring::sealing_with`]).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        use base64::Engine as _;
        let mut keys = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (version, key) = item.split_once(':').ok_or(KeyringError::NotVersionAndKey)?;
            let version: u16 = version.trim().parse().map_err(|_| KeyringError::BadVersion)?;
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(key.trim()).map_err(|_| KeyringError::NotBase64)?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| KeyringError::WrongLength)?;
            keys.push((version, key));
        }
        let current = keys.iter().map(|(version, _)| *version).max().ok_or(KeyringError::NoKeys)?;
        Self::new(current, keys)
    }
}

impl CacheKeyring {
    /// A keyring that seals with `current` and opens entries of every given version.
    ///
    /// # Errors
    /// [`KeyringError`] when `current` has no key or a version repeats.
    pub fn new(current: u16, keys: impl IntoIterator<Item = (u16, [u8; 32])>) -> Result<Self, KeyringError> {
        let mut ciphers = HashMap::new();
        for (version, key) in keys {
            if ciphers.insert(version, XChaChaKey(key)).is_some() {
                return Err(KeyringError::DuplicateVersion(version));
            }
        }
        if !ciphers.contains_key(&current) {
            return Err(KeyringError::MissingCurrentKey(current));
        }
        Ok(Self { current, ciphers })
    }

    /// A keyring with one fresh random key (embedded mode: entries do not
    /// outlive the process anyway).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { current: 1, ciphers: HashMap::from([(1, XChaChaKey(key))]) }
    }

    /// The same keys, sealing with `version`.
    ///
    /// # Errors
    /// [`KeyringError::MissingCurrentKey`] when `version` has no key.
    pub fn sealing_with(self, version: u16) -> Result<Self, KeyringError> {
        if !self.ciphers.contains_key(&version) {
            return Err(KeyringError::MissingCurrentKey(version));
        }
        Ok(Self { current: version, ..self })
    }

    /// The version new entries are sealed with.
    pub fn current_version(&self) -> u16 {
        self.current
    }

    /// Encrypts `entry` for storage under `key`.
    ///
    /// # Errors
    /// [`SealError`] if the entry cannot be encoded.
    pub fn seal(&self, key: &StreamCacheKey, entry: &CachedStreamUrl) -> Result<Vec<u8>, SealError> {
        let content_type_len = u16::try_from(entry.content_type.len()).map_err(|_| SealError::ContentTypeTooLong)?;
        let cipher = self.ciphers.get(&self.current).ok_or(SealError::Encryption)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);

        let plaintext_len = FIXED_PLAINTEXT_LEN + OBJECT_LEN + entry.content_type.len() + entry.url.len();
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext_len + TAG_LEN);
        blob.push(FORMAT);
        blob.extend_from_slice(&self.current.to_be_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&entry.generation.to_be_bytes());
        blob.extend_from_slice(&unix_millis(entry.expires_at).to_be_bytes());
        blob.extend_from_slice(&entry.file_size_bytes.to_be_bytes());
        blob.push(if entry.supports_range_requests { FLAG_RANGE } else { 0 });
        blob.extend_from_slice(&content_type_len.to_be_bytes());
        blob.extend_from_slice(&entry.object.to_be_bytes());
        blob.extend_from_slice(entry.content_type.as_bytes());
        blob.extend_from_slice(entry.url.as_bytes());

        let tag = cipher.seal(&nonce, key.as_str().as_bytes(), &mut blob[HEADER_LEN..]).ok_or(SealError::Encryption)?;
        blob.extend_from_slice(&tag);
        Ok(blob)
    }

    /// Decrypts an entry read from under `key`.
    ///
    /// # Errors
    /// [`OpenError`] for anything but an intact entry sealed for `key` with a known key.
    pub fn open(&self, key: &StreamCacheKey, mut blob: Vec<u8>) -> Result<CachedStreamUrl, OpenError> {
        if blob.len() < HEADER_LEN + FIXED_PLAINTEXT_LEN + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let with_object = match blob[0] {
            FORMAT => true,
            FORMAT_WITHOUT_OBJECT => false,
            _ => return Err(OpenError::UnknownFormat),
        };
        let version = u16::from_be_bytes([blob[1], blob[2]]);
        let cipher = self.ciphers.get(&version).ok_or(OpenError::UnknownKeyVersion(version))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[3..HEADER_LEN]);
        let tag_at = blob.len() - TAG_LEN;
        if !cipher.open(&nonce, key.as_str().as_bytes(), &mut blob[HEADER_LEN..]) {
            return Err(OpenError::Tampered);
        }
        decode_plaintext(&blob[HEADER_LEN..tag_at], with_object)
    }
}

fn decode_plaintext(body: &[u8], with_object: bool) -> Result<CachedStreamUrl, OpenError> {
    let (fixed, rest) = body.split_at(FIXED_PLAINTEXT_LEN);
    let (object, rest) = if with_object {
        let object: [u8; OBJECT_LEN] =
            rest.get(..OBJECT_LEN).and_then(|s| s.try_into().ok()).ok_or(OpenError::Malformed)?;
        (u64::from_be_bytes(object), &rest[OBJECT_LEN..])
    } else {
        (0, rest)
    };
    let u64_at = |at: usize| -> Result<[u8; 8], OpenError> {
        fixed.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or(OpenError::Malformed)
    };
    let generation = u64::from_be_bytes(u64_at(0)?);
    let expires_millis = i64::from_be_bytes(u64_at(8)?);
    let file_size_bytes = u64::from_be_bytes(u64_at(16)?);
    let flags = fixed[24];
    let content_type_len = usize::from(u16::from_be_bytes([fixed[25], fixed[26]]));
    if content_type_len > rest.len() {
        return Err(OpenError::Malformed);
    }
    let (content_type, url) = rest.split_at(content_type_len);
    let expires_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires_millis) * 1_000_000)
        .map_err(|_| OpenError::Malformed)?;
    Ok(CachedStreamUrl {
        url: std::str::from_utf8(url).map_err(|_| OpenError::Malformed)?.to_owned(),
        expires_at,
        content_type: std::str::from_utf8(content_type).map_err(|_| OpenError::Malformed)?.to_owned(),
        file_size_bytes,
        supports_range_requests: flags & FLAG_RANGE != 0,
        generation,
        object,
    })
}

fn unix_millis(at: OffsetDateTime) -> i64 {
    // Millisecond precision is plenty for expiry; the cast cannot overflow for
    // any date `time` can represent.
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MediaId, UserId};
    use time::macros::datetime;

    #[test]
    fn a_key_list_parses_with_its_highest_version_sealing() {
        let k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k2 = "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=";
        let ring: CacheKeyring = format!("1:{k1}, 2:{k2}").parse().unwrap();
        assert_eq!(ring.current_version(), 2);
        assert_eq!(ring.clone().sealing_with(1).unwrap().current_version(), 1);
        assert_eq!(ring.sealing_with(3).unwrap_err(), KeyringError::MissingCurrentKey(3));
        for (spec, error) in [
            ("", KeyringError::NoKeys),
            ("1", KeyringError::NotVersionAndKey),
            (&format!("x:{k1}")[..], KeyringError::BadVersion),
            ("1:not base64!", KeyringError::NotBase64),
            ("1:AAEC", KeyringError::WrongLength),
            (&format!("1:{k1},1:{k2}")[..], KeyringError::DuplicateVersion(1)),
        ] {
            assert_eq!(spec.parse::<CacheKeyring>().unwrap_err(), error, "{spec}");
        }
    }

    fn key(user: &str) -> StreamCacheKey {
        StreamCacheKey::new(
            "t:",
            &UserId::try_from(user).unwrap(),
            &MediaId::try_from("01HXKZ3Y8Q4N7W2M5V6B9C0D1E").unwrap(),
        )
    }

    fn entry() -> CachedStreamUrl {
        CachedStreamUrl {
            url: "https://store.example/tracks/a.mp3?X-Amz-Signature=abc".into(),
            expires_at: datetime!(2026-01-01 12:00:00.123 UTC),
            content_type: "audio/mpeg".into(),
            file_size_bytes: 15_728_640,
            supports_range_requests: true,
            generation: 42,
            object: object_fingerprint("tracks/a.mp3"),
        }
    }

    fn ring(current: u16, versions: &[u16]) -> CacheKeyring {
        CacheKeyring::new(current, versions.iter().map(|&v| (v, [v as u8; 32]))).unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_url() {
        let ring = ring(1, &[1]);
        let sealed = ring.seal(&key("alice"), &entry()).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"X-Amz-"), "plaintext leaked into the entry");
        assert_eq!(ring.open(&key("alice"), sealed).unwrap(), entry());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let ring = ring(1, &[1]);
        let a = ring.seal(&key("alice"), &entry()).unwrap();
        let b = ring.seal(&key("alice"), &entry()).unwrap();
        assert_ne!(a[3..HEADER_LEN], b[3..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn an_entry_moved_under_another_key_does_not_open() {
        let ring = ring(1, &[1]);
        let sealed = ring.seal(&key("alice"), &entry()).unwrap();
        assert_eq!(ring.open(&key("mallory"), sealed), Err(OpenError::Tampered));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let ring = ring(1, &[1]);
        let sealed = ring.seal(&key("alice"), &entry()).unwrap();
        for byte in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[byte] ^= 0x01;
            assert!(ring.open(&key("alice"), tampered).is_err(), "flip at byte {byte} went unnoticed");
        }
    }

    #[test]
    fn truncated_and_foreign_entries_are_refused() {
        let ring = ring(1, &[1]);
        let sealed = ring.seal(&key("alice"), &entry()).unwrap();
        assert_eq!(ring.open(&key("alice"), sealed[..20].to_vec()), Err(OpenError::Truncated));
        assert_eq!(ring.open(&key("alice"), sealed[..sealed.len() - 1].to_vec()), Err(OpenError::Tampered));
        assert_eq!(ring.open(&key("alice"), Vec::new()), Err(OpenError::Truncated));
        let mut other_format = sealed;
        other_format[0] = 3;
        assert_eq!(ring.open(&key("alice"), other_format), Err(OpenError::UnknownFormat));
    }

    #[test]
    fn entries_of_the_format_without_an_object_still_open() {
        // Sealed as builds before the object fingerprint sealed them.
        let ring = ring(1, &[1]);
        let legacy = entry();
        let mut blob = vec![FORMAT_WITHOUT_OBJECT, 0, 1];
        let nonce = [7u8; NONCE_LEN];
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&legacy.generation.to_be_bytes());
        blob.extend_from_slice(&unix_millis(legacy.expires_at).to_be_bytes());
        blob.extend_from_slice(&legacy.file_size_bytes.to_be_bytes());
        blob.push(FLAG_RANGE);
        blob.extend_from_slice(&u16::try_from(legacy.content_type.len()).unwrap().to_be_bytes());
        blob.extend_from_slice(legacy.content_type.as_bytes());
        blob.extend_from_slice(legacy.url.as_bytes());
        let cipher = &ring.ciphers[&1];
        let tag = cipher.seal(&nonce, key("alice").as_str().as_bytes(), &mut blob[HEADER_LEN..]).unwrap();
        blob.extend_from_slice(&tag);
        assert_eq!(ring.open(&key("alice"), blob).unwrap(), CachedStreamUrl { object: 0, ..legacy });
    }

    #[test]
    fn object_fingerprints_are_stable_and_never_zero() {
        assert_eq!(object_fingerprint("tracks/a.mp3"), object_fingerprint("tracks/a.mp3"));
        assert_ne!(object_fingerprint("tracks/a.mp3"), object_fingerprint("tracks/b.mp3"));
        assert_ne!(object_fingerprint(""), 0);
        // Pinned: entries are shared between instances and builds through Redis.
        assert_eq!(object_fingerprint("tracks/a.mp3"), 0x2f4f3703c660fd89);
    }

    #[test]
    fn rotation_opens_old_versions_and_seals_with_the_current_one() {
        let old = ring(1, &[1]);
        let rotated = ring(2, &[1, 2]);
        let sealed_old = old.seal(&key("alice"), &entry()).unwrap();
        assert_eq!(rotated.open(&key("alice"), sealed_old).unwrap(), entry());

        let sealed_new = rotated.seal(&key("alice"), &entry()).unwrap();
        assert_eq!(u16::from_be_bytes([sealed_new[1], sealed_new[2]]), 2);
        assert_eq!(old.open(&key("alice"), sealed_new), Err(OpenError::UnknownKeyVersion(2)));
    }

    #[test]
    fn a_key_with_the_right_version_but_wrong_bytes_fails_authentication() {
        let sealed = ring(1, &[1]).seal(&key("alice"), &entry()).unwrap();
        let impostor = CacheKeyring::new(1, [(1, [9u8; 32])]).unwrap();
        assert_eq!(impostor.open(&key("alice"), sealed), Err(OpenError::Tampered));
    }

    #[test]
    fn the_construction_is_byte_identical_to_the_reference_xchacha20poly1305() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        use rand::Rng;
        let mut rng = rand::rng();
        for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 450, 1000, 4096] {
            let key: [u8; 32] = rng.random();
            let nonce: [u8; NONCE_LEN] = rng.random();
            let aad: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            let message: Vec<u8> = (0..len).map(|_| rng.random()).collect();

            let reference = chacha20poly1305::XChaCha20Poly1305::new(&key.into());
            let mut expected = message.clone();
            let expected_tag = reference.encrypt_in_place_detached(&nonce.into(), &aad, &mut expected).unwrap();

            let ours = XChaChaKey(key);
            let mut actual = message.clone();
            let tag = ours.seal(&nonce, &aad, &mut actual).unwrap();
            assert_eq!(actual, expected, "ciphertext of {len} bytes");
            assert_eq!(tag.as_slice(), expected_tag.as_slice(), "tag of {len} bytes");

            let mut sealed = expected;
            sealed.extend_from_slice(&expected_tag);
            assert!(ours.open(&nonce, &aad, &mut sealed), "opens the reference output");
            assert_eq!(&sealed[..len], &message[..]);
        }
    }

    #[test]
    fn keyrings_refuse_inconsistent_keys() {
        assert_eq!(CacheKeyring::new(3, [(1, [0u8; 32])]).unwrap_err(), KeyringError::MissingCurrentKey(3));
        assert_eq!(
            CacheKeyring::new(1, [(1, [0u8; 32]), (1, [1u8; 32])]).unwrap_err(),
            KeyringError::DuplicateVersion(1)
        );
        assert!(!format!("{:?}", ring(1, &[1])).contains("0x"));
    }
}
