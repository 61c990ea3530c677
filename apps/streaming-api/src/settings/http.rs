//! Settings of the listeners: the public server, the admin API, problem documents.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// The internal admin API (`/internal/v1/`): catalog, grants, user status
/// and cache invalidation for operators and services without Kafka.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Serve it (default false).
    pub enabled: bool,
    /// Its own address (default `127.0.0.1`: loopback only).
    pub host: String,
    /// Its own port (default 8081; 0 picks a free one).
    pub port: u16,
    /// The service credentials, `name:key` pairs separated by commas; each
    /// key at least 32 bytes. The name is what the audit trail records as
    /// the actor. Required when enabled.
    #[serde(serialize_with = "streaming_core::config::redacted")]
    pub keys: Option<SecretString>,
    /// The audit trail's JSON-lines file when there is no PostgreSQL
    /// (default `data/admin-audit.jsonl`; with PostgreSQL: `admin_audit`).
    pub audit_path: PathBuf,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 8081,
            keys: None,
            audit_path: PathBuf::from("data/admin-audit.jsonl"),
        }
    }
}

/// Where and how to listen.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Interface to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind (default 8080; 0 picks a free one).
    pub port: u16,
    /// The URL players use to reach this service (default `http://{host}:{port}`);
    /// the embedded object store's URLs start with it.
    pub public_url: Option<String>,
    /// Worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Largest accepted request body in bytes (default 16 KiB).
    pub max_body_bytes: usize,
    /// Time a client gets to send its request head, in milliseconds (default 5000).
    pub client_request_timeout_ms: u64,
    /// How long an idle connection is kept open for the client's next
    /// request, in seconds (default 75; 0 closes each after its answer).
    /// Keep it above the idle timeout of the load balancer in front
    /// (60 s on AWS ALB by default; 600 s on Google's): a server that closes
    /// first races the balancer's next request on that connection, which
    /// then fails (a 502).
    pub keep_alive_seconds: u64,
    /// Seconds to let in-flight requests finish on shutdown (default 30).
    pub shutdown_timeout_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            public_url: None,
            workers: None,
            max_body_bytes: 16 * 1024,
            client_request_timeout_ms: 5_000,
            keep_alive_seconds: 75,
            shutdown_timeout_seconds: 30,
        }
    }
}

/// Problem documents.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProblemSettings {
    /// Base of the `type` URIs (default `https://streamgate.dev/problems/`).
    pub type_base: String,
}

impl Default for ProblemSettings {
    fn default() -> Self {
        Self { type_base: "https://streamgate.dev/problems/".into() }
    }
}
