//! The upstream consumer against a real Kafka-protocol broker (`cargo
//! xtask infra up` starts tansu), with a recording handler. Each test uses
//! topics of its own prefix.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use streaming_core::adapters::{MemoryDeadLetters, MemoryOffsetStore};
use streaming_core::contract::infra_var;
use streaming_core::domain::{CatalogChange, CatalogEvent};
use streaming_core::ports::{ApplyError, CatalogEventHandler, DeadLetters, OffsetStore};
use streaming_kafka::testing::{create_topics, unique_prefix};
use streaming_kafka::{
    ConsumerOptions, KafkaConfig, KafkaProducer, OutgoingRecord, StartFrom, UpstreamConsumer, UpstreamTopic,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Remembers every event it is handed.
#[derive(Default)]
struct Recording(Mutex<Vec<CatalogEvent>>);

#[async_trait]
impl CatalogEventHandler for Recording {
    async fn handle(&self, event: &CatalogEvent) -> Result<(), ApplyError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

fn options(start: StartFrom, attempts: u32, dead_letters: Arc<dyn DeadLetters>) -> ConsumerOptions {
    ConsumerOptions { start, attempts, dead_letters, relist_every: Duration::from_millis(200) }
}

fn producer(brokers: &str, prefix: &str) -> Arc<KafkaProducer> {
    Arc::new(KafkaProducer::new(KafkaConfig {
        topic_prefix: prefix.to_owned(),
        timeout: Duration::from_secs(3),
        ..KafkaConfig::new(vec![brokers.to_owned()])
    }))
}

/// Sends a `media.deleted` event for a fresh media id, keyed `key`.
async fn delete_one(producer: &KafkaProducer, key: &str) -> String {
    let media = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "occurred_at": OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
        "media_id": media,
    });
    let record = OutgoingRecord {
        topic: "media.deleted".into(),
        key: key.to_owned(),
        value: body.to_string().into_bytes(),
        headers: Vec::new(),
        timestamp: OffsetDateTime::now_utc(),
    };
    producer.send(vec![record]).await.unwrap();
    media
}

fn deleted(events: &[CatalogEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.change {
            CatalogChange::MediaDeleted { media } => Some(media.to_string()),
            _ => None,
        })
        .collect()
}

