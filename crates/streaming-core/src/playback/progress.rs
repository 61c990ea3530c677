//! Progress: reports, the position they carry, the progress events they
//! become (at most one per session per interval), and reading it back.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::task::Poll;

use time::OffsetDateTime;
use tracing::{debug_span, warn, Instrument};

use super::coalescer;
use super::{unavailable, Durability, PlaybackError, PlaybackService, ProgressAck, ProgressReport, SharedGate};
use crate::access::SubscriptionLookup;
use crate::domain::{Media, MediaId, PlaybackAction, PlaybackEvent, PositionSeconds, SessionId, UserId, WatchProgress};
use crate::ports::RecordOutcome;
use crate::service::Dependency;
use crate::telemetry;

/// Runs `a` and `b` at once; both outputs.
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut first, mut second) = (None, None);
    std::future::poll_fn(|cx| {
        if first.is_none() {
            if let Poll::Ready(output) = a.as_mut().poll(cx) {
                first = Some(output);
            }
        }
        if second.is_none() {
            if let Poll::Ready(output) = b.as_mut().poll(cx) {
                second = Some(output);
            }
        }
        match (first.take(), second.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (first, second) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
}

impl PlaybackService {
    /// Records a progress report of `user` in `movie`.
    ///
    /// # Errors
    /// Not found, not ready, forbidden, an invalid position, an unknown or
    /// stopped session, or a dependency unavailable.
    pub async fn record_progress(
        &self,
        movie: &MediaId,
        user: &UserId,
        report: ProgressReport,
    ) -> Result<ProgressAck, PlaybackError> {
        let now = self.ports.clock.now();
        let media = self.authorized(movie, user, now, SubscriptionLookup::Required).await?;
        let position = self.position(&media, report.position_seconds)?;
        let session = match report.session {
            Some(id) => Some(self.open_session_of(id, user, movie).await?),
            None => None,
        };
        // The heartbeat and the position are written at once (each may wait
        // for its store's round trip); a failure of either fails the report.
        let touched = async {
            match &session {
                Some(session) => self
                    .ports
                    .sessions
                    .touch(&session.id, now)
                    .instrument(debug_span!("sessions.touch"))
                    .await
                    .map_err(|_| unavailable(Dependency::Sessions)),
                None => Ok(()),
            }
        };
        let stored = self.store_progress(&media, user, position, report, now, Durability::Behind);
        let (touched, stored) = both(touched, stored).await;
        touched?;
        let (outcome, stored) = stored?;
        if outcome == RecordOutcome::Applied {
            if self.progress_event_passes(user, movie, report.session, now).await {
                self.hand_over(PlaybackEvent::new(
                    PlaybackAction::Progress,
                    user,
                    movie,
                    report.session,
                    Some(position),
                    now,
                ))
                .await;
            } else {
                self.stats.progress_events_coalesced.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(ProgressAck {
            applied: outcome == RecordOutcome::Applied,
            position: stored.position,
            watched: stored.watched,
        })
    }

    /// Whether a progress event of this session may go out: not when this
    /// instance, or (with a shared gate) any instance, published one within
    /// the gap. A gate that cannot answer lets it through.
    async fn progress_event_passes(
        &self,
        user: &UserId,
        movie: &MediaId,
        session: Option<SessionId>,
        now: OffsetDateTime,
    ) -> bool {
        let gap = coalescer::gap_of(self.settings.progress_event_interval);
        if gap.is_zero() {
            return true;
        }
        let key = (user.clone(), movie.clone(), session);
        if !self.coalescer.admit(key.clone(), now, gap) {
            return false;
        }
        let Some(SharedGate(gate)) = &self.shared_gate else { return true };
        let session = session.map_or_else(|| "-".to_owned(), |id| id.to_string());
        let shared_key = format!("progress:{user}:{movie}:{session}");
        match gate.pass(&shared_key, gap).instrument(debug_span!("events.gate")).await {
            Ok(true) => true,
            Ok(false) => {
                // Another instance published; when is not known here, so this
                // instance asks the gate again on the next report.
                self.coalescer.forget(&key);
                false
            }
            Err(error) => {
                warn!(%error, "event gate unavailable; the progress event goes out");
                self.stats.event_gate_unavailable.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    /// The stored progress of `user` in `movie`, if any, for a user who may
    /// see the movie (the access rules of a start, the movie's status
    /// aside): whether a private or subscriber-only movie exists is not told
    /// to anyone else.
    ///
    /// # Errors
    /// Not found, forbidden, or a dependency unavailable.
    pub async fn progress(&self, movie: &MediaId, user: &UserId) -> Result<Option<WatchProgress>, PlaybackError> {
        match self.authorized(movie, user, self.ports.clock.now(), SubscriptionLookup::Required).await {
            Ok(_) | Err(PlaybackError::NotReady { .. }) => {}
            Err(refused) => return Err(refused),
        }
        self.ports
            .progress
            .get(user, movie)
            .instrument(debug_span!("progress.get"))
            .await
            .map_err(|_| unavailable(Dependency::Progress))
    }

    pub(super) fn position(&self, media: &Media, seconds: f64) -> Result<PositionSeconds, PlaybackError> {
        PositionSeconds::new(seconds)
            .and_then(|p| p.within(media.duration_seconds, self.settings.position_slack_seconds))
            .map_err(PlaybackError::InvalidPosition)
    }

    pub(super) async fn store_progress(
        &self,
        media: &Media,
        user: &UserId,
        position: PositionSeconds,
        report: ProgressReport,
        now: OffsetDateTime,
        durability: Durability,
    ) -> Result<(RecordOutcome, WatchProgress), PlaybackError> {
        let watched = media
            .duration_seconds
            .is_some_and(|duration| duration > 0.0 && position.get() >= duration * self.settings.watched_fraction);
        let progress = WatchProgress {
            user: user.clone(),
            media: media.id.clone(),
            position: if watched { PositionSeconds::default() } else { position },
            last_watched_at: now,
            watched,
            session: report.session,
            // Without a player sequence, arrival order decides: microseconds
            // since the epoch grow with every later arrival.
            sequence: report.sequence.unwrap_or_else(|| (now.unix_timestamp_nanos() / 1_000).max(0) as u64),
        };
        let store = &self.ports.progress;
        let recorded = match durability {
            Durability::Behind => store.record(progress.clone()).instrument(debug_span!("progress.record")).await,
            Durability::Now => store.record_durably(progress.clone()).instrument(debug_span!("progress.record")).await,
        };
        let outcome = recorded.map_err(|_| unavailable(Dependency::Progress))?;
        let label = if outcome == RecordOutcome::Applied { "applied" } else { "stale" };
        metrics::counter!(telemetry::PROGRESS_REPORTS, "outcome" => label).increment(1);
        if outcome == RecordOutcome::Applied {
            return Ok((outcome, progress));
        }
        self.stats.stale_progress.fetch_add(1, Ordering::Relaxed);
        let stored = self
            .ports
            .progress
            .get(user, &media.id)
            .instrument(debug_span!("progress.get"))
            .await
            .map_err(|_| unavailable(Dependency::Progress))?;
        Ok((outcome, stored.unwrap_or(progress)))
    }
}
