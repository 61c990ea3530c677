//! The `kafka` section of a configuration, as the service reads it: serde
//! with documented defaults, and the producer and topics it describes.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::{KafkaConfig, KafkaProducer, StartFrom, UpstreamTopic};

/// Kafka: playback events go to `{topic_prefix}stream.{start|progress|stop}`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
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
    pub consume_from: StartFrom,
    /// Attempts at applying one upstream event before it is kept as a dead
    /// letter (PostgreSQL's `dead_letters`, or memory) and its partition
    /// moves on (default 20: about two and a half minutes of backoff).
    pub handler_attempts: u32,
    /// Topic names of the upstream events, by their default names
    /// (`media.upserted`, `media.status_changed`, `media.deleted`,
    /// `user.suspended`, `user.logout_all`, `subscription.changed`); unset ones
    /// use the default name. The prefix applies to all.
    pub upstream_topics: HashMap<String, String>,
}

impl Default for KafkaSettings {
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
            consume_from: StartFrom::Earliest,
            handler_attempts: 20,
            upstream_topics: HashMap::new(),
        }
    }
}

impl KafkaSettings {
    /// The brokers as a list, blanks dropped.
    pub fn broker_list(&self) -> Vec<String> {
        self.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
    }

    /// The producer these settings describe; `None` while Kafka is not enabled.
    ///
    /// # Errors
    /// [`SettingsError`] for no brokers or a zero timeout or batch.
    pub fn producer(&self) -> Result<Option<KafkaProducer>, SettingsError> {
        if !self.enabled {
            return Ok(None);
        }
        let brokers = self.broker_list();
        if brokers.is_empty() {
            return Err(SettingsError::NoBrokers);
        }
        if self.timeout_ms == 0 || self.relay_batch_size == 0 {
            return Err(SettingsError::NotPositive);
        }
        Ok(Some(KafkaProducer::new(KafkaConfig {
            brokers,
            topic_prefix: self.topic_prefix.clone(),
            client_id: self.client_id.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
        })))
    }

    /// Every upstream topic with its name: renamed by `upstream_topics`,
    /// prefixed by `topic_prefix`.
    ///
    /// # Errors
    /// [`SettingsError::UnknownTopic`] for a rename of an event that does not exist.
    pub fn upstream_topics(&self) -> Result<Vec<(UpstreamTopic, String)>, SettingsError> {
        let names = &self.upstream_topics;
        if let Some(unknown) = names.keys().find(|k| UpstreamTopic::ALL.iter().all(|t| t.default_name() != k.as_str()))
        {
            return Err(SettingsError::UnknownTopic(unknown.clone()));
        }
        Ok(UpstreamTopic::ALL
            .iter()
            .map(|topic| {
                let name = names.get(topic.default_name()).map_or(topic.default_name(), String::as_str);
                (*topic, format!("{}{name}", self.topic_prefix))
            })
            .collect())
    }
}

/// Why the Kafka settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Enabled without a broker.
    #[error("kafka.enabled needs kafka.brokers (host:port, comma-separated)")]
    NoBrokers,
    /// A bound that must be positive is zero.
    #[error("kafka.timeout_ms and kafka.relay_batch_size must be positive")]
    NotPositive,
    /// A rename of an event that does not exist.
    #[error("kafka.upstream_topics: unknown event {0:?}")]
    UnknownTopic(String),
}

#[cfg(test)]
mod tests {
    use super::{KafkaSettings, SettingsError};
    use crate::UpstreamTopic;

    #[test]
    fn renamed_topics_keep_the_prefix_and_unknown_events_are_refused() {
        let mut settings = KafkaSettings { topic_prefix: "prod.".into(), ..KafkaSettings::default() };
        settings.upstream_topics.insert("media.deleted".into(), "catalog.removed".into());
        let topics = settings.upstream_topics().unwrap();
        assert_eq!(topics.len(), UpstreamTopic::ALL.len());
        assert!(topics.contains(&(UpstreamTopic::MediaDeleted, "prod.catalog.removed".into())), "{topics:?}");
        assert!(topics.contains(&(UpstreamTopic::UserSuspended, "prod.user.suspended".into())), "{topics:?}");
        settings.upstream_topics.insert("media.exploded".into(), "x".into());
        assert_eq!(settings.upstream_topics(), Err(SettingsError::UnknownTopic("media.exploded".into())));
    }

    #[test]
    fn a_producer_needs_brokers_and_positive_bounds() {
        assert!(KafkaSettings::default().producer().unwrap().is_none(), "off unless enabled");
        let enabled = KafkaSettings { enabled: true, ..KafkaSettings::default() };
        assert!(enabled.producer().unwrap().is_some());
        let no_brokers = KafkaSettings { brokers: " , ".into(), ..enabled.clone() };
        assert_eq!(no_brokers.producer().err(), Some(SettingsError::NoBrokers));
        let zero = KafkaSettings { timeout_ms: 0, ..enabled };
        assert_eq!(zero.producer().err(), Some(SettingsError::NotPositive));
    }
}
