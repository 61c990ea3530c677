//! Acknowledged writes held in Redis until PostgreSQL has them
//! ([`PendingWrites`]): if the instance that acknowledged them is killed
//! before its flush, another claims and writes them.
//!
//! Per kind, writes are spread over [`SHARDS`] pairs of keys by id, each
//! pair in one cluster slot: a sorted set of when each id was held (by
//! Redis's clock, so instances' clocks need not agree) and a hash of the
//! writes (`stamp\ngroup\norder\nbody`). The scripts keep the two in step.
//!
//! Holds are committed in groups: the holds waiting when a round starts go
//! out together (one script call on a standalone Redis, one per slot on a
//! cluster), with up to [`ROUNDS_IN_FLIGHT`] rounds under way at once. The
//! caller that finds a round free yields once, so that the holds submitted
//! in the same pass (a report's heartbeat with its position) join it, and
//! sends it itself (no hand-over to another task on the way): a report
//! costs about one round trip of latency and a fraction of a call
//! ([`streaming_core::group_commit`]).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use fred::types::scripts::Script;
use fred::types::Value;
use streaming_core::group_commit::{Commit, GroupCommit};
use streaming_core::ports::{claim_stamp, PendingError, PendingWrite, PendingWrites};
use streaming_core::telemetry;

use crate::RedisConnection;

/// Key pairs per kind: claims and releases of different ids spread over
/// this many slots of a cluster.
pub const SHARDS: u32 = 8;

/// Most writes in one script call: a call holds Redis for its run.
const WRITES_PER_CALL: usize = 128;

/// Most script calls of one round in flight at once.
const CALLS_IN_FLIGHT: usize = 16;

/// Most rounds of holds under way at once.
pub const ROUNDS_IN_FLIGHT: usize = 4;

/// Most holds in one round.
const HOLDS_PER_ROUND: usize = 1_024;

/// The writes of one kind and shard in a round, each with its hold's number.
type ShardWrites<'a> = ((&'a str, u32), Vec<(usize, &'a PendingWrite)>);

/// [`PendingWrites`] on Redis (standalone, sentinel or cluster).
#[derive(Debug, Clone)]
pub struct RedisPendingWrites {
    holds: GroupCommit<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    redis: RedisConnection,
    hold: Script,
    release: Script,
    claim: Script,
}

impl RedisPendingWrites {
    /// Pending writes on `redis`.
    pub fn start(redis: RedisConnection) -> Self {
        let scripts = Scripts {
            redis,
            hold: Script::from_lua(include_str!("pending_hold.lua")),
            release: Script::from_lua(include_str!("pending_release.lua")),
            claim: Script::from_lua(include_str!("pending_claim.lua")),
        };
        let spawn = |task| drop(tokio::spawn(task));
        Self { holds: GroupCommit::gathering(scripts, ROUNDS_IN_FLIGHT, HOLDS_PER_ROUND, spawn) }
    }

    fn scripts(&self) -> &Scripts {
        self.holds.committer()
    }
}

/// The shard of `id`: FNV-1a, stable across instances and versions.
fn shard(id: &str) -> u32 {
    let hash = id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash % u64::from(SHARDS)) as u32
}

impl Scripts {
    /// The sorted set and the hash of `kind`'s shard `shard`.
    fn keys(&self, kind: &str, shard: u32) -> Vec<String> {
        let prefix = self.redis.prefix();
        vec![format!("{prefix}pending:{{{kind}:{shard}}}:at"), format!("{prefix}pending:{{{kind}:{shard}}}:writes")]
    }

    async fn call(&self, script: &Script, keys: Vec<String>, args: Vec<Value>) -> Result<Value, PendingError> {
        let client = self.redis.pool().next();
        self.redis
            .guarded("EVALSHA", || script.evalsha_with_reload(client, keys, args))
            .await
            .map_err(|e| PendingError::Unavailable(e.to_string()))
    }
}

impl Commit for Scripts {
    type Item = (String, Vec<PendingWrite>);
    type Answer = Result<(), PendingError>;

