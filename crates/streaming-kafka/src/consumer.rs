//! The consumer of upstream catalog events, without broker-side consumer
//! groups: one task per partition of every upstream topic reads in offset
//! order, hands each event to the handler, and stores the next offset
//! through an [`OffsetStore`] (PostgreSQL in the service, or memory). Delivery to the
//! handler is at-least-once: a crash between handling and storing the offset
//! repeats events, so handlers are idempotent.
//!
//! * A handler error (its store is down) retries the same event with
//!   backoff, up to [`ConsumerOptions::attempts`]; then the event is kept as
//!   a dead letter ([`DeadLetters`], counted, logged as an error) and the
//!   partition moves on.
//! * A record that is not a valid event is counted, logged by topic,
//!   partition and offset (never its content), and skipped.
//! * A topic that does not exist yet is looked up again after 100 ms, then at
//!   doubling intervals up to every 10 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use streaming_core::ports::{CatalogEventHandler, DeadLetter, DeadLetters, OffsetStore};
use streaming_core::telemetry as names;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::producer::{KafkaError, KafkaProducer};
use crate::upstream::{parse, UpstreamTopic};

/// Counters (metrics).
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Events handled.
    pub handled: AtomicU64,
    /// Records that were not valid events (skipped).
    pub invalid: AtomicU64,
    /// Handler failures (retried).
    pub failed: AtomicU64,
    /// Stored offsets the broker refused as out of range, reset where
    /// `kafka.consume_from` says.
    pub offsets_reset: AtomicU64,
    /// Events given up on after every attempt, kept as dead letters.
    pub dead_lettered: AtomicU64,
}

/// How the consumer starts and how long it insists.
#[derive(Clone)]
pub struct ConsumerOptions {
    /// Where a partition with no stored offset (or an out-of-range one) starts.
    pub start: StartFrom,
    /// Attempts at handling one event before it becomes a dead letter and
    /// the partition moves on (at least 1).
    pub attempts: u32,
    /// Where the events given up on are kept.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// How often a topic's partitions are listed again, so partitions added
    /// later are read too (the service: every minute).
    pub relist_every: Duration,
}

impl std::fmt::Debug for ConsumerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerOptions")
            .field("start", &self.start)
            .field("attempts", &self.attempts)
            .field("relist_every", &self.relist_every)
            .finish()
    }
}

/// Where to start a partition with no stored offset (`kafka.consume_from`:
/// `earliest`, the default, or `latest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest record the broker keeps (rebuilds the read model).
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// The running consumer; dropping it stops its tasks.
#[derive(Debug)]
pub struct UpstreamConsumer {
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<ConsumerStats>,
}

impl Drop for UpstreamConsumer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How long a fetch waits at the broker for new records.
const MAX_WAIT_MS: i32 = 500;
const MAX_BYTES: i32 = 1 << 20;
/// Longest wait between two attempts (to find a topic, to start reading a
/// partition); the first is 100 ms and each failure doubles it.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Sleeps `backoff`, then doubles it up to [`MAX_RETRY`].
async fn pause(backoff: &mut Duration) {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_RETRY);
    tokio::time::sleep(wait).await;
}

struct Shared {
    producer: Arc<KafkaProducer>,
    offsets: Arc<dyn OffsetStore>,
    handler: Arc<dyn CatalogEventHandler>,
    stats: Arc<ConsumerStats>,
    start: StartFrom,
    attempts: u32,
    dead_letters: Arc<dyn DeadLetters>,
    relist_every: Duration,
}

impl UpstreamConsumer {
    /// Starts consuming `topics` (each with its full name, prefix included).
    pub fn start(
        producer: Arc<KafkaProducer>,
        topics: Vec<(UpstreamTopic, String)>,
        offsets: Arc<dyn OffsetStore>,
        handler: Arc<dyn CatalogEventHandler>,
        options: ConsumerOptions,
    ) -> Self {
        let stats = Arc::new(ConsumerStats::default());
        let ConsumerOptions { start, attempts, dead_letters, relist_every } = options;
        let shared = Arc::new(Shared {
            producer,
            offsets,
            handler,
            stats: Arc::clone(&stats),
            start,
            attempts: attempts.max(1),
            dead_letters,
            relist_every: relist_every.max(Duration::from_millis(100)),
        });
        let tasks =
            topics.into_iter().map(|(kind, name)| tokio::spawn(topic_task(Arc::clone(&shared), kind, name))).collect();
        Self { tasks, stats }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }
}

