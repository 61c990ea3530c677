//! Settings of playback events: the JSON-lines file and Kafka.

use std::path::PathBuf;

use serde::Deserialize;

/// Where playback events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// The JSON-lines file of the embedded mode (default `data/events.jsonl`).
    pub path: PathBuf,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self { path: PathBuf::from("data/events.jsonl") }
    }
}

/// Kafka: playback events go to `{topic_prefix}stream.{start|progress|stop}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Publish to Kafka (default false: without it, events stay in the
    /// PostgreSQL outbox or go to `events.path`).
    pub enabled: bool,
    /// Bootstrap brokers, comma-separated `host:port` (default `127.0.0.1:9092`).
    pub brokers: String,
    /// Prepended to every topic name (default empty), e.g. `prod.`.
    pub topic_prefix: String,
    /// The client id the brokers see (default `streamgate`).
    pub client_id: String,
    /// Bound of every broker call, retries included, in milliseconds (default 5000).
    pub timeout_ms: u64,
    /// Without PostgreSQL: events buffered in memory while the broker is slow
    /// or down (default 10 000); beyond it events are dropped and counted.
    pub buffer_capacity: usize,
    /// With PostgreSQL: outbox rows sent per relay round (default 500).
    pub relay_batch_size: u32,
    /// With PostgreSQL: how often an idle relay looks for new rows, in milliseconds (default 200).
    pub relay_poll_interval_ms: u64,
    /// Published outbox rows are deleted after this many hours (default 24).
    pub outbox_retention_hours: u64,
    /// Consume the upstream catalog events (default true when Kafka is enabled).
    pub consume: bool,
    /// The name under which consumer offsets are kept in PostgreSQL (default
    /// `streamgate`; instances may share it: each reads every event, and
    /// applying one twice changes nothing).
    pub consumer_id: String,
    /// Where a partition with no stored offset starts: `earliest` (default:
    /// rebuilds the read model from what the broker keeps) or `latest`.
    pub consume_from: ConsumeFrom,
    /// Topic names of the upstream events, by their default names
    /// (`media.upserted`, `media.status_changed`, `media.deleted`,
    /// `user.suspended`, `user.logout_all`, `subscription.changed`); unset ones
    /// use the default name. The prefix applies to all.
    pub upstream_topics: std::collections::HashMap<String, String>,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self {
            enabled: false,
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            client_id: "streamgate".into(),
            timeout_ms: 5_000,
            buffer_capacity: 10_000,
            relay_batch_size: 500,
            relay_poll_interval_ms: 200,
            outbox_retention_hours: 24,
            consume: true,
            consumer_id: "streamgate".into(),
            consume_from: ConsumeFrom::Earliest,
            upstream_topics: std::collections::HashMap::new(),
        }
    }
}

impl KafkaSection {
    /// The brokers as a list, blanks dropped.
    pub fn broker_list(&self) -> Vec<String> {
        self.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
    }
}

/// Where the upstream consumer starts a partition with no stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConsumeFrom {
    /// The oldest record the broker keeps (rebuilds the read model).
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}
