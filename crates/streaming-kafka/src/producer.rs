//! A keyed producer on rskafka: records of one key go to one partition, in
//! the order given, and a call returns only when the broker acknowledged all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::partition::partition_for;

/// Where the broker is and how to name topics.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Prepended to every topic name (the seed's `KAFKA_TOPIC_PREFIX`), e.g. `prod.`.
    pub topic_prefix: String,
    /// The client id the broker sees.
    pub client_id: String,
    /// Bound of every call to the broker, retries included (default 5 s).
    pub timeout: Duration,
}

impl KafkaConfig {
    /// A config for `brokers` with no prefix and the defaults.
    pub fn new(brokers: Vec<String>) -> Self {
        Self { brokers, topic_prefix: String::new(), client_id: "streamgate".into(), timeout: Duration::from_secs(5) }
    }
}

/// Why the broker could not take the records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    /// Unreachable, timed out, or refused the request; nothing may be assumed written.
    #[error("kafka unavailable: {0}")]
    Unavailable(String),
    /// The topic does not exist on the broker (topics are not created implicitly).
    #[error("kafka topic {0} does not exist")]
    UnknownTopic(String),
}

/// One record to send: `topic` without the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The topic name without the configured prefix, e.g. `stream.start`.
    pub topic: String,
    /// The partition key (the user id for playback events).
    pub key: String,
    /// The payload (JSON).
    pub value: Vec<u8>,
    /// Record headers (e.g. `event_id`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's timestamp.
    pub timestamp: OffsetDateTime,
}

/// A connected producer; cheap to share (`Arc`).
pub struct KafkaProducer {
    config: KafkaConfig,
    client: Mutex<Option<Arc<Client>>>,
    partitions: Mutex<HashMap<String, Arc<Vec<PartitionClient>>>>,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").field("brokers", &self.config.brokers).finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> KafkaError {
    KafkaError::Unavailable(error.to_string())
}

impl KafkaProducer {
    /// A producer for `config`. It connects on first use, so a broker that is
    /// down at start delays events rather than the service.
    pub fn new(config: KafkaConfig) -> Self {
        Self { config, client: Mutex::new(None), partitions: Mutex::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The full name of `topic` (with the prefix).
    pub fn topic_name(&self, topic: &str) -> String {
        format!("{}{topic}", self.config.topic_prefix)
    }

    /// `call` bounded by the configured timeout, its error made a [`KafkaError`].
    pub(crate) async fn bounded<T, E: std::fmt::Display>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, KafkaError> {
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(KafkaError::Unavailable(format!("no answer within {:?}", self.config.timeout))),
        }
    }

    /// The client, connecting if there is none yet.
    ///
    /// # Errors
    /// [`KafkaError::Unavailable`] if no bootstrap broker answers in time.
    pub async fn client(&self) -> Result<Arc<Client>, KafkaError> {
        let mut client = self.client.lock().await;
        if let Some(client) = client.as_ref() {
            return Ok(Arc::clone(client));
        }
        // rskafka retries forever by default; bound it by our timeout.
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(self.config.timeout),
        };
        let built = ClientBuilder::new(self.config.brokers.clone())
            .client_id(self.config.client_id.clone())
            .backoff_config(backoff)
            .build();
        let connected = Arc::new(self.bounded(built).await?);
        *client = Some(Arc::clone(&connected));
        Ok(connected)
    }

    async fn partitions(&self, topic: &str) -> Result<Arc<Vec<PartitionClient>>, KafkaError> {
        if let Some(found) = self.partitions.lock().await.get(topic) {
            return Ok(Arc::clone(found));
        }
        let client = self.client().await?;
        let topics = self.bounded(client.list_topics()).await?;
        let count = topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len())
            .filter(|n| *n > 0)
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_owned()))?;
        let mut clients = Vec::with_capacity(count);
        for partition in 0..count {
            let partition = i32::try_from(partition).map_err(unavailable)?;
            clients.push(
                self.bounded(client.partition_client(topic.to_owned(), partition, UnknownTopicHandling::Error)).await?,
            );
        }
        let clients = Arc::new(clients);
        self.partitions.lock().await.insert(topic.to_owned(), Arc::clone(&clients));
        Ok(clients)
    }

    /// Forgets cached partition leaders and the connection, so the next call
    /// looks them up again (after an error).
    async fn reset(&self) {
        self.partitions.lock().await.clear();
        *self.client.lock().await = None;
    }

    /// Sends `records`, each to the partition of its key, preserving their
    /// order within a partition; returns when the broker has acknowledged
    /// every one. On error any subset may have been written (at-least-once:
    /// the caller sends them all again).
    ///
    /// # Errors
    /// [`KafkaError::Unavailable`] or [`KafkaError::UnknownTopic`].
    pub async fn send(&self, records: Vec<OutgoingRecord>) -> Result<(), KafkaError> {
        let result = self.send_grouped(records).await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn send_grouped(&self, records: Vec<OutgoingRecord>) -> Result<(), KafkaError> {
        // Groups in order of first appearance; each keeps its records' order.
        let mut groups: Vec<(Arc<Vec<PartitionClient>>, usize, Vec<Record>)> = Vec::new();
        let mut index: HashMap<(String, usize), usize> = HashMap::new();
        for record in records {
            let topic = self.topic_name(&record.topic);
            let clients = self.partitions(&topic).await?;
            let partition = partition_for(record.key.as_bytes(), clients.len());
            let timestamp =
                chrono::DateTime::from_timestamp(record.timestamp.unix_timestamp(), record.timestamp.nanosecond())
                    .unwrap_or_default();
            let kafka_record = Record {
                key: Some(record.key.into_bytes()),
                value: Some(record.value),
                headers: record.headers.into_iter().collect(),
                timestamp,
            };
            let slot = *index.entry((topic, partition)).or_insert_with(|| {
                groups.push((Arc::clone(&clients), partition, Vec::new()));
                groups.len() - 1
            });
            groups[slot].2.push(kafka_record);
        }
        for (clients, partition, batch) in groups {
            self.bounded(clients[partition].produce(batch, Compression::NoCompression)).await?;
        }
        Ok(())
    }
}
