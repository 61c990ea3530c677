use async_trait::async_trait;
use diesel::sql_types::{Array, Bool, Float8, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use streaming_core::domain::{MediaId, PositionSeconds, SessionId, UserId, WatchProgress};
use streaming_core::group_commit::{Commit, GroupCommit};
use streaming_core::ports::{ProgressError, ProgressStore, RecordOutcome};
use time::OffsetDateTime;
use tracing::error;

use crate::database::{retry_once, DbError, PgDatabase};
use crate::grouped::grouped_reads;
use crate::layout::{PerLayout, TableLayout};

/// [`ProgressStore`] on PostgreSQL. Monotonic per session in SQL: the upsert
/// refuses an update whose session matches the stored one with a lower or
/// equal sequence, so concurrent and reordered writers cannot go backwards.
///
/// Works on this service's `watch_progress` and on the cinema service's
/// (see [`TableLayout`]); there positions are kept in whole seconds and
/// only UUID users are held.
///
/// Reads are grouped ([`streaming_core::group_commit`]): the reads that
/// arrive while others are under way share the next statement (a start
/// reads the viewer's position to resume from).
#[derive(Debug, Clone)]
pub struct PgProgressStore {
    db: PgDatabase,
    reads: GroupCommit<Reads>,
}

/// Reads groups of `(user, movie)` keys on `db`.
#[derive(Debug)]
struct Reads {
    db: PgDatabase,
}

impl Commit for Reads {
    type Item = (UserId, MediaId);
    type Answer = Result<Option<WatchProgress>, ProgressError>;

    async fn commit(&self, keys: Vec<(UserId, MediaId)>) -> Vec<Self::Answer> {
        let read = || async {
            let layout = self.db.layouts().await?.progress;
            let mut connection = self.db.connection().await?;
            let rows: Vec<NumberedRow> = diesel::sql_query(&Statements::for_layout(layout).get_many)
                .bind::<Array<Text>, _>(keys.iter().map(|(user, _)| user.as_str()).collect::<Vec<_>>())
                .bind::<Array<Text>, _>(keys.iter().map(|(_, movie)| movie.as_str()).collect::<Vec<_>>())
                .load(&mut connection)
                .await?;
            Ok::<_, DbError>(rows)
        };
        match retry_once(read).await {
            Ok(rows) => {
                let mut answers: Vec<Self::Answer> = keys.iter().map(|_| Ok(None)).collect();
                for numbered in rows {
                    let index = usize::try_from(numbered.key_number - 1).unwrap_or(usize::MAX);
                    if let Some(answer) = answers.get_mut(index) {
                        *answer = to_progress(numbered.row).map(Some);
                    }
                }
                answers
            }
            Err(error) => keys.iter().map(|_| Err(unavailable(error.clone()))).collect(),
        }
    }

    fn lost(&self) -> Self::Answer {
        Err(ProgressError::Unavailable("the read was not answered".into()))
    }
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = SqlUuid)]
    #[allow(dead_code)]
    id: uuid::Uuid,
}

#[derive(QueryableByName)]
struct ProgressRow {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Text)]
    movie_id: String,
    #[diesel(sql_type = Float8)]
    position_seconds: f64,
    #[diesel(sql_type = Timestamptz)]
    last_watched_at: OffsetDateTime,
    #[diesel(sql_type = Bool)]
    watched: bool,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    session_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Int8)]
    sequence: i64,
}

/// A row of a grouped read, with the number of the key it answers.
#[derive(QueryableByName)]
struct NumberedRow {
    #[diesel(sql_type = Int8)]
    key_number: i64,
    #[diesel(embed)]
    row: ProgressRow,
}

/// The statements of one [`TableLayout`].
struct Statements {
    /// The rows of many `(user, movie)` keys, each with its key's number (from 1).
    get_many: String,
    upsert: String,
    upsert_many: String,
}

