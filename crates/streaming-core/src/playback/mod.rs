//! The cinema contract: start a movie (a manifest URL and a session), record
//! watch progress, read it back, stop.

pub(crate) mod coalescer;
mod error;
mod events;
mod manifests;
mod port;
mod progress;
mod requests;
mod sessions;

pub use error::PlaybackError;
use manifests::{playlist_url, rendered_cache, Rendered};
pub use manifests::{ManifestGrants, ServedManifest, MAX_MANIFEST_BYTES};
#[cfg(any(test, feature = "mock"))]
pub use port::MockPlayback;
pub use port::Playback;
pub use requests::{PlaybackStarted, ProgressAck, ProgressReport, StartPlayback, StopOutcome};

use crate::ports::ReadinessCheck;
use crate::telemetry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug_span, warn, Instrument};

use crate::access::{check_access, SubscriptionLookup};
use crate::domain::{
    ManifestKind, Media, MediaId, MediaKind, ObjectKey, PlaybackAction, PlaybackEvent, PositionSeconds, SessionId,
    StreamSession, UserId,
};
use crate::manifest::ManifestGrant;
use crate::ports::{
    Clock, EventGate, EventHandling, EventPublisher, MediaCatalog, ObjectStore, ObjectStoreError, ProgressStore,
    SessionStore, SubscriptionDirectory,
};
use crate::rate_limit::{Limited, UserLimit};
use crate::service::Dependency;
use coalescer::Coalescer;

/// Settings of the playback operations.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybackSettings {
    /// Lifetime of manifest URLs (default 3600 s, as the cinema service).
    pub manifest_expiry: Duration,
    /// How far past the movie's duration a position may be (default 10 s).
    pub position_slack_seconds: f64,
    /// From this fraction of the duration on, a movie counts as watched and
    /// its resume position goes back to 0 (default 0.95).
    pub watched_fraction: f64,
    /// At most one progress event per session per interval (default 10 s);
    /// a report at least 80 % of it after the last event always gets one.
    /// Zero: an event for every accepted report.
    pub progress_event_interval: Duration,
    /// Longest `User-Agent` kept on a session (default 500 bytes, the cinema column).
    pub max_user_agent_len: usize,
    /// A session without a heartbeat (start, progress) for this long no longer
    /// counts towards the plan's `max_devices` (default 90 s).
    pub session_idle_timeout: Duration,
    /// A session nobody stopped is closed, at its last heartbeat, once it
    /// has shown no sign of life for this long (default 10 minutes; `None`:
    /// never). Within it, a viewer who paused resumes with the same session.
    pub session_close_after: Option<Duration>,
}

impl Default for PlaybackSettings {
    fn default() -> Self {
        Self {
            manifest_expiry: Duration::from_secs(3600),
            position_slack_seconds: 10.0,
            watched_fraction: 0.95,
            progress_event_interval: Duration::from_secs(10),
            max_user_agent_len: 500,
            session_idle_timeout: Duration::from_secs(90),
            session_close_after: Some(Duration::from_secs(600)),
        }
    }
}

/// Sessions one statement of a sweep closes (see [`PlaybackService::close_idle_sessions`]).
pub const SWEEP_BATCH: usize = 500;

/// The driven ports playback needs.
#[derive(Clone)]
pub struct PlaybackPorts {
    /// Media, ownership, grants, user status.
    pub catalog: Arc<dyn MediaCatalog>,
    /// The private bucket holding the manifests.
    pub objects: Arc<dyn ObjectStore>,
    /// Subscriptions.
    pub subscriptions: Arc<dyn SubscriptionDirectory>,
    /// Watch progress.
    pub progress: Arc<dyn ProgressStore>,
    /// Stream sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Playback events.
    pub events: Arc<dyn EventPublisher>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for PlaybackPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaybackPorts").finish_non_exhaustive()
    }
}

/// Per-user request limits of playback (each `None`: no limit).
#[derive(Debug, Clone, Default)]
pub struct PlaybackLimits {
    /// Starts (each opens a session row).
    pub start: Option<UserLimit>,
    /// Manifest fetches, counted against the grant's user.
    pub manifest: Option<UserLimit>,
}

