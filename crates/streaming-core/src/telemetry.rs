//! The metrics the core and its adapters emit, through the `metrics`
//! facade: the names live here, the exporter (Prometheus in the app, or
//! whatever recorder an embedder installs) lives outside the core. Without a
//! recorder every emission is a no-op.
//!
//! Labels are small closed sets (`status`, `cache_hit`, `reason`,
//! `dependency`, `queue`, …); ids, paths and keys never become labels.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};

use crate::circuit_breaker::BreakerState;

/// `stream_url_requests_total{status="success"|"error", cache_hit="true"|"false"}`.
pub const STREAM_URL_REQUESTS: &str = "stream_url_requests_total";
/// `stream_url_request_duration_ms`: the whole track URL operation (histogram).
pub const STREAM_URL_DURATION_MS: &str = "stream_url_request_duration_ms";
/// `stream_url_cache_hits_total`.
pub const STREAM_URL_CACHE_HITS: &str = "stream_url_cache_hits_total";
/// `stream_url_cache_misses_total`.
pub const STREAM_URL_CACHE_MISSES: &str = "stream_url_cache_misses_total";
/// `stream_url_presign_generated_total`.
pub const STREAM_URL_PRESIGNS: &str = "stream_url_presign_generated_total";
/// `stream_cache_invalidations_total{reason}` (see [`InvalidationReason`]).
pub const STREAM_CACHE_INVALIDATIONS: &str = "stream_cache_invalidations_total";
/// `stream_cache_decrypt_failures_total`: cached entries that did not open.
pub const STREAM_CACHE_DECRYPT_FAILURES: &str = "stream_cache_decrypt_failures_total";
/// `stream_cache_errors_total{op="get"|"set"}`: cache calls that failed (served without cache).
pub const STREAM_CACHE_ERRORS: &str = "stream_cache_errors_total";
/// `circuit_breaker_state{dependency}`: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "circuit_breaker_state";
/// `circuit_breaker_opened_total{dependency}`.
pub const BREAKER_OPENED: &str = "circuit_breaker_opened_total";
/// `playback_sessions_started_total{manifest="hls"|"dash"}`.
pub const SESSIONS_STARTED: &str = "playback_sessions_started_total";
/// `playback_sessions_closed_idle_total`.
pub const SESSIONS_CLOSED_IDLE: &str = "playback_sessions_closed_idle_total";
/// `playback_progress_reports_total{outcome="applied"|"stale"}`.
pub const PROGRESS_REPORTS: &str = "playback_progress_reports_total";
/// `manifest_requests_total{kind="hls"|"dash"|"other", outcome}` (see [`MANIFEST_OUTCOMES`]).
pub const MANIFEST_REQUESTS: &str = "manifest_requests_total";
/// `kafka_consumer_events_handled_total{topic}`: upstream events applied.
pub const CONSUMER_HANDLED: &str = "kafka_consumer_events_handled_total";
/// `kafka_consumer_handler_failures_total{topic}`: failed attempts (retried, or then dead-lettered).
pub const CONSUMER_FAILURES: &str = "kafka_consumer_handler_failures_total";
/// `kafka_consumer_dead_letters_total{topic}`: events given up on, kept as dead letters.
pub const CONSUMER_DEAD_LETTERS: &str = "kafka_consumer_dead_letters_total";
/// `kafka_consumer_lag{topic, partition}`: records between the consumer and the end of the log.
pub const CONSUMER_LAG: &str = "kafka_consumer_lag";
/// `kafka_consumer_offsets_reset_total{topic}`: stored offsets the broker refused as out of range, reset.
pub const CONSUMER_OFFSETS_RESET: &str = "kafka_consumer_offsets_reset_total";
/// `manifest_subscription_vouched_total`: manifest fetches served on the
/// grant's word because the subscription directory could not answer.
pub const SUBSCRIPTION_VOUCHED: &str = "manifest_subscription_vouched_total";
/// `manifest_render_duration_ms`: rewriting and signing one manifest (histogram; cache hits excluded).
pub const MANIFEST_RENDER_MS: &str = "manifest_render_duration_ms";
/// `write_behind_queue_depth{queue="progress"|"sessions"}`: updates waiting.
pub const QUEUE_DEPTH: &str = "write_behind_queue_depth";
/// `write_behind_flush_duration_seconds{queue}` (histogram).
pub const FLUSH_SECONDS: &str = "write_behind_flush_duration_seconds";
/// `write_behind_flush_failures_total{queue}`.
pub const FLUSH_FAILURES: &str = "write_behind_flush_failures_total";
/// `write_behind_overflows_total{queue}`: updates written through because the queue was full.
pub const QUEUE_OVERFLOWS: &str = "write_behind_overflows_total";
/// Counter `{queue}`: acknowledged writes that could not be held for rescue (written through instead).
pub const PENDING_HOLD_FAILURES: &str = "pending_writes_hold_failures_total";
/// Counter `{queue}`: held writes of another instance (gone before its flush) written by this one.
pub const PENDING_RESCUED: &str = "pending_writes_rescued_total";
/// Counter `{queue}`: acknowledged writes held for rescue.
pub const PENDING_HELD: &str = "pending_writes_held_total";
/// Counter: calls to the pending-writes store that carried holds (writes
/// held per call = `pending_writes_held_total` / this).
pub const PENDING_HOLD_CALLS: &str = "pending_writes_hold_calls_total";
/// `events_published_total{path="outbox"|"direct"}`: playback events handed to the broker.
pub const EVENTS_PUBLISHED: &str = "events_published_total";
/// `events_dropped_total{reason}`: playback events given up on.
pub const EVENTS_DROPPED: &str = "events_dropped_total";
/// `outbox_backlog`: events written to the outbox and not yet published.
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
/// `outbox_lag_seconds`: age of the oldest unpublished outbox event.
pub const OUTBOX_LAG_SECONDS: &str = "outbox_lag_seconds";
/// `rate_limit_rejections_total{policy}`.
pub const RATE_LIMIT_REJECTIONS: &str = "rate_limit_rejections_total";
/// `http_requests_total{method, route, status}`: `route` is the route template.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// `http_request_duration_seconds{method, route}` (histogram).
pub const HTTP_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// Why cached URLs were dropped (`stream_cache_invalidations_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationReason {
    /// The media was deleted.
    Deletion,
    /// The media changed (status, owner, rules) or its user was suspended or reinstated.
    StatusChange,
    /// The user logged out everywhere.
    Logout,
    /// The user's subscription changed.
    Subscription,
    /// A grant on the media was given or taken back.
    Grant,
    /// An operator dropped cached URLs.
    Operator,
}

