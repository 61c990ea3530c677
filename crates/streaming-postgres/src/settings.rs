//! The `postgres` section of a configuration, as the service reads it:
//! serde with documented defaults, and the database it names.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{DbError, PgConfig, PgDatabase};

/// PostgreSQL: the catalog read model, watch progress and stream sessions.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/database`; unset keeps everything in memory.
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub url: Option<SecretString>,
    /// Connections in the pool (default 16).
    pub pool_size: u32,
    /// `statement_timeout` of every connection in milliseconds (default 2000).
    pub statement_timeout_ms: u64,
    /// After 5 failed connection attempts in a row, requests that need the
    /// database are 503 at once for this many milliseconds, then one tries
    /// again (default 5000, the `Retry-After` of those 503s).
    pub breaker_cool_down_ms: u64,
    /// Apply pending migrations at start instead of refusing to start (default false;
    /// `streaming-api migrate` applies them explicitly).
    pub migrate_on_start: bool,
    /// A database that does not answer at start (pods and database starting
    /// together) is asked again each second for at most this many seconds
    /// before the start stops (default 30; 0 stops at once).
    pub start_wait_seconds: u64,
    /// Progress is written behind: the pending updates are flushed in one
    /// batch at least this often, in milliseconds (default 1000).
    pub progress_flush_interval_ms: u64,
    /// Most (user, movie) updates waiting to be flushed; beyond it updates are
    /// written straight through (default 100 000).
    pub progress_queue_capacity: usize,
    /// How long an instance keeps catalog answers (media, user status and
    /// grants) in memory, in milliseconds (default 30 000; 0 reads the database
    /// on every request). Catalog events invalidate sooner.
    pub catalog_cache_ttl_ms: u64,
    /// Most catalog answers kept (default 100 000).
    pub catalog_cache_max_entries: u64,
    /// How long an instance keeps a stream session it has seen in memory, in
    /// milliseconds (default 30 000; 0 reads and writes the database on every
    /// progress report). Heartbeats are then written behind with progress.
    pub session_cache_ttl_ms: u64,
    /// Ended stream sessions are deleted this many hours after they ended
    /// (default 720, 30 days; 0 keeps them for ever). Open ones never are.
    pub session_retention_hours: u64,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            statement_timeout_ms: 2_000,
            breaker_cool_down_ms: 5_000,
            migrate_on_start: false,
            start_wait_seconds: 30,
            progress_flush_interval_ms: 1_000,
            progress_queue_capacity: 100_000,
            catalog_cache_ttl_ms: 30_000,
            catalog_cache_max_entries: 100_000,
            session_cache_ttl_ms: 30_000,
            session_retention_hours: 720,
        }
    }
}

impl PgSettings {
    /// The database these settings name, with its schema checked: migrated
    /// when `migrate_on_start` says so, otherwise a schema that is behind is
    /// an error naming the missing migrations. `None` without a URL.
    ///
    /// # Errors
    /// [`DbError`] when the database cannot be reached, a migration fails,
    /// or the schema is behind.
    pub async fn open(&self) -> Result<Option<PgDatabase>, DbError> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let db = PgDatabase::connect(&PgConfig {
            url: url.expose_secret().to_owned(),
            pool_size: self.pool_size,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            acquire_timeout: Duration::from_secs(2),
            breaker_cool_down: Duration::from_millis(self.breaker_cool_down_ms),
        })
        .await?;
        if self.migrate_on_start {
            self.answered(&db).await?;
            let applied = db.migrate().await?;
            tracing::info!(applied, "database migrations applied");
        } else {
            let pending = self.pending_once_answered(&db).await?;
            if !pending.is_empty() {
                return Err(DbError::Schema(format!(
                    "the schema is behind by {} migration(s) ({}); run `streaming-api migrate` or set postgres.migrate_on_start",
                    pending.len(),
                    pending.join(", ")
                )));
            }
        }
        Ok(Some(db))
    }

    /// Waits until `db` answers, asking each second for at most
    /// `start_wait_seconds`; a schema error is an answer (migrating is what
    /// the caller does next).
    ///
    /// # Errors
    /// The last [`DbError`] when it has not answered in that time.
    pub async fn answered(&self, db: &PgDatabase) -> Result<(), DbError> {
        match self.pending_once_answered(db).await {
            Ok(_) | Err(DbError::Schema(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The migrations `db` lacks, asked each second until it answers, for
    /// at most `start_wait_seconds`.
    async fn pending_once_answered(&self, db: &PgDatabase) -> Result<Vec<String>, DbError> {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(self.start_wait_seconds);
        loop {
            match db.pending_migrations().await {
                Err(error) if !matches!(error, DbError::Schema(_)) && tokio::time::Instant::now() < give_up => {
                    tracing::warn!(%error, "the database does not answer yet; asking again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                answer => return answer,
            }
        }
    }
}
