//! Progress events written to the outbox behind.
//!
//! A progress event has no state change to share a transaction with, and
//! the progress it describes is itself written behind. Inserting each one on
//! the request path costs a database round trip per event; this queue
//! collects them and a flusher writes each batch with one `INSERT … SELECT
//! FROM unnest(…)` per interval, in the order they were published.
//!
//! * A full queue is written by the request that found it full, which then
//!   queues its event (the request waits, order holds, nothing is dropped);
//!   if the queue cannot be written, that event fails as a direct insert would.
//! * A failed flush puts the batch back in front of what came since.
//! * [`EventPublisher::flush`] writes what is queued before returning: a stop
//!   calls it before its own event goes out in the session's transaction,
//!   so a consumer never sees a session's progress after its stop.
//! * [`WriteBehindOutbox::drain`] flushes everything (graceful shutdown).
//!
//! With [`WriteBehindOutbox::hold_in`] an event is held in a
//! [`PendingWrites`] store before it is acknowledged, and another instance
//! writes it if this one is killed before its flush (a rescued event may
//! then reach the outbox after events published later). Without it, an
//! event still queued when the process is killed is lost. Starts and stops
//! never pass through here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::domain::PlaybackEvent;
use streaming_core::ports::{EventPublisher, PendingWrite, PendingWrites, PublishError};
use tokio::sync::Notify;
use tracing::warn;

use crate::outbox::PgOutbox;
use crate::rescue::{Holding, Rescue};
use crate::write_behind::{drain, overflowed, spawn_flusher, FailureStreak, Flush};

/// Counters (metrics).
#[derive(Debug, Default)]
pub struct WriteBehindOutboxStats {
    /// Events queued.
    pub queued: AtomicU64,
    /// Events that found the queue full (and wrote it).
    pub overflowed: AtomicU64,
    /// Batches written.
    pub flushes: AtomicU64,
    /// Flushes that failed (their events were kept).
    pub failed_flushes: AtomicU64,
}

/// A bounded queue of events in front of a [`PgOutbox`].
#[derive(Debug)]
pub struct WriteBehindOutbox {
    outbox: PgOutbox,
    pending: Mutex<VecDeque<PlaybackEvent>>,
    /// Held by a flush while it writes, so a [`EventPublisher::flush`] that
    /// finds the queue empty still waits for the batch in flight.
    writing: tokio::sync::Mutex<()>,
    capacity: usize,
    stats: Arc<WriteBehindOutboxStats>,
    streak: FailureStreak,
    wake: Arc<Notify>,
    /// Where queued events are held until flushed, once set.
    holding: Holding,
}

/// How an event is held: by its id, which no other event has.
fn held(event: &PlaybackEvent) -> PendingWrite {
    let (id, stamp) = held_as(event);
    PendingWrite { id, stamp, order: None, body: event.to_json() }
}

/// The id and stamp an event is held under (one write per id: a constant stamp).
fn held_as(event: &PlaybackEvent) -> (String, String) {
    (event.event_id.to_string(), "event".to_owned())
}

impl WriteBehindOutbox {
    /// Starts the queue (at most `capacity` events) and its flusher, which
    /// writes at least every `interval` and stops when the queue is dropped.
    pub fn start(outbox: PgOutbox, capacity: usize, interval: Duration) -> Arc<Self> {
        let queue = Arc::new(Self {
            outbox,
            pending: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
            capacity: capacity.max(1),
            stats: Arc::default(),
            streak: FailureStreak::default(),
            wake: Arc::new(Notify::new()),
            holding: Holding::default(),
        });
        spawn_flusher(&queue, Arc::clone(&queue.wake), interval);
        queue
    }

    /// Holds every event in `pending` before it is acknowledged (a failed
    /// hold writes the queue through), and writes the events other
    /// instances held but did not flush within `rescue_after`. The first call counts.
    pub fn hold_in(self: &Arc<Self>, pending: Arc<dyn PendingWrites>, rescue_after: Duration) {
        self.holding.start(self, pending, rescue_after);
    }

