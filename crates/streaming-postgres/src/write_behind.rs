//! Progress written behind: the request path records into a bounded map of
//! the latest pending update per (user, movie) and returns; a flusher writes
//! the whole map to the durable store in one batch at least every
//! `interval`. So the database sees at most one write per session per
//! interval however often players report, and requests never wait for it.
//!
//! * Staleness is decided at once against the pending update, or the last
//!   one written (same rule as the store: same session, lower or equal
//!   sequence); the store applies the rule again when the batch lands.
//! * A full map sends the update straight to the store (the request waits,
//!   nothing is dropped).
//! * A failed flush puts the batch back, unless newer updates replaced it.
//! * [`ProgressStore::record_durably`] (a stop) writes through, replacing
//!   the pending update of its key: acknowledged means in the store.
//! * [`WriteBehindProgress::drain`] flushes everything (graceful shutdown).
//! * With [`WriteBehindProgress::hold_in`], an update is also held in a
//!   [`PendingWrites`] store before it is acknowledged, so another instance
//!   writes it if this one dies before its flush (see [`crate::rescue`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::domain::{MediaId, SessionId, UserId, WatchProgress};
use streaming_core::ports::{PendingWrite, PendingWrites, ProgressError, ProgressStore, RecordOutcome};
use streaming_core::telemetry;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::rescue::{Holding, Rescue};

type Key = (UserId, MediaId);

/// Counters of the queue (metrics).
#[derive(Debug, Default)]
pub struct WriteBehindStats {
    /// Updates accepted into the queue.
    pub queued: AtomicU64,
    /// Updates that replaced a pending one of the same (user, movie).
    pub coalesced: AtomicU64,
    /// Updates written straight through because the queue was full.
    pub overflowed: AtomicU64,
    /// Batches written.
    pub flushes: AtomicU64,
    /// Flushes that failed (their updates were kept for the next one).
    pub failed_flushes: AtomicU64,
}

/// Write-behind in front of a durable [`ProgressStore`].
#[derive(Debug)]
pub struct WriteBehindProgress<S> {
    inner: Arc<S>,
    pending: Arc<Mutex<HashMap<Key, WatchProgress>>>,
    /// The session and sequence last written per key, so a late report is
    /// refused at once even after its newer sibling was flushed (bounded:
    /// cleared when it outgrows `capacity`; the store still guards then).
    written: Mutex<HashMap<Key, (SessionId, u64)>>,
    /// Held exclusively by a flush from taking the queue until it is
    /// written, and shared by the reads that missed the queue until they
    /// have read the store: such a read never falls between the two, and
    /// reads do not wait for each other. One flush at a time.
    flushing: tokio::sync::RwLock<()>,
    capacity: usize,
    stats: Arc<WriteBehindStats>,
    streak: FailureStreak,
    wake: Arc<Notify>,
    /// Where acknowledged updates are held until flushed, once set.
    holding: Holding,
    /// Told of the updates rescued from other instances, once set.
    rescued: std::sync::OnceLock<Hook>,
}

struct Hook(RescuedHook);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RescuedHook")
    }
}

/// What [`WriteBehindProgress::on_rescued`] calls.
pub type RescuedHook = Arc<dyn Fn(&[WatchProgress]) + Send + Sync>;

fn stale(stored: &WatchProgress, incoming: &WatchProgress) -> bool {
    stored.session.is_some() && stored.session == incoming.session && stored.sequence >= incoming.sequence
}

