use async_trait::async_trait;
use diesel::sql_types::{Array, BigInt, Float8, Nullable, Text, Timestamptz, Uuid as SqlUuid, Varchar};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use streaming_core::domain::{ManifestKind, MediaId, PlaybackEvent, SessionId, StreamSession, UserId};
use streaming_core::group_commit::{Commit, GroupCommit};
use streaming_core::ports::{CloseOutcome, EventHandling, SessionError, SessionStore};
use time::OffsetDateTime;
use tracing::warn;

use crate::database::{DbError, PgDatabase};
use crate::grouped::{grouped, grouped_reads};
use crate::layout::{PerLayout, TableLayout};
use crate::outbox::{insert_outbox, insert_outbox_many};
use crate::session_reads::{SessionReads, SESSIONS_PER_READ};
use crate::starts::{Starts, STARTS_IN_FLIGHT, STARTS_PER_GROUP};

/// [`SessionStore`] on PostgreSQL (`stream_sessions`), this service's table
/// or the cinema service's (see [`TableLayout`]).
///
/// Starts with their events are committed in groups (see `starts.rs`):
/// concurrent starts share one statement and one transaction. Reads by id
/// are grouped the same way (see `session_reads.rs`).
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    db: PgDatabase,
    starts: GroupCommit<Starts>,
    reads: GroupCommit<SessionReads>,
}

#[derive(QueryableByName)]
pub(crate) struct SessionRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Text)]
    movie_id: String,
    #[diesel(sql_type = Text)]
    manifest_type: String,
    #[diesel(sql_type = Timestamptz)]
    started_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    ended_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Float8>)]
    duration_seconds: Option<f64>,
    #[diesel(sql_type = Nullable<Varchar>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ip_address: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    last_heartbeat_at: OffsetDateTime,
}

/// The statements of one [`TableLayout`].
pub(crate) struct Statements {
    insert: String,
    /// Sessions and their start events in one statement (one transaction):
    /// `RETURNING` the event ids of the sessions inserted; a session whose
    /// id is taken is skipped with its event.
    pub(crate) start_many: String,
    close: String,
    /// The sessions of an array of ids, in no order.
    pub(crate) get_many: String,
    touch: String,
    touch_many: String,
    open_of_user: String,
    close_idle: String,
    prune_ended: String,
}

