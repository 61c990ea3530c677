//! A team's program around `streaming-core`: their CDN signs URLs, memory adapters stand where their
//! database would, and their back office edits the catalog through the admin use case, whose changes
//! reach the URL cache. Walk-through: `docs/embedding.md`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use streaming_core::adapters::{MemoryAuditLog, MemoryCatalog, MemorySubscriptions, MokaUrlCache, SystemClock};
use streaming_core::admin::{AdminPorts, CatalogAdmin, Preconditions};
use streaming_core::changes::{CatalogChanges, ChangePorts};
use streaming_core::domain::{Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, Visibility};
use streaming_core::ports::{ObjectInfo, ObjectStore, ObjectStoreError as StoreError, PresignedUrl};
use streaming_core::{encoding, CacheKeyring, StreamUrlService, StreamingPorts, StreamingService, StreamingSettings};
use time::OffsetDateTime;

/// Their CDN: a URL carries its expiry and an HMAC of both.
struct Cdn(Vec<u8>);

#[async_trait]
impl ObjectStore for Cdn {
    async fn head(&self, _key: &ObjectKey) -> Result<ObjectInfo, StoreError> {
        Ok(ObjectInfo { size_bytes: 4_200_000, content_type: Some("audio/mpeg".into()) })
    }
    async fn presign_get(
        &self,
        key: &ObjectKey,
        at: OffsetDateTime,
        ttl: Duration,
    ) -> Result<PresignedUrl, StoreError> {
        let (path, expires_at) = (format!("/{}?exp={}", key.as_str(), (at + ttl).unix_timestamp()), at + ttl);
        let mac = Hmac::<sha2::Sha256>::new_from_slice(&self.0).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let signature = encoding::hex(&mac.chain_update(path.as_bytes()).finalize().into_bytes());
        Ok(PresignedUrl { url: format!("https://cdn.example.com{path}&sig={signature}"), expires_at })
    }
    async fn read_small(&self, _key: &ObjectKey, _max: u64) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::Invalid("tracks only, no manifests".into()))
    }
}

/// The URL service over their CDN, and the admin use case whose changes reach its cache.
fn wire(cdn: Cdn) -> (Arc<StreamUrlService>, CatalogAdmin) {
    let catalog = Arc::new(MemoryCatalog::new());
    let clock = Arc::new(SystemClock);
    let cache = Arc::new(MokaUrlCache::new(16 << 20));
    let subscriptions = Arc::new(MemorySubscriptions::new());
    let objects = Arc::new(cdn);
    let ports = StreamingPorts { catalog: catalog.clone(), objects, cache, subscriptions, clock: clock.clone() };
    let streaming = Arc::new(StreamUrlService::new(ports, CacheKeyring::random(), StreamingSettings::default()));
    let changes = Arc::new(CatalogChanges::new(ChangePorts::new(catalog.clone(), streaming.clone())));
    let audit = Arc::new(MemoryAuditLog::new());
    (streaming, CatalogAdmin::new(AdminPorts { changes, catalog, audit, clock }))
}

#[allow(clippy::print_stdout)] // a signed URL is a credential: printed here, never logged
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (streaming, admin) = wire(Cdn(b"the-cdn-signing-key-of-this-team".to_vec()));
    let (id, uploader) = (MediaId::parse_ulid("01J9ZQ4M5N6P7Q8R9S0T1V2W3A")?, UserId::try_from("uploader-7")?);
    let song = Media {
        id: id.clone(),
        kind: MediaKind::Track,
        owner: Some(uploader.clone()),
        status: MediaStatus::Ready,
        object_key: ObjectKey::try_from("songs/first-light.mp3")?,
        content_type: "audio/mpeg".into(),
        size_bytes: 4_200_000,
        duration_seconds: Some(210.0),
        visibility: Visibility::Private,
        required_features: PlanFeatures::default(),
    };
    admin.put_media("back-office", song, &Preconditions::default()).await?;
    println!("the uploader's URL: {}", streaming.get_stream_url(&id, &uploader).await?.url);
    admin.delete_media("back-office", &id, &Preconditions::default()).await?;
    println!("after the delete: {:?}", streaming.get_stream_url(&id, &uploader).await.err());
    println!("audit: {:?}", admin.audit_trail(10).await?.into_iter().map(|r| r.action).collect::<Vec<_>>());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streaming_core::ports::MockObjectStore;
    use streaming_core::StreamError;

    fn song(id: &MediaId, owner: &UserId) -> Media {
        Media {
            id: id.clone(),
            kind: MediaKind::Track,
            owner: Some(owner.clone()),
            status: MediaStatus::Ready,
            object_key: ObjectKey::try_from("songs/a.mp3").unwrap(),
            content_type: "audio/mpeg".into(),
            size_bytes: 1,
            duration_seconds: None,
            visibility: Visibility::Private,
            required_features: PlanFeatures::default(),
        }
    }

    /// The admin use case's change reaches the URL cache: a deleted song has no URL, even cached.
    #[tokio::test]
    async fn a_deleted_song_loses_its_cached_url() {
        let (streaming, admin) = wire(Cdn(vec![7; 32]));
        let (id, owner) = (MediaId::parse_ulid("01J9ZQ4M5N6P7Q8R9S0T1V2W3C").unwrap(), UserId::try_from("u").unwrap());
        admin.put_media("test", song(&id, &owner), &Preconditions::default()).await.unwrap();
        streaming.get_stream_url(&id, &owner).await.unwrap();
        assert!(streaming.get_stream_url(&id, &owner).await.unwrap().cache_hit);
        admin.delete_media("test", &id, &Preconditions::default()).await.unwrap();
        assert!(matches!(streaming.get_stream_url(&id, &owner).await, Err(StreamError::NotFound)));
    }

    /// A mocked port (feature `mock`): a refused listener never costs a signature.
    #[tokio::test]
    async fn a_refused_listener_never_reaches_the_signer() {
        let catalog = Arc::new(MemoryCatalog::new());
        let id = MediaId::parse_ulid("01J9ZQ4M5N6P7Q8R9S0T1V2W3D").unwrap();
        catalog.upsert(song(&id, &UserId::try_from("owner").unwrap()));
        let mut signer = MockObjectStore::new();
        signer.expect_presign_get().never();
        let ports = StreamingPorts {
            catalog,
            objects: Arc::new(signer),
            cache: Arc::new(MokaUrlCache::new(1 << 20)),
            subscriptions: Arc::new(MemorySubscriptions::new()),
            clock: Arc::new(SystemClock),
        };
        let service = StreamUrlService::new(ports, CacheKeyring::random(), StreamingSettings::default());
        let outcome = service.get_stream_url(&id, &UserId::try_from("listener").unwrap()).await;
        assert!(matches!(outcome, Err(StreamError::Forbidden(_))), "{outcome:?}");
    }

    #[tokio::test]
    async fn the_signature_covers_path_and_expiry() {
        let key = ObjectKey::try_from("songs/a.mp3").unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let one = Cdn(vec![7; 32]).presign_get(&key, at, Duration::from_secs(60)).await.unwrap();
        let later = Cdn(vec![7; 32]).presign_get(&key, at, Duration::from_secs(61)).await.unwrap();
        assert!(one.url.starts_with("https://cdn.example.com/songs/a.mp3?exp=1700000060&sig="), "{}", one.url);
        assert_ne!(one.url.split("sig=").nth(1), later.url.split("sig=").nth(1));
    }
}