impl<S: ProgressStore + 'static> WriteBehindProgress<S> {
    /// Starts the queue (at most `capacity` pending keys) and its flusher,
    /// which writes at least every `interval` and stops when the queue is dropped.
    pub fn start(inner: S, capacity: usize, interval: Duration) -> Arc<Self> {
        let queue = Arc::new(Self {
            inner: Arc::new(inner),
            pending: Arc::default(),
            written: Mutex::default(),
            flushing: tokio::sync::RwLock::new(()),
            capacity: capacity.max(1),
            stats: Arc::default(),
            streak: FailureStreak::default(),
            wake: Arc::new(Notify::new()),
            holding: Holding::default(),
            rescued: std::sync::OnceLock::new(),
        });
        spawn_flusher(&queue, Arc::clone(&queue.wake), interval);
        queue
    }

    /// Holds every update in `pending` before it is acknowledged (a failed
    /// hold writes it through), and writes the updates other instances held
    /// but did not flush within `rescue_after`. The first call counts.
    pub fn hold_in(self: &Arc<Self>, pending: Arc<dyn PendingWrites>, rescue_after: Duration) {
        self.holding.start(self, pending, rescue_after);
    }

    /// Calls `hook` with the updates rescued from other instances once they
    /// are written (a cache in front refreshes its copies). The first call counts.
    pub fn on_rescued(&self, hook: RescuedHook) {
        let _ = self.rescued.set(Hook(hook));
    }

    /// The queue's counters.
    pub fn stats(&self) -> Arc<WriteBehindStats> {
        Arc::clone(&self.stats)
    }

    /// How many (user, movie) updates are waiting.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, WatchProgress>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every pending update now; returns whether the queue is empty afterwards.
    pub async fn flush(&self) -> bool {
        let _turn = self.flushing.write().await;
        let batch: Vec<WatchProgress> = {
            let mut pending = self.lock();
            let batch: Vec<WatchProgress> = std::mem::take(&mut *pending).into_values().collect();
            // Marked written while still under the pending lock: a late report
            // arriving during the write is refused against it. A failed write
            // puts the batch back in `pending`, so the mark stays truthful.
            self.mark_written(&batch);
            batch
        };
        if batch.is_empty() {
            return true;
        }
        let written = self.holding.is_set().then(|| batch.iter().map(held_as).collect::<Vec<_>>());
        match write_in_chunks(batch, |chunk| self.inner.record_many(chunk)).await {
            Ok(()) => {
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                self.streak.succeeded(Self::QUEUE);
                // Reads need not wait for the release.
                drop(_turn);
                self.holding.release(Self::QUEUE, written.unwrap_or_default()).await;
                self.lock().is_empty()
            }
            Err((unwritten, error)) => {
                self.stats.failed_flushes.fetch_add(1, Ordering::Relaxed);
                if let Some(streak) = self.streak.failed(Self::QUEUE) {
                    warn!(%error, updates = unwritten.len(), streak, "progress flush failed; kept for the next one");
                }
                self.requeue(unwritten);
                false
            }
        }
    }

    /// Remembers the session and sequence of `batch` as written (call it
    /// under the pending lock, before the write: a failed write puts the
    /// batch back in `pending`, so the mark stays truthful).
    fn mark_written(&self, batch: &[WatchProgress]) {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if written.len() + batch.len() > self.capacity {
            written.clear();
        }
        for progress in batch {
            if let Some(session) = progress.session {
                written.insert((progress.user.clone(), progress.media.clone()), (session, progress.sequence));
            }
        }
    }

    /// Whether `progress` is older than the pending update of its key, or,
    /// with none pending, than the last one written.
    fn is_stale(&self, pending: &HashMap<Key, WatchProgress>, key: &Key, progress: &WatchProgress) -> bool {
        if let Some(current) = pending.get(key) {
            return stale(current, progress);
        }
        let written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match (written.get(key), progress.session) {
            (Some((session, sequence)), Some(incoming)) => *session == incoming && *sequence >= progress.sequence,
            _ => false,
        }
    }

    /// Puts updates whose write failed back in the queue, unless newer ones replaced them meanwhile.
    fn requeue(&self, batch: Vec<WatchProgress>) {
        let mut pending = self.lock();
        for progress in batch {
            let key = (progress.user.clone(), progress.media.clone());
            pending.entry(key).or_insert(progress);
        }
    }

    /// Flushes until nothing is pending or `timeout` passes (graceful shutdown).
    ///
    /// # Errors
    /// [`ProgressError::Unavailable`] naming how many updates could not be written.
    pub async fn drain(&self, timeout: Duration) -> Result<(), ProgressError> {
        if drain(self, timeout).await {
            Ok(())
        } else {
            Err(ProgressError::Unavailable(format!("{} progress updates not written", self.depth())))
        }
    }
}

/// How `progress` is held: per (user, movie), stamped by session,
/// sequence, time and position; ordered by sequence within a session, as
/// the store is.
fn held(progress: &WatchProgress) -> PendingWrite {
    let (id, stamp) = held_as(progress);
    PendingWrite {
        id,
        stamp,
        order: progress.session.map(|session| (session.to_string(), progress.sequence)),
        body: progress.to_json(),
    }
}

/// The id and stamp `progress` is held under.
fn held_as(progress: &WatchProgress) -> (String, String) {
    let (user, media) = (progress.user.as_str(), progress.media.as_str());
    let session = progress.session.map(|s| s.to_string()).unwrap_or_default();
    let id = format!("{}:{user}{media}", user.len());
    let stamp = format!(
        "{session}:{}:{}:{}",
        progress.sequence,
        progress.last_watched_at.unix_timestamp_nanos(),
        progress.position.get()
    );
    (id, stamp)
}

