//! # streaming-localfs
//!
//! The embedded [`ObjectStore`]: objects are files under a directory, and
//! "presigned" URLs point at the service's own `/objects/{key}` route, signed
//! with HMAC-SHA256 over method, key and expiry. The service verifies the
//! signature (constant time) before serving a byte.
//!
//! [`JsonLinesEventPublisher`] is the embedded mode's event sink,
//! [`JsonLinesAuditLog`] its trail of operators' changes.

mod audit;
mod events;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::domain::ObjectKey;
use streaming_core::ports::{check_presign_expiry, ObjectInfo, ObjectStore, ObjectStoreError, PresignedUrl};
use streaming_core::url_signing::{SignatureError, UrlSigner};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;

pub use audit::JsonLinesAuditLog;
pub use events::JsonLinesEventPublisher;

/// The route under which the service serves signed objects.
pub const OBJECTS_ROUTE: &str = "/objects/";

/// Why a signed object request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The path is not a valid, safe object key.
    #[error("malformed object path")]
    BadPath,
    /// The signature is missing, malformed or wrong.
    #[error("invalid signature")]
    BadSignature,
    /// The signature has expired.
    #[error("signature expired")]
    Expired,
    /// No such object.
    #[error("object not found")]
    NotFound,
}

/// An object the caller may now serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServableObject {
    /// The file to serve, inside the store's root.
    pub path: PathBuf,
    /// Its MIME type, from its extension.
    pub content_type: &'static str,
}

/// An [`ObjectStore`] over a directory.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    root: PathBuf,
    base_url: String,
    signer: UrlSigner,
}

impl LocalObjectStore {
    /// A store rooted at `root` (created if missing, then canonicalised),
    /// whose URLs start with `base_url` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// The I/O error if the directory cannot be created or resolved.
    pub async fn open(root: impl AsRef<Path>, base_url: &str, signer: UrlSigner) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(root.as_ref()).await?;
        let root = tokio::fs::canonicalize(root.as_ref()).await?;
        Ok(Self { root, base_url: base_url.trim_end_matches('/').to_owned(), signer })
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes an object (demo media, tests), creating parent directories.
    ///
    /// # Errors
    /// The I/O error if it cannot be written.
    pub async fn put(&self, key: &ObjectKey, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path_of(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Write then rename, so a reader never sees a half-written object.
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, &path).await
    }

    /// Checks a request for `/objects/{encoded_key}?exp=…&sig=…` and returns
    /// the file to serve. `method` is `GET` or `HEAD` (a URL signed for `GET`
    /// also answers `HEAD`, which reveals nothing more).
    ///
    /// # Errors
    /// [`AccessError`]: a bad path, a bad or expired signature, or no such object.
    pub async fn authorize(
        &self,
        encoded_key: &str,
        expires: Option<&str>,
        signature: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ServableObject, AccessError> {
        let decoded = streaming_core::encoding::percent_decode(encoded_key).ok_or(AccessError::BadPath)?;
        let key = ObjectKey::try_from(decoded.as_str()).map_err(|_| AccessError::BadPath)?;
        let expires: i64 = expires.and_then(|e| e.parse().ok()).ok_or(AccessError::BadSignature)?;
        let signature = signature.ok_or(AccessError::BadSignature)?;
        self.signer.verify("GET", key.as_str(), expires, signature, now).map_err(|e| match e {
            SignatureError::Expired => AccessError::Expired,
            SignatureError::Invalid => AccessError::BadSignature,
        })?;
        let path = self.existing_path(&key).await.map_err(|_| AccessError::NotFound)?;
        Ok(ServableObject { content_type: content_type_of(key.as_str()), path })
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // `ObjectKey` has no empty, `.` or `..` segments and no leading `/`,
        // so joining its segments stays under the root.
        key.segments().fold(self.root.clone(), |path, segment| path.join(segment))
    }

    /// The object's file, resolved through symlinks and checked to lie under the root.
    async fn existing_path(&self, key: &ObjectKey) -> Result<PathBuf, ObjectStoreError> {
        let resolved = tokio::fs::canonicalize(self.path_of(key)).await.map_err(io_error)?;
        if !resolved.starts_with(&self.root) {
            return Err(ObjectStoreError::NotFound);
        }
        let meta = tokio::fs::metadata(&resolved).await.map_err(io_error)?;
        if !meta.is_file() {
            return Err(ObjectStoreError::NotFound);
        }
        Ok(resolved)
    }
}

fn io_error(error: std::io::Error) -> ObjectStoreError {
    match error.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => ObjectStoreError::NotFound,
        _ => ObjectStoreError::Unavailable(error.kind().to_string()),
    }
}

