//! What the playback operations take and give back.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{ManifestKind, PositionSeconds, SessionId, StreamSession};

/// A request to start watching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartPlayback {
    /// HLS or DASH.
    pub manifest: ManifestKind,
    /// The player's `User-Agent`.
    pub user_agent: Option<String>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
}

/// A started playback.
#[derive(Clone, PartialEq)]
pub struct PlaybackStarted {
    /// The signed manifest URL (a credential: never log it).
    pub manifest_url: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// How long it is valid from now.
    pub expires_in: Duration,
    /// Which manifest.
    pub manifest: ManifestKind,
    /// The new session.
    pub session: SessionId,
    /// Where to resume (0 for a new or finished movie).
    pub resume_position: PositionSeconds,
}

impl fmt::Debug for PlaybackStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaybackStarted")
            .field("manifest_url", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("session", &self.session)
            .field("resume_position", &self.resume_position)
            .finish()
    }
}

/// A progress report from a player.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProgressReport {
    /// The position in seconds, as sent (validated here).
    pub position_seconds: f64,
    /// The session it belongs to, if the player knows it.
    pub session: Option<SessionId>,
    /// The player's own sequence number for ordering reports within a
    /// session; without it, arrival order at the service decides.
    pub sequence: Option<u64>,
}

/// What a progress report did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressAck {
    /// Whether this report was stored (false: a newer one of the session already was).
    pub applied: bool,
    /// The stored resume position after this report.
    pub position: PositionSeconds,
    /// Whether the movie now counts as watched.
    pub watched: bool,
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq)]
pub enum StopOutcome {
    /// The session was open and is now closed, its final progress recorded.
    Stopped(StreamSession),
    /// The session had been stopped already; nothing changed.
    AlreadyStopped(StreamSession),
    /// No open session of this user on this movie; nothing changed.
    NoOpenSession,
}
