//! PostgreSQL: the connection pool and the schema check at start.

use std::sync::Arc;
use std::time::Duration;

use streaming_core::adapters::{MemoryProgressStore, MemorySessionStore};
use streaming_core::ports::{ProgressStore, SessionStore};
use streaming_postgres::{PgProgressStore, PgSessionStore, WriteBehindProgress, WriteBehindSessions};

use crate::settings::Settings;

use super::StartupError;
use crate::catalog::Catalog;
use crate::storage::Storage;
use streaming_core::adapters::{CachedCatalog, MemoryCatalog, StoredMovies};
use streaming_core::ports::MediaCatalog;
use streaming_postgres::PgCatalog;
use streaming_postgres::PgDatabase;

/// The database, with its schema checked: migrated at start when configured
/// so, otherwise a schema that is behind stops the start with a clear error.
pub(super) async fn postgres_database(settings: &Settings) -> Result<Option<PgDatabase>, StartupError> {
    let Some(db) = settings.postgres.open().await.map_err(|e| StartupError::Database(e.to_string()))? else {
        return Ok(None);
    };
    let layouts = db.layouts().await.map_err(|e| StartupError::Database(e.to_string()))?;
    if layouts.any_cinema() && !settings.auth.uuid_subjects {
        return Err(StartupError::Database(
            "the database holds the cinema service's watch_progress/stream_sessions, whose user ids are UUIDs: \
             set auth.uuid_subjects = true (JWT_SECRET_KEY does)"
                .into(),
        ));
    }
    Ok(Some(db))
}

/// Deletes ended stream sessions past `postgres.session_retention_hours`, in
/// rounds of 10 000, a minute after the start and every ten minutes after,
/// for as long as the service runs.
pub(super) fn prune_ended_sessions(settings: &Settings, postgres: Option<&PgDatabase>) {
    let (Some(db), hours) = (postgres, settings.postgres.session_retention_hours) else { return };
    if hours == 0 {
        return;
    }
    const ROUND: usize = 10_000;
    let (store, retention) = (PgSessionStore::new(db.clone()), Duration::from_secs(hours * 3_600));
    tokio::spawn(async move {
        let mut every =
            tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), Duration::from_secs(600));
        loop {
            every.tick().await;
            let before = time::OffsetDateTime::now_utc() - retention;
            let mut pruned = 0;
            loop {
                match store.prune_ended(before, ROUND).await {
                    Ok(count) => {
                        pruned += count;
                        if count < ROUND {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ended sessions not pruned; the next round tries again");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::info!(pruned, "ended stream sessions past their retention deleted");
            }
        }
    });
}

/// The durable progress and session stores, and the write-behind queues in
/// front of PostgreSQL that shutdown drains.
pub(super) struct DurableStores {
    /// Progress written behind (PostgreSQL).
    pub(super) write_behind: Option<Arc<WriteBehindProgress<PgProgressStore>>>,
    /// Sessions read from memory, heartbeats written behind (PostgreSQL).
    pub(super) session_cache: Option<Arc<WriteBehindSessions<PgSessionStore>>>,
    /// The progress store.
    pub(super) progress: Arc<dyn ProgressStore>,
    /// The session store.
    pub(super) sessions: Arc<dyn SessionStore>,
}

/// With PostgreSQL, progress is written behind (batched, drained on
/// shutdown) and sessions are read from memory with their heartbeats written
/// behind; without it, both live in memory.
pub(super) fn durable_stores(settings: &Settings, postgres: Option<&PgDatabase>) -> DurableStores {
    let flush = Duration::from_millis(settings.postgres.progress_flush_interval_ms.max(10));
    let capacity = settings.postgres.progress_queue_capacity;
    let write_behind = postgres.map(|db| WriteBehindProgress::start(PgProgressStore::new(db.clone()), capacity, flush));
    let session_cache = postgres.filter(|_| settings.postgres.session_cache_ttl_ms > 0).map(|db| {
        let ttl = Duration::from_millis(settings.postgres.session_cache_ttl_ms);
        WriteBehindSessions::start(PgSessionStore::new(db.clone()), capacity, ttl, flush)
    });
    let (progress, sessions): (Arc<dyn ProgressStore>, Arc<dyn SessionStore>) =
        match (postgres, &write_behind, &session_cache) {
            (_, Some(queue), Some(cache)) => (queue.clone(), cache.clone()),
            (Some(db), Some(queue), None) => (queue.clone(), Arc::new(PgSessionStore::new(db.clone()))),
            _ => (Arc::new(MemoryProgressStore::new()), Arc::new(MemorySessionStore::new())),
        };
    DurableStores { write_behind, session_cache, progress, sessions }
}

/// The catalog the settings choose (PostgreSQL behind an in-process cache,
/// or memory), and the port the services read: an embedder's override, and
/// with `playback.stored_movies` movies known only by their manifests.
pub(super) fn catalogs(
    settings: &Settings,
    postgres: Option<&PgDatabase>,
    overridden: Option<Arc<dyn MediaCatalog>>,
    storage: &Storage,
) -> (Catalog, Arc<dyn MediaCatalog>) {
    let owned = match postgres {
        Some(db) => {
            let db = Arc::new(PgCatalog::new(db.clone()));
            let ttl = settings.postgres.catalog_cache_ttl_ms;
            let cache = (ttl > 0).then(|| {
                let max = settings.postgres.catalog_cache_max_entries;
                Arc::new(CachedCatalog::new(db.clone(), Duration::from_millis(ttl), max))
            });
            Catalog::Postgres { db, cache }
        }
        None => Catalog::Memory(Arc::new(MemoryCatalog::new())),
    };
    let catalog = overridden.unwrap_or_else(|| owned.port());
    let catalog: Arc<dyn MediaCatalog> =
        if settings.playback.stored_movies { Arc::new(StoredMovies::new(catalog, storage.port())) } else { catalog };
    (owned, catalog)
}
