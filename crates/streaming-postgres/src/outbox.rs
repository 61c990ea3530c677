//! The event outbox: rows written with the state change they describe, later
//! published by a relay. Topic `stream.{action}` (the relay adds its
//! prefix), key the user id, payload the event's JSON, unique `event_id` so
//! a redelivery is recognisable.

use async_trait::async_trait;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use streaming_core::domain::PlaybackEvent;
use streaming_core::ports::{EventPublisher, OutboxRecord, OutboxSink, PublishError, SinkError};

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

/// Writes the outbox rows of `events`, in order, skipping any whose
/// `event_id` is there already (a write both flushed and rescued), one statement per
/// [`INSERT_CHUNK`] events (inside the caller's transaction, if any: with
/// more than one chunk, the caller wants one for all or none).
pub(crate) async fn insert_outbox_many(
    connection: &mut AsyncPgConnection,
    events: &[PlaybackEvent],
) -> Result<(), DbError> {
    use diesel::sql_types::Array;
    for chunk in events.chunks(INSERT_CHUNK) {
        diesel::sql_query(
            "INSERT INTO outbox (event_id, topic, key, payload) \
             SELECT e, t, k, p::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) \
             WITH ORDINALITY AS u(e, t, k, p, n) ORDER BY n \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind::<Array<SqlUuid>, _>(chunk.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|e| format!("stream.{}", e.topic_suffix())).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|e| e.key().to_owned()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(PlaybackEvent::to_json).collect::<Vec<_>>())
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// [`EventPublisher`] into the outbox, for events with no state change to
/// share a transaction with (progress). Each event is its own insert; see
/// [`WriteBehindOutbox`](crate::WriteBehindOutbox) for batches.
#[derive(Debug, Clone)]
pub struct PgOutbox {
    db: PgDatabase,
}

/// Most events one statement carries: a flush after thousands of viewers
/// joined at once would otherwise build megabytes of arrays in one go.
pub const INSERT_CHUNK: usize = 1_000;

impl PgOutbox {
    /// An outbox on `db`.
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }

    /// Writes `events` to the outbox, in order, all or none: one statement
    /// per [`INSERT_CHUNK`] events, in one transaction when there are more.
    ///
    /// # Errors
    /// When the database cannot be reached or refuses the rows.
    pub async fn insert_many(&self, events: &[PlaybackEvent]) -> Result<(), DbError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut connection = self.db.connection().await?;
        if events.len() <= INSERT_CHUNK {
            return insert_outbox_many(&mut connection, events).await;
        }
        connection.transaction::<_, DbError, _>(async |tx| insert_outbox_many(tx, events).await).await
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

/// One outbox row waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
struct OutboxRow {
    /// Insertion order.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    /// The event's own id (the same on every redelivery).
    #[diesel(sql_type = SqlUuid)]
    event_id: uuid::Uuid,
    /// The topic without the relay's prefix, e.g. `stream.start`.
    #[diesel(sql_type = Text)]
    topic: String,
    /// The partition key (the user id).
    #[diesel(sql_type = Text)]
    key: String,
    /// The event's JSON.
    #[diesel(sql_type = Text)]
    payload: String,
    /// When the row was written.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: time::OffsetDateTime,
}

impl OutboxRow {
    fn record(&self) -> OutboxRecord {
        OutboxRecord {
            event_id: self.event_id,
            topic: self.topic.clone(),
            key: self.key.clone(),
            payload: self.payload.clone(),
            created_at: self.created_at,
        }
    }
}

/// What one relay round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOutcome {
    /// This many rows were sent and marked published (0: nothing was waiting).
    Relayed(usize),
    /// Another relay holds the outbox; this one should wait and try again.
    Busy,
}

/// Why a relay round failed; nothing was marked published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The sink refused or could not be reached.
    #[error("sending outbox rows failed: {0}")]
    Sink(#[from] SinkError),
}

impl From<diesel::result::Error> for RelayError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Database(error.into())
    }
}

/// The advisory lock that makes one relay at a time own the outbox.
const RELAY_LOCK: i64 = 0x5354_5247_4f42_5831; // "STRGOBX1"

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

impl PgOutbox {
    /// Sends the oldest `limit` unpublished rows to `sink`, in insertion
    /// order, and marks them published, all in one transaction: if the send
    /// or the commit fails nothing is marked, and the rows go again (the same
    /// `event_id`s). One relay at a time holds the outbox (a transaction-level
    /// advisory lock), so several instances may run relays without sending a
    /// row twice and without reordering a user's events between them.
    ///
    /// # Errors
    /// [`RelayError`]; nothing was marked published.
    pub async fn relay_batch(&self, limit: u32, sink: &dyn OutboxSink) -> Result<RelayOutcome, RelayError> {
        let mut connection = self.db.connection().await?;
        connection
            .transaction::<_, RelayError, _>(async |tx| {
                let lock: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
                    .bind::<diesel::sql_types::BigInt, _>(RELAY_LOCK)
                    .get_result(tx)
                    .await?;
                if !lock.locked {
                    return Ok(RelayOutcome::Busy);
                }
                let rows: Vec<OutboxRow> = diesel::sql_query(
                    "SELECT id, event_id, topic, key, payload::text AS payload, created_at FROM outbox \
                     WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE",
                )
                .bind::<diesel::sql_types::BigInt, _>(i64::from(limit))
                .load(tx)
                .await?;
                if rows.is_empty() {
                    return Ok(RelayOutcome::Relayed(0));
                }
                let records: Vec<OutboxRecord> = rows.iter().map(OutboxRow::record).collect();
                sink.send(&records).await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                diesel::sql_query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids)
                    .execute(tx)
                    .await?;
                Ok(RelayOutcome::Relayed(rows.len()))
            })
            .await
    }

    /// Rows not yet published (a metric; also what a relay has left to do).
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn backlog(&self) -> Result<u64, DbError> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
        }
        let mut connection = self.db.connection().await?;
        let count: Count = diesel::sql_query("SELECT count(*) AS count FROM outbox WHERE published_at IS NULL")
            .get_result(&mut connection)
            .await?;
        Ok(u64::try_from(count.count).unwrap_or(0))
    }

    /// The unpublished rows: how many, and when the oldest was written.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn backlog_age(&self) -> Result<(u64, Option<time::OffsetDateTime>), DbError> {
        #[derive(diesel::QueryableByName)]
        struct Backlog {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            count: i64,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
            oldest: Option<time::OffsetDateTime>,
        }
        let mut connection = self.db.connection().await?;
        let backlog: Backlog = diesel::sql_query(
            "SELECT count(*) AS count, min(created_at) AS oldest FROM outbox WHERE published_at IS NULL",
        )
        .get_result(&mut connection)
        .await?;
        Ok((u64::try_from(backlog.count).unwrap_or(0), backlog.oldest))
    }

    /// Deletes rows published before `before`; returns how many.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn prune_published(&self, before: time::OffsetDateTime) -> Result<usize, DbError> {
        let mut connection = self.db.connection().await?;
        Ok(diesel::sql_query("DELETE FROM outbox WHERE published_at < $1")
            .bind::<diesel::sql_types::Timestamptz, _>(before)
            .execute(&mut connection)
            .await?)
    }
}
