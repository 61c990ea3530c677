//! Stream sessions: stopping them, closing the ones nobody stopped, and the
//! plan's limit on open ones.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug_span, warn, Instrument};

use std::sync::atomic::Ordering;

use super::{unavailable, Durability, PlaybackError, PlaybackService, ProgressReport, StopOutcome, SWEEP_BATCH};
use crate::access::existing;
use crate::domain::{MediaId, MediaKind, PlaybackAction, PlaybackEvent, PositionSeconds, StreamSession, UserId};
use crate::ports::{CloseOutcome, EventHandling};
use crate::service::Dependency;
use crate::telemetry;

impl PlaybackService {
    /// Records the final position and closes the session (the given one, or
    /// the user's latest open session on this movie). Idempotent: stopping a
    /// stopped session changes nothing.
    ///
    /// # Errors
    /// Not found, an invalid position, an unknown session, or a dependency unavailable.
    pub async fn stop(
        &self,
        movie: &MediaId,
        user: &UserId,
        report: ProgressReport,
    ) -> Result<StopOutcome, PlaybackError> {
        let now = self.ports.clock.now();
        let media = existing(&*self.ports.catalog, movie, MediaKind::Movie).await?;
        let position = self.position(&media, report.position_seconds)?;
        let session = match report.session {
            Some(id) => match self.owned_session(id, user, movie).await? {
                session if session.ended_at.is_some() => return Ok(StopOutcome::AlreadyStopped(session)),
                session => session,
            },
            None => {
                match self
                    .every_open_session(user)
                    .await?
                    .into_iter()
                    .filter(|s| &s.media == movie)
                    .max_by_key(|s| s.started_at)
                {
                    Some(session) => session,
                    None => return Ok(StopOutcome::NoOpenSession),
                }
            }
        };
        let report = ProgressReport { session: Some(session.id), ..report };
        // The last position is acknowledged with the stop: written through, not behind.
        self.store_progress(&media, user, position, report, now, Durability::Now).await?;
        match self.close_session(&session, Some(position), now).await? {
            CloseOutcome::Closed(session) => Ok(StopOutcome::Stopped(session)),
            CloseOutcome::AlreadyClosed(session) => Ok(StopOutcome::AlreadyStopped(session)),
            CloseOutcome::NotFound => Err(PlaybackError::SessionNotFound),
        }
    }

    /// Closes `session` with its stop event (in the store's transaction when
    /// it has an outbox, else handed to the publisher).
    async fn close_session(
        &self,
        session: &StreamSession,
        position: Option<PositionSeconds>,
        now: OffsetDateTime,
    ) -> Result<CloseOutcome, PlaybackError> {
        let (user, movie) = (&session.user, &session.media);
        let event = PlaybackEvent::new(PlaybackAction::Stop, user, movie, Some(session.id), position, now);
        // Progress events still queued go first: no consumer sees progress after the stop.
        if let Err(error) = self.ports.events.flush().instrument(debug_span!("events.flush")).await {
            warn!(%error, "queued playback events not written before a stop");
        }
        let (outcome, handling) = self
            .ports
            .sessions
            .close_with_event(&session.id, now, &event)
            .instrument(debug_span!("sessions.close"))
            .await
            .map_err(|_| unavailable(Dependency::Sessions))?;
        if let CloseOutcome::Closed(closed) = &outcome {
            self.coalescer.forget(&(user.clone(), movie.clone(), Some(closed.id)));
            if handling == EventHandling::NotTaken {
                self.hand_over(event).await;
            }
        }
        Ok(outcome)
    }

