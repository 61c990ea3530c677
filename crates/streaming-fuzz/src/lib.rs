//! What the fuzz targets check, one function per target: each takes the
//! fuzzer's bytes and panics when a property does not hold. The cargo-fuzz
//! targets under `fuzz/` call these (run them with `cargo xtask fuzz`), and
//! `tests/regressions.rs` replays every saved input through them in
//! `cargo xtask test`, so a crash found once stays fixed.
//!
//! * [`ids`]: user, media and session ids and object keys parse or are
//!   refused, never panic, and what parses prints back to itself; object
//!   keys have no empty, `.` or `..` segment and survive the embedded
//!   store's URL encoding.
//! * [`token`]: no token the fuzzer writes is accepted (it cannot sign),
//!   and whatever header and claims a correctly signed token carries, the
//!   verifier answers without panicking and accepts only an `HS256` access
//!   token with a user and a future expiry.
//! * [`manifest`]: HLS and DASH rewriting of any bytes returns an error or
//!   UTF-8, and never signs a key outside the movie; grants decode or are refused.
//! * [`object_url`]: the embedded store serves no object for a forged
//!   URL, serves the object for a genuine one, and refuses it once any
//!   byte of the signature changes.

// Test support: a property that fails is a panic, which the fuzzer reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use streaming_auth::{TokenVerifier, VerifierOptions};
use streaming_core::domain::{MediaId, ObjectKey, SessionId, UserId};
use streaming_core::encoding::{percent_decode as decode_path, percent_encode_path as encode_path};
use streaming_core::manifest::{rewrite_dash, rewrite_hls, ManifestError, ManifestGrant, UriTarget};
use streaming_core::url_signing::UrlSigner;
use streaming_localfs::LocalObjectStore;
use time::OffsetDateTime;

/// The fuzz targets, by name (the directories of saved inputs too).
pub const TARGETS: [&str; 4] = ["ids", "token", "manifest", "object_url"];

/// Runs the check of `target` on `data`.
///
/// # Panics
/// When a property does not hold, or `target` is not one of [`TARGETS`].
pub fn check(target: &str, data: &[u8]) {
    match target {
        "ids" => ids(data),
        "token" => token(data),
        "manifest" => manifest(data),
        "object_url" => object_url(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// The instant every check treats as now.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// Ids and object keys: parsed or refused, and round trips.
pub fn ids(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(user) = UserId::try_from(text) {
        assert_eq!(UserId::try_from(user.to_string().as_str()).ok(), Some(user.clone()), "{text:?}");
    }
    if let Ok(media) = MediaId::try_from(text) {
        assert_eq!(MediaId::try_from(media.to_string().as_str()).ok(), Some(media.clone()), "{text:?}");
    }
    if let Ok(session) = text.parse::<SessionId>() {
        assert_eq!(session.to_string().parse::<SessionId>().ok(), Some(session), "{text:?}");
    }
    if let Ok(key) = ObjectKey::try_from(text) {
        object_key_is_safe(&key);
    }
    // A path of the embedded store's URLs: decoded, then held to the same rules.
    if let Some(decoded) = decode_path(text) {
        if let Ok(key) = ObjectKey::try_from(decoded.as_str()) {
            object_key_is_safe(&key);
        }
    }
}

fn object_key_is_safe(key: &ObjectKey) {
    let text = key.as_str();
    assert!(!text.starts_with('/') && !text.contains('\\') && !text.contains('\0'), "{text:?}");
    for segment in key.segments() {
        assert!(!matches!(segment, "" | "." | ".."), "segment {segment:?} in {text:?}");
    }
    assert_eq!(decode_path(&encode_path(text)).as_deref(), Some(text), "URL encoding round trip");
    assert_eq!(ObjectKey::try_from(text).ok().as_ref(), Some(key));
}

const TOKEN_SECRET: &str = "fuzzing-secret-for-hs256-tokens-0123456789";

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let options = VerifierOptions { token_type: Some("access".into()), ..VerifierOptions::default() };
        TokenVerifier::hs256(&SecretString::from(TOKEN_SECRET), options).unwrap()
    })
}