impl InvalidationReason {
    /// Every reason.
    pub const ALL: [Self; 6] =
        [Self::Deletion, Self::StatusChange, Self::Logout, Self::Subscription, Self::Grant, Self::Operator];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deletion => "deletion",
            Self::StatusChange => "status_change",
            Self::Logout => "logout",
            Self::Subscription => "subscription",
            Self::Grant => "grant",
            Self::Operator => "operator",
        }
    }
}

/// The `outcome` label values of [`MANIFEST_REQUESTS`].
pub const MANIFEST_OUTCOMES: [&str; 6] = ["served", "refused", "invalid", "limited", "unavailable", "not_found"];

/// The write-behind queues (`{queue}` of the write-behind and pending-writes counters).
pub const QUEUES: [&str; 3] = ["progress", "sessions", "outbox"];

/// Exports every counter whose labels are known before anything happens,
/// at 0, for each of its label values: a `rate()` panel or an `absent()`
/// alert sees a series only once it exists. Counters labelled by what a
/// deployment configures (a rate-limit policy, a breaker's dependency, a
/// consumed topic) start at 0 where that is set up.
pub fn zero_known_series() {
    for name in [
        STREAM_URL_CACHE_HITS,
        STREAM_URL_CACHE_MISSES,
        STREAM_URL_PRESIGNS,
        STREAM_CACHE_DECRYPT_FAILURES,
        SESSIONS_CLOSED_IDLE,
        SUBSCRIPTION_VOUCHED,
        PENDING_HOLD_CALLS,
    ] {
        counter!(name).increment(0);
    }
    for (status, cache_hit) in [("success", "true"), ("success", "false"), ("error", "false")] {
        counter!(STREAM_URL_REQUESTS, "status" => status, "cache_hit" => cache_hit).increment(0);
    }
    for reason in InvalidationReason::ALL {
        counter!(STREAM_CACHE_INVALIDATIONS, "reason" => reason.as_str()).increment(0);
    }
    for op in ["get", "set"] {
        counter!(STREAM_CACHE_ERRORS, "op" => op).increment(0);
    }
    for kind in ["hls", "dash"] {
        counter!(SESSIONS_STARTED, "manifest" => kind).increment(0);
    }
    for kind in ["hls", "dash", "other"] {
        for outcome in MANIFEST_OUTCOMES {
            counter!(MANIFEST_REQUESTS, "kind" => kind, "outcome" => outcome).increment(0);
        }
    }
    for outcome in ["applied", "stale"] {
        counter!(PROGRESS_REPORTS, "outcome" => outcome).increment(0);
    }
    for queue in QUEUES {
        for name in [FLUSH_FAILURES, QUEUE_OVERFLOWS, PENDING_HOLD_FAILURES, PENDING_RESCUED, PENDING_HELD] {
            counter!(name, "queue" => queue).increment(0);
        }
    }
    for path in ["outbox", "direct"] {
        counter!(EVENTS_PUBLISHED, "path" => path).increment(0);
    }
    for reason in ["publish_failed", "buffer_full", "sender_stopped"] {
        counter!(EVENTS_DROPPED, "reason" => reason).increment(0);
    }
}

