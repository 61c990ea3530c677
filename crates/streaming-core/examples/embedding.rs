//! A backend team's own program around `streaming-core`: their catalog and
//! their CDN's URL signing become the core's ports, the core decides who may
//! play what and caches the signed URLs encrypted, and their unit tests mock
//! the ports. The walk-through is `docs/embedding.md`.
//!
//! ```sh
//! cargo run -p streaming-core --example embedding
//! cargo test -p streaming-core --example embedding
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use streaming_core::adapters::{MemorySubscriptions, MokaUrlCache, SystemClock};
use streaming_core::domain::{
    InvalidId, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures, UserId, Viewer, Visibility,
};
use streaming_core::ports::{CatalogError, MediaCatalog, ObjectInfo, ObjectStore, ObjectStoreError, PresignedUrl};
use streaming_core::{
    CacheKeyring, StreamError, StreamUrlService, StreamingPorts, StreamingService, StreamingSettings,
};
use time::OffsetDateTime;

/// The team's own record of a song, as their database keeps it.
#[derive(Clone)]
struct Song {
    uploader: String,
    file: String,
    bytes: u64,
    seconds: f64,
    published: bool,
    deleted: bool,
}

/// Adapter 1: the team's library is the core's [`MediaCatalog`].
#[derive(Default)]
struct Library {
    songs: RwLock<HashMap<MediaId, Song>>,
}

impl Library {
    fn add(&self, id: &MediaId, song: Song) {
        if let Ok(mut songs) = self.songs.write() {
            songs.insert(id.clone(), song);
        }
    }
}

#[async_trait]
impl MediaCatalog for Library {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        let songs = self.songs.read().map_err(|_| CatalogError::Unavailable("library lock poisoned".into()))?;
        let Some(song) = songs.get(id) else { return Ok(None) };
        let owner = UserId::try_from(song.uploader.as_str()).map_err(|e| CatalogError::Invalid(e.to_string()))?;
        let object_key = ObjectKey::try_from(song.file.as_str()).map_err(|e| CatalogError::Invalid(e.to_string()))?;
        Ok(Some(Media {
            id: id.clone(),
            kind: MediaKind::Track,
            owner: Some(owner),
            status: if song.deleted { MediaStatus::Deleted } else { MediaStatus::Ready },
            object_key,
            content_type: "audio/mpeg".into(),
            size_bytes: song.bytes,
            duration_seconds: Some(song.seconds),
            visibility: if song.published { Visibility::Public } else { Visibility::Private },
            required_features: PlanFeatures::default(),
        }))
    }

    async fn viewer<'a>(&self, _user: &UserId, _grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        // This team has no suspensions and no per-user grants.
        Ok(Viewer::default())
    }
}

/// Adapter 2: the team's CDN signs URLs with an HMAC of path and expiry; it
/// is the core's [`ObjectStore`].
struct CdnSigner {
    base: String,
    key: Vec<u8>,
    sizes: HashMap<String, u64>,
}

#[async_trait]
impl ObjectStore for CdnSigner {
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, ObjectStoreError> {
        let size = self.sizes.get(key.as_str()).ok_or(ObjectStoreError::NotFound)?;
        Ok(ObjectInfo { size_bytes: *size, content_type: Some("audio/mpeg".into()) })
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        signed_at: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedUrl, ObjectStoreError> {
        let expires_at = signed_at + expires_in;
        let path = format!("/{}", key.as_str());
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).map_err(|e| ObjectStoreError::Invalid(e.to_string()))?;
        mac.update(format!("{path}:{}", expires_at.unix_timestamp()).as_bytes());
        let signature = streaming_core::encoding::hex(&mac.finalize().into_bytes());
        let url = format!("{}{path}?expires={}&signature={signature}", self.base, expires_at.unix_timestamp());
        Ok(PresignedUrl { url, expires_at })
    }

    async fn read_small(&self, _key: &ObjectKey, _max_bytes: u64) -> Result<Vec<u8>, ObjectStoreError> {
        Err(ObjectStoreError::Invalid("this CDN serves tracks only, no manifests".into()))
    }
}

