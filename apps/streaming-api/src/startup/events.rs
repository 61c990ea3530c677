//! Kafka: the producer, the outbox relay's settings, the upstream consumer's topics.

use std::sync::Arc;
use std::time::Duration;

use streaming_core::adapters::{MemoryDeadLetters, MemoryOffsetStore};
use streaming_core::changes::CatalogChanges;
use streaming_core::ports::{DeadLetters, EventPublisher, OffsetStore};
use streaming_kafka::{BufferedKafkaPublisher, ConsumerOptions, UpstreamConsumer};
use streaming_localfs::JsonLinesEventPublisher;
use streaming_postgres::{OutboxRelay, PgConsumerOffsets, PgDeadLetters, PgOutbox, WriteBehindOutbox};

use crate::settings::Settings;

use super::StartupError;
use streaming_core::ports::OutboxSink;
use streaming_kafka::KafkaProducer;
use streaming_postgres::PgDatabase;
use streaming_postgres::RelaySettings;

/// Where playback events go, and what shutdown drains.
pub(super) struct EventPipeline {
    /// The publisher the services use.
    pub(super) events: Arc<dyn EventPublisher>,
    /// The outbox relay (PostgreSQL and Kafka).
    pub(super) relay: Option<OutboxRelay>,
    /// The bounded buffer (Kafka without PostgreSQL).
    pub(super) kafka_buffer: Option<BufferedKafkaPublisher>,
    /// Progress events written behind into the outbox (PostgreSQL).
    pub(super) outbox_queue: Option<Arc<WriteBehindOutbox>>,
}

/// With PostgreSQL every event goes to the outbox (start and stop in the
/// session's own transaction), and with Kafka a relay publishes it; with
/// Kafka alone events go through a bounded buffer; with neither, to the
/// JSON-lines file.
pub(super) async fn event_pipeline(
    settings: &Settings,
    postgres: Option<&PgDatabase>,
    producer: Option<&Arc<KafkaProducer>>,
) -> Result<EventPipeline, StartupError> {
    Ok(match (postgres, producer) {
        (Some(db), producer) => {
            let outbox = PgOutbox::new(db.clone());
            let relay = producer.map(|producer| {
                let sink: Arc<dyn OutboxSink> = producer.clone();
                OutboxRelay::start(outbox.clone(), sink, relay_settings(settings))
            });
            // Progress events are written behind, batched like the progress itself.
            let queue = WriteBehindOutbox::start(
                outbox,
                settings.postgres.progress_queue_capacity,
                Duration::from_millis(settings.postgres.progress_flush_interval_ms.max(10)),
            );
            EventPipeline { events: queue.clone(), relay, kafka_buffer: None, outbox_queue: Some(queue) }
        }
        (None, Some(producer)) => {
            let buffer = BufferedKafkaPublisher::start(producer.clone(), settings.kafka.buffer_capacity);
            EventPipeline {
                events: Arc::new(buffer.clone()),
                relay: None,
                kafka_buffer: Some(buffer),
                outbox_queue: None,
            }
        }
        (None, None) => {
            let file = JsonLinesEventPublisher::open(&settings.events.path)
                .await
                .map_err(|e| StartupError::Storage(format!("events file {}: {e}", settings.events.path.display())))?;
            EventPipeline { events: Arc::new(file), relay: None, kafka_buffer: None, outbox_queue: None }
        }
    })
}

/// The consumer of upstream catalog events, when Kafka is configured and
/// `consume` is on: every instance reads them all (its in-process caches
/// need them); offsets in PostgreSQL when there is one.
pub(super) fn upstream_consumer(
    settings: &Settings,
    producer: Option<&Arc<KafkaProducer>>,
    changes: Option<&Arc<CatalogChanges>>,
    consume: bool,
    postgres: Option<&PgDatabase>,
) -> Result<Option<UpstreamConsumer>, StartupError> {
    let (Some(producer), Some(handler)) = (producer, changes) else { return Ok(None) };
    if !consume {
        return Ok(None);
    }
    let (offsets, dead_letters): (Arc<dyn OffsetStore>, Arc<dyn DeadLetters>) = match postgres {
        Some(db) => (
            Arc::new(PgConsumerOffsets::new(db.clone(), settings.kafka.consumer_id.clone())),
            Arc::new(PgDeadLetters::new(db.clone())),
        ),
        None => (Arc::new(MemoryOffsetStore::default()), Arc::new(MemoryDeadLetters::default())),
    };
    Ok(Some(UpstreamConsumer::start(
        producer.clone(),
        settings.kafka.upstream_topics().map_err(|e| StartupError::Config(e.to_string()))?,
        offsets,
        handler.clone(),
        ConsumerOptions {
            start: settings.kafka.consume_from,
            attempts: settings.kafka.handler_attempts,
            dead_letters,
            relist_every: Duration::from_secs(60),
        },
    )))
}

pub(super) fn kafka_producer(settings: &Settings) -> Result<Option<Arc<KafkaProducer>>, StartupError> {
    Ok(settings.kafka.producer().map_err(|e| StartupError::Config(e.to_string()))?.map(Arc::new))
}

fn relay_settings(settings: &Settings) -> RelaySettings {
    RelaySettings {
        batch: settings.kafka.relay_batch_size,
        poll_interval: Duration::from_millis(settings.kafka.relay_poll_interval_ms.max(10)),
        retention: Duration::from_secs(settings.kafka.outbox_retention_hours * 3600),
    }
}
