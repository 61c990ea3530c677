//! The cinema contract: start a movie (a manifest URL and a session), record
//! watch progress, read it back, stop.

pub(crate) mod coalescer;
mod events;

use crate::telemetry;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug_span, warn, Instrument};

use crate::access::{check_access, existing, AccessError};
use crate::domain::{
    InvalidPosition, ManifestKind, Media, MediaId, MediaKind, MediaStatus, ObjectKey, PlaybackAction, PlaybackEvent,
    PositionSeconds, SessionId, StreamSession, UserId, WatchProgress,
};
use crate::manifest::{requested_key, rewrite_dash, rewrite_hls, GrantError, ManifestError, ManifestGrant, UriTarget};
use crate::policy::Denial;
use crate::ports::{
    Clock, CloseOutcome, EventGate, EventHandling, EventPublisher, MediaCatalog, ObjectStore, ObjectStoreError,
    ProgressStore, RecordOutcome, SessionStore, SubscriptionDirectory,
};
use crate::rate_limit::{Limited, UserLimit};
use crate::service::Dependency;
use crate::url_signing::UrlSigner;
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

/// How manifests are served through the service (see [`crate::manifest`]).
#[derive(Debug, Clone)]
pub struct ManifestGrants {
    /// Signs and checks grants.
    pub signer: UrlSigner,
    /// The public base of the manifest route: `{endpoint}/{movie_id}/manifest/{path}?grant=…`
    /// (e.g. `https://stream.example/api/v1/stream`).
    pub endpoint: String,
    /// Object URLs in a manifest are signed at the start of the current
    /// window, so every fetch within it returns byte-identical URLs (default 60 s).
    pub url_window: Duration,
    /// Lifetime of the object URLs in a manifest, from the window's start (default 1 h).
    pub object_url_expiry: Duration,
}

/// A manifest ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedManifest {
    /// The rewritten playlist or MPD (shared with the rendering cache).
    pub body: Arc<[u8]>,
    /// Its media type.
    pub content_type: &'static str,
    /// How long the body stays byte-identical (the rest of the signing window).
    pub fresh_for: Duration,
    /// When its object URLs expire.
    pub urls_expire_at: OffsetDateTime,
}

/// Manifests larger than this are refused (502), not read.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

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

/// Why a playback operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlaybackError {
    /// No such movie (or it was deleted).
    #[error("movie not found")]
    NotFound,
    /// The movie exists but its manifest of the asked kind does not.
    #[error("manifest not found")]
    ManifestNotFound,
    /// The movie is not streamable yet.
    #[error("movie is {status}, not Ready")]
    NotReady {
        /// Its status.
        status: MediaStatus,
    },
    /// The user may not play it.
    #[error("access denied: {0:?}")]
    Forbidden(Denial),
    /// The position is not acceptable.
    #[error("invalid position: {0}")]
    InvalidPosition(InvalidPosition),
    /// No session with that id belongs to this user and movie.
    #[error("session not found")]
    SessionNotFound,
    /// The session was stopped; start a new one.
    #[error("session already stopped")]
    SessionClosed,
    /// The plan's `max_devices` streams are already open; stopping one of
    /// `open` (oldest first) makes room.
    #[error("{limit} streams already open")]
    TooManyStreams {
        /// The plan's limit.
        limit: u32,
        /// The open sessions that count, oldest first.
        open: Vec<SessionId>,
    },
    /// The manifest grant is not valid (forged, malformed, for another movie) or has expired.
    #[error("manifest grant refused: {0}")]
    GrantRefused(GrantError),
    /// The grant's session was stopped (or the user may no longer play the movie).
    #[error("manifest grant revoked")]
    GrantRevoked,
    /// The stored manifest cannot be served (malformed, too large, refers outside the movie).
    #[error("{0}")]
    ManifestInvalid(String),
    /// The user is over a request limit ([`PlaybackLimits`]).
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long until one more request is allowed.
        retry_after: Duration,
    },
    /// A dependency is down.
    #[error("{} unavailable", dependency.as_str())]
    Unavailable {
        /// Which one.
        dependency: Dependency,
    },
}

