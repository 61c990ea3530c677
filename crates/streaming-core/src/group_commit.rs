//! Work committed in groups: callers that arrive while a commit is under way
//! wait for the next one together, so a store pays one round trip (and one
//! transaction) for many callers instead of one each.
//!
//! There is no timer. A caller that finds fewer than `rounds_in_flight`
//! rounds under way leads one itself: it takes everything waiting (at most
//! `most_per_round`), commits it, and goes on with the rounds that gathered
//! meanwhile until its own item is answered; the rest goes on in a task. So
//! an item waits at most for the rounds already under way before its own,
//! and an idle store commits a lone item at once. A group built with
//! [`GroupCommit::gathering`] has its leader let the scheduler run once
//! before it takes its first round, while nobody else leads: what is
//! submitted in the same pass (the other half of a request's joined writes,
//! the other requests of the same worker) joins it, for one yield of
//! latency. A leader whose caller
//! goes away (a cancelled request) hands its round over to a task, so
//! waiting items are never left without one. The core runs on no runtime of
//! its own: the adapter that builds the group says how to spawn that task.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use streaming_core::group_commit::{Commit, GroupCommit};
//!
//! struct Doubler;
//! impl Commit for Doubler {
//!     type Item = u32;
//!     type Answer = Option<u32>;
//!     async fn commit(&self, items: Vec<u32>) -> Vec<Option<u32>> {
//!         items.into_iter().map(|n| Some(n * 2)).collect()
//!     }
//!     fn lost(&self) -> Option<u32> {
//!         None
//!     }
//! }
//!
//! let group = GroupCommit::new(Doubler, 2, 64, |task| drop(tokio::spawn(task)));
//! assert_eq!(group.submit(21).await, Some(42));
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// What commits a group of items.
pub trait Commit: Send + Sync + 'static {
    /// One caller's work.
    type Item: Send + 'static;
    /// One caller's answer.
    type Answer: Send + 'static;

    /// Commits `items` together and answers each, in order: exactly one
    /// answer per item (missing answers are [`Commit::lost`]).
    fn commit(&self, items: Vec<Self::Item>) -> impl Future<Output = Vec<Self::Answer>> + Send;

    /// The answer of an item whose round never answered it (the commit
    /// panicked or gave too few answers).
    fn lost(&self) -> Self::Answer;
}

type Waiter<C> = (<C as Commit>::Item, oneshot::Sender<<C as Commit>::Answer>);

/// Runs a task of the group in the background (e.g. `|task| drop(tokio::spawn(task))`).
pub type Spawn = fn(Pin<Box<dyn Future<Output = ()> + Send>>);

/// Commits submitted items in groups; see the [module](self).
pub struct GroupCommit<C: Commit> {
    inner: Arc<Inner<C>>,
}

impl<C: Commit> Clone for GroupCommit<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<C: Commit> std::fmt::Debug for GroupCommit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.inner.lock();
        f.debug_struct("GroupCommit")
            .field("waiting", &waiting.items.len())
            .field("rounds", &waiting.rounds)
            .finish_non_exhaustive()
    }
}

struct Inner<C: Commit> {
    committer: C,
    spawn: Spawn,
    rounds_in_flight: usize,
    most_per_round: usize,
    /// Leaders yield once before their first round.
    gather: bool,
    waiting: Mutex<Waiting<C>>,
}

struct Waiting<C: Commit> {
    items: Vec<Waiter<C>>,
    /// Rounds under way.
    rounds: usize,
    /// A gathering leader has yet to take its first round: newcomers join it.
    gathering: bool,
}

impl<C: Commit> GroupCommit<C> {
    /// Groups for `committer`: at most `rounds_in_flight` rounds under way
    /// at once, each of at most `most_per_round` items (both at least 1);
    /// `spawn` runs the rounds a leader leaves behind.
    pub fn new(committer: C, rounds_in_flight: usize, most_per_round: usize, spawn: Spawn) -> Self {
        Self::build(committer, rounds_in_flight, most_per_round, spawn, false)
    }

    /// [`GroupCommit::new`] whose leaders gather what is submitted in the
    /// same pass of the scheduler before they take it (see the [module](self)).
    pub fn gathering(committer: C, rounds_in_flight: usize, most_per_round: usize, spawn: Spawn) -> Self {
        Self::build(committer, rounds_in_flight, most_per_round, spawn, true)
    }

    fn build(committer: C, rounds_in_flight: usize, most_per_round: usize, spawn: Spawn, gather: bool) -> Self {
        let inner = Inner {
            committer,
            spawn,
            rounds_in_flight: rounds_in_flight.max(1),
            most_per_round: most_per_round.max(1),
            gather,
            waiting: Mutex::new(Waiting { items: Vec::new(), rounds: 0, gathering: false }),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The committer, for work that is not grouped.
    pub fn committer(&self) -> &C {
        &self.inner.committer
    }

    /// Commits `item` with whatever else is waiting; its answer.
    pub async fn submit(&self, item: C::Item) -> C::Answer {
        let (answer, mut answered) = oneshot::channel();
        let lead = {
            let mut waiting = self.inner.lock();
            waiting.items.push((item, answer));
            let free = !waiting.gathering && waiting.rounds < self.inner.rounds_in_flight;
            waiting.rounds += usize::from(free);
            waiting.gathering |= free && self.inner.gather;
            free
        };
        if lead {
            // Commits its own item with whatever waits, then the rounds that
            // gathered meanwhile until its own is answered; the rest, or
            // everything if its caller goes away, goes on in a task.
            let mut leading = Leading(Some(Arc::clone(&self.inner)));
            let mut rounds = Box::pin(Arc::clone(&self.inner).lead(self.inner.gather));
            tokio::select! {
                biased;
                answer = &mut answered => {
                    leading.0 = None;
                    (self.inner.spawn)(rounds);
                    return answer.unwrap_or_else(|_| self.inner.committer.lost());
                }
                () = &mut rounds => leading.0 = None,
            }
        }
        answered.await.unwrap_or_else(|_| self.inner.committer.lost())
    }
}

/// A round taken by a caller: if the caller goes away while leading, a task
/// takes the round over.
struct Leading<C: Commit>(Option<Arc<Inner<C>>>);

impl<C: Commit> Drop for Leading<C> {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            let gather = inner.gather;
            (inner.spawn)(Box::pin(inner.lead(gather)));
        }
    }
}

