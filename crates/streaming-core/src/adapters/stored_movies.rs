//! Movies known by their manifests alone: a [`MediaCatalog`] decorator for
//! set-ups where the catalog does not list every movie (the cinema
//! streaming service's behaviour: a movie exists when its manifest is in the
//! bucket under `movies/{movie_id}/`, and subscribers may stream it).
//!
//! A catalog row always wins: its rules (visibility, plan features, status,
//! deletion) apply. Only an id the catalog has never heard of, and only a
//! UUID (movie ids are UUIDs), is looked up in the store: `index.m3u8`,
//! then `index.mpd`. What the store said is remembered for
//! [`STORE_ANSWER_TTL`] (found or not), so progress reports on such a movie
//! do not each cost a request to the store.

use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use crate::domain::{IdFormat, ManifestKind, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlanFeatures};
use crate::domain::{UserId, Viewer, Visibility};
use crate::ports::{CatalogError, MediaCatalog, ObjectStore, ObjectStoreError};

/// How long the store's answer about a movie is remembered.
pub const STORE_ANSWER_TTL: Duration = Duration::from_secs(30);

/// Most store answers remembered.
const MAX_ANSWERS: u64 = 100_000;

/// [`MediaCatalog`] `C`, plus the movies whose manifests are in `S`.
pub struct StoredMovies<C, S> {
    catalog: C,
    store: S,
    answers: Cache<MediaId, Option<Media>>,
}

impl<C, S> std::fmt::Debug for StoredMovies<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMovies").field("answers", &self.answers.entry_count()).finish_non_exhaustive()
    }
}

impl<C, S> StoredMovies<C, S> {
    /// `catalog`, completed by the manifests in `store`.
    pub fn new(catalog: C, store: S) -> Self {
        let answers = Cache::builder().max_capacity(MAX_ANSWERS).time_to_live(STORE_ANSWER_TTL).build();
        Self { catalog, store, answers }
    }
}

impl<C: MediaCatalog, S: ObjectStore> StoredMovies<C, S> {
    /// The movie whose manifest is in the store, as the catalog row it would have.
    async fn stored(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        if id.format() != IdFormat::Uuid {
            return Ok(None);
        }
        let root = ObjectKey::try_from(format!("movies/{id}")).map_err(|e| CatalogError::Invalid(e.to_string()))?;
        for kind in [ManifestKind::Hls, ManifestKind::Dash] {
            let key = ObjectKey::try_from(format!("{}/{}", root.as_str(), kind.file_name()))
                .map_err(|e| CatalogError::Invalid(e.to_string()))?;
            match self.store.head(&key).await {
                Ok(info) => {
                    let content_type = match kind {
                        ManifestKind::Hls => "application/vnd.apple.mpegurl",
                        ManifestKind::Dash => "application/dash+xml",
                    };
                    return Ok(Some(Media {
                        id: id.clone(),
                        kind: MediaKind::Movie,
                        owner: None,
                        status: MediaStatus::Ready,
                        object_key: root,
                        content_type: content_type.into(),
                        size_bytes: info.size_bytes,
                        duration_seconds: None,
                        visibility: Visibility::Subscribers,
                        required_features: PlanFeatures::default(),
                    }));
                }
                Err(ObjectStoreError::NotFound) => {}
                Err(error) => return Err(CatalogError::Unavailable(error.to_string())),
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl<C: MediaCatalog, S: ObjectStore> MediaCatalog for StoredMovies<C, S> {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        if let Some(media) = self.catalog.media(id).await? {
            return Ok(Some(media));
        }
        if let Some(answer) = self.answers.get(id) {
            return Ok(answer);
        }
        // Errors are not remembered: the next request asks the store again.
        let answer = self.stored(id).await?;
        self.answers.insert(id.clone(), answer.clone());
        Ok(answer)
    }

    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        self.catalog.viewer(user, grant_on).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::{MemoryCatalog, MemoryObjectStore};
    use crate::ports::MockObjectStore;

    const MOVIE: &str = "9b2f6d3e-1c4a-4e8b-9f7d-2a3b4c5d6e7f";

    fn id() -> MediaId {
        MediaId::parse_uuid(MOVIE).unwrap()
    }

    #[tokio::test]
    async fn a_movie_with_a_manifest_in_the_store_exists_for_subscribers() {
        let store = MemoryObjectStore::new();
        store.put(
            ObjectKey::try_from(format!("movies/{MOVIE}/index.mpd")).unwrap(),
            b"<MPD/>".to_vec(),
            Some("application/dash+xml"),
        );
        let movies = StoredMovies::new(MemoryCatalog::new(), store);
        let movie = movies.media(&id()).await.unwrap().unwrap();
        assert_eq!(movie.kind, MediaKind::Movie);
        assert_eq!(movie.status, MediaStatus::Ready);
        assert_eq!(movie.visibility, Visibility::Subscribers);
        assert_eq!(movie.object_key.as_str(), format!("movies/{MOVIE}"));
        assert_eq!(movie.content_type, "application/dash+xml");
        assert_eq!(movie.size_bytes, 6);
        assert_eq!(StoredMovies::new(MemoryCatalog::new(), MemoryObjectStore::new()).media(&id()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_catalog_row_wins_and_tracks_are_never_looked_up() {
        let catalog = MemoryCatalog::new();
        let deleted = Media {
            id: id(),
            kind: MediaKind::Movie,
            owner: None,
            status: MediaStatus::Deleted,
            object_key: ObjectKey::try_from(format!("movies/{MOVIE}")).unwrap(),
            content_type: "application/vnd.apple.mpegurl".into(),
            size_bytes: 1,
            duration_seconds: Some(60.0),
            visibility: Visibility::Private,
            required_features: PlanFeatures::default(),
        };
        catalog.upsert(deleted.clone());
        let mut store = MockObjectStore::new();
        store.expect_head().never();
        let movies = StoredMovies::new(catalog, Arc::new(store));
        assert_eq!(movies.media(&id()).await.unwrap(), Some(deleted), "the row's rules, deletion included");
        let track = MediaId::parse_ulid("01JG0DEM0TRACK000000000009").unwrap();
        assert_eq!(movies.media(&track).await.unwrap(), None, "no store lookup for a track id");
    }

    #[tokio::test]
    async fn the_store_is_asked_once_per_movie_while_its_answer_is_remembered() {
        let mut store = MockObjectStore::new();
        store.expect_head().times(2).returning(|_| Err(ObjectStoreError::NotFound));
        let movies = StoredMovies::new(MemoryCatalog::new(), Arc::new(store));
        for _ in 0..3 {
            assert_eq!(movies.media(&id()).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_store_outage_is_a_catalog_outage_not_a_missing_movie() {
        let mut store = MockObjectStore::new();
        store.expect_head().returning(|_| Err(ObjectStoreError::Unavailable("down".into())));
        let movies = StoredMovies::new(MemoryCatalog::new(), Arc::new(store));
        assert!(matches!(movies.media(&id()).await, Err(CatalogError::Unavailable(_))));
    }
}
