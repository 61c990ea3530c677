//! The operators' use cases behind the internal admin API: every change is
//! written to the audit trail first (a change whose record cannot be
//! written is not made), then applied through [`CatalogChanges`], the same
//! rules as upstream events. Changes of one instance are made one at a
//! time, so a precondition check and the write it guards are never
//! interleaved with another operator's.

use std::fmt;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::changes::CatalogChanges;
use crate::domain::{CatalogChange, Media, MediaId, MediaStatus, UserId, UserStatus};
use crate::ports::{ApplyError, AuditLog, AuditRecord, Clock, MediaCatalog};
use crate::telemetry::InvalidationReason;
use crate::{object_fingerprint, Dependency};

/// Why an admin operation was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such media item (or, for a grant, it is deleted).
    #[error("media not found")]
    MediaNotFound,
    /// `If-Match` / `If-None-Match` do not hold for the item as it is.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A suspended user cannot be given a grant.
    #[error("user suspended")]
    UserSuspended,
    /// The read model holds a newer change of the same item; this one was not applied.
    #[error("a newer change is applied")]
    NewerChangeApplied,
    /// A dependency is down; nothing, or not everything, was done (retrying is safe).
    #[error("{} unavailable", .0.as_str())]
    Unavailable(Dependency),
}

impl From<ApplyError> for AdminError {
    fn from(error: ApplyError) -> Self {
        tracing::warn!(dependency = error.dependency.as_str(), "an admin change could not be applied in full");
        Self::Unavailable(error.dependency)
    }
}

/// The conditions of a request on an item's entity tag
/// ([`entity_tag`]): `If-Match` and `If-None-Match`, each a list of tags
/// or `*` (`None`: the header was not sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The change goes ahead only if the item's tag is one of these (strong comparison).
    pub if_match: Option<Vec<String>>,
    /// The change goes ahead only if the item's tag is none of these (weak comparison).
    pub if_none_match: Option<Vec<String>>,
}

impl Preconditions {
    /// Whether a change of `current` (`None`: it does not exist) may go ahead.
    pub fn hold_for(&self, current: Option<&Media>) -> bool {
        let tag = current.map(entity_tag);
        if let Some(wanted) = &self.if_match {
            // Strong comparison: a weak tag never matches.
            if !tag.as_ref().is_some_and(|tag| wanted.iter().any(|w| w == "*" || w == tag)) {
                return false;
            }
        }
        if let Some(unwanted) = &self.if_none_match {
            let matches =
                tag.as_ref().is_some_and(|tag| unwanted.iter().any(|w| w == "*" || w.trim_start_matches("W/") == tag));
            if matches {
                return false;
            }
        }
        true
    }
}

/// What a media upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The item did not exist.
    Created,
    /// It existed (and may be unchanged).
    Replaced,
}

/// The item as the admin API shows it.
pub fn media_record(media: &Media) -> Value {
    json!({
        "id": media.id.as_str(),
        "kind": media.kind.as_str(),
        "owner_id": media.owner.as_ref().map(UserId::as_str),
        "status": media.status.as_str(),
        "object_key": media.object_key.as_str(),
        "content_type": media.content_type,
        "size_bytes": media.size_bytes,
        "duration_seconds": media.duration_seconds,
        "visibility": media.visibility.as_str(),
        "requires_hd": media.required_features.hd,
        "requires_4k": media.required_features.uhd_4k,
    })
}

/// The item as the audit trail keeps it: the object key as a fingerprint.
pub fn media_audit_state(media: &Media) -> Value {
    let mut state = media_record(media);
    state["object_key"] = json!(format!("sha256:{:016x}", object_fingerprint(media.object_key.as_str())));
    state
}

/// The strong entity tag of an item's current representation (quoted).
pub fn entity_tag(media: &Media) -> String {
    let digest = Sha256::digest(media_record(media).to_string().as_bytes());
    format!("\"{}\"", crate::encoding::hex(&digest[..16]))
}

