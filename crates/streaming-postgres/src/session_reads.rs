//! Session reads in groups ([`streaming_core::group_commit`]): the reads of
//! sessions by id that arrive while others are under way share the next
//! statement (`… WHERE id = ANY($1)`). Sessions started together are read
//! again together once their cached copies are due (a premiere's viewers),
//! and each read alone would take a pooled connection and a round trip.

use std::collections::HashMap;

use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use streaming_core::domain::{SessionId, StreamSession};
use streaming_core::group_commit::Commit;
use streaming_core::ports::SessionError;

use crate::database::{retry_once, DbError, PgDatabase};
use crate::sessions::{unavailable, SessionRow, Statements};

/// Most sessions one statement reads when they are asked for together
/// (`SessionStore::get_many`).
pub(crate) const SESSIONS_PER_READ: usize = 1_000;

/// Reads groups of sessions on `db`.
#[derive(Debug)]
pub(crate) struct SessionReads {
    pub(crate) db: PgDatabase,
}

impl Commit for SessionReads {
    type Item = SessionId;
    type Answer = Result<Option<StreamSession>, SessionError>;

    async fn commit(&self, ids: Vec<SessionId>) -> Vec<Self::Answer> {
        let read = || async {
            let statements = Statements::for_layout(self.db.layouts().await?.sessions);
            let mut connection = self.db.connection().await?;
            let rows: Vec<SessionRow> = diesel::sql_query(&statements.get_many)
                .bind::<Array<SqlUuid>, _>(ids.iter().map(SessionId::as_uuid).collect::<Vec<_>>())
                .load(&mut connection)
                .await?;
            Ok::<_, DbError>(rows)
        };
        match retry_once(read).await {
            Ok(rows) => {
                let found: HashMap<SessionId, Result<StreamSession, SessionError>> =
                    rows.into_iter().map(|row| (SessionId::from(row.id), StreamSession::try_from(row))).collect();
                ids.iter().map(|id| found.get(id).cloned().transpose()).collect()
            }
            Err(error) => ids.iter().map(|_| Err(unavailable(error.clone()))).collect(),
        }
    }

    fn lost(&self) -> Self::Answer {
        Err(SessionError::Unavailable("the read was not answered".into()))
    }
}
