//! The embedded mode's [`EventPublisher`]: one JSON object per line, appended
//! to a file (`./data/events.jsonl` by default) and flushed per event.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use streaming_core::domain::PlaybackEvent;
use streaming_core::ports::{EventPublisher, PublishError};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Appends playback events to a JSON-lines file.
#[derive(Debug)]
pub struct JsonLinesEventPublisher {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

impl JsonLinesEventPublisher {
    /// Opens (creating if needed, with its directory) `path` for appending.
    ///
    /// # Errors
    /// The I/O error if the file cannot be opened.
    pub async fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
        Ok(Self { path, file: Mutex::new(file) })
    }

    /// The file the events go to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl EventPublisher for JsonLinesEventPublisher {
    async fn publish(&self, event: PlaybackEvent) -> Result<(), PublishError> {
        let mut line = event.to_json();
        line.push('\n');
        let mut file = self.file.lock().await;
        // One write per line under the lock: concurrent events never interleave.
        file.write_all(line.as_bytes()).await.map_err(|e| PublishError::Unavailable(e.kind().to_string()))?;
        file.flush().await.map_err(|e| PublishError::Unavailable(e.kind().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streaming_core::domain::{PlaybackAction, PositionSeconds};
    use time::macros::datetime;

    fn event(action: PlaybackAction, position: f64) -> PlaybackEvent {
        PlaybackEvent {
            event_id: uuid::Uuid::from_u128(position as u128),
            user: "alice".parse().unwrap(),
            media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
            session: None,
            action,
            position: Some(PositionSeconds::new(position).unwrap()),
            timestamp: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[tokio::test]
    async fn appends_one_json_object_per_line_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("events.jsonl");
        let publisher = JsonLinesEventPublisher::open(&path).await.unwrap();
        publisher.publish(event(PlaybackAction::Start, 0.0)).await.unwrap();
        publisher.publish(event(PlaybackAction::Progress, 12.0)).await.unwrap();
        drop(publisher);
        let reopened = JsonLinesEventPublisher::open(&path).await.unwrap();
        reopened.publish(event(PlaybackAction::Stop, 30.0)).await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let actions: Vec<String> = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(actions, ["stream_start", "stream_progress", "stream_stop"]);
    }
}