/// How soon a progress update must reach the durable store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Whenever the store writes (a progress report; may be batched).
    Behind,
    /// Before the call returns (a stop).
    Now,
}

/// Counters of the playback operations.
#[derive(Debug, Default)]
pub struct PlaybackStats {
    /// Events that could not be handed to the publisher.
    pub events_failed: AtomicU64,
    /// Progress events left out by coalescing.
    pub progress_events_coalesced: AtomicU64,
    /// Reports ignored because a newer one of the same session was stored.
    pub stale_progress: AtomicU64,
    /// Starts whose stream limit was not enforced because the directory was down.
    pub stream_limit_skipped: AtomicU64,
    /// Progress events let through because the shared event gate was down.
    pub event_gate_unavailable: AtomicU64,
    /// Manifest existence checks (`HEAD`s) made for starts; the other
    /// starts were answered from what this instance remembers.
    pub manifest_checks: AtomicU64,
}

/// The cinema contract's operations over the driven ports.
#[derive(Debug)]
pub struct PlaybackService {
    ports: PlaybackPorts,
    settings: PlaybackSettings,
    /// This instance's view of which progress events went out lately.
    coalescer: Coalescer,
    /// The gate shared with the other instances, if any.
    shared_gate: Option<SharedGate>,
    stats: Arc<PlaybackStats>,
    grants: Option<ManifestGrants>,
    limits: PlaybackLimits,
    /// Stored manifests, briefly (they are small and every player asks).
    manifests: moka::sync::Cache<ObjectKey, Arc<[u8]>>,
    /// Rewritten manifests that name no nested playlist (so carry no
    /// grant): the same for every player within a signing window.
    rendered: moka::sync::Cache<(ObjectKey, i64), Rendered>,
    /// Manifests a start found (for [`MANIFEST_SEEN_FOR`]) or did not find
    /// (for [`MANIFEST_MISSED_FOR`]): a premiere's thousands of starts a
    /// second cost one `HEAD` a minute. Catalog changes clear both.
    seen: moka::sync::Cache<ObjectKey, ()>,
    missed: moka::sync::Cache<ObjectKey, ()>,
    /// Whether the object store can serve now (a breaker fed by a probe).
    store_health: Option<StoreHealth>,
}

/// The object store's [`ReadinessCheck`].
#[derive(Clone)]
struct StoreHealth(Arc<dyn ReadinessCheck>);

impl fmt::Debug for StoreHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreHealth")
    }
}

/// How long a start remembers that a manifest exists: as long as the
/// manifest itself is kept for players.
pub const MANIFEST_SEEN_FOR: Duration = Duration::from_secs(60);

/// How long a start remembers that a manifest is missing (an upload may be
/// on its way).
pub const MANIFEST_MISSED_FOR: Duration = Duration::from_secs(2);

/// The [`EventGate`] shared with the other instances.
#[derive(Clone)]
struct SharedGate(Arc<dyn EventGate>);

impl fmt::Debug for SharedGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedGate")
    }
}

impl PlaybackService {
    /// A service over `ports`.
    pub fn new(ports: PlaybackPorts, settings: PlaybackSettings) -> Self {
        let manifests = moka::sync::Cache::builder().max_capacity(1_000).time_to_live(Duration::from_secs(60)).build();
        let rendered = rendered_cache(Duration::from_secs(60));
        Self {
            ports,
            settings,
            coalescer: Coalescer::default(),
            shared_gate: None,
            stats: Arc::default(),
            grants: None,
            limits: PlaybackLimits::default(),
            manifests,
            rendered,
            seen: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(MANIFEST_SEEN_FOR).build(),
            missed: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(MANIFEST_MISSED_FOR).build(),
            store_health: None,
        }
    }

    /// Refuses starts (`Unavailable`, naming the object store) while
    /// `health` says the store cannot serve, even for a manifest known to
    /// exist: its player could fetch nothing.
    pub fn with_store_health(mut self, health: Arc<dyn ReadinessCheck>) -> Self {
        self.store_health = Some(StoreHealth(health));
        self
    }

    /// Forgets which manifests exist, and the manifests kept for players: a
    /// catalog change (here or on another instance) may have moved or
    /// removed them. Cheap, and rare beside starts.
    pub fn forget_manifests(&self) {
        self.seen.invalidate_all();
        self.missed.invalidate_all();
        self.manifests.invalidate_all();
        self.rendered.invalidate_all();
    }

