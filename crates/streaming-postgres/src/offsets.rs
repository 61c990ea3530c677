//! Consumer offsets kept in PostgreSQL (`consumer_offsets`), for consumers
//! that do not use broker-side consumer groups.

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::RunQueryDsl;
use streaming_core::ports::{OffsetError, OffsetStore};

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

    async fn write(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), DbError> {
        let mut connection = self.db.connection().await?;
        diesel::sql_query(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE \
             SET next_offset = greatest(consumer_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
        )
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
        self.write(topic, partition, next_offset).await.map_err(|e| OffsetError::Unavailable(e.to_string()))
    }
}
