use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use time::OffsetDateTime;

use super::{MediaId, SessionId, UserId};

/// Which adaptive-streaming manifest a player wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ManifestKind {
    /// HTTP Live Streaming (`index.m3u8`).
    #[default]
    Hls,
    /// MPEG-DASH (`index.mpd`).
    Dash,
}

/// A manifest kind other than `hls` or `dash` was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest type must be \"hls\" or \"dash\"")]
pub struct UnknownManifestKind;

impl ManifestKind {
    /// The wire name (`hls`, `dash`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hls => "hls",
            Self::Dash => "dash",
        }
    }

    /// The manifest's file name under a movie's root.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Hls => "index.m3u8",
            Self::Dash => "index.mpd",
        }
    }

    /// The kind of manifest a path names, by its extension (`.m3u8`, `.mpd`).
    pub fn of_path(path: &str) -> Option<Self> {
        match path.rsplit_once('.') {
            Some((_, "m3u8")) => Some(Self::Hls),
            Some((_, "mpd")) => Some(Self::Dash),
            _ => None,
        }
    }
}

impl FromStr for ManifestKind {
    type Err = UnknownManifestKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hls" => Ok(Self::Hls),
            "dash" => Ok(Self::Dash),
            _ => Err(UnknownManifestKind),
        }
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a playback position was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum InvalidPosition {
    /// NaN or infinite.
    #[error("position must be a finite number")]
    NotFinite,
    /// Below zero.
    #[error("position must not be negative")]
    Negative,
    /// Beyond the media's duration plus the allowed slack.
    #[error("position {position} is beyond the media's end ({limit} s)")]
    BeyondEnd {
        /// The refused position.
        position: f64,
        /// The largest accepted position.
        limit: f64,
    },
}

/// A playback position in seconds: finite and not negative.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct PositionSeconds(f64);

impl PositionSeconds {
    /// The largest position accepted when the media's duration is unknown (one week).
    pub const ABSOLUTE_MAX: f64 = 7.0 * 24.0 * 3600.0;

    /// Parses a position, refusing NaN, infinities, negatives and values
    /// beyond [`Self::ABSOLUTE_MAX`].
    ///
    /// # Errors
    /// [`InvalidPosition`] says which rule was broken.
    pub fn new(seconds: f64) -> Result<Self, InvalidPosition> {
        if !seconds.is_finite() {
            return Err(InvalidPosition::NotFinite);
        }
        if seconds < 0.0 {
            return Err(InvalidPosition::Negative);
        }
        if seconds > Self::ABSOLUTE_MAX {
            return Err(InvalidPosition::BeyondEnd { position: seconds, limit: Self::ABSOLUTE_MAX });
        }
        // Normalise -0.0 so that it serialises as 0.
        Ok(Self(seconds + 0.0))
    }

    /// Checks the position against a media duration plus `slack` seconds.
    ///
    /// # Errors
    /// [`InvalidPosition::BeyondEnd`] when it is past `duration + slack`.
    pub fn within(self, duration: Option<f64>, slack: f64) -> Result<Self, InvalidPosition> {
        match duration {
            Some(duration) if self.0 > duration + slack => {
                Err(InvalidPosition::BeyondEnd { position: self.0, limit: duration + slack })
            }
            _ => Ok(self),
        }
    }

    /// The position in seconds.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// One playback session of a user on a movie.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSession {
    /// Session id.
    pub id: SessionId,
    /// Who is watching.
    pub user: UserId,
    /// What is being watched.
    pub media: MediaId,
    /// Which manifest was handed out.
    pub manifest: ManifestKind,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it was stopped, if it was.
    pub ended_at: Option<OffsetDateTime>,
    /// Wall-clock length of the session once ended.
    pub duration_seconds: Option<f64>,
    /// The player's `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The last time the player reported progress.
    pub last_heartbeat_at: OffsetDateTime,
}

