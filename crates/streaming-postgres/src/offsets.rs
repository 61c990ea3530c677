//! Consumer offsets kept in PostgreSQL (`consumer_offsets`), for consumers
//! that do not use broker-side consumer groups.

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Bytea, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use streaming_core::ports::{DeadLetter, DeadLetters, OffsetError, OffsetStore};

use crate::database::{DbError, PgDatabase};

/// Offsets of one named consumer.
#[derive(Debug, Clone)]
pub struct PgConsumerOffsets {
    db: PgDatabase,
    consumer: String,
}

#[derive(diesel::QueryableByName)]
struct Offset {
    #[diesel(sql_type = BigInt)]
    next_offset: i64,
}

impl PgConsumerOffsets {
    /// The offsets of `consumer` on `db`.
    pub fn new(db: PgDatabase, consumer: impl Into<String>) -> Self {
        Self { db, consumer: consumer.into() }
    }

    async fn read(&self, topic: &str, partition: i32) -> Result<Option<i64>, DbError> {
        let mut connection = self.db.connection().await?;
        let rows: Vec<Offset> = diesel::sql_query(
            "SELECT next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3",
        )
        .bind::<Text, _>(&self.consumer)
        .bind::<Text, _>(topic)
        .bind::<Integer, _>(partition)
        .load(&mut connection)
        .await?;
        Ok(rows.into_iter().next().map(|r| r.next_offset))
    }

    async fn write(&self, topic: &str, partition: i32, next_offset: i64, forward_only: bool) -> Result<(), DbError> {
        let mut connection = self.db.connection().await?;
        let statement = if forward_only {
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE \
             SET next_offset = greatest(consumer_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()"
        } else {
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE \
             SET next_offset = EXCLUDED.next_offset, updated_at = now()"
        };
        diesel::sql_query(statement)
            .bind::<Text, _>(&self.consumer)
            .bind::<Text, _>(topic)
            .bind::<Integer, _>(partition)
            .bind::<BigInt, _>(next_offset)
            .execute(&mut connection)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl OffsetStore for PgConsumerOffsets {
    async fn load(&self, topic: &str, partition: i32) -> Result<Option<i64>, OffsetError> {
        self.read(topic, partition).await.map_err(|e| OffsetError::Unavailable(e.to_string()))
    }

    /// Never moves back: the higher of the stored and the given offset stays.
    async fn store(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), OffsetError> {
        self.write(topic, partition, next_offset, true).await.map_err(|e| OffsetError::Unavailable(e.to_string()))
    }

    async fn reset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), OffsetError> {
        self.write(topic, partition, next_offset, false).await.map_err(|e| OffsetError::Unavailable(e.to_string()))
    }
}

/// The records the consumer gave up on, in `dead_letters`.
#[derive(Debug, Clone)]
pub struct PgDeadLetters {
    db: PgDatabase,
}

impl PgDeadLetters {
    /// The dead letters on `db`.
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }
}

#[derive(diesel::QueryableByName)]
struct LetterRow {
    #[diesel(sql_type = Text)]
    topic: String,
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    offset: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    event_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Bytea)]
    payload: Vec<u8>,
    #[diesel(sql_type = Text)]
    error: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

fn unavailable(error: DbError) -> OffsetError {
    OffsetError::Unavailable(error.to_string())
}

#[async_trait]
impl DeadLetters for PgDeadLetters {
    async fn keep(&self, letter: &DeadLetter) -> Result<(), OffsetError> {
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(
            "INSERT INTO dead_letters (topic, partition, \"offset\", event_id, payload, error, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (topic, partition, \"offset\") DO NOTHING",
        )
        .bind::<Text, _>(&letter.topic)
        .bind::<Integer, _>(letter.partition)
        .bind::<BigInt, _>(letter.offset)
        .bind::<Nullable<SqlUuid>, _>(letter.event_id)
        .bind::<Bytea, _>(&letter.payload)
        .bind::<Text, _>(&letter.error)
        .bind::<Integer, _>(i32::try_from(letter.attempts).unwrap_or(i32::MAX))
        .execute(&mut connection)
        .await
        .map_err(|e| unavailable(e.into()))?;
        Ok(())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<DeadLetter>, OffsetError> {
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let rows: Vec<LetterRow> = diesel::sql_query(
            "SELECT topic, partition, \"offset\", event_id, payload, error, attempts FROM dead_letters \
             ORDER BY id DESC LIMIT $1",
        )
        .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
        .load(&mut connection)
        .await
        .map_err(|e| unavailable(e.into()))?;
        Ok(rows
            .into_iter()
            .map(|row| DeadLetter {
                topic: row.topic,
                partition: row.partition,
                offset: row.offset,
                event_id: row.event_id,
                payload: row.payload,
                error: row.error,
                attempts: u32::try_from(row.attempts).unwrap_or(0),
            })
            .collect())
    }
}
