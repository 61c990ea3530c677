//! What the write-behind queues acknowledge survives the instance: each
//! acknowledged write is held in a [`PendingWrites`] store (Redis) before
//! the request is answered, released once a flush has written it, and, if
//! the instance dies first, claimed by another instance's rescuer once it is
//! older than any flush takes and written from there.
//!
//! * A hold that fails (Redis down) makes that request write through: an
//!   acknowledged write is always in Redis or in PostgreSQL.
//! * Writes are idempotent (progress obeys the sequence rule, heartbeats
//!   only move forward, an event id is inserted once), so a write both
//!   flushed and rescued is harmless.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::ports::{PendingError, PendingWrite, PendingWrites};
use streaming_core::telemetry;
use tracing::{debug, info, warn};

use crate::write_behind::{FailureStreak, Flush};

/// How long a claimed write is out of other rescuers' reach: if this
/// instance dies while writing it, another takes it after this. A rescuer
/// whose write fails keeps what it claimed and tries again every round.
pub const RESCUE_LEASE: Duration = Duration::from_secs(30);

/// Most writes one rescue round claims.
const RESCUE_BATCH: usize = 1_000;

/// Where a queue holds its acknowledged writes, once set.
#[derive(Default)]
pub(crate) struct Holding(OnceLock<Arc<dyn PendingWrites>>);

impl std::fmt::Debug for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Holding").field(&self.0.get().is_some()).finish()
    }
}

impl Holding {
    /// Holds the writes of `queue` in `pending` from now on, and starts its
    /// rescuer of the writes other instances held longer than `after`. The
    /// first call counts.
    pub(crate) fn start<Q: Rescue>(&self, queue: &Arc<Q>, pending: Arc<dyn PendingWrites>, after: Duration) {
        if self.0.set(Arc::clone(&pending)).is_ok() {
            spawn_rescuer(queue, pending, after, rescue_every(after));
        }
    }

    /// Whether writes are held.
    pub(crate) fn is_set(&self) -> bool {
        self.0.get().is_some()
    }

    /// Holds the write `write` makes (made only when there is a store to
    /// hold it in) for `queue`; `Ok` too when nothing is held.
    ///
    /// # Errors
    /// The store's: the caller writes through.
    pub(crate) async fn hold(
        &self,
        queue: &'static str,
        write: impl FnOnce() -> PendingWrite + Send,
    ) -> Result<(), PendingError> {
        let Some(pending) = self.0.get() else { return Ok(()) };
        let held = pending.hold(queue, vec![write()]).await;
        if held.is_ok() {
            metrics::counter!(telemetry::PENDING_HELD, "queue" => queue).increment(1);
        } else {
            metrics::counter!(telemetry::PENDING_HOLD_FAILURES, "queue" => queue).increment(1);
        }
        held
    }

    /// Forgets writes a flush wrote (`(id, stamp)` each). A failure leaves
    /// them held; a rescuer writes them again later, harmlessly.
    pub(crate) async fn release(&self, queue: &'static str, written: Vec<(String, String)>) {
        let Some(pending) = self.0.get().filter(|_| !written.is_empty()) else { return };
        if let Err(error) = pending.release(queue, written).await {
            debug!(%error, queue, "written writes not released; a rescuer writes them again");
        }
    }
}

/// A queue whose held writes can be written by another instance.
#[async_trait]
pub(crate) trait Rescue: Flush {
    /// Writes the claimed `bodies` (writes of instances presumed gone) to
    /// the durable store; how many could be read.
    ///
    /// # Errors
    /// The store's, as text: the writes stay claimed until the lease ends.
    async fn rescue(&self, bodies: Vec<String>) -> Result<usize, String>;
}

/// How often a rescuer looks for writes held longer than `after`.
fn rescue_every(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

/// Every `every`, claims this queue's writes held for longer than `after`
/// and writes them, until the queue is dropped.
fn spawn_rescuer<Q: Rescue>(queue: &Arc<Q>, pending: Arc<dyn PendingWrites>, after: Duration, every: Duration) {
    let weak = Arc::downgrade(queue);
    tokio::spawn(async move {
        let streak = FailureStreak::default();
        // Claimed writes whose write failed: tried again every round (they
        // stay leased to this instance meanwhile), not only after the lease.
        let mut unwritten: Vec<PendingWrite> = Vec::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(queue) = weak.upgrade() else { break };
            if !unwritten.is_empty() {
                if let Err(kept) =
                    write(queue.as_ref(), pending.as_ref(), std::mem::take(&mut unwritten), &streak).await
                {
                    unwritten = kept;
                    continue;
                }
            }
            // Rounds until a claim comes back short.
            loop {
                let claimed = match pending.claim(Q::QUEUE, after, RESCUE_LEASE, RESCUE_BATCH).await {
                    Ok(claimed) if !claimed.is_empty() => claimed,
                    Ok(_) => break,
                    Err(error) => {
                        debug!(%error, queue = Q::QUEUE, "held writes not claimed");
                        break;
                    }
                };
                let full = claimed.len() == RESCUE_BATCH;
                if let Err(kept) = write(queue.as_ref(), pending.as_ref(), claimed, &streak).await {
                    unwritten = kept;
                    break;
                }
                if !full {
                    break;
                }
            }
        }
    });
}

/// Writes claimed writes and releases them; hands them back if the write failed.
async fn write<Q: Rescue>(
    queue: &Q,
    pending: &dyn PendingWrites,
    claimed: Vec<PendingWrite>,
    streak: &FailureStreak,
) -> Result<(), Vec<PendingWrite>> {
    let count = claimed.len();
    match queue.rescue(claimed.iter().map(|w| w.body.clone()).collect()).await {
        Ok(read) => {
            streak.succeeded(Q::QUEUE);
            if read < count {
                warn!(queue = Q::QUEUE, unreadable = count - read, "held writes that could not be read were dropped");
            }
            metrics::counter!(telemetry::PENDING_RESCUED, "queue" => Q::QUEUE).increment(read as u64);
            info!(queue = Q::QUEUE, writes = read, "acknowledged writes of another instance written");
            let stamps = claimed.into_iter().map(|w| (w.id, w.stamp)).collect();
            if let Err(error) = pending.release(Q::QUEUE, stamps).await {
                debug!(%error, queue = Q::QUEUE, "rescued writes not released; claimed again after the lease");
            }
            Ok(())
        }
        Err(error) => {
            if let Some(streak) = streak.failed(Q::QUEUE) {
                warn!(%error, queue = Q::QUEUE, writes = count, streak, "held writes not written; tried again next round");
            }
            Err(claimed)
        }
    }
}
