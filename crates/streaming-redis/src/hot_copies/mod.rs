//! The seed's two Redis copies in front of slower sources:
//! * progress `progress:{user}:{movie}` (24 h) in front of a [`ProgressStore`];
//! * subscriptions `subscription:{user}` (300 s) in front of a
//!   [`SubscriptionDirectory`](streaming_core::ports::SubscriptionDirectory) ([`RedisSubscriptionCache`]).
//!
//! Both fail open: when Redis is down they go straight to the source. Their
//! keys and values come in two layouts ([`HotCopyLayout`]): this service's,
//! and the cinema streaming service's, for sharing one Redis with it.

mod subscriptions;

pub use subscriptions::RedisSubscriptionCache;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::KeysInterface;
use fred::types::scripts::Script;
use fred::types::Value;
use serde_json::{json, Value as Json};
use streaming_core::domain::{MediaId, PositionSeconds, SessionId, UserId, WatchProgress};
use streaming_core::ports::{ProgressError, ProgressStore, RecordOutcome};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::debug;

use crate::connection::RedisConnection;

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn text(value: Value) -> Option<String> {
    value.into_string()
}

/// How the hot copies' keys and values are written and read
/// (`redis.hot_copy_keys`: `tagged`, the default, or `cinema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HotCopyLayout {
    /// This service's: `progress:{<user>}:<movie>` and `subscription:{<user>}`,
    /// the user id a hash tag (one user's keys in one Redis Cluster slot);
    /// values with every field this service keeps.
    #[default]
    Tagged,
    /// The cinema streaming service's, on a standalone Redis both services
    /// share: `progress:<user>:<movie>` holding `{user_id, movie_id,
    /// position_seconds}` (whole seconds) and `subscription:<user>` holding
    /// `{is_active, plan_id, expires_at}`. This service's other fields ride
    /// along in the same objects; copies the cinema service wrote, without
    /// them, are read too.
    Cinema,
}

impl HotCopyLayout {
    fn progress_key(self, prefix: &str, user: &UserId, media: &MediaId) -> String {
        let (open, close) = self.braces();
        let (user, media) = (user.as_str(), media.as_str());
        let mut key = String::with_capacity(prefix.len() + user.len() + media.len() + 12);
        for part in [prefix, "progress:", open, user, close, ":", media] {
            key.push_str(part);
        }
        key
    }

    fn subscription_key(self, prefix: &str, user: &UserId) -> String {
        let (open, close) = self.braces();
        format!("{prefix}subscription:{open}{user}{close}")
    }

    fn braces(self) -> (&'static str, &'static str) {
        match self {
            Self::Tagged => ("{", "}"),
            Self::Cinema => ("", ""),
        }
    }
}

/// How often queued progress hot copies are written to Redis.
pub const HOT_COPY_INTERVAL: Duration = Duration::from_millis(50);

/// Most hot copies written by one script call: a call holds Redis for its
/// run, so a flush of thousands goes out in several.
const COPIES_PER_CALL: usize = 64;

/// Most script calls in flight at once during a flush: each holds its
/// arguments and the client's bookkeeping until answered, so the first flush
/// after thousands of viewers joined must not send them all at once.
const FLUSH_CONCURRENCY: usize = 16;

/// Most hot copies waiting; beyond it the oldest-queued are not kept (the
/// durable store still has every update).
const MAX_PENDING_COPIES: usize = 100_000;

/// A [`ProgressStore`] with a Redis hot copy: reads are served from Redis
/// when it has the row; writes go to the durable store first (it decides
/// monotonicity), then, if applied, to Redis.
///
/// Reports write their copy behind: the latest per (user, movie) waits in
/// memory and a flusher sends every waiting copy each [`HOT_COPY_INTERVAL`],
/// up to `COPIES_PER_CALL` (64) in one script call (on a cluster, copies of one
/// slot together), not a command per report. So another instance reads a position at most that much
/// older; this instance reads its own waiting copy. A stop
/// (`record_durably`) writes its copy at once. Copies that fail to go out
/// wait for the next flush unless a newer one replaced them.
#[derive(Debug)]
pub struct RedisProgressCache<S> {
    copies: Arc<HotCopies>,
    inner: S,
}

#[derive(Debug)]
struct HotCopies {
    redis: RedisConnection,
    ttl: Duration,
    layout: HotCopyLayout,
    write_script: Script,
    /// Copies waiting for the flusher, by key.
    pending: Mutex<HashMap<String, WatchProgress>>,
    /// Held exclusively by a flush from taking the waiting copies until they
    /// are written, and shared by the reads that missed them until they
    /// have read Redis: such a read never sees the older copy of one being
    /// written, and reads do not wait for each other.
    flushing: tokio::sync::RwLock<()>,
}

