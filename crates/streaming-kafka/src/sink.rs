//! The outbox relay's sink: outbox records sent as Kafka records, each with
//! its `event_id` header, in the order given.

use async_trait::async_trait;
use streaming_core::ports::{OutboxRecord, OutboxSink, SinkError};
use tracing::Instrument as _;

use crate::producer::{KafkaError, KafkaProducer, OutgoingRecord};

#[async_trait]
impl OutboxSink for KafkaProducer {
    async fn send(&self, records: &[OutboxRecord]) -> Result<(), SinkError> {
        let outgoing = records
            .iter()
            .map(|record| OutgoingRecord {
                topic: record.topic.clone(),
                key: record.key.clone(),
                value: record.payload.clone().into_bytes(),
                headers: vec![("event_id".to_owned(), record.event_id.hyphenated().to_string().into_bytes())],
                timestamp: record.created_at,
            })
            .collect();
        KafkaProducer::send(self, outgoing)
            .instrument(tracing::debug_span!("events.send", records = records.len()))
            .await
            .map_err(|error| match error {
                KafkaError::Unavailable(_) => SinkError::Unavailable(error.to_string()),
                KafkaError::UnknownTopic(_) => SinkError::Refused(error.to_string()),
            })
    }
}