/// Counts one invalidation.
pub fn invalidated(reason: InvalidationReason) {
    counter!(STREAM_CACHE_INVALIDATIONS, "reason" => reason.as_str()).increment(1);
}

/// The track URL operation's metric handles. Looking a metric up by name
/// (and labels) builds and hashes its key in the recorder's registry; the
/// operation runs on every request, so its handles are looked up once, on
/// first use (after the recorder is installed), and kept.
#[derive(Debug, Clone)]
pub(crate) struct UrlMetrics {
    pub hits: metrics::Counter,
    pub misses: metrics::Counter,
    pub presigns: metrics::Counter,
    pub duration_ms: metrics::Histogram,
    /// `STREAM_URL_REQUESTS` by (success, cache hit); failures are never hits.
    pub served_hit: metrics::Counter,
    pub served_miss: metrics::Counter,
    pub failed: metrics::Counter,
}

impl UrlMetrics {
    pub(crate) fn register() -> Self {
        Self {
            hits: counter!(STREAM_URL_CACHE_HITS),
            misses: counter!(STREAM_URL_CACHE_MISSES),
            presigns: counter!(STREAM_URL_PRESIGNS),
            duration_ms: metrics::histogram!(STREAM_URL_DURATION_MS),
            served_hit: counter!(STREAM_URL_REQUESTS, "status" => "success", "cache_hit" => "true"),
            served_miss: counter!(STREAM_URL_REQUESTS, "status" => "success", "cache_hit" => "false"),
            failed: counter!(STREAM_URL_REQUESTS, "status" => "error", "cache_hit" => "false"),
        }
    }
}

/// Publishes a breaker's state.
pub(crate) fn breaker_state(dependency: &'static str, state: BreakerState) {
    let value = match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    gauge!(BREAKER_STATE, "dependency" => dependency).set(value);
}

/// Registers the help text and unit of every metric above with the
/// installed recorder (call once, after installing it).
pub fn describe() {
    describe_counter!(STREAM_URL_REQUESTS, "Track URL requests by outcome and cache use.");
    describe_histogram!(STREAM_URL_DURATION_MS, Unit::Milliseconds, "Time to answer a track URL request.");
    describe_counter!(STREAM_URL_CACHE_HITS, "Track URLs served from the encrypted cache.");
    describe_counter!(STREAM_URL_CACHE_MISSES, "Track URL requests the cache could not answer.");
    describe_counter!(STREAM_URL_PRESIGNS, "Presigned track URLs generated.");
    describe_counter!(STREAM_CACHE_INVALIDATIONS, "Cached URLs dropped, by reason.");
    describe_counter!(STREAM_CACHE_DECRYPT_FAILURES, "Cached entries that did not decrypt (treated as misses).");
    describe_counter!(STREAM_CACHE_ERRORS, "URL cache calls that failed (served without the cache).");
    describe_gauge!(BREAKER_STATE, "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.");
    describe_counter!(BREAKER_OPENED, "Times a dependency's circuit breaker opened.");
    describe_counter!(SESSIONS_STARTED, "Playback sessions started, by manifest type.");
    describe_counter!(SESSIONS_CLOSED_IDLE, "Sessions nobody stopped, closed after showing no sign of life.");
    describe_counter!(PROGRESS_REPORTS, "Progress reports, by outcome.");
    describe_counter!(MANIFEST_REQUESTS, "Manifest fetches through the manifest endpoint, by outcome.");
    describe_counter!(CONSUMER_HANDLED, "Upstream catalog events applied.");
    describe_counter!(
        CONSUMER_FAILURES,
        "Failed attempts at applying an upstream event (retried, then dead-lettered)."
    );
    describe_counter!(CONSUMER_DEAD_LETTERS, "Upstream events given up on after every attempt, kept as dead letters.");
    describe_gauge!(CONSUMER_LAG, "Records between the consumer and the end of each partition's log.");
    describe_counter!(CONSUMER_OFFSETS_RESET, "Stored consumer offsets the broker refused as out of range, reset.");
    describe_counter!(
        SUBSCRIPTION_VOUCHED,
        "Manifest fetches served on the grant's word: the subscription directory could not answer."
    );
    describe_histogram!(MANIFEST_RENDER_MS, Unit::Milliseconds, "Time to rewrite and sign a manifest.");
    describe_gauge!(QUEUE_DEPTH, "Updates waiting in a write-behind queue.");
    describe_histogram!(FLUSH_SECONDS, Unit::Seconds, "Time to write one write-behind batch.");
    describe_counter!(FLUSH_FAILURES, "Write-behind batches that failed (kept for the next flush).");
    describe_counter!(QUEUE_OVERFLOWS, "Updates written straight through because a write-behind queue was full.");
    describe_counter!(
        PENDING_HOLD_FAILURES,
        "Acknowledged writes not held for rescue, written straight through instead."
    );
    describe_counter!(PENDING_RESCUED, "Held writes of an instance gone before its flush, written by this one.");
    describe_counter!(PENDING_HELD, "Acknowledged writes held for rescue until their flush.");
    describe_counter!(
        PENDING_HOLD_CALLS,
        "Calls to the pending-writes store that carried holds, each for many writes."
    );
    describe_counter!(EVENTS_PUBLISHED, "Playback events handed to the broker.");
    describe_counter!(EVENTS_DROPPED, "Playback events given up on, by reason.");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox events not yet published.");
    describe_gauge!(OUTBOX_LAG_SECONDS, Unit::Seconds, "Age of the oldest unpublished outbox event.");
    describe_counter!(RATE_LIMIT_REJECTIONS, "Requests refused by a rate-limit policy.");
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route template and status.");
    describe_histogram!(HTTP_DURATION_SECONDS, Unit::Seconds, "HTTP request latency by method and route template.");
}