    /// One sweep: closes every session nobody stopped that has shown no
    /// sign of life for [`crate::PlaybackSettings::session_close_after`], in
    /// batches of `SWEEP_BATCH` (500), at its last heartbeat, each with its
    /// [`PlaybackEvent::idle_stop`]. Returns how many it closed. Several
    /// instances may sweep at once: each session is closed by one of them.
    ///
    /// # Errors
    /// The session store unavailable (what earlier batches closed stays closed).
    pub async fn close_idle_sessions(&self) -> Result<usize, PlaybackError> {
        let Some(close_after) = self.settings.session_close_after else { return Ok(0) };
        let idle_before = self.ports.clock.now() - close_after;
        let mut closed = 0;
        loop {
            let (batch, handling) = self
                .ports
                .sessions
                .close_idle(idle_before, SWEEP_BATCH)
                .instrument(debug_span!("sessions.close_idle"))
                .await
                .map_err(|_| unavailable(Dependency::Sessions))?;
            closed += batch.len();
            metrics::counter!(telemetry::SESSIONS_CLOSED_IDLE).increment(batch.len() as u64);
            for session in &batch {
                self.coalescer.forget(&(session.user.clone(), session.media.clone(), Some(session.id)));
                if handling == EventHandling::NotTaken {
                    self.hand_over(PlaybackEvent::idle_stop(session)).await;
                }
            }
            if batch.len() < SWEEP_BATCH {
                return Ok(closed);
            }
        }
    }

    /// How often to call [`Self::close_idle_sessions`]: a quarter of
    /// `session_close_after`, between 1 and 30 seconds; `None` when sessions
    /// are never closed for idleness.
    pub fn sweep_interval(&self) -> Option<Duration> {
        let quarter = self.settings.session_close_after? / 4;
        Some(quarter.clamp(Duration::from_secs(1), Duration::from_secs(30)))
    }

    /// Every open session of `user`, however long idle.
    async fn every_open_session(&self, user: &UserId) -> Result<Vec<StreamSession>, PlaybackError> {
        self.ports
            .sessions
            .open_sessions(user, OffsetDateTime::UNIX_EPOCH)
            .instrument(debug_span!("sessions.list_open"))
            .await
            .map_err(|_| unavailable(Dependency::Sessions))
    }

    /// Closes every open session of `user` (a logout everywhere): their
    /// manifest grants stop working at the next playlist fetch. Each closed
    /// session gets its stop event, without a position. Returns how many
    /// were closed.
    ///
    /// # Errors
    /// The session store unavailable (some sessions may already be closed; calling again is safe).
    pub async fn end_sessions_of(&self, user: &UserId) -> Result<usize, PlaybackError> {
        let now = self.ports.clock.now();
        let open = self.every_open_session(user).await?;
        let mut closed = 0;
        for session in open {
            if let CloseOutcome::Closed(_) = self.close_session(&session, None, now).await? {
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Refuses a new stream when the user's active plan allows no more open
    /// sessions. Users without an active subscription (owners, grantees,
    /// public media) have no plan limit. The limit fails open when the
    /// directory is down: access was already decided, and a stream too many
    /// is better than refusing every viewer of a public movie. The count is
    /// read before the new session is opened, so two starts at the same
    /// instant can both pass: a soft limit (a per-user lock would make it exact).
    pub(super) async fn check_stream_limit(&self, user: &UserId, now: OffsetDateTime) -> Result<(), PlaybackError> {
        let limit = match self.ports.subscriptions.current(user).instrument(debug_span!("subscriptions.current")).await
        {
            Ok(Some(subscription)) if subscription.is_active_at(now) => match subscription.plan.max_devices {
                Some(limit) => limit,
                None => return Ok(()),
            },
            Ok(_) => return Ok(()),
            Err(error) => {
                warn!(%error, "subscription unavailable for the stream limit; not enforced for this start");
                self.stats.stream_limit_skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let alive_since = now - self.settings.session_idle_timeout;
        let open = self
            .ports
            .sessions
            .open_sessions(user, alive_since)
            .instrument(debug_span!("sessions.list_open"))
            .await
            .map_err(|_| unavailable(Dependency::Sessions))?;
        if open.len() >= limit as usize {
            return Err(PlaybackError::TooManyStreams { limit, open: open.into_iter().map(|s| s.id).collect() });
        }
        Ok(())
    }
}