/// The MIME type of a key, from its extension.
pub fn content_type_of(key: &str) -> &'static str {
    let extension = key.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("m4a") => "audio/mp4",
        Some("aac") => "audio/aac",
        Some("flac") => "audio/flac",
        Some("ogg" | "oga" | "opus") => "audio/ogg",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("ts") => "video/mp2t",
        Some("m4s") => "video/iso.segment",
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        _ => "application/octet-stream",
    }
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, ObjectStoreError> {
        let path = self.existing_path(key).await?;
        let meta = tokio::fs::metadata(&path).await.map_err(io_error)?;
        Ok(ObjectInfo { size_bytes: meta.len(), content_type: Some(content_type_of(key.as_str()).to_owned()) })
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        signed_at: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedUrl, ObjectStoreError> {
        check_presign_expiry(expires_in)?;
        let expires_at = signed_at + expires_in;
        let exp = expires_at.unix_timestamp();
        let sig = self.signer.sign("GET", key.as_str(), exp);
        let url = format!(
            "{}{OBJECTS_ROUTE}{}?exp={exp}&sig={sig}",
            self.base_url,
            streaming_core::encoding::percent_encode_path(key.as_str())
        );
        Ok(PresignedUrl { url, expires_at: OffsetDateTime::from_unix_timestamp(exp).unwrap_or(expires_at) })
    }

    async fn read_small(&self, key: &ObjectKey, max_bytes: u64) -> Result<Vec<u8>, ObjectStoreError> {
        let path = self.existing_path(key).await?;
        let file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        // Read one byte past the limit rather than trusting metadata, which a
        // concurrent writer could change between the check and the read.
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).await.map_err(io_error)?;
        if bytes.len() as u64 > max_bytes {
            return Err(ObjectStoreError::Invalid(format!("object is larger than {max_bytes} bytes")));
        }
        Ok(bytes)
    }
}

