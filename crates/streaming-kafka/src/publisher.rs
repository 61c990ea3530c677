//! Playback events as Kafka records, and the buffered publisher used when
//! there is no outbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use streaming_core::telemetry;

use async_trait::async_trait;
use streaming_core::domain::PlaybackEvent;
use streaming_core::ports::{EventPublisher, PublishError};
use tokio::sync::mpsc;
use tracing::warn;

use crate::producer::{KafkaProducer, OutgoingRecord};

/// Most records sent in one produce call.
const BATCH: usize = 500;

/// The record of `event`: topic `stream.{start|progress|stop}` (the producer
/// adds its prefix), key the user id, value the event's JSON, header `event_id`.
pub fn playback_record(event: &PlaybackEvent) -> OutgoingRecord {
    OutgoingRecord {
        topic: format!("stream.{}", event.topic_suffix()),
        key: event.key().to_owned(),
        value: event.to_json().into_bytes(),
        headers: vec![("event_id".to_owned(), event.event_id.hyphenated().to_string().into_bytes())],
        timestamp: event.timestamp,
    }
}

/// Counters of the buffered publisher (metrics).
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Events accepted into the buffer.
    pub queued: AtomicU64,
    /// Events the broker acknowledged.
    pub sent: AtomicU64,
    /// Events refused because the buffer was full (lost).
    pub dropped: AtomicU64,
    /// Failed produce calls (retried).
    pub failed_sends: AtomicU64,
}

/// [`EventPublisher`] straight to Kafka through a bounded buffer: `publish`
/// never waits for the broker; one task sends in order, retrying with
/// backoff (100 ms doubling to 5 s) while the broker is down. When the buffer
/// is full the event is dropped, counted in [`PublisherStats::dropped`], and
/// `publish` reports it. Use the PostgreSQL outbox where no event may be lost.
#[derive(Debug, Clone)]
pub struct BufferedKafkaPublisher {
    buffer: mpsc::Sender<OutgoingRecord>,
    stats: Arc<PublisherStats>,
}

impl BufferedKafkaPublisher {
    /// Starts the sender task with room for `capacity` events.
    pub fn start(producer: Arc<KafkaProducer>, capacity: usize) -> Self {
        let (buffer, mut queue) = mpsc::channel::<OutgoingRecord>(capacity.max(1));
        let stats = Arc::new(PublisherStats::default());
        let counters = Arc::clone(&stats);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match queue.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
                let mut backoff = Duration::from_millis(100);
                loop {
                    match producer.send(batch.clone()).await {
                        Ok(()) => {
                            counters.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            metrics::counter!(telemetry::EVENTS_PUBLISHED, "path" => "direct")
                                .increment(batch.len() as u64);
                            break;
                        }
                        Err(error) => {
                            counters.failed_sends.fetch_add(1, Ordering::Relaxed);
                            warn!(%error, events = batch.len(), retry_in = ?backoff, "sending events to kafka failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        });
        Self { buffer, stats }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<PublisherStats> {
        Arc::clone(&self.stats)
    }

    /// Events accepted but not yet acknowledged.
    pub fn pending(&self) -> u64 {
        let queued = self.stats.queued.load(Ordering::Relaxed);
        queued.saturating_sub(self.stats.sent.load(Ordering::Relaxed))
    }

    /// Waits until every accepted event is acknowledged or `timeout` passes
    /// (graceful shutdown).
    ///
    /// # Errors
    /// [`PublishError::Unavailable`] naming how many events were not sent.
    pub async fn flush(&self, timeout: Duration) -> Result<(), PublishError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(PublishError::Unavailable(format!("{} events not sent to kafka", self.pending())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl EventPublisher for BufferedKafkaPublisher {
    async fn publish(&self, event: PlaybackEvent) -> Result<(), PublishError> {
        match self.buffer.try_send(playback_record(&event)) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(telemetry::EVENTS_DROPPED, "reason" => "buffer_full").increment(1);
                Err(PublishError::Unavailable("the kafka event buffer is full; event dropped".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(telemetry::EVENTS_DROPPED, "reason" => "sender_stopped").increment(1);
                Err(PublishError::Unavailable("the kafka sender has stopped; event dropped".into()))
            }
        }
    }
}
