/// A dependency a readiness probe reports on: whether requests to it can be
/// served now. Adapters with a circuit breaker or a connection pool answer
/// from what they already know; the probe never waits on the network.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait ReadinessCheck: Send + Sync {
    /// Why it cannot serve now (`None`: it can), e.g. "circuit breaker open".
    fn unready_reason(&self) -> Option<&'static str>;
}