    /// Whether the manifest at `key` exists: remembered, or asked of the store.
    async fn check_manifest(&self, key: &ObjectKey) -> Result<(), PlaybackError> {
        if self.store_health.as_ref().is_some_and(|StoreHealth(health)| health.unready_reason().is_some()) {
            return Err(unavailable(Dependency::ObjectStore));
        }
        if self.seen.contains_key(key) {
            return Ok(());
        }
        if self.missed.contains_key(key) {
            return Err(PlaybackError::ManifestNotFound);
        }
        self.stats.manifest_checks.fetch_add(1, Ordering::Relaxed);
        match self.ports.objects.head(key).instrument(debug_span!("storage.head")).await {
            Ok(_) => {
                self.seen.insert(key.clone(), ());
                Ok(())
            }
            Err(ObjectStoreError::NotFound) => {
                self.missed.insert(key.clone(), ());
                Err(PlaybackError::ManifestNotFound)
            }
            Err(_) => Err(unavailable(Dependency::ObjectStore)),
        }
    }

    /// Thins progress events out across every instance sharing `gate`
    /// (without one, each instance thins out its own). This instance's own
    /// view is asked first, so a report it already knows to be too early
    /// costs no call.
    pub fn with_shared_event_gate(mut self, gate: Arc<dyn EventGate>) -> Self {
        self.shared_gate = Some(SharedGate(gate));
        self
    }

    /// Serves manifests (HLS and DASH) through the manifest endpoint: `start`
    /// returns a grant URL of the service instead of a presigned manifest,
    /// and [`PlaybackService::manifest`] rewrites every manifest it serves.
    pub fn with_manifest_grants(mut self, grants: ManifestGrants) -> Self {
        self.rendered = rendered_cache(grants.url_window.max(Duration::from_secs(1)));
        self.grants = Some(grants);
        self
    }