/// A stored offset past the end of the log (the topic was recreated, or
/// the offset was stored against another cluster) is reset where
/// `kafka.consume_from` says, counted and logged, instead of being loaded
/// and refused again for ever.
#[tokio::test]
async fn a_stored_offset_past_the_log_is_reset_where_consume_from_says() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &["media.deleted"]).await;
    let producer = producer(&brokers, &prefix);
    let mut sent = Vec::new();
    for n in 0..6 {
        sent.push(delete_one(&producer, &format!("key-{n}")).await);
    }
    let topic = format!("{prefix}media.deleted");
    let offsets = Arc::new(MemoryOffsetStore::default());
    for partition in 0..3 {
        offsets.store(&topic, partition, 1_000_000).await.unwrap();
    }
    let handler = Arc::new(Recording::default());
    let consumer = UpstreamConsumer::start(
        producer,
        vec![(UpstreamTopic::MediaDeleted, topic.clone())],
        offsets.clone(),
        handler.clone(),
        options(StartFrom::Earliest, 20, Arc::new(MemoryDeadLetters::default())),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while deleted(&handler.0.lock().unwrap()).len() < sent.len() {
        assert!(Instant::now() < deadline, "the events past a stale offset were never handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut handled = deleted(&handler.0.lock().unwrap());
    handled.sort();
    sent.sort();
    assert_eq!(handled, sent, "every event, from the earliest");
    assert_eq!(consumer.stats().offsets_reset.load(Ordering::Relaxed), 3, "one reset per partition");
    for partition in 0..3 {
        assert!(offsets.load(&topic, partition).await.unwrap().unwrap() < 1_000_000, "the reset was stored");
    }
}

/// Fails every event about one media item, applies the others.
struct Poisoned {
    poison: String,
    applied: Recording,
}

#[async_trait]
impl CatalogEventHandler for Poisoned {
    async fn handle(&self, event: &CatalogEvent) -> Result<(), ApplyError> {
        if deleted(std::slice::from_ref(event)) == [self.poison.clone()] {
            return Err(ApplyError { dependency: streaming_core::Dependency::Catalog, message: "refused".into() });
        }
        self.applied.handle(event).await
    }
}

/// An event whose handling never succeeds no longer blocks its partition:
/// after the attempts it is kept as a dead letter and the events behind it
/// (same key, same partition) are applied.
#[tokio::test]
async fn an_event_that_never_applies_becomes_a_dead_letter_and_its_partition_moves_on() {
    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &["media.deleted"]).await;
    let producer = producer(&brokers, &prefix);
    let poison = delete_one(&producer, "one-key").await;
    let after = [delete_one(&producer, "one-key").await, delete_one(&producer, "one-key").await];
    let topic = format!("{prefix}media.deleted");
    let handler = Arc::new(Poisoned { poison: poison.clone(), applied: Recording::default() });
    let letters = Arc::new(MemoryDeadLetters::default());
    let consumer = UpstreamConsumer::start(
        producer,
        vec![(UpstreamTopic::MediaDeleted, topic.clone())],
        Arc::new(MemoryOffsetStore::default()),
        handler.clone(),
        options(StartFrom::Earliest, 3, letters.clone()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while deleted(&handler.applied.0.lock().unwrap()) != after {
        assert!(Instant::now() < deadline, "the partition stayed blocked behind the failing event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kept = letters.recent(10).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].topic.as_str(), kept[0].attempts), (topic.as_str(), 3));
    assert!(String::from_utf8_lossy(&kept[0].payload).contains(&poison), "the record as received");
    let stats = consumer.stats();
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 3);
}

/// Partitions the topic gains after the consumer started are read too:
/// the topic recreated with twice the partitions, events on every one of
/// them are handled.
#[tokio::test]
async fn partitions_added_after_the_start_are_read_too() {
    use rskafka::client::ClientBuilder;

    let brokers = infra_var("STREAMGATE_KAFKA_BROKERS");
    let prefix = unique_prefix();
    create_topics(&brokers, &prefix, &["media.deleted"]).await;
    let topic = format!("{prefix}media.deleted");
    let first = producer(&brokers, &prefix);
    let handler = Arc::new(Recording::default());
    let consumer = UpstreamConsumer::start(
        first,
        vec![(UpstreamTopic::MediaDeleted, topic.clone())],
        Arc::new(MemoryOffsetStore::default()),
        handler.clone(),
        options(StartFrom::Earliest, 20, Arc::new(MemoryDeadLetters::default())),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let controller = ClientBuilder::new(vec![brokers.clone()]).build().await.unwrap();
    let controller = controller.controller_client().unwrap();
    controller.delete_topic(topic.clone(), 5_000).await.unwrap();
    // The deletion completes in the background: until it has, the name is taken.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(error) = controller.create_topic(topic.clone(), 6, 1, 5_000).await {
        assert!(error.to_string().contains("TopicAlreadyExists"), "{error}");
        assert!(Instant::now() < deadline, "the deleted topic's name was never free again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = producer(&brokers, &prefix);
    let mut sent = Vec::new();
    // Keys until every one of the six partitions has an event.
    let mut covered = std::collections::BTreeSet::new();
    for n in 0.. {
        let key = format!("key-{n}");
        if covered.insert(streaming_kafka::partition_for(key.as_bytes(), 6)) || covered.len() == 6 {
            sent.push(delete_one(&fresh, &key).await);
        }
        if covered.len() == 6 && sent.len() >= 6 {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut handled = deleted(&handler.0.lock().unwrap());
        handled.sort();
        handled.dedup();
        if sent.iter().all(|media| handled.contains(media)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events on the new partitions were never handled: {} of {}",
            handled.len(),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(consumer);
}