impl Statements {
    fn of(layout: TableLayout) -> Self {
        let id = |text| layout.id_in(text);
        let time_in = |instant| layout.time_in(instant);
        // The monotonic rule, shared by the single and the batched upsert: an
        // update of the stored session with a lower or equal sequence changes nothing.
        let on_conflict_keep_newest = format!(
            "ON CONFLICT (user_id, movie_id) DO UPDATE SET
    position_seconds = EXCLUDED.position_seconds,
    last_watched_at = EXCLUDED.last_watched_at,
    watched = EXCLUDED.watched,
    session_id = EXCLUDED.session_id,
    sequence = EXCLUDED.sequence,
    updated_at = {now}
WHERE NOT (watch_progress.session_id IS NOT NULL
           AND watch_progress.session_id = EXCLUDED.session_id
           AND watch_progress.sequence >= EXCLUDED.sequence)",
            now = time_in("now()")
        );
        let insert = "INSERT INTO watch_progress \
                      (user_id, movie_id, position_seconds, last_watched_at, watched, session_id, sequence)";
        Self {
            get_many: format!(
                "SELECT k.n AS key_number, user_id::text AS user_id, movie_id::text AS movie_id, \
                 position_seconds::float8 AS position_seconds, {last_watched_at} AS last_watched_at, \
                 watched, session_id, sequence \
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(u, m, n) \
                 JOIN watch_progress ON user_id = {user} AND movie_id = {movie}",
                last_watched_at = layout.time_out("last_watched_at"),
                user = id("k.u"),
                movie = id("k.m"),
            ),
            upsert: format!(
                "{insert} VALUES ({user}, {movie}, {position}, {at}, $5, $6, $7) {on_conflict_keep_newest} RETURNING id",
                user = id("$1"),
                movie = id("$2"),
                position = layout.seconds_in("$3"),
                at = time_in("$4"),
            ),
            upsert_many: format!(
                "{insert} SELECT {user}, {movie}, {position}, {at}, w, s, q \
                 FROM unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[], $5::bool[], $6::uuid[], $7::int8[]) \
                 AS t(u, m, p, at, w, s, q) {on_conflict_keep_newest}",
                user = id("u"),
                movie = id("m"),
                position = layout.seconds_in("p"),
                at = time_in("at"),
            ),
        }
    }

    fn for_layout(layout: TableLayout) -> &'static Self {
        static STATEMENTS: PerLayout<Statements> =
            PerLayout::new(|| Statements::of(TableLayout::Own), || Statements::of(TableLayout::Cinema));
        STATEMENTS.get(layout)
    }
}

fn unavailable(error: DbError) -> ProgressError {
    ProgressError::Unavailable(error.to_string())
}

impl PgProgressStore {
    /// A store on `db`.
    pub fn new(db: PgDatabase) -> Self {
        let reads = grouped_reads(Reads { db: db.clone() });
        Self { db, reads }
    }

    async fn layout(&self) -> Result<TableLayout, ProgressError> {
        Ok(self.db.layouts().await.map_err(unavailable)?.progress)
    }
}

fn to_progress(row: ProgressRow) -> Result<WatchProgress, ProgressError> {
    let invalid = |what: &str| ProgressError::Unavailable(format!("stored progress has a bad {what}"));
    Ok(WatchProgress {
        user: UserId::try_from(row.user_id.as_str()).map_err(|_| invalid("user id"))?,
        media: MediaId::try_from(row.movie_id.as_str()).map_err(|_| invalid("movie id"))?,
        position: PositionSeconds::new(row.position_seconds).map_err(|_| invalid("position"))?,
        last_watched_at: row.last_watched_at,
        watched: row.watched,
        session: row.session_id.map(SessionId::from),
        sequence: u64::try_from(row.sequence).unwrap_or(0),
    })
}

#[async_trait]
impl ProgressStore for PgProgressStore {
    async fn get(&self, user: &UserId, media: &MediaId) -> Result<Option<WatchProgress>, ProgressError> {
        let layout = self.layout().await?;
        if !layout.holds(user, media) {
            return Ok(None);
        }
        self.reads.submit((user.clone(), media.clone())).await
    }

    async fn record(&self, progress: WatchProgress) -> Result<RecordOutcome, ProgressError> {
        let layout = self.layout().await?;
        if !layout.holds(&progress.user, &progress.media) {
            return Err(ProgressError::Unavailable(layout.refusal().into()));
        }
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let inserted: Vec<Inserted> = diesel::sql_query(&Statements::for_layout(layout).upsert)
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
        let layout = self.layout().await?;
        let mut columns = Columns::default();
        let mut refused = 0_usize;
        for p in batch {
            // One row the table cannot hold must not fail the whole batch again and again.
            if !layout.holds(&p.user, &p.media) {
                refused += 1;
                continue;
            }
            columns.users.push(p.user.to_string());
            columns.movies.push(p.media.to_string());
            columns.positions.push(p.position.get());
            columns.at.push(p.last_watched_at);
            columns.watched.push(p.watched);
            columns.sessions.push(p.session.map(|s| s.as_uuid()));
            columns.sequences.push(i64::try_from(p.sequence).unwrap_or(i64::MAX));
        }
        if refused > 0 {
            error!(refused, reason = layout.refusal(), "progress reports dropped");
        }
        if columns.users.is_empty() {
            return Ok(());
        }
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(&Statements::for_layout(layout).upsert_many)
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