    /// The queue's counters.
    pub fn stats(&self) -> Arc<WriteBehindOutboxStats> {
        Arc::clone(&self.stats)
    }

    /// How many events wait.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<PlaybackEvent>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `event`, or hands it back when the queue is full.
    fn queue(&self, event: PlaybackEvent) -> Result<(), PlaybackEvent> {
        let mut pending = self.lock();
        if pending.len() >= self.capacity {
            return Err(event);
        }
        pending.push_back(event);
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes every queued event now; whether the queue is empty afterwards.
    pub async fn flush(&self) -> bool {
        self.write_queued().await && self.lock().is_empty()
    }

    /// Writes every queued event now; whether that write succeeded.
    async fn write_queued(&self) -> bool {
        let _writing = self.writing.lock().await;
        let batch: Vec<PlaybackEvent> = self.lock().drain(..).collect();
        if batch.is_empty() {
            return true;
        }
        match self.outbox.insert_many(&batch).await {
            Ok(()) => {
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                self.streak.succeeded(Self::QUEUE);
                if self.holding.is_set() {
                    let written = batch.iter().map(held_as).collect();
                    self.holding.release(Self::QUEUE, written).await;
                }
                true
            }
            Err(error) => {
                self.stats.failed_flushes.fetch_add(1, Ordering::Relaxed);
                if let Some(streak) = self.streak.failed(Self::QUEUE) {
                    warn!(%error, events = batch.len(), streak, "outbox flush failed; kept for the next one");
                }
                let mut pending = self.lock();
                for event in batch.into_iter().rev() {
                    pending.push_front(event);
                }
                false
            }
        }
    }

    /// Flushes until the queue is empty or `timeout` passes (graceful shutdown).
    ///
    /// # Errors
    /// How many events could not be written.
    pub async fn drain(&self, timeout: Duration) -> Result<(), PublishError> {
        if drain(self, timeout).await {
            Ok(())
        } else {
            Err(PublishError::Unavailable(format!("{} events not written to the outbox", self.depth())))
        }
    }
}

#[async_trait]
impl Flush for WriteBehindOutbox {
    const QUEUE: &'static str = "outbox";

    async fn flush(&self) -> bool {
        WriteBehindOutbox::flush(self).await
    }

    fn depth(&self) -> usize {
        WriteBehindOutbox::depth(self)
    }
}

#[async_trait]
impl Rescue for WriteBehindOutbox {
    async fn rescue(&self, bodies: Vec<String>) -> Result<usize, String> {
        let events: Vec<PlaybackEvent> = bodies.iter().filter_map(|body| PlaybackEvent::from_json(body)).collect();
        self.outbox.insert_many(&events).await.map_err(|e| e.to_string())?;
        Ok(events.len())
    }
}

#[async_trait]
impl EventPublisher for WriteBehindOutbox {
    async fn publish(&self, event: PlaybackEvent) -> Result<(), PublishError> {
        let write = self.holding.is_set().then(|| held(&event));
        let Err(event) = self.queue(event) else {
            // Queued: acknowledged once held, or else once the queue, this
            // event included, is written (so order holds).
            let Some(write) = write else { return Ok(()) };
            if self.holding.hold(Self::QUEUE, move || write).await.is_ok() || self.write_queued().await {
                return Ok(());
            }
            return Err(PublishError::Unavailable("the event could be neither held nor written".into()));
        };
        // Full: this request writes the queue, so order holds and nothing is dropped.
        self.stats.overflowed.fetch_add(1, Ordering::Relaxed);
        overflowed(Self::QUEUE);
        WriteBehindOutbox::flush(self).await;
        let Err(event) = self.queue(event) else { return Ok(()) };
        // Still full (the database is down): the event fails as a direct insert would.
        self.outbox
            .insert_many(std::slice::from_ref(&event))
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))
    }

    async fn flush(&self) -> Result<(), PublishError> {
        // One attempt: a stop does not wait out an outage.
        self.drain(Duration::ZERO).await
    }
}
