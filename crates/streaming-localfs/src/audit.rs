//! The embedded mode's [`AuditLog`]: one JSON object per line, appended to a
//! file and synced to disk before a change is confirmed.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{json, Value};
use streaming_core::ports::{AuditError, AuditLog, AuditRecord};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Appends audit records to a JSON-lines file.
#[derive(Debug)]
pub struct JsonLinesAuditLog {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

fn unavailable(error: &std::io::Error) -> AuditError {
    AuditError::Unavailable(error.kind().to_string())
}

impl JsonLinesAuditLog {
    /// Opens (creating if needed, with its directory) `path` for appending.
    ///
    /// # Errors
    /// The I/O error if the file cannot be opened.
    pub async fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
        // A write cut short by a crash leaves a line without its end; end it,
        // so that the next record starts a line of its own.
        let text = tokio::fs::read(&path).await?;
        if text.last().is_some_and(|last| *last != b'\n') {
            file.write_all(b"\n").await?;
            file.sync_data().await?;
        }
        Ok(Self { path, file: Mutex::new(file) })
    }

    /// The file the records go to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn to_line(record: &AuditRecord) -> Result<String, AuditError> {
    let at = record.at.format(&Rfc3339).map_err(|e| AuditError::Unavailable(e.to_string()))?;
    let mut line = json!({
        "at": at,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "before": record.before,
        "after": record.after,
    })
    .to_string();
    line.push('\n');
    Ok(line)
}

/// A line back as a record; `None` for a line that is not one (a write cut
/// short by a crash leaves at most one, the last).
fn from_line(line: &str) -> Option<AuditRecord> {
    let mut value: Value = serde_json::from_str(line).ok()?;
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let state = |value: &mut Value, key: &str| match value.get_mut(key).map(Value::take) {
        Some(Value::Null) | None => None,
        Some(state) => Some(state),
    };
    Some(AuditRecord {
        at: OffsetDateTime::parse(&text(&value, "at")?, &Rfc3339).ok()?,
        actor: text(&value, "actor")?,
        action: text(&value, "action")?,
        target: text(&value, "target")?,
        before: state(&mut value, "before"),
        after: state(&mut value, "after"),
    })
}

#[async_trait]
impl AuditLog for JsonLinesAuditLog {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = to_line(record)?;
        let mut file = self.file.lock().await;
        // One write per line under the lock: concurrent records never interleave.
        file.write_all(line.as_bytes()).await.map_err(|e| unavailable(&e))?;
        file.flush().await.map_err(|e| unavailable(&e))?;
        file.sync_data().await.map_err(|e| unavailable(&e))
    }

    async fn recent(&self, limit: usize) -> Result<Vec<AuditRecord>, AuditError> {
        // Appends wait while the file is read, so a half-written line is never seen.
        let _appends = self.file.lock().await;
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| unavailable(&e))?;
        Ok(text.lines().rev().filter_map(from_line).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_audit_log_contract() {
        let dir = tempfile::tempdir().unwrap();
        let log = JsonLinesAuditLog::open(dir.path().join("audit").join("admin.jsonl")).await.unwrap();
        streaming_core::contract::audit_log(&log).await;
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped_and_the_file_stays_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let record = AuditRecord {
            at: OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
            actor: "ops".into(),
            action: "user.status".into(),
            target: "users/u-1".into(),
            before: None,
            after: Some(json!({ "status": "suspended" })),
        };
        {
            let log = JsonLinesAuditLog::open(&path).await.unwrap();
            log.record(&record).await.unwrap();
        }
        // A crash in the middle of the next write.
        let mut torn = tokio::fs::OpenOptions::new().append(true).open(&path).await.unwrap();
        torn.write_all(br#"{"at":"2026-01-01T00:00:01Z","actor":"op"#).await.unwrap();
        drop(torn);
        let log = JsonLinesAuditLog::open(&path).await.unwrap();
        assert_eq!(log.recent(10).await.unwrap(), vec![record.clone()]);
        let later = AuditRecord { target: "users/u-2".into(), ..record.clone() };
        log.record(&later).await.unwrap();
        assert_eq!(log.recent(10).await.unwrap(), vec![later, record], "the record after the torn line is whole");
    }
}
