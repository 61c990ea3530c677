//! An in-process TTL cache in front of a [`SubscriptionDirectory`] (the
//! user service), for deployments without Redis. Answers — including "no
//! subscription" — are kept for the TTL; errors never are.
//! [`CachedSubscriptions::invalidate`] drops one user's answer
//! (`subscription.changed`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use crate::domain::{Subscription, UserId};
use crate::ports::{SubscriptionDirectory, SubscriptionError};

/// [`SubscriptionDirectory`] with a TTL cache in front of `D`.
pub struct CachedSubscriptions<D> {
    inner: D,
    answers: Cache<UserId, Option<Subscription>>,
    /// Bumped by every invalidation; a lookup that saw it change is not kept.
    epoch: AtomicU64,
}

impl<D> std::fmt::Debug for CachedSubscriptions<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSubscriptions").field("answers", &self.answers.entry_count()).finish_non_exhaustive()
    }
}

impl<D: SubscriptionDirectory> CachedSubscriptions<D> {
    /// Keeps `inner`'s answers for `ttl`, at most `max_entries`.
    pub fn new(inner: D, ttl: Duration, max_entries: u64) -> Self {
        Self {
            inner,
            answers: Cache::builder().max_capacity(max_entries).time_to_live(ttl).build(),
            epoch: AtomicU64::new(0),
        }
    }

    /// Forgets `user`'s answer.
    pub fn invalidate(&self, user: &UserId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.answers.invalidate(user);
    }
}

#[async_trait]
impl<D: SubscriptionDirectory> crate::ports::SubscriptionCache for CachedSubscriptions<D> {
    async fn forget(&self, user: &UserId) -> Result<(), SubscriptionError> {
        self.invalidate(user);
        Ok(())
    }
}

#[async_trait]
impl<D: SubscriptionDirectory> SubscriptionDirectory for CachedSubscriptions<D> {
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        if let Some(answer) = self.answers.get(user) {
            return Ok(answer);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let answer = self.inner.current(user).await?;
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.answers.insert(user.clone(), answer.clone());
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Plan, SubscriptionStatus};
    use crate::ports::MockSubscriptionDirectory;

    fn active() -> Subscription {
        Subscription {
            status: SubscriptionStatus::Active,
            end_date: None,
            plan: Plan { max_devices: Some(2), supports_hd: true, supports_4k: false },
        }
    }

    #[tokio::test]
    async fn answers_are_kept_errors_are_not_and_invalidation_asks_again() {
        let mut mock = MockSubscriptionDirectory::new();
        let mut calls = 0;
        mock.expect_current().times(3).returning(move |_| {
            calls += 1;
            match calls {
                1 => Err(SubscriptionError::Unavailable("down".into())),
                2 => Ok(None),
                _ => Ok(Some(active())),
            }
        });
        let cached = CachedSubscriptions::new(mock, Duration::from_secs(300), 100);
        let user: UserId = "viewer".parse().unwrap();
        assert!(cached.current(&user).await.is_err());
        assert_eq!(cached.current(&user).await.unwrap(), None, "asked again after the error");
        assert_eq!(cached.current(&user).await.unwrap(), None, "'no subscription' is kept too");
        cached.invalidate(&user);
        assert_eq!(cached.current(&user).await.unwrap(), Some(active()));
        assert_eq!(cached.current(&user).await.unwrap(), Some(active()));
    }
}
