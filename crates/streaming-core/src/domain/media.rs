use std::fmt;
use std::str::FromStr;

use super::{MediaId, ObjectKey, UserId};

/// What kind of media an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A single audio file streamed through one presigned URL.
    Track,
    /// A video with HLS/DASH manifests under a manifest root.
    Movie,
}

impl MediaKind {
    /// The lowercase name (`track`, `movie`) used in storage and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Movie => "movie",
        }
    }
}

impl FromStr for MediaKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "track" => Ok(Self::Track),
            "movie" => Ok(Self::Movie),
            _ => Err(format!("unknown media kind {s:?}")),
        }
    }
}

/// Where a media item is in its lifecycle. Only `Ready` media can be streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaStatus {
    /// Uploaded, still being processed.
    Processing,
    /// Processed and streamable.
    Ready,
    /// Processing failed.
    Failed,
    /// Deleted; it no longer exists for anyone.
    Deleted,
}

impl MediaStatus {
    /// The name used on the wire (`Processing`, `Ready`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "Processing",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
            Self::Deleted => "Deleted",
        }
    }
}

impl fmt::Display for MediaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "processing" => Ok(Self::Processing),
            "ready" => Ok(Self::Ready),
            "failed" => Ok(Self::Failed),
            "deleted" => Ok(Self::Deleted),
            _ => Err(format!("unknown media status {s:?}")),
        }
    }
}

/// Who may play a media item besides its owner and explicit grantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Only the owner and explicit grantees.
    Private,
    /// Also users with an active subscription whose plan covers it.
    Subscribers,
    /// Every authenticated user.
    Public,
}

impl Visibility {
    /// The lowercase name (`private`, `subscribers`, `public`) used in storage and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Subscribers => "subscribers",
            Self::Public => "public",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private" => Ok(Self::Private),
            "subscribers" => Ok(Self::Subscribers),
            "public" => Ok(Self::Public),
            _ => Err(format!("unknown visibility {s:?}")),
        }
    }
}

/// Plan features a media item requires (e.g. HD or 4K renditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlanFeatures {
    /// Needs a plan that supports HD.
    pub hd: bool,
    /// Needs a plan that supports 4K.
    pub uhd_4k: bool,
}

/// A track or a movie as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Its id.
    pub id: MediaId,
    /// Track or movie.
    pub kind: MediaKind,
    /// The uploader (tracks); `None` for catalog media without an owner.
    pub owner: Option<UserId>,
    /// Lifecycle status.
    pub status: MediaStatus,
    /// The object for a track, or the manifest root (`movies/{id}`) for a movie.
    pub object_key: ObjectKey,
    /// MIME type of the object, e.g. `audio/mpeg`.
    pub content_type: String,
    /// Size of the object in bytes.
    pub size_bytes: u64,
    /// Duration in seconds, when known.
    pub duration_seconds: Option<f64>,
    /// Who may play it besides owner and grantees.
    pub visibility: Visibility,
    /// Plan features it requires.
    pub required_features: PlanFeatures,
}

/// Whether a user account may use the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UserStatus {
    /// May stream.
    #[default]
    Active,
    /// May not stream anything.
    Suspended,
}

impl UserStatus {
    /// The lowercase name (`active`, `suspended`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl std::str::FromStr for UserStatus {
    type Err = UnknownUserStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(UnknownUserStatus),
        }
    }
}

/// A user status other than `active` or `suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a user status is active or suspended")]
pub struct UnknownUserStatus;

/// What the catalog knows about one user with respect to one media item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Viewer {
    /// The account status (`Active` for users the catalog has never seen).
    pub status: UserStatus,
    /// Whether an explicit grant lets this user play the media.
    pub granted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in [MediaStatus::Processing, MediaStatus::Ready, MediaStatus::Failed, MediaStatus::Deleted] {
            assert_eq!(status.as_str().parse::<MediaStatus>(), Ok(status));
        }
        assert!("gone".parse::<MediaStatus>().is_err());
    }
}