/// Most rows one flush statement carries: a flush after thousands of
/// viewers joined at once would otherwise build megabytes of arrays in one go.
pub(crate) const FLUSH_CHUNK: usize = 1_000;

/// Writes `batch` with `write`, [`FLUSH_CHUNK`] rows at a time. On the first
/// failure, hands back what was not written (that chunk and the rest) with
/// the error; the chunks before it stay written.
pub(crate) async fn write_in_chunks<T, E, F, Fut>(batch: Vec<T>, mut write: F) -> Result<(), (Vec<T>, E)>
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut rest = batch;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(FLUSH_CHUNK));
        let chunk = std::mem::replace(&mut rest, tail);
        if let Err(error) = write(chunk.clone()).await {
            let mut unwritten = chunk;
            unwritten.append(&mut rest);
            return Err((unwritten, error));
        }
    }
    Ok(())
}

/// A queue a flusher task empties.
#[async_trait]
pub(crate) trait Flush: Send + Sync + 'static {
    /// The queue's name in metrics (`write_behind_*{queue}`).
    const QUEUE: &'static str;

    /// Writes what is queued; whether nothing is left.
    async fn flush(&self) -> bool;

    /// How many updates wait.
    fn depth(&self) -> usize;
}

/// One flush, reported as `write_behind_queue_depth` and, when it had
/// something to write, `write_behind_flush_duration_seconds` (the idle
/// ticks of the flusher would otherwise drown the real batches).
async fn timed_flush<Q: Flush + ?Sized>(queue: &Q) -> bool {
    let waiting = queue.depth();
    let started = std::time::Instant::now();
    let empty = queue.flush().await;
    if waiting > 0 {
        metrics::histogram!(telemetry::FLUSH_SECONDS, "queue" => Q::QUEUE).record(started.elapsed().as_secs_f64());
    }
    metrics::gauge!(telemetry::QUEUE_DEPTH, "queue" => Q::QUEUE).set(queue.depth() as f64);
    empty
}

/// Flushes of a queue failing in a row (the database is down): the first
/// failure of a streak and every 100th are logged, and the recovery, so an
/// outage does not write a warning per flush interval.
#[derive(Debug, Default)]
pub(crate) struct FailureStreak(AtomicU64);

impl FailureStreak {
    /// Counts a failed flush of queue `queue` (`write_behind_flush_failures_total`); whether to log it.
    pub(crate) fn failed(&self, queue: &'static str) -> Option<u64> {
        metrics::counter!(telemetry::FLUSH_FAILURES, "queue" => queue).increment(1);
        let streak = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        (streak == 1 || streak % 100 == 0).then_some(streak)
    }

    /// A flush succeeded: logs the end of a streak.
    pub(crate) fn succeeded(&self, queue: &'static str) {
        let streak = self.0.swap(0, Ordering::Relaxed);
        if streak > 0 {
            info!(queue, failed_flushes = streak, "write-behind flushes succeed again");
        }
    }
}

/// Counts an update written through a full queue `queue`.
pub(crate) fn overflowed(queue: &'static str) {
    metrics::counter!(telemetry::QUEUE_OVERFLOWS, "queue" => queue).increment(1);
}

/// Flushes `queue` until it is empty or `timeout` passes; whether it is empty.
pub(crate) async fn drain<Q: Flush + ?Sized>(queue: &Q, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !timed_flush(queue).await {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Flushes `queue` every `interval`, or at once when `wake` is notified, until the queue is dropped.
pub(crate) fn spawn_flusher<Q: Flush>(queue: &Arc<Q>, wake: Arc<Notify>, interval: Duration) {
    let weak = Arc::downgrade(queue);
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(interval, wake.notified()).await;
            let Some(queue) = weak.upgrade() else { break };
            timed_flush(queue.as_ref()).await;
        }
    });
}

#[async_trait]
impl<S: ProgressStore + 'static> Flush for WriteBehindProgress<S> {
    const QUEUE: &'static str = "progress";

    async fn flush(&self) -> bool {
        WriteBehindProgress::flush(self).await
    }

    fn depth(&self) -> usize {
        WriteBehindProgress::depth(self)
    }
}