impl Statements {
    fn of(layout: TableLayout) -> Self {
        let time_in = |instant| layout.time_in(instant);
        let columns = format!(
            "id, user_id::text AS user_id, movie_id::text AS movie_id, manifest_type, \
             {started_at} AS started_at, {ended_at} AS ended_at, duration_seconds::float8 AS duration_seconds, \
             user_agent, {ip} AS ip_address, {last_heartbeat_at} AS last_heartbeat_at",
            started_at = layout.time_out("started_at"),
            ended_at = layout.time_out("ended_at"),
            ip = layout.ip_out("ip_address"),
            last_heartbeat_at = layout.time_out("last_heartbeat_at"),
        );
        let ended = format!("greatest({}, started_at)", time_in("$2"));
        let idle_end = "greatest(s.last_heartbeat_at, s.started_at)";
        Self {
            insert: format!(
                "INSERT INTO stream_sessions (id, user_id, movie_id, manifest_type, started_at, \
                 user_agent, ip_address, last_heartbeat_at) VALUES ($1, {user}, {movie}, $4, {started}, $6, {ip}, {beat})",
                user = layout.id_in("$2"),
                movie = layout.id_in("$3"),
                started = time_in("$5"),
                ip = layout.ip_in("$7"),
                beat = time_in("$8"),
            ),
            start_many: format!(
                "WITH started AS (INSERT INTO stream_sessions (id, user_id, movie_id, manifest_type, started_at, \
                 user_agent, ip_address, last_heartbeat_at) \
                 SELECT s.id, {user}, {movie}, s.manifest, {started}, s.agent, {ip}, {beat} \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], \
                 $7::text[], $8::timestamptz[]) AS s(id, user_id, movie_id, manifest, started, agent, ip, beat) \
                 ON CONFLICT (id) DO NOTHING RETURNING id) \
                 INSERT INTO outbox (event_id, topic, key, payload) \
                 SELECT e.event_id, e.topic, e.key, e.payload::jsonb \
                 FROM unnest($1::uuid[], $9::uuid[], $10::text[], $11::text[], $12::text[]) \
                 WITH ORDINALITY AS e(session_id, event_id, topic, key, payload, n) \
                 JOIN started ON started.id = e.session_id ORDER BY e.n RETURNING event_id",
                user = layout.id_in("s.user_id"),
                movie = layout.id_in("s.movie_id"),
                started = time_in("s.started"),
                ip = layout.ip_in("s.ip"),
                beat = time_in("s.beat"),
            ),
            // Only an open session is closed; the RETURNING row says whether this call did it.
            close: format!(
                "UPDATE stream_sessions SET ended_at = {ended}, \
                 duration_seconds = {duration}, last_heartbeat_at = greatest(last_heartbeat_at, {at}) \
                 WHERE id = $1 AND ended_at IS NULL RETURNING {columns}",
                duration = layout.seconds_in(&format!("extract(epoch FROM {ended} - started_at)::float8")),
                at = time_in("$2"),
            ),
            get_many: format!("SELECT {columns} FROM stream_sessions WHERE id = ANY($1)"),
            touch: format!(
                "UPDATE stream_sessions SET last_heartbeat_at = greatest(last_heartbeat_at, {at}) \
                 WHERE id = $1 AND ended_at IS NULL",
                at = time_in("$2"),
            ),
            touch_many: format!(
                "UPDATE stream_sessions s SET last_heartbeat_at = greatest(s.last_heartbeat_at, {at}) \
                 FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at) WHERE s.id = t.id AND s.ended_at IS NULL",
                at = time_in("t.at"),
            ),
            open_of_user: format!(
                "SELECT {columns} FROM stream_sessions WHERE user_id = {user} AND ended_at IS NULL \
                 AND last_heartbeat_at >= {alive_since} ORDER BY started_at",
                user = layout.id_in("$1"),
                alive_since = time_in("$2"),
            ),
            // The rows are claimed with SKIP LOCKED: instances sweeping at
            // once take different rows, and a row being stopped or touched
            // right now is left for the next sweep. The claim is a
            // materialised CTE, run once (a subquery under `IN` may be run
            // again by the plan, each time claiming more rows past the LIMIT).
            close_idle: format!(
                "WITH idle AS MATERIALIZED (SELECT id AS idle_id FROM stream_sessions \
                 WHERE ended_at IS NULL AND last_heartbeat_at < {before} LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE stream_sessions s SET ended_at = {idle_end}, duration_seconds = {duration} \
                 FROM idle WHERE s.id = idle.idle_id RETURNING {columns}",
                duration = layout.seconds_in(&format!("extract(epoch FROM {idle_end} - s.started_at)::float8")),
                before = time_in("$1"),
            ),
            prune_ended: format!(
                "WITH old AS MATERIALIZED (SELECT id AS old_id FROM stream_sessions \
                 WHERE ended_at IS NOT NULL AND ended_at < {before} LIMIT $2) \
                 DELETE FROM stream_sessions s USING old WHERE s.id = old.old_id",
                before = time_in("$1"),
            ),
        }
    }

    pub(crate) fn for_layout(layout: TableLayout) -> &'static Self {
        static STATEMENTS: PerLayout<Statements> =
            PerLayout::new(|| Statements::of(TableLayout::Own), || Statements::of(TableLayout::Cinema));
        STATEMENTS.get(layout)
    }
}

impl TryFrom<SessionRow> for StreamSession {
    type Error = SessionError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        let invalid = |what: &str| SessionError::Unavailable(format!("stored session has a bad {what}"));
        Ok(StreamSession {
            id: SessionId::from(row.id),
            user: UserId::try_from(row.user_id.as_str()).map_err(|_| invalid("user id"))?,
            media: MediaId::try_from(row.movie_id.as_str()).map_err(|_| invalid("movie id"))?,
            manifest: row.manifest_type.parse::<ManifestKind>().map_err(|_| invalid("manifest type"))?,
            started_at: row.started_at,
            ended_at: row.ended_at,
            duration_seconds: row.duration_seconds,
            user_agent: row.user_agent,
            client_ip: row.ip_address.and_then(|ip| ip.parse().ok()),
            last_heartbeat_at: row.last_heartbeat_at,
        })
    }
}

