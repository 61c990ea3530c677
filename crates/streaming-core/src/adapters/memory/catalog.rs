use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;

use super::{read, write};
use crate::domain::{Media, MediaId, UserId, UserStatus, Viewer};
use crate::ports::{CatalogError, MediaCatalog};

#[derive(Debug, Default)]
struct State {
    media: HashMap<MediaId, Media>,
    suspended: HashSet<UserId>,
    grants: HashSet<(MediaId, UserId)>,
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

    async fn viewer(&self, user: &UserId, media: &MediaId) -> Result<Viewer, CatalogError> {
        let state = read(&self.state);
        let status = if state.suspended.contains(user) { UserStatus::Suspended } else { UserStatus::Active };
        // Avoid cloning ids on every lookup: scan grants only when any exist for this user.
        let granted = !state.grants.is_empty() && state.grants.contains(&(media.clone(), user.clone()));
        Ok(Viewer { status, granted })
    }
}