impl<S: ProgressStore> RedisProgressCache<S> {
    /// A hot copy of `inner` kept for `ttl` (the seed's default is 24 h),
    /// with its flusher (which ends when the cache is dropped).
    pub fn new(redis: RedisConnection, inner: S, ttl: Duration) -> Self {
        Self::with_layout(redis, inner, ttl, HotCopyLayout::Tagged)
    }

    /// [`Self::new`] with the keys and values of `layout`.
    pub fn with_layout(redis: RedisConnection, inner: S, ttl: Duration, layout: HotCopyLayout) -> Self {
        let copies = Arc::new(HotCopies {
            redis,
            ttl,
            layout,
            write_script: Script::from_lua(include_str!("../progress_write.lua")),
            pending: Mutex::default(),
            flushing: tokio::sync::RwLock::new(()),
        });
        let weak = Arc::downgrade(&copies);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOT_COPY_INTERVAL).await;
                let Some(copies) = weak.upgrade() else { break };
                copies.flush().await;
            }
        });
        Self { copies, inner }
    }

    /// Writes every waiting hot copy now.
    pub async fn flush(&self) {
        self.copies.flush().await;
    }

    /// Refreshes the hot copies of `batch` (written to the durable store
    /// elsewhere, e.g. rescued from an instance that died before it wrote
    /// its own copies), with the usual ordering rule.
    pub fn refresh(&self, batch: &[WatchProgress]) {
        for progress in batch {
            self.copies.queue(progress);
        }
    }

    /// How many hot copies wait for the flusher.
    pub fn pending(&self) -> usize {
        self.copies.lock().len()
    }

    /// Drops the hot copy of `user` in `media`.
    ///
    /// # Errors
    /// [`ProgressError::Unavailable`] if Redis cannot be reached.
    pub async fn invalidate(&self, user: &UserId, media: &MediaId) -> Result<(), ProgressError> {
        let copies = &self.copies;
        let key = copies.key(user, media);
        copies.lock().remove(&key);
        let pool = copies.redis.pool();
        copies
            .redis
            .guarded("DEL", || pool.del::<i64, _>(key))
            .await
            .map(drop)
            .map_err(|e| ProgressError::Unavailable(e.to_string()))
    }
}

impl HotCopies {
    fn key(&self, user: &UserId, media: &MediaId) -> String {
        self.layout.progress_key(self.redis.prefix(), user, media)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, WatchProgress>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the copy of `progress` for the flusher.
    fn queue(&self, progress: &WatchProgress) {
        let key = self.key(&progress.user, &progress.media);
        let mut pending = self.lock();
        if pending.len() < MAX_PENDING_COPIES || pending.contains_key(&key) {
            pending.insert(key, progress.clone());
        }
    }

    /// Sends every waiting copy, [`FLUSH_CONCURRENCY`] script calls at a time.
    async fn flush(&self) {
        use futures_util::StreamExt as _;
        let _turn = self.flushing.write().await;
        let batch: Vec<(String, WatchProgress)> = self.lock().drain().collect();
        if batch.is_empty() {
            return;
        }
        let failed: Vec<Vec<(String, WatchProgress)>> = futures_util::stream::iter(self.calls(batch))
            .map(|copies| async move { (!self.write(&copies).await).then_some(copies) })
            .buffer_unordered(FLUSH_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if !failed.is_empty() {
            let failed = failed.into_iter().flatten();
            let mut pending = self.lock();
            let mut kept = 0_usize;
            for (key, progress) in failed {
                if pending.len() < MAX_PENDING_COPIES {
                    pending.entry(key).or_insert(progress);
                    kept += 1;
                }
            }
            debug!(copies = kept, "progress hot copies not written; kept for the next flush");
        }
    }

    /// The copies of one flush grouped into script calls: at most
    /// [`COPIES_PER_CALL`] each and, on a cluster, of one hash slot each (a
    /// script may only touch keys of one slot there).
    fn calls(&self, batch: Vec<(String, WatchProgress)>) -> Vec<Vec<(String, WatchProgress)>> {
        if !self.redis.is_clustered() {
            return in_chunks(batch, COPIES_PER_CALL);
        }
        let mut by_slot: HashMap<u16, Vec<(String, WatchProgress)>> = HashMap::new();
        for (key, progress) in batch {
            by_slot.entry(fred::util::redis_keyslot(key.as_bytes())).or_default().push((key, progress));
        }
        by_slot.into_values().flat_map(|copies| in_chunks(copies, COPIES_PER_CALL)).collect()
    }

    /// Writes `copies` (keys of one slot) in one script call; whether Redis
    /// took them (each stored, or refused as older than the stored one).
    async fn write(&self, copies: &[(String, WatchProgress)]) -> bool {
        let mut keys = Vec::with_capacity(copies.len());
        let mut args: Vec<Value> = Vec::with_capacity(1 + 3 * copies.len());
        args.push(millis(self.ttl).to_string().into());
        for (key, progress) in copies {
            let session = progress.session.map(|s| s.to_string());
            let position = match self.layout {
                HotCopyLayout::Tagged => json!(progress.position.get()),
                // The cinema's column and copies hold whole seconds.
                HotCopyLayout::Cinema => json!(progress.position.get().floor() as u64),
            };
            let body = json!({
                "user_id": progress.user.as_str(),
                "movie_id": progress.media.as_str(),
                "position_seconds": position,
                "last_watched_at": progress.last_watched_at.format(&Rfc3339).unwrap_or_default(),
                "watched": progress.watched,
                "session_id": session.as_deref(),
                "sequence": progress.sequence,
            });
            keys.push(key.clone());
            args.push(body.to_string().into());
            args.push(session.unwrap_or_default().into());
            args.push(progress.sequence.to_string().into());
        }
        let client = self.redis.pool().next();
        let written: Result<i64, _> =
            self.redis.guarded("EVALSHA", || self.write_script.evalsha_with_reload(client, keys, args)).await;
        written.is_ok()
    }

    /// Writes the copy of `progress` at once, replacing a waiting one.
    async fn write_now(&self, progress: &WatchProgress) {
        let key = self.key(&progress.user, &progress.media);
        self.lock().remove(&key);
        if !self.write(&[(key, progress.clone())]).await {
            debug!("progress hot copy not written");
        }
    }
}

/// `items` in order, `size` at a time.
fn in_chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(size.max(1)));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(size.max(1)).collect());
    }
    chunks
}