pub(crate) fn unavailable(error: DbError) -> SessionError {
    SessionError::Unavailable(error.to_string())
}

fn db(error: diesel::result::Error) -> SessionError {
    unavailable(error.into())
}

impl PgSessionStore {
    /// A store on `db`.
    pub fn new(db: PgDatabase) -> Self {
        let starts = grouped(Starts { db: db.clone() }, STARTS_IN_FLIGHT, STARTS_PER_GROUP);
        let reads = grouped_reads(SessionReads { db: db.clone() });
        Self { db, starts, reads }
    }

    async fn statements(&self) -> Result<(TableLayout, &'static Statements), SessionError> {
        let layout = self.db.layouts().await.map_err(unavailable)?.sessions;
        Ok((layout, Statements::for_layout(layout)))
    }

    /// The statements, once the table is known to hold `session`.
    async fn statements_holding(&self, session: &StreamSession) -> Result<&'static Statements, SessionError> {
        let (layout, statements) = self.statements().await?;
        if layout.holds(&session.user, &session.media) {
            Ok(statements)
        } else {
            Err(SessionError::Unavailable(layout.refusal().into()))
        }
    }

    /// Deletes up to `at_most` sessions that ended before `before` (never an
    /// open one); how many. Run it in rounds until it deletes fewer than asked.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the database cannot be reached.
    pub async fn prune_ended(&self, before: OffsetDateTime, at_most: usize) -> Result<usize, SessionError> {
        let (_, statements) = self.statements().await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(&statements.prune_ended)
            .bind::<Timestamptz, _>(before)
            .bind::<BigInt, _>(i64::try_from(at_most).unwrap_or(i64::MAX))
            .execute(&mut connection)
            .await
            .map_err(|e| unavailable(DbError::from(e)))
    }

    /// What a close that changed nothing means: closed before, or no such session.
    async fn close_outcome_of_closed(&self, id: &SessionId) -> Result<CloseOutcome, SessionError> {
        Ok(match self.get(id).await? {
            Some(session) => CloseOutcome::AlreadyClosed(session),
            None => CloseOutcome::NotFound,
        })
    }
}

pub(crate) fn insert_session<'a>(
    statements: &'static Statements,
    session: &'a StreamSession,
) -> impl diesel_async::methods::ExecuteDsl<AsyncPgConnection> + 'a {
    diesel::sql_query(&statements.insert)
        .bind::<SqlUuid, _>(session.id.as_uuid())
        .bind::<Text, _>(session.user.as_str())
        .bind::<Text, _>(session.media.as_str())
        .bind::<Text, _>(session.manifest.as_str())
        .bind::<Timestamptz, _>(session.started_at)
        .bind::<Nullable<Varchar>, _>(session.user_agent.as_deref())
        .bind::<Nullable<Text>, _>(session.client_ip.map(|ip| ip.to_string()))
        .bind::<Timestamptz, _>(session.last_heartbeat_at)
}