    /// Writes one round of holds: per kind and shard, [`WRITES_PER_CALL`]
    /// writes a call; each hold answered ok when every call carrying its
    /// writes succeeded.
    async fn commit(&self, round: Vec<(String, Vec<PendingWrite>)>) -> Vec<Self::Answer> {
        use futures_util::StreamExt as _;
        let mut by_shard: HashMap<(&str, u32), Vec<(usize, &PendingWrite)>> = HashMap::new();
        for (waiter, (kind, writes)) in round.iter().enumerate() {
            for write in writes {
                by_shard.entry((kind.as_str(), shard(&write.id))).or_default().push((waiter, write));
            }
        }
        // Owned calls (keys, arguments, the holds they carry). On a cluster a
        // call's keys must share a slot: one pair each; else any number.
        let per_call_pairs = if self.redis.is_clustered() { 1 } else { usize::MAX };
        let mut calls: Vec<(Vec<String>, Vec<Value>, Vec<usize>)> = Vec::new();
        let mut pairs: Vec<ShardWrites<'_>> = by_shard.into_iter().collect();
        pairs.sort_by_key(|(key, _)| *key);
        let mut call: (Vec<String>, Vec<Value>, Vec<usize>) = Default::default();
        for ((kind, shard), writes) in pairs {
            for chunk in writes.chunks(WRITES_PER_CALL) {
                let (full_keys, full_writes) = (call.0.len() / 2 >= per_call_pairs, call.2.len() >= WRITES_PER_CALL);
                if !call.2.is_empty() && (full_keys || full_writes) {
                    calls.push(std::mem::take(&mut call));
                }
                call.0.extend(self.keys(kind, shard));
                let pair = (call.0.len() / 2).to_string();
                for (waiter, write) in chunk {
                    let (group, order) = write.order.clone().unwrap_or_default();
                    call.1.extend([
                        pair.clone().into(),
                        write.id.clone().into(),
                        write.stamp.clone().into(),
                        group.into(),
                        order.to_string().into(),
                        write.body.clone().into(),
                    ]);
                    call.2.push(*waiter);
                }
            }
        }
        if !call.2.is_empty() {
            calls.push(call);
        }
        let failed: Vec<(Vec<usize>, PendingError)> = futures_util::stream::iter(calls)
            .map(|(keys, args, waiters)| async move {
                metrics::counter!(telemetry::PENDING_HOLD_CALLS).increment(1);
                self.call(&self.hold, keys, args).await.err().map(|error| (waiters, error))
            })
            .buffer_unordered(CALLS_IN_FLIGHT)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let mut outcome: Vec<Result<(), PendingError>> = vec![Ok(()); round.len()];
        for (waiters, error) in failed {
            for waiter in waiters {
                outcome[waiter] = Err(error.clone());
            }
        }
        outcome
    }

    fn lost(&self) -> Self::Answer {
        Err(PendingError::Unavailable("the hold was not committed".into()))
    }
}

#[async_trait]
impl PendingWrites for RedisPendingWrites {
    async fn hold(&self, kind: &str, writes: Vec<PendingWrite>) -> Result<(), PendingError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.holds.submit((kind.to_owned(), writes)).await
    }

    async fn release(&self, kind: &str, written: Vec<(String, String)>) -> Result<(), PendingError> {
        let scripts = self.scripts();
        let mut by_shard: HashMap<u32, Vec<(String, String)>> = HashMap::new();
        for (id, stamp) in written {
            by_shard.entry(shard(&id)).or_default().push((id, stamp));
        }
        for (shard, written) in by_shard {
            for chunk in written.chunks(WRITES_PER_CALL * 2) {
                let args = chunk.iter().flat_map(|(id, stamp)| [id.clone().into(), stamp.clone().into()]).collect();
                scripts.call(&scripts.release, scripts.keys(kind, shard), args).await?;
            }
        }
        Ok(())
    }

    async fn claim(
        &self,
        kind: &str,
        age: Duration,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<PendingWrite>, PendingError> {
        let scripts = self.scripts();
        let stamp = claim_stamp();
        let mut claimed = Vec::new();
        for shard in 0..SHARDS {
            let left = max.saturating_sub(claimed.len());
            if left == 0 {
                break;
            }
            let args: Vec<Value> = vec![
                (age.as_millis() as i64).into(),
                (lease.as_millis() as i64).into(),
                stamp.clone().into(),
                (left as i64).into(),
            ];
            let answer = scripts.call(&scripts.claim, scripts.keys(kind, shard), args).await?;
            let fields: Vec<String> = match answer {
                Value::Array(values) => values.into_iter().filter_map(Value::into_string).collect(),
                _ => Vec::new(),
            };
            for pair in fields.chunks_exact(2) {
                let mut parts = pair[1].splitn(3, '\n');
                let (Some(group), Some(order), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let order = (!group.is_empty()).then(|| (group.to_owned(), order.parse().unwrap_or_default()));
                claimed.push(PendingWrite { id: pair[0].clone(), stamp: stamp.clone(), order, body: body.to_owned() });
            }
        }
        Ok(claimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard("a"), shard("a"));
        let used: std::collections::HashSet<u32> = (0..100).map(|i| shard(&format!("id-{i}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
    }
}
