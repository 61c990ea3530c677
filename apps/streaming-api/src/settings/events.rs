//! Settings of playback events: the JSON-lines file (Kafka's are
//! `streaming_kafka::KafkaSettings`).

use std::path::PathBuf;

use serde::Deserialize;

/// Where playback events go.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