/// The service over the team's adapters and the core's own cache.
fn streaming(library: Arc<Library>, signer: Arc<dyn ObjectStore>) -> StreamUrlService {
    StreamUrlService::new(
        StreamingPorts {
            catalog: library,
            objects: signer,
            cache: Arc::new(MokaUrlCache::new(16 << 20)),
            subscriptions: Arc::new(MemorySubscriptions::new()),
            clock: Arc::new(SystemClock),
        },
        CacheKeyring::random(),
        StreamingSettings::default(),
    )
}

/// Track ids are ULIDs (the team's own ids would be mapped to them).
fn song_id(last: char) -> Result<MediaId, InvalidId> {
    MediaId::parse_ulid(&format!("01J9ZQ4M5N6P7Q8R9S0T1V2W3{last}"))
}

const UPLOADER: &str = "0b9c2a54-3d0e-4d5e-9a49-5b1d2b7d3c11";
const LISTENER: &str = "7f3e4c1a-9b2d-4e8f-8a6b-1c2d3e4f5a6b";

fn song(published: bool) -> Song {
    Song {
        uploader: UPLOADER.into(),
        file: "songs/first-light.mp3".into(),
        bytes: 4_200_000,
        seconds: 210.0,
        published,
        deleted: false,
    }
}

// What a service would answer over HTTP; printed here, never logged (a
// signed URL is a bearer credential).
#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let library = Arc::new(Library::default());
    let private_song = song_id('A')?;
    let public_song = song_id('B')?;
    library.add(&private_song, song(false));
    library.add(&public_song, song(true));
    let cdn = CdnSigner {
        base: "https://cdn.example.com".into(),
        key: b"the-cdn-signing-key-of-this-team".to_vec(),
        sizes: HashMap::from([("songs/first-light.mp3".to_owned(), 4_200_000)]),
    };
    let service = streaming(Arc::clone(&library), Arc::new(cdn));
    let uploader = UserId::try_from(UPLOADER)?;
    let listener = UserId::try_from(LISTENER)?;

    let first = service.get_stream_url(&private_song, &uploader).await?;
    let again = service.get_stream_url(&private_song, &uploader).await?;
    println!("the uploader's URL expires at {} (cache hit the second time: {})", first.expires_at, again.cache_hit);
    match service.get_stream_url(&private_song, &listener).await {
        Err(StreamError::Forbidden(denial)) => println!("another user is refused: {denial:?}"),
        other => println!("unexpected: {other:?}"),
    }
    let public = service.get_stream_url(&public_song, &listener).await?;
    println!(
        "a published song plays for anyone: {} bytes, ranges: {}",
        public.file_size_bytes, public.supports_range_requests
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streaming_core::ports::MockObjectStore;

    fn cdn() -> CdnSigner {
        CdnSigner { base: "https://cdn.test".into(), key: vec![7; 32], sizes: HashMap::new() }
    }

    /// The team's adapter under the core's own rules.
    #[tokio::test]
    async fn a_deleted_song_is_not_found_even_for_its_uploader() {
        let library = Arc::new(Library::default());
        let id = song_id('C').unwrap();
        library.add(&id, Song { deleted: true, ..song(false) });
        let outcome =
            streaming(library, Arc::new(cdn())).get_stream_url(&id, &UserId::try_from(UPLOADER).unwrap()).await;
        assert!(matches!(outcome, Err(StreamError::NotFound)), "{outcome:?}");
    }

    /// A mocked port (feature `mock`): a refused user never costs a signature.
    #[tokio::test]
    async fn a_refused_listener_never_reaches_the_signer() {
        let library = Arc::new(Library::default());
        let id = song_id('C').unwrap();
        library.add(&id, song(false));
        let mut signer = MockObjectStore::new();
        signer.expect_presign_get().never();
        let outcome =
            streaming(library, Arc::new(signer)).get_stream_url(&id, &UserId::try_from(LISTENER).unwrap()).await;
        assert!(matches!(outcome, Err(StreamError::Forbidden(_))), "{outcome:?}");
    }

    #[tokio::test]
    async fn the_signature_covers_path_and_expiry() {
        let key = ObjectKey::try_from("songs/a.mp3").unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let one = cdn().presign_get(&key, at, Duration::from_secs(60)).await.unwrap();
        let later = cdn().presign_get(&key, at, Duration::from_secs(61)).await.unwrap();
        assert!(one.url.starts_with("https://cdn.test/songs/a.mp3?expires=1700000060&signature="));
        assert_ne!(one.url.split("signature=").nth(1), later.url.split("signature=").nth(1));
    }
}