/// Where a user is in a movie.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchProgress {
    /// Who.
    pub user: UserId,
    /// Which movie.
    pub media: MediaId,
    /// Resume position.
    pub position: PositionSeconds,
    /// When it was last reported.
    pub last_watched_at: OffsetDateTime,
    /// Whether the movie was watched to the end.
    pub watched: bool,
    /// The session whose update this is, if any.
    pub session: Option<SessionId>,
    /// Arrival order of updates within `session`; an update with a lower or
    /// equal sequence than the stored one for the same session is stale.
    pub sequence: u64,
}

/// What happened in a playback event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybackAction {
    /// A session started.
    Start,
    /// The player reported its position.
    Progress,
    /// A session stopped.
    Stop,
}

impl PlaybackAction {
    /// The wire name (`start`, `progress`, `stop`), also the topic suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Progress => "progress",
            Self::Stop => "stop",
        }
    }
}

/// A playback event for analytics.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybackEvent {
    /// Unique id; a redelivered event carries the same one.
    pub event_id: uuid::Uuid,
    /// Who (also the partition key).
    pub user: UserId,
    /// Which movie.
    pub media: MediaId,
    /// Which session.
    pub session: Option<SessionId>,
    /// What happened.
    pub action: PlaybackAction,
    /// Position at the time, where there is one.
    pub position: Option<PositionSeconds>,
    /// When it happened.
    pub timestamp: OffsetDateTime,
}

impl PlaybackEvent {
    /// A new event (with a fresh random id) of `action` at `at`.
    pub fn new(
        action: PlaybackAction,
        user: &UserId,
        media: &MediaId,
        session: Option<SessionId>,
        position: Option<PositionSeconds>,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            event_id: uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
            user: user.clone(),
            media: media.clone(),
            session,
            action,
            position,
            timestamp: at,
        }
    }

    /// The stop event of a session closed because it went idle: at its end
    /// (its last sign of life), without a position, as a logout's.
    pub fn idle_stop(session: &StreamSession) -> Self {
        let at = session.ended_at.unwrap_or(session.last_heartbeat_at);
        Self::new(PlaybackAction::Stop, &session.user, &session.media, Some(session.id), None, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_refuse_non_finite_negative_and_huge() {
        assert_eq!(PositionSeconds::new(f64::NAN), Err(InvalidPosition::NotFinite));
        assert_eq!(PositionSeconds::new(f64::INFINITY), Err(InvalidPosition::NotFinite));
        assert_eq!(PositionSeconds::new(-0.5), Err(InvalidPosition::Negative));
        assert!(PositionSeconds::new(1e12).is_err());
        assert_eq!(PositionSeconds::new(-0.0).map(|p| p.get().to_bits()), Ok(0.0f64.to_bits()));
        assert_eq!(PositionSeconds::new(12.5).map(PositionSeconds::get), Ok(12.5));
    }

    #[test]
    fn positions_respect_duration_plus_slack() {
        let p = PositionSeconds::new(105.0).unwrap();
        assert!(p.within(Some(100.0), 10.0).is_ok());
        assert!(p.within(Some(100.0), 1.0).is_err());
        assert!(p.within(None, 0.0).is_ok());
    }

    #[test]
    fn manifest_kinds_parse_exactly() {
        assert_eq!("hls".parse::<ManifestKind>(), Ok(ManifestKind::Hls));
        assert_eq!("dash".parse::<ManifestKind>(), Ok(ManifestKind::Dash));
        assert!("HLS".parse::<ManifestKind>().is_err());
        assert!("smooth".parse::<ManifestKind>().is_err());
        assert_eq!(ManifestKind::Dash.file_name(), "index.mpd");
        for kind in [ManifestKind::Hls, ManifestKind::Dash] {
            assert_eq!(ManifestKind::of_path(&format!("720p/{}", kind.file_name())), Some(kind));
        }
        assert_eq!(ManifestKind::of_path("seg.ts"), None);
        assert_eq!(ManifestKind::of_path("mpd"), None);
    }
}