/// A hot copy as read from Redis.
#[derive(Debug, PartialEq)]
enum HotProgress {
    /// Written by this service: every field.
    Full(WatchProgress),
    /// Written by the cinema service: `{user_id, movie_id, position_seconds}` only.
    PositionOnly(PositionSeconds),
}

/// The copy in `text`, if it is a well-formed copy of `user`'s progress in `media`.
fn parse_progress(text: &str, user: &UserId, media: &MediaId) -> Option<HotProgress> {
    let json: Json = serde_json::from_str(text).ok()?;
    if json["user_id"].as_str()? != user.as_str() || json["movie_id"].as_str()? != media.as_str() {
        return None;
    }
    let position = PositionSeconds::new(json["position_seconds"].as_f64()?).ok()?;
    let Some(last_watched_at) = json.get("last_watched_at") else {
        return Some(HotProgress::PositionOnly(position));
    };
    Some(HotProgress::Full(WatchProgress {
        user: user.clone(),
        media: media.clone(),
        position,
        last_watched_at: OffsetDateTime::parse(last_watched_at.as_str()?, &Rfc3339).ok()?,
        watched: json["watched"].as_bool()?,
        session: match &json["session_id"] {
            Json::String(s) => Some(s.parse::<SessionId>().ok()?),
            _ => None,
        },
        sequence: json["sequence"].as_u64()?,
    }))
}

#[async_trait]
impl<S: ProgressStore> ProgressStore for RedisProgressCache<S> {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        let copies = &self.copies;
        let key = copies.key(user, media);
        // This instance's own newest report may still be waiting.
        if let Some(waiting) = copies.lock().get(&key) {
            return Ok(Some(waiting.clone()));
        }
        // Not waiting: maybe being written now; wait for that write.
        let turn = copies.flushing.read().await;
        let pool = copies.redis.pool();
        let read = copies.redis.guarded("GET", || pool.get::<Value, _>(key)).await;
        drop(turn);
        let hot = read.ok().and_then(text).and_then(|text| parse_progress(&text, user, media));
        let progress = match hot {
            Some(HotProgress::Full(progress)) => return Ok(Some(progress)),
            // The cinema service's copy is ahead of its rows (it writes them
            // from Redis later): its position, the rest from the durable row.
            Some(HotProgress::PositionOnly(position)) => {
                let stored = self.inner.get(user, media).await?;
                return Ok(Some(match stored {
                    Some(stored) => WatchProgress { position, ..stored },
                    None => WatchProgress {
                        user: user.clone(),
                        media: media.clone(),
                        position,
                        last_watched_at: OffsetDateTime::now_utc(),
                        watched: false,
                        session: None,
                        sequence: 0,
                    },
                }));
            }
            None => self.inner.get(user, media).await?,
        };
        if let Some(progress) = &progress {
            copies.queue(progress);
        }
        Ok(progress)
    }

    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let outcome = self.inner.record(progress.clone()).await?;
        if outcome == RecordOutcome::Applied {
            self.copies.queue(&progress);
        }
        Ok(outcome)
    }

    async fn record_durably(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let outcome = self.inner.record_durably(progress.clone()).await?;
        if outcome == RecordOutcome::Applied {
            self.copies.write_now(&progress).await;
        }
        Ok(outcome)
    }
}
