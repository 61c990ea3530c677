//! Work on PostgreSQL in groups ([`streaming_core::group_commit`]): the
//! items that arrive while others are under way share the next statement.

use streaming_core::group_commit::{Commit, GroupCommit};

/// Most groups of reads under way at once (each holds a pooled connection).
const READS_IN_FLIGHT: usize = 4;

/// Most keys in one grouped read.
const READS_PER_GROUP: usize = 256;

/// Reads by `committer`, grouped: at most [`READS_IN_FLIGHT`] statements
/// under way, each for at most [`READS_PER_GROUP`] keys.
pub(crate) fn grouped_reads<C: Commit>(committer: C) -> GroupCommit<C> {
    grouped(committer, READS_IN_FLIGHT, READS_PER_GROUP)
}

/// `committer`'s work in groups, at most `in_flight` under way at once, each
/// of at most `per_group` items; the rounds a caller leaves behind (it went
/// away, or its own item was answered first) go on in a task.
pub(crate) fn grouped<C: Commit>(committer: C, in_flight: usize, per_group: usize) -> GroupCommit<C> {
    GroupCommit::new(committer, in_flight, per_group, |task| drop(tokio::spawn(task)))
}
