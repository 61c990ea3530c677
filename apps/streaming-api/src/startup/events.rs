//! Kafka: the producer, the outbox relay's settings, the upstream consumer's topics.

use std::sync::Arc;
use std::time::Duration;

use streaming_core::adapters::MemoryOffsetStore;
use streaming_core::changes::CatalogChanges;
use streaming_core::ports::{EventPublisher, OffsetStore};
use streaming_kafka::{BufferedKafkaPublisher, UpstreamConsumer};
use streaming_localfs::JsonLinesEventPublisher;
use streaming_postgres::{OutboxRelay, PgConsumerOffsets, PgOutbox, WriteBehindOutbox};

use crate::settings::Settings;

use super::StartupError;
use crate::settings::ConsumeFrom;
use streaming_core::ports::OutboxSink;
use streaming_kafka::{KafkaConfig, StartFrom};
use streaming_kafka::{KafkaProducer, UpstreamTopic};
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
    let offsets: Arc<dyn OffsetStore> = match postgres {
        Some(db) => Arc::new(PgConsumerOffsets::new(db.clone(), settings.kafka.consumer_id.clone())),
        None => Arc::new(MemoryOffsetStore::default()),
    };
    Ok(Some(UpstreamConsumer::start(
        producer.clone(),
        upstream_topics(settings)?,
        offsets,
        handler.clone(),
        start_from(settings),
    )))
}

pub(super) fn kafka_producer(settings: &Settings) -> Result<Option<Arc<KafkaProducer>>, StartupError> {
    let kafka = &settings.kafka;
    if !kafka.enabled {
        return Ok(None);
    }
    let brokers = kafka.broker_list();
    if brokers.is_empty() {
        return Err(StartupError::Config("kafka.enabled needs kafka.brokers (host:port, comma-separated)".into()));
    }
    if kafka.timeout_ms == 0 || kafka.relay_batch_size == 0 {
        return Err(StartupError::Config("kafka.timeout_ms and kafka.relay_batch_size must be positive".into()));
    }
    Ok(Some(Arc::new(KafkaProducer::new(KafkaConfig {
        brokers,
        topic_prefix: kafka.topic_prefix.clone(),
        client_id: kafka.client_id.clone(),
        timeout: Duration::from_millis(kafka.timeout_ms),
    }))))
}

fn upstream_topics(settings: &Settings) -> Result<Vec<(UpstreamTopic, String)>, StartupError> {
    let names = &settings.kafka.upstream_topics;
    if let Some(unknown) = names.keys().find(|k| UpstreamTopic::ALL.iter().all(|t| t.default_name() != k.as_str())) {
        return Err(StartupError::Config(format!("kafka.upstream_topics: unknown event {unknown:?}")));
    }
    Ok(UpstreamTopic::ALL
        .iter()
        .map(|topic| {
            let name = names.get(topic.default_name()).map_or(topic.default_name(), String::as_str);
            (*topic, format!("{}{name}", settings.kafka.topic_prefix))
        })
        .collect())
}

fn start_from(settings: &Settings) -> StartFrom {
    match settings.kafka.consume_from {
        ConsumeFrom::Earliest => StartFrom::Earliest,
        ConsumeFrom::Latest => StartFrom::Latest,
    }
}

fn relay_settings(settings: &Settings) -> RelaySettings {
    RelaySettings {
        batch: settings.kafka.relay_batch_size,
        poll_interval: Duration::from_millis(settings.kafka.relay_poll_interval_ms.max(10)),
        retention: Duration::from_secs(settings.kafka.outbox_retention_hours * 3600),
    }
}
