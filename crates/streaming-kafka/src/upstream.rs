//! The upstream events the service consumes (schemas in `docs/events.md`),
//! parsed into the core's [`CatalogEvent`]. Unknown fields are ignored, so
//! producers may add fields; missing or malformed required fields are an
//! [`InvalidEvent`] naming the field (never echoing its value).

use serde::Deserialize;
use streaming_core::domain::{
    CatalogChange, CatalogEvent, Media, MediaId, ObjectKey, PlanFeatures, UserId, UserStatus,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Which upstream topic a record came from (names without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamTopic {
    /// `media.upserted`
    MediaUpserted,
    /// `media.status_changed`
    MediaStatusChanged,
    /// `media.deleted`
    MediaDeleted,
    /// `user.suspended`
    UserSuspended,
    /// `user.logout_all`
    UserLogoutAll,
    /// `subscription.changed`
    SubscriptionChanged,
}

impl UpstreamTopic {
    /// Every upstream topic.
    pub const ALL: [Self; 6] = [
        Self::MediaUpserted,
        Self::MediaStatusChanged,
        Self::MediaDeleted,
        Self::UserSuspended,
        Self::UserLogoutAll,
        Self::SubscriptionChanged,
    ];

    /// The default topic name (without prefix).
    pub fn default_name(self) -> &'static str {
        match self {
            Self::MediaUpserted => "media.upserted",
            Self::MediaStatusChanged => "media.status_changed",
            Self::MediaDeleted => "media.deleted",
            Self::UserSuspended => "user.suspended",
            Self::UserLogoutAll => "user.logout_all",
            Self::SubscriptionChanged => "subscription.changed",
        }
    }
}

/// Why a record could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {topic} event: {reason}")]
pub struct InvalidEvent {
    /// The topic's default name.
    pub topic: &'static str,
    /// What is wrong (a field name, not its value).
    pub reason: String,
}

#[derive(Deserialize)]
struct Envelope {
    event_id: String,
    occurred_at: String,
    media: Option<MediaWire>,
    media_id: Option<String>,
    status: Option<String>,
    user_id: Option<String>,
    /// `user.suspended`: false reinstates (default true).
    suspended: Option<bool>,
}

#[derive(Deserialize)]
struct MediaWire {
    id: String,
    kind: String,
    owner_id: Option<String>,
    status: String,
    object_key: String,
    content_type: String,
    #[serde(default)]
    size_bytes: u64,
    duration_seconds: Option<f64>,
    visibility: String,
    #[serde(default)]
    requires_hd: bool,
    #[serde(default)]
    requires_4k: bool,
}

/// Parses one record's value from `topic`.
///
/// # Errors
/// [`InvalidEvent`] naming the missing or malformed field.
pub fn parse(topic: UpstreamTopic, value: &[u8]) -> Result<CatalogEvent, InvalidEvent> {
    let name = topic.default_name();
    let invalid = |reason: &str| InvalidEvent { topic: name, reason: reason.to_owned() };
    let envelope: Envelope = serde_json::from_slice(value).map_err(|e| {
        // serde's message may quote input; keep only its category and position.
        invalid(&format!(
            "not the expected JSON object ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let event_id = uuid::Uuid::parse_str(&envelope.event_id).map_err(|_| invalid("event_id is not a UUID"))?;
    let occurred_at =
        OffsetDateTime::parse(&envelope.occurred_at, &Rfc3339).map_err(|_| invalid("occurred_at is not RFC 3339"))?;
    let media_id = |field: Option<&String>| -> Result<MediaId, InvalidEvent> {
        MediaId::try_from(field.ok_or_else(|| invalid("media_id is missing"))?.as_str())
            .map_err(|_| invalid("media_id is not a media id"))
    };
    let user_id = || -> Result<UserId, InvalidEvent> {
        UserId::try_from(envelope.user_id.as_deref().ok_or_else(|| invalid("user_id is missing"))?)
            .map_err(|_| invalid("user_id is not a user id"))
    };
    let change = match topic {
        UpstreamTopic::MediaUpserted => {
            let wire = envelope.media.as_ref().ok_or_else(|| invalid("media is missing"))?;
            CatalogChange::MediaUpserted(media(wire).map_err(|field| invalid(&format!("media.{field} is invalid")))?)
        }
        UpstreamTopic::MediaStatusChanged => CatalogChange::MediaStatusChanged {
            media: media_id(envelope.media_id.as_ref())?,
            status: envelope
                .status
                .as_deref()
                .ok_or_else(|| invalid("status is missing"))?
                .parse()
                .map_err(|_| invalid("status is not a media status"))?,
        },
        UpstreamTopic::MediaDeleted => CatalogChange::MediaDeleted { media: media_id(envelope.media_id.as_ref())? },
        UpstreamTopic::UserSuspended => CatalogChange::UserStatusChanged {
            user: user_id()?,
            status: if envelope.suspended.unwrap_or(true) { UserStatus::Suspended } else { UserStatus::Active },
        },
        UpstreamTopic::UserLogoutAll => CatalogChange::UserLoggedOutEverywhere { user: user_id()? },
        UpstreamTopic::SubscriptionChanged => CatalogChange::SubscriptionChanged { user: user_id()? },
    };
    Ok(CatalogEvent { event_id, occurred_at, change })
}

/// The media of a `media.upserted` event, or the name of the first bad field.
fn media(wire: &MediaWire) -> Result<Media, &'static str> {
    let duration = match wire.duration_seconds {
        Some(d) if !d.is_finite() || d < 0.0 => return Err("duration_seconds"),
        other => other,
    };
    Ok(Media {
        id: MediaId::try_from(wire.id.as_str()).map_err(|_| "id")?,
        kind: wire.kind.parse().map_err(|_| "kind")?,
        owner: wire.owner_id.as_deref().map(UserId::try_from).transpose().map_err(|_| "owner_id")?,
        status: wire.status.parse().map_err(|_| "status")?,
        object_key: ObjectKey::try_from(wire.object_key.as_str()).map_err(|_| "object_key")?,
        content_type: if wire.content_type.is_empty() || wire.content_type.len() > 255 {
            return Err("content_type");
        } else {
            wire.content_type.clone()
        },
        size_bytes: wire.size_bytes,
        duration_seconds: duration,
        visibility: wire.visibility.parse().map_err(|_| "visibility")?,
        required_features: PlanFeatures { hd: wire.requires_hd, uhd_4k: wire.requires_4k },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use streaming_core::domain::{MediaKind, MediaStatus, Visibility};

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn every_topic_parses_its_schema() {
        let upserted = format!(
            r#"{{"event_id":"{ID}","occurred_at":"2026-11-23T10:00:00Z","extra":1,"media":{{
                "id":"01HXKZ3Y8Q4N7W2M5V6B9C0D1E","kind":"track","owner_id":"artist-1","status":"ready",
                "object_key":"tracks/a.mp3","content_type":"audio/mpeg","size_bytes":42,"duration_seconds":180.5,
                "visibility":"subscribers","requires_hd":true}}}}"#
        );
        let event = parse(UpstreamTopic::MediaUpserted, upserted.as_bytes()).unwrap();
        assert_eq!(event.event_id.to_string(), ID);
        assert_eq!(event.occurred_at.unix_timestamp(), 1_795_428_000);
        let CatalogChange::MediaUpserted(media) = event.change else { panic!("{:?}", event.change) };
        assert_eq!(media.kind, MediaKind::Track);
        assert_eq!(media.status, MediaStatus::Ready);
        assert_eq!(media.visibility, Visibility::Subscribers);
        assert_eq!(media.required_features, PlanFeatures { hd: true, uhd_4k: false });

        let head = format!(r#""event_id":"{ID}","occurred_at":"2026-11-23T10:00:00.5+01:00""#);
        let cases = [
            (
                UpstreamTopic::MediaStatusChanged,
                format!(r#"{{{head},"media_id":"01HXKZ3Y8Q4N7W2M5V6B9C0D1E","status":"Failed"}}"#),
            ),
            (UpstreamTopic::MediaDeleted, format!(r#"{{{head},"media_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}}"#)),
            (UpstreamTopic::UserSuspended, format!(r#"{{{head},"user_id":"u-1"}}"#)),
            (UpstreamTopic::UserSuspended, format!(r#"{{{head},"user_id":"u-1","suspended":false}}"#)),
            (UpstreamTopic::UserLogoutAll, format!(r#"{{{head},"user_id":"u-1"}}"#)),
            (UpstreamTopic::SubscriptionChanged, format!(r#"{{{head},"user_id":"u-1"}}"#)),
        ];
        let changes: Vec<CatalogChange> =
            cases.iter().map(|(topic, json)| parse(*topic, json.as_bytes()).unwrap().change).collect();
        let user: UserId = "u-1".parse().unwrap();
        assert_eq!(
            changes,
            vec![
                CatalogChange::MediaStatusChanged {
                    media: "01HXKZ3Y8Q4N7W2M5V6B9C0D1E".parse().unwrap(),
                    status: MediaStatus::Failed
                },
                CatalogChange::MediaDeleted { media: "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap() },
                CatalogChange::UserStatusChanged { user: user.clone(), status: UserStatus::Suspended },
                CatalogChange::UserStatusChanged { user: user.clone(), status: UserStatus::Active },
                CatalogChange::UserLoggedOutEverywhere { user: user.clone() },
                CatalogChange::SubscriptionChanged { user },
            ]
        );
    }

    #[test]
    fn bad_events_name_the_field_and_never_echo_values() {
        let head = format!(r#""event_id":"{ID}","occurred_at":"2026-11-23T10:00:00Z""#);
        let cases: [(UpstreamTopic, String, &str); 8] = [
            (UpstreamTopic::MediaDeleted, "not json".into(), "not the expected JSON object"),
            (UpstreamTopic::MediaDeleted, "[1,2]".into(), "not the expected JSON object"),
            (
                UpstreamTopic::MediaDeleted,
                r#"{"event_id":"secret-value","occurred_at":"2026-11-23T10:00:00Z"}"#.to_owned(),
                "event_id is not a UUID",
            ),
            (
                UpstreamTopic::MediaDeleted,
                format!(r#"{{"event_id":"{ID}","occurred_at":"yesterday"}}"#),
                "occurred_at is not RFC 3339",
            ),
            (UpstreamTopic::MediaDeleted, format!(r#"{{{head}}}"#), "media_id is missing"),
            (
                UpstreamTopic::MediaDeleted,
                format!(r#"{{{head},"media_id":"../../etc"}}"#),
                "media_id is not a media id",
            ),
            (UpstreamTopic::UserLogoutAll, format!(r#"{{{head},"user_id":""}}"#), "user_id is not a user id"),
            (
                UpstreamTopic::MediaUpserted,
                format!(
                    r#"{{{head},"media":{{"id":"01HXKZ3Y8Q4N7W2M5V6B9C0D1E","kind":"track","status":"ready",
                    "object_key":"../escape","content_type":"audio/mpeg","visibility":"public"}}}}"#
                ),
                "media.object_key is invalid",
            ),
        ];
        for (topic, json, expected) in cases {
            let error = parse(topic, json.as_bytes()).unwrap_err();
            assert!(error.reason.contains(expected), "{json}: {error}");
            assert!(!error.to_string().contains("secret-value") && !error.to_string().contains("escape"));
        }
    }
}
