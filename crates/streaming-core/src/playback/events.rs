//! The wire form of playback events, shared by every publisher (Kafka, the
//! JSON-lines file): one JSON object per event, keyed by user id.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::domain::{PlaybackAction, PlaybackEvent};

#[derive(Serialize)]
struct Wire<'a> {
    event_id: String,
    user_id: &'a str,
    movie_id: &'a str,
    session_id: Option<String>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    position_seconds: Option<u64>,
    timestamp: String,
}

impl PlaybackAction {
    /// The `action` field of the event (`stream_start`, `stream_progress`, `stream_stop`).
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Start => "stream_start",
            Self::Progress => "stream_progress",
            Self::Stop => "stream_stop",
        }
    }
}

impl PlaybackEvent {
    /// The partition key: events of one user stay in order.
    pub fn key(&self) -> &str {
        self.user.as_str()
    }

    /// The topic suffix (`start`, `progress`, `stop`): topics are `{prefix}stream.{suffix}`.
    pub fn topic_suffix(&self) -> &'static str {
        self.action.as_str()
    }

    /// The JSON payload: `{event_id, user_id, movie_id, session_id, action,
    /// position_seconds, timestamp}`. Positions are whole seconds, as the
    /// cinema contract has them; `position_seconds` is absent where the event
    /// has no position.
    pub fn to_json(&self) -> String {
        let wire = Wire {
            event_id: self.event_id.hyphenated().to_string(),
            user_id: self.user.as_str(),
            movie_id: self.media.as_str(),
            session_id: self.session.map(|s| s.to_string()),
            action: self.action.event_name(),
            position_seconds: self.position.map(|p| p.get().floor() as u64),
            timestamp: self.timestamp.format(&Rfc3339).unwrap_or_default(),
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PositionSeconds, SessionId};
    use time::macros::datetime;

    #[test]
    fn events_serialise_to_the_cinema_shape_plus_ids() {
        let session: SessionId = "6a1f0e8e-4b4c-4e59-9d7e-0a4b8b1c2d3e".parse().unwrap();
        let event = PlaybackEvent {
            event_id: uuid::Uuid::nil(),
            user: "3f2504e0-4f89-11d3-9a0c-0305e82c3301".parse().unwrap(),
            media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
            session: Some(session),
            action: PlaybackAction::Progress,
            position: Some(PositionSeconds::new(120.7).unwrap()),
            timestamp: datetime!(2026-11-15 10:30:00 UTC),
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event_id": "00000000-0000-0000-0000-000000000000",
                "user_id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                "movie_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                "session_id": "6a1f0e8e-4b4c-4e59-9d7e-0a4b8b1c2d3e",
                "action": "stream_progress",
                "position_seconds": 120,
                "timestamp": "2026-11-15T10:30:00Z"
            })
        );
        assert_eq!(event.key(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        assert_eq!(event.topic_suffix(), "progress");
        let start = PlaybackEvent { action: PlaybackAction::Start, position: None, session: None, ..event };
        let json: serde_json::Value = serde_json::from_str(&start.to_json()).unwrap();
        assert_eq!(json["action"], "stream_start");
        assert!(json.get("position_seconds").is_none());
        assert!(json["session_id"].is_null());
    }
}