impl<C: Commit> Inner<C> {
    fn lock(&self) -> MutexGuard<'_, Waiting<C>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits rounds of waiting items while there are any, then gives its
    /// round back. The caller has taken a round (`rounds` counted it) and,
    /// if `gathering`, lets the scheduler run once before its first.
    async fn lead(self: Arc<Self>, mut gathering: bool) {
        loop {
            if gathering {
                tokio::task::yield_now().await;
            }
            let round: Vec<Waiter<C>> = {
                let mut waiting = self.lock();
                if std::mem::take(&mut gathering) {
                    waiting.gathering = false;
                }
                if waiting.items.is_empty() {
                    waiting.rounds -= 1;
                    return;
                }
                let take = waiting.items.len().min(self.most_per_round);
                waiting.items.drain(..take).collect()
            };
            let (items, answers): (Vec<C::Item>, Vec<oneshot::Sender<C::Answer>>) = round.into_iter().unzip();
            let mut results = self.committer.commit(items).await.into_iter();
            for answer in answers {
                let result = results.next().unwrap_or_else(|| self.committer.lost());
                // An item whose caller went away needs no answer.
                let _ = answer.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn spawn(task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        drop(tokio::spawn(task));
    }

    /// Records the size of each round; answers each item with itself, or
    /// gives no answers for a round holding 13.
    #[derive(Default)]
    struct Recorder {
        rounds: Mutex<Vec<usize>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Commit for Arc<Recorder> {
        type Item = u32;
        type Answer = Result<u32, &'static str>;

        async fn commit(&self, items: Vec<u32>) -> Vec<Self::Answer> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.rounds.lock().unwrap().push(items.len());
            if items.contains(&13) {
                return Vec::new();
            }
            items.into_iter().map(Ok).collect()
        }

        fn lost(&self) -> Self::Answer {
            Err("lost")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_items_share_rounds_bounded_in_number_and_size() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::new(Arc::clone(&recorder), 2, 50, spawn);
        let calls: Vec<_> = (0..400_u32)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { group.submit(n + 100).await })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Ok(n as u32 + 100), "each caller gets its own answer");
        }
        let rounds = recorder.rounds.lock().unwrap().clone();
        assert_eq!(rounds.iter().sum::<usize>(), 400);
        assert!(rounds.iter().all(|&size| size <= 50), "{rounds:?}");
        assert!(rounds.len() < 400 / 4, "items share rounds: {} rounds for 400 items", rounds.len());
        assert!(recorder.most_in_flight.load(Ordering::SeqCst) <= 2);
    }

    #[tokio::test]
    async fn a_lone_item_is_committed_at_once_and_a_round_without_answers_answers_lost() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::new(Arc::clone(&recorder), 4, 64, spawn);
        assert_eq!(group.submit(7).await, Ok(7));
        assert_eq!(group.submit(13).await, Err("lost"));
        assert_eq!(group.submit(8).await, Ok(8), "the group goes on after a lost round");
        assert_eq!(*recorder.rounds.lock().unwrap(), vec![1, 1, 1]);
    }

    /// Items submitted in one pass of the scheduler (the futures of one
    /// request joined, or requests on one worker) go out in one round, even
    /// with rounds free to lead: the first leader gathers before it takes.
    #[tokio::test]
    async fn items_submitted_together_share_one_round_though_rounds_are_free() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::gathering(Arc::clone(&recorder), 4, 64, spawn);
        let (a, b, c) = tokio::join!(group.submit(1), group.submit(2), group.submit(3));
        assert_eq!((a, b, c), (Ok(1), Ok(2), Ok(3)));
        let tasks: Vec<_> = (20..30_u32)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { group.submit(n).await })
            })
            .collect();
        for (n, task) in (20..30_u32).zip(tasks) {
            assert_eq!(task.await.unwrap(), Ok(n));
        }
        assert_eq!(*recorder.rounds.lock().unwrap(), vec![3, 10]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_cancelled_mid_round_leaves_the_others_answered() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::new(Arc::clone(&recorder), 1, 64, spawn);
        // The leader is cancelled while its round is under way; the items
        // that gathered behind it are still committed.
        let leader = {
            let group = group.clone();
            tokio::spawn(async move { group.submit(1).await })
        };
        // The followers come once the leader's round is under way (on a
        // busy machine the leader may start late).
        while recorder.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        let followers: Vec<_> = (2..6_u32)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { group.submit(n).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        leader.abort();
        for (n, follower) in (2..6_u32).zip(followers) {
            let answer = tokio::time::timeout(Duration::from_secs(5), follower).await.unwrap().unwrap();
            assert_eq!(answer, Ok(n));
        }
    }
}
