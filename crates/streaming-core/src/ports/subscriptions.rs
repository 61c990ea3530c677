use async_trait::async_trait;

use crate::domain::{Subscription, UserId};

/// Why the subscription directory could not answer. An outage is never
/// "no subscription": the core answers 503, not 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The user service is down, slow, or answered garbage.
    #[error("subscription directory unavailable: {0}")]
    Unavailable(String),
}

/// Who has which subscription (the user service).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SubscriptionDirectory: Send + Sync {
    /// The user's current subscription, or `None` if they have none.
    ///
    /// # Errors
    /// [`SubscriptionError::Unavailable`] when the answer is not known.
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError>;
}

/// Shared directories are directories: lets decorators wrap an `Arc<dyn SubscriptionDirectory>`.
#[async_trait]
impl<T: SubscriptionDirectory + ?Sized> SubscriptionDirectory for std::sync::Arc<T> {
    async fn current(&self, user: &UserId) -> Result<Option<Subscription>, SubscriptionError> {
        (**self).current(user).await
    }
}
