//! The driving port of movie playback: what an HTTP layer (this service's,
//! or an embedder's own) calls. [`PlaybackService`] implements it; with the
//! `mock` feature, `MockPlayback` stands in for it in an HTTP layer's tests.

use async_trait::async_trait;

use super::{
    PlaybackError, PlaybackService, PlaybackStarted, ProgressAck, ProgressReport, ServedManifest, StartPlayback,
    StopOutcome,
};
use crate::domain::{MediaId, UserId, WatchProgress};

/// The cinema contract's operations, as [`PlaybackService`] offers them.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Playback: Send + Sync {
    /// See [`PlaybackService::start`].
    async fn start(
        &self,
        movie: &MediaId,
        user: &UserId,
        request: StartPlayback,
    ) -> Result<PlaybackStarted, PlaybackError>;

    /// See [`PlaybackService::manifest`].
    async fn manifest(&self, movie: &MediaId, path: &str, grant: &str) -> Result<ServedManifest, PlaybackError>;

    /// See [`PlaybackService::record_progress`].
    async fn record_progress(
        &self,
        movie: &MediaId,
        user: &UserId,
        report: ProgressReport,
    ) -> Result<ProgressAck, PlaybackError>;

    /// See [`PlaybackService::progress`].
    async fn progress(&self, movie: &MediaId, user: &UserId) -> Result<Option<WatchProgress>, PlaybackError>;

    /// See [`PlaybackService::stop`].
    async fn stop(&self, movie: &MediaId, user: &UserId, report: ProgressReport) -> Result<StopOutcome, PlaybackError>;
}

#[async_trait]
impl Playback for PlaybackService {
    async fn start(
        &self,
        movie: &MediaId,
        user: &UserId,
        request: StartPlayback,
    ) -> Result<PlaybackStarted, PlaybackError> {
        PlaybackService::start(self, movie, user, request).await
    }

    async fn manifest(&self, movie: &MediaId, path: &str, grant: &str) -> Result<ServedManifest, PlaybackError> {
        PlaybackService::manifest(self, movie, path, grant).await
    }

    async fn record_progress(
        &self,
        movie: &MediaId,
        user: &UserId,
        report: ProgressReport,
    ) -> Result<ProgressAck, PlaybackError> {
        PlaybackService::record_progress(self, movie, user, report).await
    }

    async fn progress(&self, movie: &MediaId, user: &UserId) -> Result<Option<WatchProgress>, PlaybackError> {
        PlaybackService::progress(self, movie, user).await
    }

    async fn stop(&self, movie: &MediaId, user: &UserId, report: ProgressReport) -> Result<StopOutcome, PlaybackError> {
        PlaybackService::stop(self, movie, user, report).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;

    /// An HTTP layer holds playback as the trait, so its tests can put the
    /// mock where the service would be.
    #[tokio::test]
    async fn the_mock_stands_in_for_the_service() {
        let mut mock = MockPlayback::new();
        mock.expect_progress().times(1).returning(|_, _| Err(PlaybackError::NotFound));
        let playback: Arc<dyn Playback> = Arc::new(mock);
        let movie: MediaId = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse().unwrap();
        let user: UserId = "viewer".parse().unwrap();
        assert_eq!(playback.progress(&movie, &user).await, Err(PlaybackError::NotFound));
    }
}
