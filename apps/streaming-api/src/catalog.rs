//! The configured catalog: in memory (embedded) or PostgreSQL.

use std::sync::Arc;

use streaming_core::adapters::{CachedCatalog, MemoryCatalog};
use streaming_core::domain::Media;
use streaming_core::ports::MediaCatalog;
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

    /// Inserts or replaces a media item.
    ///
    /// # Errors
    /// A printable reason.
    pub async fn upsert(&self, media: Media) -> Result<(), String> {
        match self {
            Self::Memory(memory) => {
                memory.upsert(media);
                Ok(())
            }
            Self::Postgres { db, cache } => {
                db.upsert_media(&media).await.map_err(|e| e.to_string())?;
                if let Some(cache) = cache {
                    cache.invalidate_media(&media.id);
                }
                Ok(())
            }
        }
    }
}