/// The topic's partitions, as the broker lists them now.
async fn list_partitions(shared: &Shared, name: &str) -> Result<Option<Vec<i32>>, KafkaError> {
    let client = shared.producer.client().await?;
    let topics = shared.producer.bounded(client.list_topics()).await?;
    Ok(topics.into_iter().find(|t| t.name == name).map(|t| t.partitions.into_iter().collect()))
}

/// Finds the topic's partitions and runs one task per partition, listing
/// them again every [`ConsumerOptions::relist_every`] to start on the
/// partitions added since.
async fn topic_task(shared: Arc<Shared>, kind: UpstreamTopic, name: String) {
    for counter in
        [names::CONSUMER_HANDLED, names::CONSUMER_FAILURES, names::CONSUMER_DEAD_LETTERS, names::CONSUMER_OFFSETS_RESET]
    {
        metrics::counter!(counter, "topic" => name.clone()).increment(0);
    }
    let mut warned = false;
    let mut backoff = Duration::from_millis(100);
    let mut partitions = loop {
        match list_partitions(&shared, &name).await {
            Ok(Some(partitions)) if !partitions.is_empty() => break partitions,
            outcome => {
                if !warned {
                    let reason = match outcome {
                        Err(error) => error.to_string(),
                        Ok(_) => "no such topic".into(),
                    };
                    warn!(topic = %name, %reason, "cannot consume the topic yet; retrying");
                    warned = true;
                }
                pause(&mut backoff).await;
            }
        }
    };
    // Aborting this task must stop the partitions too.
    struct AbortOnDrop(Vec<JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for task in &self.0 {
                task.abort();
            }
        }
    }
    let mut running = AbortOnDrop(Vec::new());
    let mut known = std::collections::BTreeSet::new();
    loop {
        for partition in partitions {
            if known.insert(partition) {
                if !running.0.is_empty() {
                    tracing::info!(topic = %name, partition, "a new partition; reading it");
                }
                running.0.push(tokio::spawn(partition_task(Arc::clone(&shared), kind, name.clone(), partition)));
            }
        }
        tokio::time::sleep(shared.relist_every).await;
        partitions = match list_partitions(&shared, &name).await {
            Ok(Some(listed)) => listed,
            Ok(None) | Err(_) => Vec::new(),
        };
    }
}

async fn partition_client(shared: &Shared, name: &str, partition: i32) -> Result<PartitionClient, String> {
    let client = shared.producer.client().await.map_err(|e| e.to_string())?;
    let partition_client = client.partition_client(name.to_owned(), partition, UnknownTopicHandling::Retry);
    shared.producer.bounded(partition_client).await.map_err(|e| e.to_string())
}

async fn starting_offset(shared: &Shared, pc: &PartitionClient, name: &str, partition: i32) -> Result<i64, String> {
    if let Some(stored) = shared.offsets.load(name, partition).await.map_err(|e| e.to_string())? {
        return Ok(stored);
    }
    let at = match shared.start {
        StartFrom::Earliest => OffsetAt::Earliest,
        StartFrom::Latest => OffsetAt::Latest,
    };
    shared.producer.bounded(pc.get_offset(at)).await.map_err(|e| e.to_string())
}

/// Keeps `letter` (retrying until it is kept: nothing is lost), then counts
/// and logs it; the partition then moves on.
async fn keep_dead_letter(shared: &Shared, letter: &DeadLetter) {
    let mut retry = Duration::from_millis(100);
    while let Err(error) = shared.dead_letters.keep(letter).await {
        warn!(topic = %letter.topic, partition = letter.partition, offset = letter.offset, %error, "a dead letter could not be kept; retrying");
        pause(&mut retry).await;
    }
    shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(names::CONSUMER_DEAD_LETTERS, "topic" => letter.topic.clone()).increment(1);
    tracing::error!(
        topic = %letter.topic,
        partition = letter.partition,
        offset = letter.offset,
        attempts = letter.attempts,
        error = %letter.error,
        "an upstream event was given up on and kept as a dead letter; the partition moves on"
    );
}

/// The offset `kafka.consume_from` names, after the broker refused
/// `refused` as out of range (the log no longer holds it, or never did),
/// stored, counted and logged.
async fn reset_offset(
    shared: &Shared,
    pc: &PartitionClient,
    name: &str,
    partition: i32,
    refused: i64,
) -> Result<i64, String> {
    let at = match shared.start {
        StartFrom::Earliest => OffsetAt::Earliest,
        StartFrom::Latest => OffsetAt::Latest,
    };
    let reset = shared.producer.bounded(pc.get_offset(at)).await.map_err(|e| e.to_string())?;
    shared.offsets.reset(name, partition, reset).await.map_err(|e| e.to_string())?;
    shared.stats.offsets_reset.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(names::CONSUMER_OFFSETS_RESET, "topic" => name.to_owned()).increment(1);
    warn!(topic = %name, partition, refused, reset, start = ?shared.start, "the stored offset is out of range; reset");
    Ok(reset)
}

