//! Validated domain types. Everything that enters the core from the edge is
//! parsed into one of these first; no raw `String` ids travel inside.

mod catalog_event;
mod ids;
mod media;
mod object_key;
mod playback;
mod subscription;

pub use crate::encoding::{percent_decode, percent_encode_path};
pub use catalog_event::{CatalogChange, CatalogEvent};
pub use ids::{IdFormat, InvalidId, MediaId, SessionId, UserId};
pub use media::{Media, MediaKind, MediaStatus, PlanFeatures, UnknownUserStatus, UserStatus, Viewer, Visibility};
pub use object_key::{InvalidObjectKey, ObjectKey};
pub use playback::{
    InvalidPosition, ManifestKind, PlaybackAction, PlaybackEvent, PositionSeconds, StreamSession, UnknownManifestKind,
    WatchProgress,
};
pub use subscription::{parse_instant, Plan, Subscription, SubscriptionStatus};
