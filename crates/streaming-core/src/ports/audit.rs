use async_trait::async_trait;
use time::OffsetDateTime;

/// Why the audit trail could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The trail is down or cannot be written; the change it describes must
    /// be reported as not confirmed (503).
    #[error("audit trail unavailable: {0}")]
    Unavailable(String),
}

/// One change an operator made: who, what, on what, when, and the state
/// before and after. The states never hold URLs, object keys or secrets
/// (an object key is recorded as its fingerprint).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When the change was made.
    pub at: OffsetDateTime,
    /// Who made it: the name of the service credential.
    pub actor: String,
    /// What was done, e.g. `media.upsert`, `user.status`.
    pub action: String,
    /// What it was done to, e.g. `media/{id}`, `users/{id}`.
    pub target: String,
    /// The state before (`None`: it did not exist, or the change has no state).
    pub before: Option<serde_json::Value>,
    /// The state after (`None`: the change has no state).
    pub after: Option<serde_json::Value>,
}

/// The trail of operators' changes.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `record`; durable when it returns.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] if it could not be written.
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError>;

    /// The newest `limit` records, newest first.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] if the trail cannot be read.
    async fn recent(&self, limit: usize) -> Result<Vec<AuditRecord>, AuditError>;
}
