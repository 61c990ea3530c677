use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{AuditError, AuditLog, AuditRecord};

/// An audit trail in memory, for tests and for programs that keep their
/// trail elsewhere (it is gone when the process ends).
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemoryAuditLog {
    /// An empty trail.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        lock(&self.records).push(record.clone());
        Ok(())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<AuditRecord>, AuditError> {
        Ok(lock(&self.records).iter().rev().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn keeps_the_audit_log_contract() {
        crate::contract::audit_log(&super::MemoryAuditLog::new()).await;
    }
}
