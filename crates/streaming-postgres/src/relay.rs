//! The outbox relay: a task that moves outbox rows to a sink (Kafka in the
//! service), in order, with
//! nothing lost. Each round is [`PgOutbox::relay_batch`]: one relay at a time
//! holds the outbox, sends the oldest unpublished rows and marks them in the
//! same transaction. While the broker is down the rounds fail and the task
//! backs off (100 ms doubling to 10 s); the rows wait in PostgreSQL, so a
//! restart loses nothing either. A crash between the broker's
//! acknowledgement and the commit sends those rows again, with the same
//! `event_id`s (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use streaming_core::ports::OutboxSink;
use streaming_core::telemetry;
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

use crate::outbox::{PgOutbox, RelayOutcome};

/// How the relay runs.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Rows per round.
    pub batch: u32,
    /// Pause of an idle relay.
    pub poll_interval: Duration,
    /// Published rows older than this are deleted.
    pub retention: Duration,
}

/// The running relay.
pub struct OutboxRelay {
    outbox: PgOutbox,
    sink: Arc<dyn OutboxSink>,
    settings: RelaySettings,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay").field("settings", &self.settings).finish_non_exhaustive()
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often the backlog gauges (`outbox_backlog`, `outbox_lag_seconds`) are refreshed.
const REPORT_EVERY: Duration = Duration::from_secs(5);

async fn report_backlog(outbox: &PgOutbox) {
    match outbox.backlog_age().await {
        Ok((count, oldest)) => {
            metrics::gauge!(telemetry::OUTBOX_BACKLOG).set(count as f64);
            let lag = oldest.map_or(0.0, |oldest| (time::OffsetDateTime::now_utc() - oldest).as_seconds_f64().max(0.0));
            metrics::gauge!(telemetry::OUTBOX_LAG_SECONDS).set(lag);
        }
        Err(error) => warn!(%error, "reading the outbox backlog failed"),
    }
}

impl OutboxRelay {
    /// Starts the relay task: `outbox`'s rows go to `sink`.
    pub fn start(outbox: PgOutbox, sink: Arc<dyn OutboxSink>, settings: RelaySettings) -> Self {
        let task = tokio::spawn(run(outbox.clone(), Arc::clone(&sink), settings));
        Self { outbox, sink, settings, task }
    }

    /// Stops the task after relaying what is waiting, for at most `timeout`
    /// (graceful shutdown: progress drained into the outbox goes out too).
    pub async fn finish(self, timeout: Duration) {
        self.task.abort();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.outbox.relay_batch(self.settings.batch, &*self.sink).await {
                Ok(RelayOutcome::Relayed(0)) => return,
                Ok(RelayOutcome::Relayed(n)) => {
                    metrics::counter!(telemetry::EVENTS_PUBLISHED, "path" => "outbox").increment(n as u64);
                }
                Ok(RelayOutcome::Busy) | Err(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let left = self.outbox.backlog().await.unwrap_or_default();
                warn!(left, "outbox rows left for the next start to relay");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn run(outbox: PgOutbox, sink: Arc<dyn OutboxSink>, settings: RelaySettings) {
    let mut backoff = Duration::from_millis(100);
    let mut next_prune = tokio::time::Instant::now();
    let mut next_report = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_report {
            next_report = tokio::time::Instant::now() + REPORT_EVERY;
            report_backlog(&outbox).await;
        }
        let pause =
            match outbox.relay_batch(settings.batch, &*sink).instrument(tracing::debug_span!("outbox.relay")).await {
                Ok(RelayOutcome::Relayed(n)) => {
                    metrics::counter!(telemetry::EVENTS_PUBLISHED, "path" => "outbox").increment(n as u64);
                    backoff = Duration::from_millis(100);
                    // A full batch: more may be waiting.
                    if n == settings.batch as usize {
                        continue;
                    }
                    settings.poll_interval
                }
                Ok(RelayOutcome::Busy) => settings.poll_interval,
                Err(error) => {
                    warn!(%error, retry_in = ?backoff, "outbox relay round failed; rows kept");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
        if tokio::time::Instant::now() >= next_prune {
            next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
            let before = time::OffsetDateTime::now_utc() - settings.retention;
            match outbox.prune_published(before).await {
                Ok(0) => {}
                Ok(pruned) => info!(pruned, "published outbox rows deleted"),
                Err(error) => warn!(%error, "pruning the outbox failed"),
            }
        }
        tokio::time::sleep(pause).await;
    }
}