    /// Limits starts and manifest fetches per user.
    pub fn with_limits(mut self, limits: PlaybackLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The service's counters.
    pub fn stats(&self) -> Arc<PlaybackStats> {
        Arc::clone(&self.stats)
    }

    /// Opens a session and returns a signed URL of the movie's manifest.
    ///
    /// # Errors
    /// Rate limited, not found, not ready, forbidden, manifest not found, or
    /// a dependency unavailable.
    pub async fn start(
        &self,
        movie: &MediaId,
        user: &UserId,
        request: StartPlayback,
    ) -> Result<PlaybackStarted, PlaybackError> {
        admit(self.limits.start.as_ref(), user).await?;
        let now = self.ports.clock.now();
        let media = self.authorized(movie, user, now, SubscriptionLookup::Required).await?;
        self.check_stream_limit(user, now).await?;
        let manifest_key = manifest_key(&media, request.manifest)?;
        self.check_manifest(&manifest_key).await?;
        let session_id = SessionId::random();
        let (manifest_url, expires_at) = match (&self.grants, request.manifest) {
            (Some(grants), _) => {
                let grant = ManifestGrant {
                    user: user.clone(),
                    movie: movie.clone(),
                    session: session_id,
                    expires_at: now + self.settings.manifest_expiry,
                };
                let url = playlist_url(grants, movie, request.manifest.file_name(), &grant.encode(&grants.signer));
                (url, grant.expires_at)
            }
            _ => {
                let url = self
                    .ports
                    .objects
                    .presign_get(&manifest_key, now, self.settings.manifest_expiry)
                    .instrument(debug_span!("storage.presign"))
                    .await
                    .map_err(|_| unavailable(Dependency::ObjectStore))?;
                (url.url, url.expires_at)
            }
        };

        let session = StreamSession {
            id: session_id,
            user: user.clone(),
            media: movie.clone(),
            manifest: request.manifest,
            started_at: now,
            ended_at: None,
            duration_seconds: None,
            user_agent: request.user_agent.map(|ua| truncate(ua, self.settings.max_user_agent_len)),
            client_ip: request.client_ip,
            last_heartbeat_at: now,
        };
        let resume_position = match self.ports.progress.get(user, movie).instrument(debug_span!("progress.get")).await {
            Ok(progress) => progress.map(|p| p.position).unwrap_or_default(),
            Err(error) => {
                // Resuming from 0 beats refusing to play.
                warn!(%error, "progress unavailable at start; resuming from 0");
                PositionSeconds::default()
            }
        };
        // A store with an outbox records the start event in the session's transaction.
        let event =
            PlaybackEvent::new(PlaybackAction::Start, user, movie, Some(session.id), Some(resume_position), now);
        let handling = self
            .ports
            .sessions
            .open_with_event(session.clone(), &event)
            .instrument(debug_span!("sessions.open"))
            .await
            .map_err(|_| unavailable(Dependency::Sessions))?;
        if handling == EventHandling::NotTaken {
            self.hand_over(event).await;
        }
        // Stores sign with whole-second expiries; round the remaining life up so
        // a one-hour URL reports 3600, not 3599.
        let remaining = expires_at - now;
        let expires_in = Duration::from_secs(
            remaining.whole_seconds().max(0) as u64 + u64::from(remaining.subsec_nanoseconds() > 0),
        );
        metrics::counter!(telemetry::SESSIONS_STARTED, "manifest" => request.manifest.as_str()).increment(1);
        Ok(PlaybackStarted {
            manifest_url,
            expires_at,
            expires_in,
            manifest: request.manifest,
            session: session.id,
            resume_position,
        })
    }

    /// The movie if `user` may play it now; `lookup` says how much the
    /// check may rely on the subscription directory (a manifest grant
    /// vouches for the subscription the start checked, when the directory
    /// cannot answer: a manifest fetch carries no caller token).
    async fn authorized(
        &self,
        movie: &MediaId,
        user: &UserId,
        now: OffsetDateTime,
        lookup: SubscriptionLookup,
    ) -> Result<Media, PlaybackError> {
        let ports = &self.ports;
        Ok(check_access(&*ports.catalog, &*ports.subscriptions, movie, user, MediaKind::Movie, now, lookup).await?)
    }

    /// The session if it belongs to this user and movie; others' sessions
    /// are "not found" so their existence is not revealed.
    async fn owned_session(
        &self,
        id: SessionId,
        user: &UserId,
        movie: &MediaId,
    ) -> Result<StreamSession, PlaybackError> {
        let session = self
            .ports
            .sessions
            .get(&id)
            .instrument(debug_span!("sessions.get"))
            .await
            .map_err(|_| unavailable(Dependency::Sessions))?;
        match session {
            Some(session) if &session.user == user && &session.media == movie => Ok(session),
            _ => Err(PlaybackError::SessionNotFound),
        }
    }

    async fn open_session_of(
        &self,
        id: SessionId,
        user: &UserId,
        movie: &MediaId,
    ) -> Result<StreamSession, PlaybackError> {
        let session = self.owned_session(id, user, movie).await?;
        if session.ended_at.is_some() {
            return Err(PlaybackError::SessionClosed);
        }
        Ok(session)
    }

    /// Hands an event to the publisher. Playback goes on when the sink is
    /// down; the failure is counted.
    async fn hand_over(&self, event: PlaybackEvent) {
        let action = event.action;
        if let Err(error) = self.ports.events.publish(event).instrument(debug_span!("events.publish")).await {
            self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(telemetry::EVENTS_DROPPED, "reason" => "publish_failed").increment(1);
            warn!(%error, action = action.as_str(), "playback event not published");
        }
    }
}

/// Counts a request of `user` against `limit` (none: no limit).
async fn admit(limit: Option<&UserLimit>, user: &UserId) -> Result<(), PlaybackError> {
    match limit {
        Some(limit) => {
            limit.admit(user).await.map_err(|Limited { retry_after }| PlaybackError::RateLimited { retry_after })
        }
        None => Ok(()),
    }
}

fn unavailable(dependency: Dependency) -> PlaybackError {
    PlaybackError::Unavailable { dependency }
}

/// `{manifest root}/index.m3u8` or `…/index.mpd`.
fn manifest_key(media: &Media, kind: ManifestKind) -> Result<ObjectKey, PlaybackError> {
    ObjectKey::try_from(format!("{}/{}", media.object_key.as_str(), kind.file_name()))
        .map_err(|_| PlaybackError::ManifestNotFound)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
