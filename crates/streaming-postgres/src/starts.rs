//! Session starts committed in groups ([`streaming_core::group_commit`]):
//! the starts that arrive while others are being committed share the next
//! statement, one transaction holding each session row and its start event.
//! An acknowledged start is still committed before its answer; what is
//! shared is the round trip and the commit.
//!
//! A group the database refuses as a whole (a constraint, a value it will
//! not take) is tried again start by start on the same connection, each in
//! its own transaction, so only the starts at fault fail. A group that
//! cannot reach the database fails whole, each start with the same error.

use std::collections::HashSet;

use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use streaming_core::domain::{PlaybackEvent, StreamSession};
use streaming_core::group_commit::Commit;
use streaming_core::ports::SessionError;
use time::OffsetDateTime;

use crate::database::{DbError, PgDatabase};
use crate::outbox::insert_outbox;
use crate::sessions::{insert_session, session_error, Statements};

/// Most groups of starts under way at once (each holds a pooled connection).
pub(crate) const STARTS_IN_FLIGHT: usize = 4;

/// Most starts in one group: bounds one statement's arrays and how long a
/// group holds its locks.
pub(crate) const STARTS_PER_GROUP: usize = 256;

/// One start: the session and its start event.
pub(crate) type Start = (StreamSession, PlaybackEvent);

/// Commits groups of starts on `db`.
#[derive(Debug)]
pub(crate) struct Starts {
    pub(crate) db: PgDatabase,
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = SqlUuid)]
    event_id: uuid::Uuid,
}

impl Commit for Starts {
    type Item = Start;
    type Answer = Result<(), SessionError>;

    async fn commit(&self, starts: Vec<Start>) -> Vec<Self::Answer> {
        let all = |error: DbError| starts.iter().map(|_| Err(session_error(error.clone()))).collect();
        let statements = match self.db.layouts().await {
            Ok(layouts) => Statements::for_layout(layouts.sessions),
            Err(error) => return all(error),
        };
        let mut connection = match self.db.connection().await {
            Ok(connection) => connection,
            Err(error) => return all(error),
        };
        // A session id twice in one group: the first is started, the rest are duplicates.
        let mut ids = HashSet::with_capacity(starts.len());
        let first: Vec<bool> = starts.iter().map(|(session, _)| ids.insert(session.id)).collect();
        let group: Vec<&Start> =
            starts.iter().zip(&first).filter(|(_, first)| **first).map(|(start, _)| start).collect();
        match start_many(&mut connection, statements, &group).await {
            Ok(inserted) => {
                starts
                    .iter()
                    .zip(first)
                    .map(|((_, event), first)| {
                        if first && inserted.contains(&event.event_id) {
                            Ok(())
                        } else {
                            Err(SessionError::Duplicate)
                        }
                    })
                    .collect()
            }
            Err(error) if error.is_transient() || matches!(error, DbError::Timeout(_)) || starts.len() == 1 => {
                all(error)
            }
            Err(_) => {
                let mut answers = Vec::with_capacity(starts.len());
                for (session, event) in &starts {
                    answers.push(start_one(&mut connection, statements, session, event).await.map_err(session_error));
                }
                answers
            }
        }
    }

    fn lost(&self) -> Self::Answer {
        Err(SessionError::Unavailable("the start was not committed".into()))
    }
}

/// Inserts `group` in one statement; the event ids of the sessions inserted.
async fn start_many(
    connection: &mut AsyncPgConnection,
    statements: &Statements,
    group: &[&Start],
) -> Result<HashSet<uuid::Uuid>, DbError> {
    let sessions = || group.iter().map(|(session, _)| session);
    let events = || group.iter().map(|(_, event)| event);
    let inserted: Vec<Inserted> = diesel::sql_query(&statements.start_many)
        .bind::<Array<SqlUuid>, _>(sessions().map(|s| s.id.as_uuid()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(sessions().map(|s| s.user.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(sessions().map(|s| s.media.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(sessions().map(|s| s.manifest.as_str()).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(sessions().map(|s| s.started_at).collect::<Vec<OffsetDateTime>>())
        .bind::<Array<Nullable<Text>>, _>(sessions().map(|s| s.user_agent.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(sessions().map(|s| s.client_ip.map(|ip| ip.to_string())).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(sessions().map(|s| s.last_heartbeat_at).collect::<Vec<OffsetDateTime>>())
        .bind::<Array<SqlUuid>, _>(events().map(|e| e.event_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(events().map(|e| format!("stream.{}", e.topic_suffix())).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(events().map(|e| e.key()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(events().map(|e| e.to_json()).collect::<Vec<_>>())
        .load(connection)
        .await?;
    Ok(inserted.into_iter().map(|row| row.event_id).collect())
}

/// One start in its own transaction.
async fn start_one(
    connection: &mut AsyncPgConnection,
    statements: &'static Statements,
    session: &StreamSession,
    event: &PlaybackEvent,
) -> Result<(), DbError> {
    connection
        .transaction::<_, DbError, _>(async |tx| {
            insert_session(statements, session).execute(tx).await?;
            insert_outbox(tx, event).await
        })
        .await
}
