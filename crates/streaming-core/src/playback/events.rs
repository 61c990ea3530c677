//! The wire form of playback events, shared by every publisher (Kafka, the
//! JSON-lines file): one JSON object per event, keyed by user id. Also the
//! form of an acknowledged progress update while it waits for the durable
//! store ([`crate::ports::PendingWrites`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{PlaybackAction, PlaybackEvent, PositionSeconds, WatchProgress};

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    event_id: String,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    movie_id: Cow<'a, str>,
    session_id: Option<String>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    position_seconds: Option<u64>,
    timestamp: String,
}

/// A progress update in full (positions keep their fraction).
#[derive(Serialize, Deserialize)]
struct ProgressWire<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    movie_id: Cow<'a, str>,
    position_seconds: f64,
    last_watched_at: String,
    watched: bool,
    session_id: Option<String>,
    sequence: u64,
}

impl WatchProgress {
    /// Every field as one JSON object (see [`WatchProgress::from_json`]).
    pub fn to_json(&self) -> String {
        let wire = ProgressWire {
            user_id: Cow::Borrowed(self.user.as_str()),
            movie_id: Cow::Borrowed(self.media.as_str()),
            position_seconds: self.position.get(),
            last_watched_at: self.last_watched_at.format(&Rfc3339).unwrap_or_default(),
            watched: self.watched,
            session_id: self.session.map(|s| s.to_string()),
            sequence: self.sequence,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The update [`WatchProgress::to_json`] wrote; `None` for anything else.
    pub fn from_json(text: &str) -> Option<Self> {
        let wire: ProgressWire<'_> = serde_json::from_str(text).ok()?;
        Some(Self {
            user: wire.user_id.parse().ok()?,
            media: wire.movie_id.parse().ok()?,
            position: PositionSeconds::new(wire.position_seconds).ok()?,
            last_watched_at: OffsetDateTime::parse(&wire.last_watched_at, &Rfc3339).ok()?,
            watched: wire.watched,
            session: wire.session_id.map(|s| s.parse()).transpose().ok()?,
            sequence: wire.sequence,
        })
    }
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
            user_id: Cow::Borrowed(self.user.as_str()),
            movie_id: Cow::Borrowed(self.media.as_str()),
            session_id: self.session.map(|s| s.to_string()),
            action: Cow::Borrowed(self.action.event_name()),
            position_seconds: self.position.map(|p| p.get().floor() as u64),
            timestamp: self.timestamp.format(&Rfc3339).unwrap_or_default(),
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The event [`PlaybackEvent::to_json`] wrote (its position in whole
    /// seconds, as the payload has it); `None` for anything else.
    pub fn from_json(text: &str) -> Option<Self> {
        let wire: Wire<'_> = serde_json::from_str(text).ok()?;
        let action = [PlaybackAction::Start, PlaybackAction::Progress, PlaybackAction::Stop]
            .into_iter()
            .find(|action| action.event_name() == wire.action)?;
        Some(Self {
            event_id: wire.event_id.parse().ok()?,
            user: wire.user_id.parse().ok()?,
            media: wire.movie_id.parse().ok()?,
            session: wire.session_id.map(|s| s.parse()).transpose().ok()?,
            action,
            position: wire.position_seconds.map(|p| PositionSeconds::new(p as f64)).transpose().ok()?,
            timestamp: OffsetDateTime::parse(&wire.timestamp, &Rfc3339).ok()?,
        })
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

    #[test]
    fn events_and_progress_read_back_what_they_wrote() {
        let event = PlaybackEvent {
            event_id: uuid::Uuid::from_u128(7),
            user: "viewer-1".parse().unwrap(),
            media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
            session: Some(SessionId::random()),
            action: PlaybackAction::Progress,
            position: Some(PositionSeconds::new(120.0).unwrap()),
            timestamp: datetime!(2026-11-15 10:30:00.25 UTC),
        };
        assert_eq!(PlaybackEvent::from_json(&event.to_json()), Some(event.clone()));
        let stop = PlaybackEvent { action: PlaybackAction::Stop, position: None, session: None, ..event };
        assert_eq!(PlaybackEvent::from_json(&stop.to_json()), Some(stop));
        assert_eq!(PlaybackEvent::from_json(r#"{"event_id":"x"}"#), None);

        let progress = WatchProgress {
            user: "viewer".parse().unwrap(),
            media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap(),
            position: PositionSeconds::new(61.375).unwrap(),
            last_watched_at: datetime!(2026-11-15 10:30:00.123456 UTC),
            watched: false,
            session: Some(SessionId::random()),
            sequence: 42,
        };
        assert_eq!(WatchProgress::from_json(&progress.to_json()), Some(progress.clone()));
        let bare = WatchProgress { session: None, watched: true, ..progress };
        assert_eq!(WatchProgress::from_json(&bare.to_json()), Some(bare));
        assert_eq!(WatchProgress::from_json("[]"), None);
    }
}
