//! Playback events to Kafka on rskafka.
//!
//! * [`KafkaProducer`]: keyed records (Kafka's default partitioner, so one
//!   user's events stay in one partition, in order), every call bounded by a
//!   timeout, lazy connection.
//! * [`playback_record`]: the record of a playback event — topic
//!   `{prefix}stream.{start|progress|stop}`, key the user id, the JSON of the
//!   video contract, header `event_id`.
//! * [`BufferedKafkaPublisher`]: the `EventPublisher` for deployments without
//!   PostgreSQL: a bounded in-memory buffer sent in order by one task that
//!   retries with backoff; what does not fit is dropped and counted.
//!
//! With PostgreSQL, events wait in the outbox and its relay sends them
//! through [`KafkaProducer`] as the core's `OutboxSink`.
//! * [`UpstreamConsumer`]: upstream catalog events, handed to the core's
//!   `CatalogEventHandler`, offsets kept in its `OffsetStore`.

mod consumer;
mod partition;
mod producer;
mod publisher;
mod settings;
mod sink;
#[cfg(feature = "test-support")]
pub mod testing;
mod upstream;

pub use consumer::{ConsumerOptions, ConsumerStats, StartFrom, UpstreamConsumer};
pub use partition::{murmur2, partition_for};
pub use producer::{KafkaConfig, KafkaError, KafkaProducer, OutgoingRecord};
pub use publisher::{playback_record, BufferedKafkaPublisher, PublisherStats};
pub use settings::{KafkaSettings, SettingsError};
pub use upstream::{parse as parse_upstream, InvalidEvent, UpstreamTopic};
