use std::time::Duration;

use async_trait::async_trait;

/// Why the pending-writes store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    /// The store is down or too slow: the caller writes through instead.
    #[error("pending writes unavailable: {0}")]
    Unavailable(String),
}

/// One acknowledged write on its way to the durable store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// What is written, unique within its kind: a (user, movie), a
    /// session, an event id. One write is held per id.
    pub id: String,
    /// Names this write of the id: a release names the stamp it wrote, so
    /// it never forgets a newer write held since. A claim gives the write a
    /// stamp of its own.
    pub stamp: String,
    /// Order within a group: a write whose group is the held one's and
    /// whose number is lower does not replace it (a late report of the same
    /// session). `None` always replaces.
    pub order: Option<(String, u64)>,
    /// The write itself, as its queue encodes it.
    pub body: String,
}

/// Writes an instance has acknowledged but not yet written to the durable
/// store, kept where every instance can reach them: if the instance dies
/// before its flush, another one claims them once they are older than any
/// flush takes and writes them.
#[async_trait]
pub trait PendingWrites: Send + Sync {
    /// Keeps `writes` of `kind`, each replacing the held write of its id
    /// unless [`PendingWrite::order`] says the held one is newer. Returns
    /// once they would survive this process.
    ///
    /// # Errors
    /// [`PendingError::Unavailable`]: nothing may be assumed kept.
    async fn hold(&self, kind: &str, writes: Vec<PendingWrite>) -> Result<(), PendingError>;

    /// The durable store has these: forgets each `(id, stamp)` whose held
    /// write still carries that stamp.
    ///
    /// # Errors
    /// [`PendingError::Unavailable`]: they stay held, and are claimed and
    /// written again later (writes are idempotent).
    async fn release(&self, kind: &str, written: Vec<(String, String)>) -> Result<(), PendingError>;

    /// Takes at most `max` writes of `kind` held for at least `age`, each
    /// with a fresh stamp and out of other claims' reach for `lease` (if
    /// the claimer dies too, another claims them after that).
    ///
    /// # Errors
    /// [`PendingError::Unavailable`].
    async fn claim(
        &self,
        kind: &str,
        age: Duration,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<PendingWrite>, PendingError>;
}

/// A fresh claim stamp (random, never equal to a stamp a queue computes).
pub fn claim_stamp() -> String {
    format!("claim-{}", uuid::Uuid::new_v4().simple())
}