/// Every metric name above (dashboards and alert rules are checked against it).
pub const ALL: [&str; 36] = [
    STREAM_URL_REQUESTS,
    STREAM_URL_DURATION_MS,
    STREAM_URL_CACHE_HITS,
    STREAM_URL_CACHE_MISSES,
    STREAM_URL_PRESIGNS,
    STREAM_CACHE_INVALIDATIONS,
    STREAM_CACHE_DECRYPT_FAILURES,
    STREAM_CACHE_ERRORS,
    BREAKER_STATE,
    BREAKER_OPENED,
    SESSIONS_STARTED,
    SESSIONS_CLOSED_IDLE,
    PROGRESS_REPORTS,
    MANIFEST_REQUESTS,
    MANIFEST_RENDER_MS,
    QUEUE_DEPTH,
    FLUSH_SECONDS,
    FLUSH_FAILURES,
    QUEUE_OVERFLOWS,
    PENDING_HOLD_FAILURES,
    PENDING_RESCUED,
    PENDING_HELD,
    PENDING_HOLD_CALLS,
    EVENTS_PUBLISHED,
    EVENTS_DROPPED,
    OUTBOX_BACKLOG,
    OUTBOX_LAG_SECONDS,
    CONSUMER_HANDLED,
    CONSUMER_FAILURES,
    CONSUMER_DEAD_LETTERS,
    CONSUMER_LAG,
    CONSUMER_OFFSETS_RESET,
    SUBSCRIPTION_VOUCHED,
    RATE_LIMIT_REJECTIONS,
    HTTP_REQUESTS,
    HTTP_DURATION_SECONDS,
];

/// `url` fit for `Debug` output and logs: scheme, host, port and path kept;
/// the user information (`user:password@`) and the query (which may carry
/// a password, a token or a signature) replaced by `[REDACTED]`.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end_of_authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end_of_authority);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("[REDACTED]@{host}"),
        None => authority.to_owned(),
    };
    let path = match tail.split_once(['?', '#']) {
        Some((path, _)) => format!("{path}?[REDACTED]"),
        None => tail.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted_url;

    #[test]
    fn credentials_and_queries_never_survive() {
        assert_eq!(redacted_url("postgres://app:s3cret@db:5432/streams"), "postgres://[REDACTED]@db:5432/streams");
        assert_eq!(redacted_url("redis://:pw@cache:6379/2"), "redis://[REDACTED]@cache:6379/2");
        assert_eq!(redacted_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            redacted_url("redis-sentinel://s1:26379?sentinelServiceName=m&sentinelPassword=pw"),
            "redis-sentinel://s1:26379?[REDACTED]"
        );
        assert_eq!(redacted_url("postgres://u:p@a@h/db?sslmode=require"), "postgres://[REDACTED]@h/db?[REDACTED]");
        assert_eq!(redacted_url("no scheme:pw@host"), "[REDACTED]@host");
    }
}