async fn partition_task(shared: Arc<Shared>, kind: UpstreamTopic, name: String, partition: i32) {
    let mut backoff = Duration::from_millis(100);
    // Where this task has read up to. A reconnect goes on from here, never
    // from the stored offset: instances share it, and one that went further
    // would make this one skip changes its own caches never saw.
    let mut position: Option<i64> = None;
    // (Re)connects, then reads until an error sends it back here.
    loop {
        let setup = async {
            let pc = partition_client(&shared, &name, partition).await?;
            let offset = match position {
                Some(offset) => offset,
                None => starting_offset(&shared, &pc, &name, partition).await?,
            };
            Ok::<_, String>((pc, offset))
        };
        let (pc, mut offset) = match setup.await {
            Ok(ready) => ready,
            Err(error) => {
                warn!(topic = %name, partition, %error, "consumer cannot start reading; retrying");
                pause(&mut backoff).await;
                continue;
            }
        };
        loop {
            let fetched =
                tokio::time::timeout(Duration::from_secs(10), pc.fetch_records(offset, 1..MAX_BYTES, MAX_WAIT_MS))
                    .await;
            // Past the end of the log: Kafka refuses the offset, some
            // brokers answer nothing with a high watermark below it.
            let out_of_range = matches!(
                &fetched,
                Ok(Err(RsError::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. }))
            ) || matches!(&fetched, Ok(Ok((records, high_watermark))) if records.is_empty() && offset > *high_watermark);
            let records = match fetched {
                _ if out_of_range => match reset_offset(&shared, &pc, &name, partition, offset).await {
                    Ok(reset) => {
                        offset = reset;
                        continue;
                    }
                    Err(error) => {
                        warn!(topic = %name, partition, offset, %error, "resetting an out-of-range offset failed; reconnecting");
                        break;
                    }
                },
                Ok(Ok((records, high_watermark))) => {
                    let lag = (high_watermark - offset).max(0) as f64;
                    metrics::gauge!(names::CONSUMER_LAG, "topic" => name.clone(), "partition" => partition.to_string())
                        .set(lag);
                    records
                }
                Ok(Err(error)) => {
                    warn!(topic = %name, partition, offset, %error, "fetch failed; reconnecting");
                    break;
                }
                Err(_) => {
                    warn!(topic = %name, partition, offset, "fetch timed out; reconnecting");
                    break;
                }
            };
            backoff = Duration::from_millis(100);
            if records.is_empty() {
                continue;
            }
            for record in records {
                let value = record.record.value.unwrap_or_default();
                match parse(kind, &value) {
                    Ok(event) => {
                        let mut retry = Duration::from_millis(100);
                        let mut attempts = 0;
                        loop {
                            attempts += 1;
                            let Err(error) = shared.handler.handle(&event).await else {
                                shared.stats.handled.fetch_add(1, Ordering::Relaxed);
                                metrics::counter!(names::CONSUMER_HANDLED, "topic" => name.clone()).increment(1);
                                break;
                            };
                            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!(names::CONSUMER_FAILURES, "topic" => name.clone()).increment(1);
                            if attempts >= shared.attempts {
                                let letter = DeadLetter {
                                    topic: name.clone(),
                                    partition,
                                    offset: record.offset,
                                    event_id: Some(event.event_id),
                                    payload: value.clone(),
                                    error: error.to_string(),
                                    attempts,
                                };
                                keep_dead_letter(&shared, &letter).await;
                                break;
                            }
                            warn!(topic = %name, partition, offset = record.offset, %error, attempts, "handling an event failed; retrying");
                            pause(&mut retry).await;
                        }
                    }
                    Err(error) => {
                        shared.stats.invalid.fetch_add(1, Ordering::Relaxed);
                        warn!(topic = %name, partition, offset = record.offset, %error, "skipping an invalid event");
                    }
                }
                offset = record.offset + 1;
            }
            position = Some(offset);
            if let Err(error) = shared.offsets.store(&name, partition, offset).await {
                warn!(topic = %name, partition, offset, %error, "storing the consumer offset failed");
            }
        }
        pause(&mut backoff).await;
    }
}
