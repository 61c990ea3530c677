//! Queued heartbeats as they are held until flushed, and how another
//! instance writes them (see [`crate::rescue`]).

use std::collections::HashMap;

use async_trait::async_trait;
use streaming_core::domain::SessionId;
use streaming_core::ports::{PendingWrite, SessionStore};
use time::OffsetDateTime;

use super::WriteBehindSessions;
use crate::rescue::Rescue;
use crate::write_behind::write_in_chunks;

/// How a queued heartbeat is held: per session, ordered by time (a later
/// one replaces an earlier one, never the reverse).
pub(super) fn held(id: &SessionId, at: OffsetDateTime) -> PendingWrite {
    let nanos = at.unix_timestamp_nanos();
    let (id, stamp) = held_as(id, at);
    PendingWrite {
        body: format!("{id} {stamp}"),
        id,
        stamp,
        order: Some(("heartbeat".into(), u64::try_from(nanos / 1_000_000).unwrap_or_default())),
    }
}

/// The id and stamp a heartbeat is held under: the session, the time in nanoseconds.
pub(super) fn held_as(id: &SessionId, at: OffsetDateTime) -> (String, String) {
    (id.to_string(), at.unix_timestamp_nanos().to_string())
}

/// What a flush that wrote `flushed` releases, forgetting it in `held_at`:
/// each session under the heartbeat it was held with (a newer one within the
/// step was written but not held), unless a later touch held one since.
pub(super) fn released(
    held_at: &mut HashMap<SessionId, OffsetDateTime>,
    flushed: &[(SessionId, OffsetDateTime)],
) -> Vec<(String, String)> {
    flushed
        .iter()
        .filter_map(|(id, at)| match held_at.get(id).copied() {
            Some(held) if held <= *at => {
                held_at.remove(id);
                Some(held_as(id, held))
            }
            Some(_) => None,
            None => Some(held_as(id, *at)),
        })
        .collect()
}

#[async_trait]
impl<S: SessionStore + 'static> Rescue for WriteBehindSessions<S> {
    async fn rescue(&self, bodies: Vec<String>) -> Result<usize, String> {
        let batch: Vec<(SessionId, OffsetDateTime)> = bodies
            .iter()
            .filter_map(|body| {
                let (id, nanos) = body.split_once(' ')?;
                let at = OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?;
                Some((id.parse().ok()?, at))
            })
            .collect();
        let read = batch.len();
        write_in_chunks(batch, |chunk| self.inner.touch_many(chunk)).await.map_err(|(_, e)| e.to_string())?;
        Ok(read)
    }
}
