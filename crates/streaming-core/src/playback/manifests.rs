//! Serving manifests through the service: a grant stands in for the
//! bearer token, nested playlists point back here, media URIs become
//! presigned object URLs signed at the start of the current window.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug_span, warn, Instrument};

use super::{admit, unavailable, PlaybackError, PlaybackService};
use crate::access::SubscriptionLookup;
use crate::domain::{ManifestKind, MediaId, ObjectKey, StreamSession};
use crate::manifest::{requested_key, rewrite_dash, rewrite_hls, GrantError, ManifestError, ManifestGrant, UriTarget};
use crate::ports::ObjectStoreError;
use crate::service::Dependency;
use crate::telemetry;
use crate::url_signing::UrlSigner;

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

/// A rewritten manifest and when its object URLs expire.
pub(super) type Rendered = (Arc<[u8]>, OffsetDateTime);

/// A manifest rewriter ([`rewrite_hls`], [`rewrite_dash`]).
type Rewrite = fn(
    &[u8],
    &ObjectKey,
    &ObjectKey,
    &mut dyn FnMut(UriTarget, &ObjectKey) -> Result<String, ManifestError>,
) -> Result<Vec<u8>, ManifestError>;

/// Rendered manifests kept at most (a long DASH movie expands to megabytes).
const MAX_RENDERED_BYTES: u64 = 64 << 20;

/// The cache of rendered manifests: each lives for one signing window, at
/// most [`MAX_RENDERED_BYTES`] in all.
pub(super) fn rendered_cache(window: Duration) -> moka::sync::Cache<(ObjectKey, i64), Rendered> {
    moka::sync::Cache::builder()
        .weigher(|_, (body, _): &Rendered| u32::try_from(body.len()).unwrap_or(u32::MAX))
        .max_capacity(MAX_RENDERED_BYTES)
        .time_to_live(window)
        .build()
}

/// `{endpoint}/{movie}/manifest/{path}?grant={grant}`, the path percent-encoded per segment.
pub(super) fn playlist_url(grants: &ManifestGrants, movie: &MediaId, path: &str, grant: &str) -> String {
    let endpoint = grants.endpoint.trim_end_matches('/');
    format!("{endpoint}/{movie}/manifest/{}?grant={grant}", crate::domain::percent_encode_path(path))
}

impl PlaybackService {
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
            Err(
                PlaybackError::GrantRefused(_)
                | PlaybackError::GrantRevoked
                | PlaybackError::Forbidden(_)
                | PlaybackError::TooManyStreams { .. },
            ) => "refused",
            Err(PlaybackError::ManifestInvalid(_)) => "invalid",
            Err(PlaybackError::RateLimited { .. }) => "limited",
            Err(PlaybackError::Unavailable { .. }) => "unavailable",
            Err(_) => "not_found",
        };
        metrics::counter!(telemetry::MANIFEST_REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
        result
    }

    /// A manifest fetch is a heartbeat of its session. A session that has
    /// gone idle no longer counted towards the plan's stream limit; a fetch
    /// through it counts it again, refused only while the user's other
    /// streams already fill the plan (a paused viewer within the limit
    /// resumes without noticing; a stream too many does not start through
    /// an old grant).
    async fn keep_alive(&self, session: &StreamSession, now: OffsetDateTime) -> Result<(), PlaybackError> {
        if session.last_heartbeat_at < now - self.settings.session_idle_timeout {
            self.check_stream_limit(&session.user, now).await?;
        }
        if let Err(error) = self.ports.sessions.touch(&session.id, now).instrument(debug_span!("sessions.touch")).await
        {
            warn!(%error, "a manifest fetch's heartbeat was not recorded");
        }
        Ok(())
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
        let session = match self.open_session_of(grant.session, &grant.user, movie).await {
            Err(PlaybackError::SessionNotFound | PlaybackError::SessionClosed) => {
                return Err(PlaybackError::GrantRevoked)
            }
            other => other?,
        };
        let media = match self.authorized(movie, &grant.user, now, SubscriptionLookup::VouchedFor).await {
            Err(PlaybackError::Forbidden(_)) => return Err(PlaybackError::GrantRevoked),
            other => other?,
        };
        self.keep_alive(&session, now).await?;
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
}
