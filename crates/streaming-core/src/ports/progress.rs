use async_trait::async_trait;

use crate::domain::{MediaId, UserId, WatchProgress};

/// Why the progress store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgressError {
    /// The store is down or too slow.
    #[error("progress store unavailable: {0}")]
    Unavailable(String),
}

/// What a progress write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The position was stored.
    Applied,
    /// A newer update of the same session was already stored; nothing changed.
    Stale,
}

/// Watch progress per user and movie.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ProgressStore: Send + Sync {
    /// The stored progress of `user` in `media`, if any.
    ///
    /// # Errors
    /// [`ProgressError::Unavailable`].
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError>;

    /// Stores `progress` unless the stored row belongs to the same session and
    /// has a sequence greater than or equal to `progress.sequence`, so a late,
    /// reordered update never overwrites a newer one.
    ///
    /// # Errors
    /// [`ProgressError::Unavailable`].
    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError>;

    /// Like [`ProgressStore::record`], but returns only once the update is
    /// in the durable store: a stop's last position, acknowledged to the
    /// player, survives a crash of the process. Stores that write behind
    /// override this to write through; for the rest it is `record`.
    ///
    /// # Errors
    /// [`ProgressError::Unavailable`]; the update may then not be stored.
    async fn record_durably(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        self.record(progress).await
    }

    /// Stores a batch under the same rule as [`ProgressStore::record`], at
    /// most one update per (user, media). Stores that can do it in one
    /// statement override this; the default records one by one.
    ///
    /// # Errors
    /// [`ProgressError::Unavailable`]; nothing of the batch may be assumed stored.
    async fn record_many(&self, batch: Vec<WatchProgress>) -> Result<(), ProgressError> {
        for progress in batch {
            self.record(progress).await?;
        }
        Ok(())
    }
}

/// Shared stores are stores: lets decorators wrap an `Arc<dyn ProgressStore>`.
#[async_trait]
impl<T: ProgressStore + ?Sized> ProgressStore for std::sync::Arc<T> {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        (**self).get(user, media).await
    }

    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        (**self).record(progress).await
    }

    async fn record_durably(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        (**self).record_durably(progress).await
    }

    async fn record_many(&self, batch: Vec<WatchProgress>) -> Result<(), ProgressError> {
        (**self).record_many(batch).await
    }
}
