//! The event outbox: rows written with the state change they describe, later
//! published by a relay. Topic `stream.{action}` (the relay adds its
//! prefix), key the user id, payload the event's JSON, unique `event_id` so
//! a redelivery is recognisable.

use async_trait::async_trait;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use streaming_core::domain::PlaybackEvent;
use streaming_core::ports::{EventPublisher, PublishError};

use crate::database::{DbError, PgDatabase};

const INSERT_OUTBOX: &str = "INSERT INTO outbox (event_id, topic, key, payload) VALUES ($1, $2, $3, $4::jsonb)";

/// Writes the outbox row of `event` on `connection` (inside the caller's transaction, if any).
pub(crate) async fn insert_outbox(connection: &mut AsyncPgConnection, event: &PlaybackEvent) -> Result<(), DbError> {
    diesel::sql_query(INSERT_OUTBOX)
        .bind::<SqlUuid, _>(event.event_id)
        .bind::<Text, _>(format!("stream.{}", event.topic_suffix()))
        .bind::<Text, _>(event.key())
        .bind::<Text, _>(event.to_json())
        .execute(connection)
        .await?;
    Ok(())
}

/// [`EventPublisher`] into the outbox, for events with no state change to
/// share a transaction with (progress).
#[derive(Debug, Clone)]
pub struct PgOutbox {
    db: PgDatabase,
}

impl PgOutbox {
    /// An outbox on `db`.
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }
}

#[async_trait]
impl EventPublisher for PgOutbox {
    async fn publish(&self, event: PlaybackEvent) -> Result<(), PublishError> {
        let unavailable = |e: DbError| PublishError::Unavailable(e.to_string());
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        insert_outbox(&mut connection, &event).await.map_err(unavailable)
    }
}
