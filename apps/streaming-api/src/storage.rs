//! The configured object store: the embedded directory or S3.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use streaming_core::domain::ObjectKey;
use streaming_core::ports::{ObjectStore, ObjectStoreError, ReadinessCheck};
use streaming_core::url_signing::UrlSigner;
use streaming_localfs::LocalObjectStore;
use streaming_s3::S3ObjectStore;

use crate::settings::{Settings, StorageKind};
use crate::startup::StartupError;

/// The object store the settings chose.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A directory, served by this service's `/objects` route.
    Local(Arc<LocalObjectStore>),
    /// S3 or an S3-compatible server.
    S3(Arc<S3ObjectStore>),
}

impl Storage {
    /// Opens the configured store; `base_url` prefixes the local store's URLs.
    ///
    /// # Errors
    /// [`StartupError`] for incomplete settings or an unusable directory.
    pub async fn open(
        settings: &Settings,
        base_url: &str,
        random_secret: fn() -> SecretString,
    ) -> Result<Self, StartupError> {
        let storage = &settings.storage;
        match storage.kind {
            StorageKind::Localfs => {
                let signer = signer(&storage.signing_key.clone().unwrap_or_else(random_secret))?;
                let local = LocalObjectStore::open(&storage.root, base_url, signer)
                    .await
                    .map_err(|e| StartupError::Storage(format!("{}: {e}", storage.root.display())))?;
                Ok(Self::Local(Arc::new(local)))
            }
            StorageKind::S3 => {
                let store = Arc::new(s3_store(settings)?);
                if storage.s3.probe_interval_ms > 0 {
                    store.probe_every(std::time::Duration::from_millis(storage.s3.probe_interval_ms));
                }
                Ok(Self::S3(store))
            }
        }
    }

    /// Whether the storage settings can be used, without touching the store.
    ///
    /// # Errors
    /// [`StartupError::Config`] naming the setting.
    pub fn check(settings: &Settings) -> Result<(), StartupError> {
        let storage = &settings.storage;
        match (storage.kind, &storage.signing_key) {
            (StorageKind::Localfs, Some(key)) => signer(key).map(drop),
            (StorageKind::Localfs, None) => Ok(()),
            (StorageKind::S3, _) => s3_store(settings).map(drop),
        }
    }

    /// The store as the core's port.
    pub fn port(&self) -> Arc<dyn ObjectStore> {
        match self {
            Self::Local(local) => local.clone(),
            Self::S3(s3) => s3.clone(),
        }
    }

    /// The embedded store, when it is the configured one (it serves `/objects`).
    pub fn local(&self) -> Option<Arc<LocalObjectStore>> {
        match self {
            Self::Local(local) => Some(local.clone()),
            Self::S3(_) => None,
        }
    }

    /// The store as `/readyz` sees it.
    pub fn readiness(&self) -> Arc<dyn ReadinessCheck> {
        match self {
            Self::Local(local) => local.clone(),
            Self::S3(s3) => s3.clone(),
        }
    }

    /// Writes an object (demo media).
    ///
    /// # Errors
    /// [`ObjectStoreError::Unavailable`] when the store cannot take it.
    pub async fn put(&self, key: &ObjectKey, bytes: &[u8], content_type: &str) -> Result<(), ObjectStoreError> {
        match self {
            Self::Local(local) => local.put(key, bytes).await.map_err(|e| ObjectStoreError::Unavailable(e.to_string())),
            Self::S3(s3) => s3.put(key, bytes.to_vec(), content_type).await,
        }
    }
}

/// The local store's URL signer for `key` (`storage.signing_key`).
fn signer(key: &SecretString) -> Result<UrlSigner, StartupError> {
    UrlSigner::new(key.expose_secret().as_bytes())
        .map_err(|e| StartupError::Config(format!("storage.signing_key: {e}")))
}

/// The S3 store `storage.s3` names (no request made).
fn s3_store(settings: &Settings) -> Result<S3ObjectStore, StartupError> {
    settings.storage.s3.open().map_err(|e| StartupError::Config(format!("storage.s3: {e}")))
}