pub(crate) fn session_error(error: DbError) -> SessionError {
    match error {
        DbError::UniqueViolation => SessionError::Duplicate,
        other => unavailable(other),
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn open_with_event(
        &self,
        session: StreamSession,
        event: &PlaybackEvent,
    ) -> Result<EventHandling, SessionError> {
        self.statements_holding(&session).await?;
        self.starts.submit((session, event.clone())).await?;
        Ok(EventHandling::Recorded)
    }

    async fn close_with_event(
        &self,
        id: &SessionId,
        ended_at: OffsetDateTime,
        event: &PlaybackEvent,
    ) -> Result<(CloseOutcome, EventHandling), SessionError> {
        let (_, statements) = self.statements().await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let closed: Option<SessionRow> = connection
            .transaction::<_, DbError, _>(async |tx| {
                let rows: Vec<SessionRow> = diesel::sql_query(&statements.close)
                    .bind::<SqlUuid, _>(id.as_uuid())
                    .bind::<Timestamptz, _>(ended_at)
                    .load(tx)
                    .await?;
                let row = rows.into_iter().next();
                // Only the call that closed the session records its stop.
                if row.is_some() {
                    insert_outbox(tx, event).await?;
                }
                Ok(row)
            })
            .await
            .map_err(unavailable)?;
        drop(connection);
        match closed {
            Some(row) => Ok((CloseOutcome::Closed(row.try_into()?), EventHandling::Recorded)),
            None => Ok((self.close_outcome_of_closed(id).await?, EventHandling::NotTaken)),
        }
    }

    async fn open(&self, session: StreamSession) -> Result<(), SessionError> {
        let statements = self.statements_holding(&session).await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let inserted = insert_session(statements, &session).execute(&mut connection).await;
        inserted.map(drop).map_err(|e| session_error(e.into()))
    }

    async fn get(&self, id: &SessionId) -> Result<Option<StreamSession>, SessionError> {
        self.reads.submit(*id).await
    }

    async fn get_many(&self, ids: &[SessionId]) -> Result<Vec<Option<StreamSession>>, SessionError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SESSIONS_PER_READ) {
            for answer in self.reads.committer().commit(chunk.to_vec()).await {
                found.push(answer?);
            }
        }
        Ok(found)
    }

    async fn touch(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), SessionError> {
        let (_, statements) = self.statements().await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(&statements.touch)
            .bind::<SqlUuid, _>(id.as_uuid())
            .bind::<Timestamptz, _>(at)
            .execute(&mut connection)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn touch_many(&self, batch: Vec<(SessionId, OffsetDateTime)>) -> Result<(), SessionError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (ids, at): (Vec<uuid::Uuid>, Vec<OffsetDateTime>) =
            batch.into_iter().map(|(id, at)| (id.as_uuid(), at)).unzip();
        let (_, statements) = self.statements().await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        diesel::sql_query(&statements.touch_many)
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Timestamptz>, _>(at)
            .execute(&mut connection)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn close(&self, id: &SessionId, ended_at: OffsetDateTime) -> Result<CloseOutcome, SessionError> {
        let (_, statements) = self.statements().await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let closed: Vec<SessionRow> = diesel::sql_query(&statements.close)
            .bind::<SqlUuid, _>(id.as_uuid())
            .bind::<Timestamptz, _>(ended_at)
            .load(&mut connection)
            .await
            .map_err(db)?;
        if let Some(row) = closed.into_iter().next() {
            return Ok(CloseOutcome::Closed(row.try_into()?));
        }
        drop(connection);
        self.close_outcome_of_closed(id).await
    }

    async fn close_idle(
        &self,
        idle_before: OffsetDateTime,
        at_most: usize,
    ) -> Result<(Vec<StreamSession>, EventHandling), SessionError> {
        let (_, statements) = self.statements().await?;
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        let closed = connection
            .transaction::<_, DbError, _>(async |tx| {
                let rows: Vec<SessionRow> = diesel::sql_query(&statements.close_idle)
                    .bind::<Timestamptz, _>(idle_before)
                    .bind::<BigInt, _>(at_most)
                    .load(tx)
                    .await?;
                // A row this service cannot read is still closed (else every
                // sweep would stop at it), without an event.
                let closed: Vec<StreamSession> = rows
                    .into_iter()
                    .filter_map(|row| {
                        let id = row.id;
                        StreamSession::try_from(row)
                            .inspect_err(
                                |error| warn!(session = %id, %error, "idle session closed without a stop event"),
                            )
                            .ok()
                    })
                    .collect();
                let events: Vec<PlaybackEvent> = closed.iter().map(PlaybackEvent::idle_stop).collect();
                insert_outbox_many(tx, &events).await?;
                Ok(closed)
            })
            .await
            .map_err(unavailable)?;
        Ok((closed, EventHandling::Recorded))
    }

    async fn open_sessions(
        &self,
        user: &UserId,
        alive_since: OffsetDateTime,
    ) -> Result<Vec<StreamSession>, SessionError> {
        let (layout, statements) = self.statements().await?;
        if !layout.holds_user(user) {
            return Ok(Vec::new());
        }
        let mut connection = self.db.connection().await.map_err(unavailable)?;
        let rows: Vec<SessionRow> = diesel::sql_query(&statements.open_of_user)
            .bind::<Text, _>(user.as_str())
            .bind::<Timestamptz, _>(alive_since)
            .load(&mut connection)
            .await
            .map_err(db)?;
        rows.into_iter().map(StreamSession::try_from).collect()
    }
}