/// A directory on this machine is always ready.
impl streaming_core::ports::ReadinessCheck for LocalObjectStore {
    fn unready_reason(&self) -> Option<&'static str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    async fn store(dir: &Path) -> LocalObjectStore {
        LocalObjectStore::open(dir.join("objects"), "http://127.0.0.1:8080/", UrlSigner::new(&[3u8; 32]).unwrap())
            .await
            .unwrap()
    }

    fn query(url: &str) -> (String, String, String) {
        let rest = url.strip_prefix("http://127.0.0.1:8080/objects/").unwrap();
        let (path, query) = rest.split_once('?').unwrap();
        let mut exp = String::new();
        let mut sig = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("exp", v) => exp = v.into(),
                ("sig", v) => sig = v.into(),
                _ => panic!("unexpected parameter"),
            }
        }
        (path.into(), exp, sig)
    }

    #[tokio::test]
    async fn keeps_the_object_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let key = ObjectKey::try_from("tracks/a.wav").unwrap();
        store.put(&key, b"RIFF-bytes").await.unwrap();
        let missing = ObjectKey::try_from("tracks/none.wav").unwrap();
        streaming_core::contract::object_store(&store, &key, b"RIFF-bytes", &missing).await;
    }

    #[tokio::test]
    async fn a_presigned_url_authorizes_exactly_its_object_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let key = ObjectKey::try_from("tracks/with space & ü.wav").unwrap();
        store.put(&key, b"bytes").await.unwrap();
        let url = store.presign_get(&key, NOW, Duration::from_secs(120)).await.unwrap();
        assert_eq!(url.expires_at, NOW + Duration::from_secs(120));
        let (path, exp, sig) = query(&url.url);
        assert_eq!(path, "tracks/with%20space%20%26%20%C3%BC.wav");

        let ok = store.authorize(&path, Some(&exp), Some(&sig), NOW).await.unwrap();
        assert_eq!(ok.path, store.root().join("tracks").join("with space & ü.wav"));
        assert_eq!(ok.content_type, "audio/wav");

        let later = NOW + Duration::from_secs(120);
        assert_eq!(store.authorize(&path, Some(&exp), Some(&sig), later).await, Err(AccessError::Expired));
        let longer = (NOW.unix_timestamp() + 3600).to_string();
        assert_eq!(store.authorize(&path, Some(&longer), Some(&sig), NOW).await, Err(AccessError::BadSignature));
        assert_eq!(store.authorize(&path, Some(&exp), None, NOW).await, Err(AccessError::BadSignature));
        assert_eq!(store.authorize(&path, None, Some(&sig), NOW).await, Err(AccessError::BadSignature));
        assert_eq!(store.authorize(&path, Some("soon"), Some(&sig), NOW).await, Err(AccessError::BadSignature));
    }

    #[tokio::test]
    async fn a_signature_for_one_key_opens_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        for name in ["tracks/a.wav", "tracks/b.wav"] {
            store.put(&ObjectKey::try_from(name).unwrap(), b"x").await.unwrap();
        }
        let url = store
            .presign_get(&ObjectKey::try_from("tracks/a.wav").unwrap(), NOW, Duration::from_secs(60))
            .await
            .unwrap();
        let (_, exp, sig) = query(&url.url);
        assert_eq!(store.authorize("tracks/b.wav", Some(&exp), Some(&sig), NOW).await, Err(AccessError::BadSignature));
    }

    #[tokio::test]
    async fn traversal_is_impossible() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"outside").unwrap();
        let store = store(dir.path()).await;
        let signer = UrlSigner::new(&[3u8; 32]).unwrap();
        let exp = (NOW.unix_timestamp() + 60).to_string();
        for attack in [
            "../secret.txt",
            "%2E%2E/secret.txt",
            "tracks/..%2F..%2Fsecret.txt",
            "%2Fetc%2Fpasswd",
            "a%00b",
            "%ZZ",
            "a\\..\\b",
        ] {
            // Even with a valid signature over the decoded path, these never resolve.
            let decoded = streaming_core::encoding::percent_decode(attack).unwrap_or_default();
            let sig = signer.sign("GET", &decoded, exp.parse().unwrap());
            assert_eq!(
                store.authorize(attack, Some(&exp), Some(&sig), NOW).await,
                Err(AccessError::BadPath),
                "{attack}"
            );
        }

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), store.root().join("link.txt")).unwrap();
            let sig = signer.sign("GET", "link.txt", exp.parse().unwrap());
            assert_eq!(store.authorize("link.txt", Some(&exp), Some(&sig), NOW).await, Err(AccessError::NotFound));
            let key = ObjectKey::try_from("link.txt").unwrap();
            assert_eq!(store.read_small(&key, 100).await, Err(ObjectStoreError::NotFound));
        }
    }

    #[tokio::test]
    async fn directories_are_not_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store.put(&ObjectKey::try_from("tracks/a.wav").unwrap(), b"x").await.unwrap();
        assert_eq!(store.head(&ObjectKey::try_from("tracks").unwrap()).await, Err(ObjectStoreError::NotFound));
    }
}