#[async_trait]
impl<S: ProgressStore + 'static> ProgressStore for WriteBehindProgress<S> {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        // Read your own writes: a pending update is newer than the store.
        if let Some(pending) = self.lock().get(&(user.clone(), media.clone())) {
            return Ok(Some(pending.clone()));
        }
        // Not queued: maybe being written now; wait for that write.
        let _turn = self.flushing.read().await;
        self.inner.get(user, media).await
    }

    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let queued = {
            let mut pending = self.lock();
            let key = (progress.user.clone(), progress.media.clone());
            if self.is_stale(&pending, &key, &progress) {
                return Ok(RecordOutcome::Stale);
            }
            if let Some(current) = pending.get_mut(&key) {
                self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
                current.clone_from(&progress);
                true
            } else if pending.len() < self.capacity {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                pending.insert(key, progress.clone());
                true
            } else {
                false
            }
        };
        if !queued {
            // Full: write through, and ask the flusher to make room.
            self.stats.overflowed.fetch_add(1, Ordering::Relaxed);
            overflowed("progress");
            self.wake.notify_one();
            return self.inner.record(progress).await;
        }
        // Queued: acknowledged once held, or else written through.
        if self.holding.hold(Self::QUEUE, || held(&progress)).await.is_err() {
            self.inner.record(progress).await?;
        }
        Ok(RecordOutcome::Applied)
    }

    /// Writes through: the pending update of the same key (older, or it
    /// would make this one stale) is replaced by this one, which goes to
    /// the store now. A failed write leaves it queued for the flusher, and
    /// the caller gets the error, so it never acknowledges what may be lost.
    async fn record_durably(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let replaced = {
            let mut pending = self.lock();
            let key = (progress.user.clone(), progress.media.clone());
            if self.is_stale(&pending, &key, &progress) {
                return Ok(RecordOutcome::Stale);
            }
            let replaced = pending.remove(&key);
            self.mark_written(std::slice::from_ref(&progress));
            replaced
        };
        let written = self.inner.record(progress.clone()).await;
        match (&written, replaced) {
            (Err(_), _) => self.requeue(vec![progress]),
            // The update it replaced is superseded in the store.
            (Ok(_), Some(replaced)) => self.holding.release(Self::QUEUE, vec![held_as(&replaced)]).await,
            (Ok(_), None) => {}
        }
        written
    }
}

#[async_trait]
impl<S: ProgressStore + 'static> Rescue for WriteBehindProgress<S> {
    async fn rescue(&self, bodies: Vec<String>) -> Result<usize, String> {
        let batch: Vec<WatchProgress> = bodies.iter().filter_map(|body| WatchProgress::from_json(body)).collect();
        let read = batch.len();
        write_in_chunks(batch.clone(), |chunk| self.inner.record_many(chunk)).await.map_err(|(_, e)| e.to_string())?;
        if let Some(Hook(hook)) = self.rescued.get() {
            hook(&batch);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_large_batch_is_written_in_chunks_in_order() {
        let mut sizes = Vec::new();
        let batch: Vec<usize> = (0..FLUSH_CHUNK * 2 + 500).collect();
        let written = write_in_chunks(batch, |chunk| {
            sizes.push((chunk[0], chunk.len()));
            async { Ok::<(), ()>(()) }
        })
        .await;
        assert!(written.is_ok());
        assert_eq!(sizes, vec![(0, FLUSH_CHUNK), (FLUSH_CHUNK, FLUSH_CHUNK), (2 * FLUSH_CHUNK, 500)]);
    }

    #[tokio::test]
    async fn a_failed_chunk_hands_back_itself_and_the_rest() {
        let mut calls = 0;
        let batch: Vec<usize> = (0..FLUSH_CHUNK * 3).collect();
        let written = write_in_chunks(batch, |_| {
            calls += 1;
            let fail = calls == 2;
            async move {
                if fail {
                    Err("refused")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let (unwritten, error) = written.unwrap_err();
        assert_eq!(error, "refused");
        assert_eq!(unwritten, (FLUSH_CHUNK..FLUSH_CHUNK * 3).collect::<Vec<_>>(), "the first chunk stays written");
        assert_eq!(calls, 2, "nothing after the failure is tried");
    }

    #[test]
    fn a_failure_streak_is_logged_at_its_start_and_every_hundredth() {
        let streak = FailureStreak::default();
        let logged: Vec<u64> = (0..250).filter_map(|_| streak.failed("progress")).collect();
        assert_eq!(logged, [1, 100, 200]);
        streak.succeeded("progress");
        assert_eq!(streak.failed("progress"), Some(1), "a new streak");
    }
}