impl From<AccessError> for PlaybackError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Denied(Denial::NotFound | Denial::Deleted) => Self::NotFound,
            AccessError::Denied(Denial::NotReady(status)) => Self::NotReady { status },
            AccessError::Denied(denial) => Self::Forbidden(denial),
            AccessError::Unavailable(dependency) => Self::Unavailable { dependency },
        }
    }
}

/// A request to start watching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartPlayback {
    /// HLS or DASH.
    pub manifest: ManifestKind,
    /// The player's `User-Agent`.
    pub user_agent: Option<String>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
}

/// A started playback.
#[derive(Clone, PartialEq)]
pub struct PlaybackStarted {
    /// The signed manifest URL (a credential: never log it).
    pub manifest_url: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// How long it is valid from now.
    pub expires_in: Duration,
    /// Which manifest.
    pub manifest: ManifestKind,
    /// The new session.
    pub session: SessionId,
    /// Where to resume (0 for a new or finished movie).
    pub resume_position: PositionSeconds,
}

impl fmt::Debug for PlaybackStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaybackStarted")
            .field("manifest_url", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("session", &self.session)
            .field("resume_position", &self.resume_position)
            .finish()
    }
}

/// A progress report from a player.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProgressReport {
    /// The position in seconds, as sent (validated here).
    pub position_seconds: f64,
    /// The session it belongs to, if the player knows it.
    pub session: Option<SessionId>,
    /// The player's own sequence number for ordering reports within a
    /// session; without it, arrival order at the service decides.
    pub sequence: Option<u64>,
}

/// What a progress report did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressAck {
    /// Whether this report was stored (false: a newer one of the session already was).
    pub applied: bool,
    /// The stored resume position after this report.
    pub position: PositionSeconds,
    /// Whether the movie now counts as watched.
    pub watched: bool,
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq)]
pub enum StopOutcome {
    /// The session was open and is now closed, its final progress recorded.
    Stopped(StreamSession),
    /// The session had been stopped already; nothing changed.
    AlreadyStopped(StreamSession),
    /// No open session of this user on this movie; nothing changed.
    NoOpenSession,
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
}

/// The [`EventGate`] shared with the other instances.
#[derive(Clone)]
struct SharedGate(Arc<dyn EventGate>);

impl fmt::Debug for SharedGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedGate")
    }
}

/// A rewritten manifest and when its object URLs expire.
type Rendered = (Arc<[u8]>, OffsetDateTime);

/// A manifest rewriter ([`rewrite_hls`], [`rewrite_dash`]).
type Rewrite = fn(
    &[u8],
    &ObjectKey,
    &ObjectKey,
    &mut dyn FnMut(UriTarget, &ObjectKey) -> Result<String, ManifestError>,
) -> Result<Vec<u8>, ManifestError>;

