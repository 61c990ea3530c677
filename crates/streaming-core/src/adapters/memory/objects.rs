use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{read, write};
use crate::domain::ObjectKey;
use crate::ports::{check_presign_expiry, ObjectInfo, ObjectStore, ObjectStoreError, PresignedUrl};

#[derive(Debug, Clone)]
struct Stored {
    bytes: Vec<u8>,
    content_type: Option<String>,
}

/// An [`ObjectStore`] in memory. Its "presigned" URLs (`memory://…`) carry
/// the key and expiry but no real signature: for unit tests only.
#[derive(Debug, Default)]
pub struct MemoryObjectStore {
    objects: RwLock<HashMap<ObjectKey, Stored>>,
}

impl MemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object.
    pub fn put(&self, key: ObjectKey, bytes: Vec<u8>, content_type: Option<&str>) {
        write(&self.objects).insert(key, Stored { bytes, content_type: content_type.map(str::to_owned) });
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, ObjectStoreError> {
        let objects = read(&self.objects);
        let stored = objects.get(key).ok_or(ObjectStoreError::NotFound)?;
        Ok(ObjectInfo { size_bytes: stored.bytes.len() as u64, content_type: stored.content_type.clone() })
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        signed_at: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedUrl, ObjectStoreError> {
        check_presign_expiry(expires_in)?;
        let expires_at = signed_at + expires_in;
        Ok(PresignedUrl {
            url: format!("memory://{}?expires={}", key.as_str(), expires_at.unix_timestamp()),
            expires_at,
        })
    }

    async fn read_small(&self, key: &ObjectKey, max_bytes: u64) -> Result<Vec<u8>, ObjectStoreError> {
        let objects = read(&self.objects);
        let stored = objects.get(key).ok_or(ObjectStoreError::NotFound)?;
        if stored.bytes.len() as u64 > max_bytes {
            return Err(ObjectStoreError::Invalid(format!("object is larger than {max_bytes} bytes")));
        }
        Ok(stored.bytes.clone())
    }
}
