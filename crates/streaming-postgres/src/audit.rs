//! [`AuditLog`] on PostgreSQL (`admin_audit`, appended only).

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use streaming_core::ports::{AuditError, AuditLog, AuditRecord};
use time::OffsetDateTime;

use crate::database::{retry_once, DbError, PgDatabase};

/// The operators' trail in `admin_audit`.
#[derive(Debug, Clone)]
pub struct PgAuditLog {
    db: PgDatabase,
}

impl PgAuditLog {
    /// A trail on `db`.
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }
}

fn unavailable(error: DbError) -> AuditError {
    AuditError::Unavailable(error.to_string())
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Timestamptz)]
    at: OffsetDateTime,
    #[diesel(sql_type = Text)]
    actor: String,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Text)]
    target: String,
    #[diesel(sql_type = Nullable<Text>)]
    before: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    after: Option<String>,
}

fn state(text: Option<String>) -> Result<Option<serde_json::Value>, AuditError> {
    text.map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|_| AuditError::Unavailable("a stored audit state is not JSON".into()))
}

#[async_trait]
impl AuditLog for PgAuditLog {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(
            "INSERT INTO admin_audit (at, actor, action, target, before, after) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)",
        )
        .bind::<Timestamptz, _>(record.at)
        .bind::<Text, _>(&record.actor)
        .bind::<Text, _>(&record.action)
        .bind::<Text, _>(&record.target)
        .bind::<Nullable<Text>, _>(record.before.as_ref().map(serde_json::Value::to_string))
        .bind::<Nullable<Text>, _>(record.after.as_ref().map(serde_json::Value::to_string))
        .execute(&mut connection)
        .await
        .map_err(|e| unavailable(e.into()))?;
        Ok(())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<AuditRecord>, AuditError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = || async {
            let mut connection = self.db.connection().await?;
            let rows: Vec<Row> = diesel::sql_query(
                "SELECT at, actor, action, target, before::text AS before, after::text AS after \
                 FROM admin_audit ORDER BY id DESC LIMIT $1",
            )
            .bind::<BigInt, _>(limit)
            .load(&mut connection)
            .await?;
            Ok::<_, DbError>(rows)
        };
        retry_once(read)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| {
                Ok(AuditRecord {
                    at: row.at,
                    actor: row.actor,
                    action: row.action,
                    target: row.target,
                    before: state(row.before)?,
                    after: state(row.after)?,
                })
            })
            .collect()
    }
}
