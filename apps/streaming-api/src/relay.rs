//! The outbox relay: a task that moves outbox rows to Kafka, in order, with
//! nothing lost. Each round is [`PgOutbox::relay_batch`]: one relay at a time
//! holds the outbox, sends the oldest unpublished rows and marks them in the
//! same transaction. While the broker is down the rounds fail and the task
//! backs off (100 ms doubling to 10 s); the rows wait in PostgreSQL, so a
//! restart loses nothing either. A crash between the broker's
//! acknowledgement and the commit sends those rows again, with the same
//! `event_id`s (at-least-once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use streaming_core::telemetry;
use streaming_kafka::{KafkaProducer, OutgoingRecord};
use streaming_postgres::{OutboxRow, OutboxSink, PgOutbox, RelayOutcome};
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

/// Sends outbox rows as Kafka records (topic prefix added by the producer).
struct KafkaSink(Arc<KafkaProducer>);

#[async_trait]
impl OutboxSink for KafkaSink {
    async fn send(&self, rows: &[OutboxRow]) -> Result<(), String> {
        let records = rows
            .iter()
            .map(|row| OutgoingRecord {
                topic: row.topic.clone(),
                key: row.key.clone(),
                value: row.payload.clone().into_bytes(),
                headers: vec![("event_id".to_owned(), row.event_id.hyphenated().to_string().into_bytes())],
                timestamp: row.created_at,
            })
            .collect();
        self.0
            .send(records)
            .instrument(tracing::debug_span!("events.send", records = rows.len()))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Counters of the relay (metrics).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Rows sent and marked published.
    pub relayed: AtomicU64,
    /// Rounds that failed (broker or database), retried.
    pub failed_rounds: AtomicU64,
}

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
#[derive(Debug)]
pub struct Relay {
    outbox: PgOutbox,
    sink: Arc<KafkaProducer>,
    settings: RelaySettings,
    stats: Arc<RelayStats>,
    task: JoinHandle<()>,
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

impl Relay {
    /// Starts the relay task.
    pub fn start(outbox: PgOutbox, producer: Arc<KafkaProducer>, settings: RelaySettings) -> Self {
        let stats = Arc::new(RelayStats::default());
        let task = tokio::spawn(run(outbox.clone(), Arc::clone(&producer), settings, Arc::clone(&stats)));
        Self { outbox, sink: producer, settings, stats, task }
    }

    /// Stops the task after relaying what is waiting, for at most `timeout`
    /// (graceful shutdown: progress drained into the outbox goes out too).
    pub async fn finish(self, timeout: Duration) {
        self.task.abort();
        let sink = KafkaSink(self.sink);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.outbox.relay_batch(self.settings.batch, &sink).await {
                Ok(RelayOutcome::Relayed(0)) => return,
                Ok(RelayOutcome::Relayed(n)) => {
                    self.stats.relayed.fetch_add(n as u64, Ordering::Relaxed);
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

async fn run(outbox: PgOutbox, producer: Arc<KafkaProducer>, settings: RelaySettings, stats: Arc<RelayStats>) {
    let sink = KafkaSink(producer);
    let mut backoff = Duration::from_millis(100);
    let mut next_prune = tokio::time::Instant::now();
    let mut next_report = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_report {
            next_report = tokio::time::Instant::now() + REPORT_EVERY;
            report_backlog(&outbox).await;
        }
        let pause =
            match outbox.relay_batch(settings.batch, &sink).instrument(tracing::debug_span!("outbox.relay")).await {
                Ok(RelayOutcome::Relayed(n)) => {
                    stats.relayed.fetch_add(n as u64, Ordering::Relaxed);
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
                    stats.failed_rounds.fetch_add(1, Ordering::Relaxed);
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