/// What the admin use cases work on.
#[derive(Clone)]
pub struct AdminPorts {
    /// Where changes are applied.
    pub changes: Arc<CatalogChanges>,
    /// The catalog as it is stored now (the state before a change).
    pub catalog: Arc<dyn MediaCatalog>,
    /// The trail of changes.
    pub audit: Arc<dyn AuditLog>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for AdminPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminPorts").finish_non_exhaustive()
    }
}

/// The operators' use cases.
pub struct CatalogAdmin {
    ports: AdminPorts,
    /// One change at a time in this instance.
    writes: tokio::sync::Mutex<()>,
}

impl fmt::Debug for CatalogAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogAdmin").finish_non_exhaustive()
    }
}

fn catalog_down<E>(_: E) -> AdminError {
    AdminError::Unavailable(Dependency::Catalog)
}

impl CatalogAdmin {
    /// The use cases over `ports`.
    pub fn new(ports: AdminPorts) -> Self {
        Self { ports, writes: tokio::sync::Mutex::new(()) }
    }

    /// The item as stored (deleted ones included).
    ///
    /// # Errors
    /// [`AdminError::MediaNotFound`], or the catalog unavailable.
    pub async fn media(&self, id: &MediaId) -> Result<Media, AdminError> {
        self.current(id).await?.ok_or(AdminError::MediaNotFound)
    }

    async fn current(&self, id: &MediaId) -> Result<Option<Media>, AdminError> {
        self.ports.catalog.media(id).await.map_err(catalog_down)
    }

    /// Records a change before it is made: no change goes unrecorded.
    async fn record(
        &self,
        actor: &str,
        action: &str,
        target: String,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<(), AdminError> {
        let record = AuditRecord {
            at: self.ports.clock.now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target,
            before,
            after,
        };
        self.ports.audit.record(&record).await.map_err(|error| {
            tracing::error!(%error, action, "an admin change was refused: its audit record could not be written");
            AdminError::Unavailable(Dependency::Audit)
        })
    }

    async fn apply(&self, change: &CatalogChange) -> Result<bool, AdminError> {
        Ok(self.ports.changes.apply(change, self.ports.clock.now()).await?)
    }

    /// Creates or replaces `media` on behalf of `actor`, when `preconditions`
    /// hold. Writing the same item again records and changes nothing.
    ///
    /// # Errors
    /// [`AdminError::PreconditionFailed`], [`AdminError::NewerChangeApplied`],
    /// or a dependency unavailable.
    pub async fn put_media(
        &self,
        actor: &str,
        media: Media,
        preconditions: &Preconditions,
    ) -> Result<Upserted, AdminError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let before = self.current(&media.id).await?;
        if !preconditions.hold_for(before.as_ref()) {
            return Err(AdminError::PreconditionFailed);
        }
        if before.as_ref() != Some(&media) {
            let target = format!("media/{}", media.id);
            let after = Some(media_audit_state(&media));
            self.record(actor, "media.upsert", target, before.as_ref().map(media_audit_state), after).await?;
            if !self.apply(&CatalogChange::MediaUpserted(media)).await? {
                return Err(AdminError::NewerChangeApplied);
            }
        }
        Ok(if before.is_some() { Upserted::Replaced } else { Upserted::Created })
    }

