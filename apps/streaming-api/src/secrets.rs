//! The secrets every instance must share. Each can be set on its own (for
//! its own rotation); where one is not, it is derived from `auth.secret`,
//! the root every instance already shares (HKDF-SHA256, a label each, so
//! every instance derives the same). Without either, a single instance
//! generates one at random for its lifetime; with a shared store (Redis or
//! PostgreSQL) that would silently break grants, cached entries and object
//! URLs between instances, so the start stops instead, naming each.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use streaming_auth::Algorithm;

use crate::settings::{CacheKind, Settings, StorageKind};
use crate::startup::StartupError;

/// The HKDF salt: this service's, so a root shared with other programs
/// (the cinema's `JWT_SECRET_KEY`) gives keys only this service derives.
const SALT: &[u8] = b"streamgate secrets v1";

/// The key version a derived `cache.encryption_keys` ring holds.
pub const DERIVED_CACHE_KEY_VERSION: u16 = 1;

/// 32 bytes derived from `root` for `label` (the setting's name).
fn derive(root: &SecretString, label: &str) -> [u8; 32] {
    let mut key = [0_u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 × 32: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(SALT), root.expose_secret().as_bytes()).expand(label.as_bytes(), &mut key);
    key
}

/// Fills in every shared secret that is unset but derivable, and returns
/// the names of those it derived.
///
/// # Errors
/// [`StartupError::Config`] naming every secret that a shared store needs
/// and that is neither set nor derivable.
pub fn complete(settings: &mut Settings) -> Result<Vec<&'static str>, StartupError> {
    let shared = settings.redis.url.is_some() || settings.postgres.url.is_some();
    let hs256 = settings.auth.algorithms.accepts(Algorithm::Hs256);
    let root = settings.auth.secret.clone();
    let mut derived = Vec::new();
    let mut missing = Vec::new();
    if hs256 && root.is_none() {
        missing.push("auth.secret");
    }
    let mut fill = |name: &'static str, slot: &mut Option<SecretString>, encode: fn(&[u8; 32]) -> String| {
        if slot.is_some() {
            return;
        }
        match &root {
            Some(root) => {
                *slot = Some(SecretString::from(encode(&derive(root, name))));
                derived.push(name);
            }
            None => missing.push(name),
        }
    };
    fill("playback.grant_secret", &mut settings.playback.grant_secret, |key| streaming_core::encoding::hex(key));
    // Only a shared cache needs a shared key; an instance's own may be
    // random, but is derived like the others where it can be.
    if settings.cache.kind == CacheKind::Redis || root.is_some() {
        fill("cache.encryption_keys", &mut settings.cache.encryption_keys, |key| {
            format!("{DERIVED_CACHE_KEY_VERSION}:{}", STANDARD.encode(key))
        });
    }
    if settings.storage.kind == StorageKind::Localfs {
        fill("storage.signing_key", &mut settings.storage.signing_key, |key| streaming_core::encoding::hex(key));
    }
    if shared && !missing.is_empty() {
        let store = if settings.postgres.url.is_some() { "postgres.url" } else { "redis.url" };
        return Err(StartupError::Config(format!(
            "with a shared store ({store}) every instance needs the same {}: set each, or set auth.secret \
             to derive the others from it",
            missing.join(", ")
        )));
    }
    Ok(derived)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
    }

    const ROOT: (&str, &str) = ("STREAMING__AUTH__SECRET", "a-shared-root-secret-of-at-least-32-bytes");

    #[test]
    fn the_others_are_derived_from_the_root_the_same_on_every_instance() {
        let mut a = settings(&[ROOT, ("STREAMING__POSTGRES__URL", "postgres://db/x")]);
        let mut b = a.clone();
        assert_eq!(
            complete(&mut a).unwrap(),
            ["playback.grant_secret", "cache.encryption_keys", "storage.signing_key"]
        );
        complete(&mut b).unwrap();
        let grant = |s: &Settings| s.playback.grant_secret.as_ref().unwrap().expose_secret().to_owned();
        assert_eq!(grant(&a), grant(&b), "every instance derives the same");
        assert_eq!(grant(&a).len(), 64);
        let signing = a.storage.signing_key.as_ref().unwrap().expose_secret().to_owned();
        assert_ne!(grant(&a), signing, "a distinct label each");
        assert!(a.cache.encryption_keys.as_ref().unwrap().expose_secret().starts_with("1:"));
        let mut other_root = settings(&[("STREAMING__AUTH__SECRET", "another-root-secret-of-at-least-32-bytes")]);
        complete(&mut other_root).unwrap();
        assert_ne!(grant(&a), grant(&other_root));
    }

    /// The README's word on production settings names every secret an
    /// instance would otherwise derive or make up for itself.
    #[test]
    fn the_readme_names_every_shared_secret() {
        let readme = include_str!("../../../README.md");
        let mut s = settings(&[ROOT, ("STREAMING__POSTGRES__URL", "postgres://db/x")]);
        let mut named = complete(&mut s).unwrap();
        named.push("auth.secret");
        let section = readme.split("## Configuration").nth(1).unwrap_or_default();
        for name in named {
            assert!(section.contains(&format!("`{name}`")), "README's configuration section omits `{name}`");
        }
    }

    #[test]
    fn a_secret_set_on_its_own_is_kept() {
        let mut s =
            settings(&[ROOT, ("STREAMING__PLAYBACK__GRANT_SECRET", "its-own-grant-secret-of-at-least-32-bytes")]);
        let derived = complete(&mut s).unwrap();
        assert!(!derived.contains(&"playback.grant_secret"));
        assert_eq!(s.playback.grant_secret.unwrap().expose_secret(), "its-own-grant-secret-of-at-least-32-bytes");
    }

    #[test]
    fn a_shared_store_without_a_root_names_every_missing_secret() {
        let mut s = settings(&[("STREAMING__REDIS__URL", "redis://r"), ("STREAMING__CACHE__KIND", "redis")]);
        let message = complete(&mut s).unwrap_err().to_string();
        for name in
            ["redis.url", "auth.secret", "playback.grant_secret", "cache.encryption_keys", "storage.signing_key"]
        {
            assert!(message.contains(name), "{name}: {message}");
        }
        // An S3 store signs its own URLs; an in-process cache keeps its own key.
        let mut s = settings(&[
            ("STREAMING__POSTGRES__URL", "postgres://db/x"),
            ("STREAMING__STORAGE__KIND", "s3"),
            ("STREAMING__AUTH__ALGORITHMS", "RS256"),
        ]);
        let message = complete(&mut s).unwrap_err().to_string();
        let named = message.split("the same ").nth(1).and_then(|rest| rest.split(':').next()).unwrap();
        assert_eq!(named, "playback.grant_secret", "{message}");
    }

    #[test]
    fn alone_nothing_is_required() {
        let mut s = settings(&[]);
        assert!(complete(&mut s).unwrap().is_empty());
        assert!(s.playback.grant_secret.is_none(), "random per process, as before");
    }
}