/// `header.claims.signature` with an HS256 signature by the verifier's secret.
fn signed(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Tokens: forged ones refused; signed ones with any content answered sanely.
pub fn token(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(verifier().verify(text, now()).is_err(), "accepted a token nobody signed: {text:?}");
    }
    // Even bytes: claims under the usual header; odd: header and claims split at the first 0xff.
    let (header, claims): (&[u8], &[u8]) = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => {
            let split = rest.iter().position(|b| *b == 0xff).unwrap_or(rest.len());
            (&rest[..split], rest.get(split + 1..).unwrap_or_default())
        }
        Some((_, rest)) => (br#"{"alg":"HS256","typ":"JWT"}"#, rest),
        None => return,
    };
    if let Ok(principal) = verifier().verify(&signed(header, claims), now()) {
        assert!(String::from_utf8_lossy(header).contains("HS256"), "accepted under header {header:?}");
        assert!(principal.expires_at + Duration::from_secs(30) > now(), "accepted expired: {claims:?}");
        assert!(!principal.user.as_str().is_empty());
        let claims = String::from_utf8_lossy(claims);
        assert!(claims.contains("access"), "accepted without type access: {claims:?}");
    }
}

fn grant_signer() -> &'static UrlSigner {
    static SIGNER: OnceLock<UrlSigner> = OnceLock::new();
    SIGNER.get_or_init(|| UrlSigner::new(b"fuzzing-grant-signing-key-0123456789").unwrap())
}

/// Manifests: rewritten or refused, never signing outside the movie.
pub fn manifest(data: &[u8]) {
    let root = ObjectKey::try_from("movies/m").unwrap();
    let mut sign = |_: UriTarget, key: &ObjectKey| -> Result<String, ManifestError> {
        assert!(key.as_str().starts_with("movies/m/"), "signed {key:?} outside the movie");
        object_key_is_safe(key);
        Ok(format!("signed/{}?sig=0", key.as_str()))
    };
    let hls = ObjectKey::try_from("movies/m/video/index.m3u8").unwrap();
    if let Ok(out) = rewrite_hls(data, &hls, &root, &mut sign) {
        assert!(std::str::from_utf8(&out).is_ok(), "the rewritten playlist is text");
    }
    let dash = ObjectKey::try_from("movies/m/video/index.mpd").unwrap();
    if let Ok(out) = rewrite_dash(data, &dash, &root, &mut sign) {
        assert!(std::str::from_utf8(&out).is_ok(), "the rewritten MPD is text");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(ManifestGrant::decode(text, grant_signer(), now()).is_err(), "accepted a grant nobody signed");
    }
}

/// The embedded store over a directory with one object, `tracks/a.wav`.
struct Objects {
    runtime: tokio::runtime::Runtime,
    store: LocalObjectStore,
    signer: UrlSigner,
}

fn objects() -> &'static Objects {
    static OBJECTS: OnceLock<Objects> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let root = std::env::temp_dir().join(format!("streamgate-fuzz-objects-{}", std::process::id()));
        let signer = UrlSigner::new(b"fuzzing-object-signing-key-0123456789").unwrap();
        let store = runtime.block_on(async {
            let store = LocalObjectStore::open(&root, "http://127.0.0.1:1", signer.clone()).await.unwrap();
            store.put(&ObjectKey::try_from("tracks/a.wav").unwrap(), b"RIFF").await.unwrap();
            store
        });
        Objects { runtime, store, signer }
    })
}

/// Object URLs of the embedded store: forged ones refused, genuine ones
/// served, a changed signature refused.
pub fn object_url(data: &[u8]) {
    let objects = objects();
    let authorize = |key: &str, expires: &str, signature: &str| {
        objects.runtime.block_on(objects.store.authorize(key, Some(expires), Some(signature), now()))
    };
    match data.split_first() {
        // `!key`: the key signed genuinely, then with each signature byte changed.
        Some((b'!', key)) => {
            let Ok(key) = std::str::from_utf8(key) else { return };
            let expires = now().unix_timestamp() + 60;
            let signature = objects.signer.sign("GET", key, expires);
            let served = authorize(&encode_path(key), &expires.to_string(), &signature);
            assert_eq!(served.is_ok(), key == "tracks/a.wav", "{key:?}: {served:?}");
            for at in 0..signature.len() {
                let mut changed = signature.clone().into_bytes();
                changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
                let changed = String::from_utf8(changed).unwrap();
                assert!(authorize(&encode_path(key), &expires.to_string(), &changed).is_err(), "{changed}");
            }
        }
        // Anything else: `key \n expires \n signature`, which nobody signed.
        _ => {
            let Ok(text) = std::str::from_utf8(data) else { return };
            let mut parts = text.splitn(3, '\n');
            let (key, expires, signature) =
                (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            assert!(authorize(key, expires, signature).is_err(), "served a forged URL: {text:?}");
        }
    }
}
