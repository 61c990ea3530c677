use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;

use super::{read, write};
use time::OffsetDateTime;

use crate::domain::{CatalogChange, Media, MediaId, MediaStatus, UserId, UserStatus, Viewer, Visibility};
use crate::ports::{CatalogError, CatalogWriter, MediaCandidate, MediaCatalog, MediaListing};

#[derive(Debug, Default)]
struct State {
    media: HashMap<MediaId, Media>,
    suspended: HashSet<UserId>,
    grants: HashSet<(MediaId, UserId)>,
    /// When the last applied upstream change of each media item happened.
    media_changed_at: HashMap<MediaId, OffsetDateTime>,
    /// The same for users.
    user_changed_at: HashMap<UserId, OffsetDateTime>,
}

/// Whether a change at `at` is not older than the last one applied to `key`; records it if so.
fn newer<K: std::hash::Hash + Eq + Clone>(seen: &mut HashMap<K, OffsetDateTime>, key: &K, at: OffsetDateTime) -> bool {
    if seen.get(key).is_some_and(|last| *last > at) {
        return false;
    }
    seen.insert(key.clone(), at);
    true
}

/// A [`MediaCatalog`] in memory, filled by its inherent methods.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    state: RwLock<State>,
}

impl MemoryCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces a media item.
    pub fn upsert(&self, media: Media) {
        write(&self.state).media.insert(media.id.clone(), media);
    }

    /// Sets a user's status.
    pub fn set_user_status(&self, user: &UserId, status: UserStatus) {
        let mut state = write(&self.state);
        match status {
            UserStatus::Suspended => state.suspended.insert(user.clone()),
            UserStatus::Active => state.suspended.remove(user),
        };
    }

    /// Lets `user` play `media` (or stops letting them).
    pub fn set_grant(&self, media: &MediaId, user: &UserId, granted: bool) {
        let mut state = write(&self.state);
        let pair = (media.clone(), user.clone());
        if granted {
            state.grants.insert(pair);
        } else {
            state.grants.remove(&pair);
        }
    }

    /// Every media item, in id order.
    pub fn all(&self) -> Vec<Media> {
        let mut all: Vec<_> = read(&self.state).media.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

#[async_trait]
impl MediaCatalog for MemoryCatalog {
    async fn media(&self, id: &MediaId) -> Result<Option<Media>, CatalogError> {
        Ok(read(&self.state).media.get(id).cloned())
    }

    async fn viewer<'a>(&self, user: &UserId, grant_on: Option<&'a MediaId>) -> Result<Viewer, CatalogError> {
        let state = read(&self.state);
        let status = if state.suspended.contains(user) { UserStatus::Suspended } else { UserStatus::Active };
        // Avoid cloning ids on every lookup: look only when any grant exists.
        let granted = grant_on
            .is_some_and(|media| !state.grants.is_empty() && state.grants.contains(&(media.clone(), user.clone())));
        Ok(Viewer { status, granted })
    }
}

#[async_trait]
impl MediaListing for MemoryCatalog {
    async fn candidates<'a>(
        &self,
        user: &UserId,
        after: Option<&'a MediaId>,
        limit: usize,
    ) -> Result<Vec<MediaCandidate>, CatalogError> {
        let state = read(&self.state);
        let mut found: Vec<MediaCandidate> = state
            .media
            .values()
            .filter(|media| media.status != MediaStatus::Deleted && after.is_none_or(|after| media.id > *after))
            .filter_map(|media| {
                let granted = state.grants.contains(&(media.id.clone(), user.clone()));
                let listed = granted || media.owner.as_ref() == Some(user) || media.visibility != Visibility::Private;
                listed.then(|| MediaCandidate { media: media.clone(), granted })
            })
            .collect();
        found.sort_by(|a, b| a.media.id.cmp(&b.media.id));
        found.truncate(limit);
        Ok(found)
    }
}

#[async_trait]
impl CatalogWriter for MemoryCatalog {
    async fn apply(&self, change: &CatalogChange, at: OffsetDateTime) -> Result<bool, CatalogError> {
        let mut guard = write(&self.state);
        let state = &mut *guard;
        let set_status = |state: &mut State, media: &MediaId, status: MediaStatus| {
            if !state.media.contains_key(media) || !newer(&mut state.media_changed_at, media, at) {
                return false;
            }
            if let Some(item) = state.media.get_mut(media) {
                item.status = status;
            }
            true
        };
        Ok(match change {
            CatalogChange::MediaUpserted(media) => {
                let applied = newer(&mut state.media_changed_at, &media.id, at);
                if applied {
                    state.media.insert(media.id.clone(), media.clone());
                }
                applied
            }
            CatalogChange::MediaStatusChanged { media, status } => set_status(state, media, *status),
            CatalogChange::MediaDeleted { media } => set_status(state, media, MediaStatus::Deleted),
            CatalogChange::UserStatusChanged { user, status } => {
                let applied = newer(&mut state.user_changed_at, user, at);
                if applied {
                    match status {
                        UserStatus::Suspended => state.suspended.insert(user.clone()),
                        UserStatus::Active => state.suspended.remove(user),
                    };
                }
                applied
            }
            CatalogChange::UserLoggedOutEverywhere { .. } | CatalogChange::SubscriptionChanged { .. } => true,
            CatalogChange::GrantChanged { media, user, granted } => {
                let known = state.media.contains_key(media);
                let key = (media.clone(), user.clone());
                match (known, granted) {
                    (false, _) => {}
                    (true, true) => {
                        state.grants.insert(key);
                    }
                    (true, false) => {
                        state.grants.remove(&key);
                    }
                }
                known
            }
        })
    }
}
