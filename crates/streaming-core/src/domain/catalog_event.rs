//! Upstream changes to the catalog read model (media and users), as the
//! services that own them announce them.

use time::OffsetDateTime;

use super::{Media, MediaId, MediaStatus, UserId, UserStatus};

/// What changed.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogChange {
    /// A media item was created or changed (all its fields).
    MediaUpserted(Media),
    /// A media item's status changed (e.g. processing → ready, or failed).
    MediaStatusChanged {
        /// Which item.
        media: MediaId,
        /// Its new status.
        status: MediaStatus,
    },
    /// A media item was deleted.
    MediaDeleted {
        /// Which item.
        media: MediaId,
    },
    /// A user was suspended (or reinstated).
    UserStatusChanged {
        /// Who.
        user: UserId,
        /// The new status.
        status: UserStatus,
    },
    /// A user signed out everywhere: their issued URLs must stop being handed out.
    UserLoggedOutEverywhere {
        /// Who.
        user: UserId,
    },
    /// A user's subscription changed (plan, status or end date).
    SubscriptionChanged {
        /// Whose.
        user: UserId,
    },
    /// A user was given (or lost) a grant on a media item. Grants carry no
    /// time: the latest write wins. Not applied when the item is unknown.
    GrantChanged {
        /// On which item.
        media: MediaId,
        /// Who.
        user: UserId,
        /// Given (`true`) or taken back.
        granted: bool,
    },
}

/// One change with its identity and time.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEvent {
    /// The producer's id of the event (redeliveries carry the same).
    pub event_id: uuid::Uuid,
    /// When the change happened at its source; a change older than what the
    /// read model holds for the same item is not applied.
    pub occurred_at: OffsetDateTime,
    /// The change.
    pub change: CatalogChange,
}
