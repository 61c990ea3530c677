use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Float8, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use streaming_core::domain::{MediaId, PositionSeconds, SessionId, UserId, WatchProgress};
use streaming_core::ports::{ProgressError, ProgressStore, RecordOutcome};
use time::OffsetDateTime;

use crate::database::{retry_once, DbError, PgDatabase};
use crate::schema::watch_progress;

/// [`ProgressStore`] on PostgreSQL. Monotonic per session in SQL: the upsert
/// refuses an update whose session matches the stored one with a lower or
/// equal sequence, so concurrent and reordered writers cannot go backwards.
#[derive(Debug, Clone)]
pub struct PgProgressStore {
    db: PgDatabase,
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = SqlUuid)]
    #[allow(dead_code)]
    id: uuid::Uuid,
}

/// The monotonic rule, shared by the single and the batched upsert: an
/// update of the stored session with a lower or equal sequence changes nothing.
macro_rules! on_conflict_keep_newest {
    () => {
        "
ON CONFLICT (user_id, movie_id) DO UPDATE SET
    position_seconds = EXCLUDED.position_seconds,
    last_watched_at = EXCLUDED.last_watched_at,
    watched = EXCLUDED.watched,
    session_id = EXCLUDED.session_id,
    sequence = EXCLUDED.sequence,
    updated_at = now()
WHERE NOT (watch_progress.session_id IS NOT NULL
           AND watch_progress.session_id = EXCLUDED.session_id
           AND watch_progress.sequence >= EXCLUDED.sequence)"
    };
}

const UPSERT: &str = concat!(
    "INSERT INTO watch_progress (user_id, movie_id, position_seconds, last_watched_at, watched, session_id, sequence)
VALUES ($1, $2, $3, $4, $5, $6, $7)",
    on_conflict_keep_newest!(),
    "
RETURNING id"
);

/// The same rule as [`UPSERT`] for a whole batch in one statement.
const UPSERT_MANY: &str = concat!(
    "INSERT INTO watch_progress (user_id, movie_id, position_seconds, last_watched_at, watched, session_id, sequence)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[], $5::bool[], $6::uuid[], $7::int8[])",
    on_conflict_keep_newest!()
);

fn unavailable(error: DbError) -> ProgressError {
    ProgressError::Unavailable(error.to_string())
}

impl PgProgressStore {
    /// A store on `db`.
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }
}

type Row = (String, String, f64, OffsetDateTime, bool, Option<uuid::Uuid>, i64);

fn to_progress(row: Row) -> Result<WatchProgress, ProgressError> {
    let invalid = |what: &str| ProgressError::Unavailable(format!("stored progress has a bad {what}"));
    let (user, media, position, last_watched_at, watched, session, sequence) = row;
    Ok(WatchProgress {
        user: UserId::try_from(user.as_str()).map_err(|_| invalid("user id"))?,
        media: MediaId::try_from(media.as_str()).map_err(|_| invalid("movie id"))?,
        position: PositionSeconds::new(position).map_err(|_| invalid("position"))?,
        last_watched_at,
        watched,
        session: session.map(SessionId::from),
        sequence: u64::try_from(sequence).unwrap_or(0),
    })
}

#[async_trait]
impl ProgressStore for PgProgressStore {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        let read = || async {
            let mut connection = self.db.connection().await?;
            Ok::<_, DbError>(
                watch_progress::table
                    .filter(watch_progress::user_id.eq(user.as_str()))
                    .filter(watch_progress::movie_id.eq(media.as_str()))
                    .select((
                        watch_progress::user_id,
                        watch_progress::movie_id,
                        watch_progress::position_seconds,
                        watch_progress::last_watched_at,
                        watch_progress::watched,
                        watch_progress::session_id,
                        watch_progress::sequence,
                    ))
                    .first::<Row>(&mut connection)
                    .await
                    .optional()?,
            )
        };
        let row = retry_once(read).await.map_err(unavailable)?;
        row.map(to_progress).transpose()
    }

    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let inserted: Vec<Inserted> = diesel::sql_query(UPSERT)
            .bind::<Text, _>(progress.user.as_str())
            .bind::<Text, _>(progress.media.as_str())
            .bind::<Float8, _>(progress.position.get())
            .bind::<Timestamptz, _>(progress.last_watched_at)
            .bind::<Bool, _>(progress.watched)
            .bind::<Nullable<SqlUuid>, _>(progress.session.map(|s| s.as_uuid()))
            .bind::<Int8, _>(i64::try_from(progress.sequence).unwrap_or(i64::MAX))
            .load(&mut connection)
            .await
            .map_err(|e| unavailable(e.into()))?;
        Ok(if inserted.is_empty() { RecordOutcome::Stale } else { RecordOutcome::Applied })
    }

    async fn record_many(&self, batch: Vec<WatchProgress>) -> Result<(), ProgressError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut columns = Columns::default();
        for p in batch {
            columns.users.push(p.user.to_string());
            columns.movies.push(p.media.to_string());
            columns.positions.push(p.position.get());
            columns.at.push(p.last_watched_at);
            columns.watched.push(p.watched);
            columns.sessions.push(p.session.map(|s| s.as_uuid()));
            columns.sequences.push(i64::try_from(p.sequence).unwrap_or(i64::MAX));
        }
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(UPSERT_MANY)
            .bind::<Array<Text>, _>(columns.users)
            .bind::<Array<Text>, _>(columns.movies)
            .bind::<Array<Float8>, _>(columns.positions)
            .bind::<Array<Timestamptz>, _>(columns.at)
            .bind::<Array<Bool>, _>(columns.watched)
            .bind::<Array<Nullable<SqlUuid>>, _>(columns.sessions)
            .bind::<Array<Int8>, _>(columns.sequences)
            .execute(&mut connection)
            .await
            .map_err(|e| unavailable(e.into()))?;
        Ok(())
    }
}

/// A batch as one array per column, for `unnest`.
#[derive(Default)]
struct Columns {
    users: Vec<String>,
    movies: Vec<String>,
    positions: Vec<f64>,
    at: Vec<OffsetDateTime>,
    watched: Vec<bool>,
    sessions: Vec<Option<uuid::Uuid>>,
    sequences: Vec<i64>,
}