    /// Marks the item deleted on behalf of `actor`, when `preconditions`
    /// hold; deleting it again changes nothing.
    ///
    /// # Errors
    /// [`AdminError::MediaNotFound`], [`AdminError::PreconditionFailed`],
    /// [`AdminError::NewerChangeApplied`], or a dependency unavailable.
    pub async fn delete_media(
        &self,
        actor: &str,
        id: &MediaId,
        preconditions: &Preconditions,
    ) -> Result<(), AdminError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let before = self.media(id).await?;
        if !preconditions.hold_for(Some(&before)) {
            return Err(AdminError::PreconditionFailed);
        }
        if before.status != MediaStatus::Deleted {
            let after = Media { status: MediaStatus::Deleted, ..before.clone() };
            let (before, after) = (Some(media_audit_state(&before)), Some(media_audit_state(&after)));
            self.record(actor, "media.delete", format!("media/{id}"), before, after).await?;
            if !self.apply(&CatalogChange::MediaDeleted { media: id.clone() }).await? {
                return Err(AdminError::NewerChangeApplied);
            }
        }
        Ok(())
    }

    /// Gives (`granted`) or takes back `user`'s grant on `media`; the same
    /// again changes nothing.
    ///
    /// # Errors
    /// [`AdminError::MediaNotFound`] (also a grant on a deleted item),
    /// [`AdminError::UserSuspended`] (a grant to a suspended user), or a
    /// dependency unavailable.
    pub async fn set_grant(
        &self,
        actor: &str,
        media: &MediaId,
        user: &UserId,
        granted: bool,
    ) -> Result<(), AdminError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let item = self.media(media).await?;
        let viewer = self.ports.catalog.viewer(user, Some(media)).await.map_err(catalog_down)?;
        if granted && item.status == MediaStatus::Deleted {
            return Err(AdminError::MediaNotFound);
        }
        if granted && viewer.status == UserStatus::Suspended {
            return Err(AdminError::UserSuspended);
        }
        if viewer.granted != granted {
            self.record(
                actor,
                if granted { "grant.put" } else { "grant.delete" },
                format!("media/{media}/grants/{user}"),
                Some(json!({ "granted": viewer.granted })),
                Some(json!({ "granted": granted })),
            )
            .await?;
            self.apply(&CatalogChange::GrantChanged { media: media.clone(), user: user.clone(), granted }).await?;
        }
        Ok(())
    }

    /// Sets `user`'s status. Applied even when unchanged: the user's cached
    /// URLs go either way (recorded only when it changes).
    ///
    /// # Errors
    /// [`AdminError::NewerChangeApplied`], or a dependency unavailable.
    pub async fn set_user_status(&self, actor: &str, user: &UserId, status: UserStatus) -> Result<(), AdminError> {
        let _one_change_at_a_time = self.writes.lock().await;
        let before = self.ports.catalog.viewer(user, None).await.map_err(catalog_down)?.status;
        if before != status {
            self.record(
                actor,
                "user.status",
                format!("users/{user}"),
                Some(json!({ "status": before.as_str() })),
                Some(json!({ "status": status.as_str() })),
            )
            .await?;
        }
        if !self.apply(&CatalogChange::UserStatusChanged { user: user.clone(), status }).await? {
            return Err(AdminError::NewerChangeApplied);
        }
        Ok(())
    }

    /// Ends every session of `user` and drops their cached URLs.
    ///
    /// # Errors
    /// A dependency unavailable.
    pub async fn logout_all(&self, actor: &str, user: &UserId) -> Result<(), AdminError> {
        self.record(actor, "user.logout_all", format!("users/{user}"), None, None).await?;
        self.apply(&CatalogChange::UserLoggedOutEverywhere { user: user.clone() }).await.map(drop)
    }

    /// Drops every cached URL of `user`.
    ///
    /// # Errors
    /// A dependency unavailable.
    pub async fn drop_user_urls(&self, actor: &str, user: &UserId) -> Result<(), AdminError> {
        self.record(actor, "user.stream_cache.delete", format!("users/{user}/stream-cache"), None, None).await?;
        Ok(self.ports.changes.forget_user(user, InvalidationReason::Operator).await?)
    }

    /// Drops the cached URL of `media` for `user`.
    ///
    /// # Errors
    /// A dependency unavailable.
    pub async fn drop_media_url(&self, actor: &str, media: &MediaId, user: &UserId) -> Result<(), AdminError> {
        let target = format!("media/{media}/stream-cache/{user}");
        self.record(actor, "media.stream_cache.delete", target, None, None).await?;
        Ok(self.ports.changes.forget_url(media, user, InvalidationReason::Operator).await?)
    }

    /// The newest `limit` audit records, newest first.
    ///
    /// # Errors
    /// The audit trail unavailable.
    pub async fn audit_trail(&self, limit: usize) -> Result<Vec<AuditRecord>, AdminError> {
        self.ports.audit.recent(limit).await.map_err(|_| AdminError::Unavailable(Dependency::Audit))
    }
}
