//! Cached sessions read again ahead of their callers.
//!
//! A cached open session's row is read again at most the TTL after it was
//! last read, so that a stop made through another instance is seen. Read by
//! the report that finds it due, each such read is a pooled connection and a
//! round trip the report waits for, and viewers who started together come
//! due together. A task reads again, every [`period`], the sessions due
//! within the next two periods, all at once (`SessionStore::get_many`:
//! `PgSessionStore` reads up to 1 000 in one statement), and reports find
//! their sessions confirmed. The TTL bound is unchanged: a
//! session is only read earlier. A read that fails leaves the session due,
//! and the next report reads it itself, as before.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streaming_core::domain::SessionId;
use streaming_core::ports::SessionStore;

use super::{CachedSession, WriteBehindSessions};

impl<S: SessionStore + 'static> WriteBehindSessions<S> {
    /// Starts one read of every cached open session due within `ahead`
    /// (`SessionStore::get_many`), without waiting for it (a slow database
    /// does not hold back the next round: what is being read is not due
    /// again); how many.
    pub fn read_ahead(self: &Arc<Self>, ahead: Duration) -> usize {
        let now = Instant::now();
        let due: Vec<Arc<CachedSession>> = self
            .sessions
            .iter()
            .filter(|(id, cached)| cached.claim_read(now + ahead, self.read_again_at(id, now)))
            .map(|(_, cached)| cached)
            .collect();
        let count = due.len();
        self.stats.read_ahead.fetch_add(count as u64, Ordering::Relaxed);
        if count > 0 {
            let queue = Arc::clone(self);
            drop(tokio::spawn(async move {
                let ids: Vec<SessionId> = due.iter().map(|cached| cached.session.id).collect();
                match queue.inner.get_many(&ids).await {
                    Ok(rows) => {
                        for (cached, row) in due.iter().zip(rows) {
                            let _ = queue.settle_read(cached, Ok(row));
                        }
                    }
                    // Each stays due for its next caller (or is past its TTL).
                    Err(error) => {
                        for cached in &due {
                            let _ = queue.settle_read(cached, Err(error.clone()));
                        }
                    }
                }
            }));
        }
        count
    }
}

/// How often sessions are read ahead for a cache of `ttl`: an eighth of it,
/// between 10 ms and 1 s (every second, two seconds ahead, at the default
/// 30 s).
pub(super) fn period(ttl: Duration) -> Duration {
    (ttl / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Reads `queue`'s sessions ahead every [`period`] until it is dropped.
pub(super) fn spawn_reader_ahead<S: SessionStore + 'static>(queue: &Arc<WriteBehindSessions<S>>) {
    let weak = Arc::downgrade(queue);
    let period = period(queue.ttl);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(queue) = weak.upgrade() else { break };
            queue.read_ahead(period * 2);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_period_is_an_eighth_of_the_ttl_within_bounds() {
        assert_eq!(super::period(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(super::period(Duration::from_millis(800)), Duration::from_millis(100));
        assert_eq!(super::period(Duration::from_millis(1)), Duration::from_millis(10));
    }
}
