//! The configured catalog: in memory (embedded) or PostgreSQL.

use std::sync::Arc;

use streaming_core::adapters::{CachedCatalog, MemoryCatalog};
use streaming_core::domain::Media;
use streaming_core::ports::{CatalogCache, CatalogError, CatalogWriter, MediaCatalog, MediaListing};
use streaming_postgres::PgCatalog;

/// The catalog the settings chose, with the writes the demo needs.
#[derive(Debug, Clone)]
pub enum Catalog {
    /// In memory.
    Memory(Arc<MemoryCatalog>),
    /// PostgreSQL, behind an in-process TTL cache unless it is switched off.
    Postgres {
        /// The database.
        db: Arc<PgCatalog>,
        /// The cache the requests read through.
        cache: Option<Arc<CachedCatalog<Arc<PgCatalog>>>>,
    },
}

impl Catalog {
    /// The catalog as the core's port.
    pub fn port(&self) -> Arc<dyn MediaCatalog> {
        match self {
            Self::Memory(memory) => memory.clone(),
            Self::Postgres { cache: Some(cache), .. } => cache.clone(),
            Self::Postgres { db, cache: None } => db.clone(),
        }
    }

    /// The catalog without the in-process cache: what is stored now.
    pub fn fresh(&self) -> Arc<dyn MediaCatalog> {
        match self {
            Self::Memory(memory) => memory.clone(),
            Self::Postgres { db, .. } => db.clone(),
        }
    }

    /// The catalog's listing (never cached: pages are read as they are).
    pub fn listing(&self) -> Arc<dyn MediaListing> {
        match self {
            Self::Memory(memory) => memory.clone(),
            Self::Postgres { db, .. } => db.clone(),
        }
    }

    /// The catalog's writer for upstream changes.
    pub fn writer(&self) -> Arc<dyn CatalogWriter> {
        match self {
            Self::Memory(memory) => memory.clone(),
            Self::Postgres { db, .. } => db.clone(),
        }
    }

    /// The in-process cache a change must clear (the memory catalog has none).
    pub fn cache(&self) -> Option<Arc<dyn CatalogCache>> {
        match self {
            Self::Postgres { cache: Some(cache), .. } => Some(cache.clone()),
            _ => None,
        }
    }

    /// Inserts or replaces a media item.
    ///
    /// # Errors
    /// [`CatalogError::Unavailable`] when the database cannot take it.
    pub async fn upsert(&self, media: Media) -> Result<(), CatalogError> {
        match self {
            Self::Memory(memory) => {
                memory.upsert(media);
                Ok(())
            }
            Self::Postgres { db, cache } => {
                db.upsert_media(&media).await.map_err(|e| CatalogError::Unavailable(e.to_string()))?;
                if let Some(cache) = cache {
                    cache.invalidate_media(&media.id);
                }
                Ok(())
            }
        }
    }
}