/// Rendered manifests kept at most (a long DASH movie expands to megabytes).
const MAX_RENDERED_BYTES: u64 = 64 << 20;

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
        let media = self.authorized(movie, user, now).await?;
        self.check_stream_limit(user, now).await?;
        let manifest_key = manifest_key(&media, request.manifest)?;
        self.ports.objects.head(&manifest_key).instrument(debug_span!("storage.head")).await.map_err(|error| {
            match error {
                ObjectStoreError::NotFound => PlaybackError::ManifestNotFound,
                _ => unavailable(Dependency::ObjectStore),
            }
        })?;
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

    /// The HLS playlist (`.m3u8`) or DASH MPD (`.mpd`) at `path` (relative
    /// to the movie's root) for the holder of `grant`, every URI rewritten:
    /// nested playlists to this endpoint with the same grant, media to
    /// presigned object URLs signed at the start of the current window
    /// (a manifest without nested playlists is rendered once per window and
    /// shared by every player). Refused when the grant is invalid or
    /// expired, its session is stopped, or its user may no longer play the movie.
    ///
    /// # Errors
    /// [`PlaybackError::GrantRefused`] / [`PlaybackError::GrantRevoked`] (403),
    /// [`PlaybackError::RateLimited`], not found, [`PlaybackError::ManifestInvalid`] (502), or a dependency unavailable.
    pub async fn manifest(
        &self,
        movie: &MediaId,
        path: &str,
        grant_text: &str,
    ) -> Result<ServedManifest, PlaybackError> {
        let result = self.serve_manifest(movie, path, grant_text).await;
        let kind = ManifestKind::of_path(path).map_or("other", ManifestKind::as_str);
        let outcome = match &result {
            Ok(_) => "served",
            Err(PlaybackError::GrantRefused(_) | PlaybackError::GrantRevoked | PlaybackError::Forbidden(_)) => {
                "refused"
            }
            Err(PlaybackError::ManifestInvalid(_)) => "invalid",
            Err(PlaybackError::RateLimited { .. }) => "limited",
            Err(PlaybackError::Unavailable { .. }) => "unavailable",
            Err(_) => "not_found",
        };
        metrics::counter!(telemetry::MANIFEST_REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
        result
    }

    async fn serve_manifest(
        &self,
        movie: &MediaId,
        path: &str,
        grant_text: &str,
    ) -> Result<ServedManifest, PlaybackError> {
        let grants = self.grants.as_ref().ok_or(PlaybackError::ManifestNotFound)?;
        let now = self.ports.clock.now();
        let grant = ManifestGrant::decode(grant_text, &grants.signer, now).map_err(PlaybackError::GrantRefused)?;
        if grant.movie != *movie {
            return Err(PlaybackError::GrantRefused(GrantError::Invalid));
        }
        // Counted once the grant is known to be genuine: a forged one must
        // not spend its user's allowance.
        admit(self.limits.manifest.as_ref(), &grant.user).await?;
        match self.open_session_of(grant.session, &grant.user, movie).await {
            Err(PlaybackError::SessionNotFound | PlaybackError::SessionClosed) => {
                return Err(PlaybackError::GrantRevoked)
            }
            other => other?,
        };
        let media = match self.authorized(movie, &grant.user, now).await {
            Err(PlaybackError::Forbidden(_)) => return Err(PlaybackError::GrantRevoked),
            other => other?,
        };
        // The kind is judged on the normalised key: a path is decoded once
        // (by the HTTP layer) and only a manifest's name is read as one.
        let root = &media.object_key;
        let key = requested_key(root, path).ok_or(PlaybackError::ManifestNotFound)?;
        let (rewrite, content_type): (Rewrite, &'static str) =
            match ManifestKind::of_path(key.as_str()).ok_or(PlaybackError::ManifestNotFound)? {
                ManifestKind::Hls => (rewrite_hls, "application/vnd.apple.mpegurl"),
                ManifestKind::Dash => (rewrite_dash, "application/dash+xml"),
            };
        let window = grants.url_window.as_secs().max(1) as i64;
        let signed_at =
            OffsetDateTime::from_unix_timestamp(now.unix_timestamp() - now.unix_timestamp().rem_euclid(window))
                .map_err(|_| unavailable(Dependency::ObjectStore))?;
        let fresh_for = Duration::from_secs((signed_at.unix_timestamp() + window - now.unix_timestamp()).max(0) as u64);
        let cache_key = (key.clone(), signed_at.unix_timestamp());
        if let Some((body, urls_expire_at)) = self.rendered.get(&cache_key) {
            return Ok(ServedManifest { body, content_type, fresh_for, urls_expire_at });
        }
        let bytes = self.stored_manifest(&key).await?;
        let rendering = std::time::Instant::now();

        // Pass 1: which objects the manifest names. Pass 2: the manifest with signed URLs.
        let mut objects = Vec::new();
        let mut names_playlists = false;
        rewrite(&bytes, &key, root, &mut |target, key| {
            match target {
                UriTarget::Object => objects.push(key.clone()),
                UriTarget::Playlist => names_playlists = true,
            }
            Ok(String::new())
        })
        .map_err(|e| PlaybackError::ManifestInvalid(e.to_string()))?;
        let mut signed = std::collections::HashMap::with_capacity(objects.len());
        let mut urls_expire_at = signed_at + grants.object_url_expiry;
        for object in objects {
            if signed.contains_key(&object) {
                continue;
            }
            let url = self
                .ports
                .objects
                .presign_get(&object, signed_at, grants.object_url_expiry)
                .instrument(debug_span!("storage.presign"))
                .await
                .map_err(|_| unavailable(Dependency::ObjectStore))?;
            urls_expire_at = url.expires_at;
            signed.insert(object, url.url);
        }
        let root_prefix = format!("{}/", root.as_str());
        let body: Arc<[u8]> = rewrite(&bytes, &key, root, &mut |target, key| match target {
            UriTarget::Object => {
                signed.get(key).cloned().ok_or_else(|| ManifestError::Signing("an object was not signed".into()))
            }
            UriTarget::Playlist => {
                let relative = key.as_str().strip_prefix(&root_prefix).unwrap_or_default();
                Ok(playlist_url(grants, movie, relative, grant_text))
            }
        })
        .map_err(|e| PlaybackError::ManifestInvalid(e.to_string()))?
        .into();
        if !names_playlists {
            self.rendered.insert(cache_key, (Arc::clone(&body), urls_expire_at));
        }
        metrics::histogram!(telemetry::MANIFEST_RENDER_MS).record(rendering.elapsed().as_secs_f64() * 1_000.0);
        Ok(ServedManifest { body, content_type, fresh_for, urls_expire_at })
    }

    async fn stored_manifest(&self, key: &ObjectKey) -> Result<Arc<[u8]>, PlaybackError> {
        if let Some(bytes) = self.manifests.get(key) {
            return Ok(bytes);
        }
        let bytes: Arc<[u8]> = match self
            .ports
            .objects
            .read_small(key, MAX_MANIFEST_BYTES)
            .instrument(debug_span!("storage.read"))
            .await
        {
            Ok(bytes) => bytes.into(),
            Err(ObjectStoreError::NotFound) => return Err(PlaybackError::ManifestNotFound),
            Err(ObjectStoreError::Invalid(_)) => {
                return Err(PlaybackError::ManifestInvalid("the manifest is larger than 1 MiB".into()))
            }
            Err(_) => return Err(unavailable(Dependency::ObjectStore)),
        };
        self.manifests.insert(key.clone(), Arc::clone(&bytes));
        Ok(bytes)
    }

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
        let media = self.authorized(movie, user, now).await?;
        let position = self.position(&media, report.position_seconds)?;
        let session = match report.session {
            Some(id) => Some(self.open_session_of(id, user, movie).await?),
            None => None,
        };
        if let Some(session) = &session {
            self.ports
                .sessions
                .touch(&session.id, now)
                .instrument(debug_span!("sessions.touch"))
                .await
                .map_err(|_| unavailable(Dependency::Sessions))?;
        }
        let (outcome, stored) = self.store_progress(&media, user, position, report, now, Durability::Behind).await?;
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
        match self.authorized(movie, user, self.ports.clock.now()).await {
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
    /// sign of life for [`PlaybackSettings::session_close_after`], in
    /// batches of [`SWEEP_BATCH`], at its last heartbeat, each with its
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
    async fn check_stream_limit(&self, user: &UserId, now: OffsetDateTime) -> Result<(), PlaybackError> {
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

    async fn authorized(&self, movie: &MediaId, user: &UserId, now: OffsetDateTime) -> Result<Media, PlaybackError> {
        let ports = &self.ports;
        Ok(check_access(&*ports.catalog, &*ports.subscriptions, movie, user, MediaKind::Movie, now).await?)
    }

    fn position(&self, media: &Media, seconds: f64) -> Result<PositionSeconds, PlaybackError> {
        PositionSeconds::new(seconds)
            .and_then(|p| p.within(media.duration_seconds, self.settings.position_slack_seconds))
            .map_err(PlaybackError::InvalidPosition)
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

    async fn store_progress(
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

/// The cache of rendered manifests: each lives for one signing window, at
/// most [`MAX_RENDERED_BYTES`] in all.
fn rendered_cache(window: Duration) -> moka::sync::Cache<(ObjectKey, i64), Rendered> {
    moka::sync::Cache::builder()
        .weigher(|_, (body, _): &Rendered| u32::try_from(body.len()).unwrap_or(u32::MAX))
        .max_capacity(MAX_RENDERED_BYTES)
        .time_to_live(window)
        .build()
}

/// `{endpoint}/{movie}/manifest/{path}?grant={grant}`, the path percent-encoded per segment.
fn playlist_url(grants: &ManifestGrants, movie: &MediaId, path: &str, grant: &str) -> String {
    let endpoint = grants.endpoint.trim_end_matches('/');
    format!("{endpoint}/{movie}/manifest/{}?grant={grant}", crate::domain::percent_encode_path(path))
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
