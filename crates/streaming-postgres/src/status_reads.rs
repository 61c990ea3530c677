//! Users' statuses read in groups ([`streaming_core::group_commit`]): the
//! status reads that arrive while others are under way share the next
//! statement (`… WHERE id = ANY($1)`). Viewers who started together have
//! their cached statuses expire together (a premiere), and each read alone
//! would take a pooled connection and a round trip.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use streaming_core::domain::UserId;
use streaming_core::group_commit::Commit;

use crate::database::{retry_once, DbError, PgDatabase};
use crate::schema::users;

/// Reads groups of users' statuses on `db`.
#[derive(Debug)]
pub(crate) struct StatusReads {
    pub(crate) db: PgDatabase,
}

impl Commit for StatusReads {
    type Item = UserId;
    /// The stored status, if the user has a row.
    type Answer = Result<Option<String>, DbError>;

    async fn commit(&self, ids: Vec<UserId>) -> Vec<Self::Answer> {
        let read = || async {
            let mut connection = self.db.connection().await?;
            let rows: Vec<(String, String)> = users::table
                .filter(users::id.eq_any(ids.iter().map(UserId::as_str)))
                .select((users::id, users::status))
                .load(&mut connection)
                .await?;
            Ok::<_, DbError>(rows)
        };
        match retry_once(read).await {
            Ok(rows) => {
                let found: HashMap<String, String> = rows.into_iter().collect();
                ids.iter().map(|id| Ok(found.get(id.as_str()).cloned())).collect()
            }
            Err(error) => ids.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    fn lost(&self) -> Self::Answer {
        Err(DbError::Unavailable("the read was not answered".into()))
    }
}
