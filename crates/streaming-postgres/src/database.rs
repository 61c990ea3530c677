//! The pool, migrations and the classification of driver errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use streaming_core::circuit_breaker::CircuitBreaker;

use crate::layout::Layouts;

/// The migrations of `migrations/`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The advisory lock every instance takes around its migrations.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(hashtext('streamgate schema migrations'))";
const MIGRATION_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('streamgate schema migrations'))";

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Connections in the pool (default 16).
    pub pool_size: u32,
    /// Server-side `statement_timeout` of every connection (default 2 s).
    pub statement_timeout: Duration,
    /// How long to wait for a pooled connection (default 2 s).
    pub acquire_timeout: Duration,
    /// After 5 connection attempts in a row fail, requests fail at once
    /// (503) for this long, then one tries again (default 5 s, the
    /// `Retry-After` the API answers).
    pub breaker_cool_down: Duration,
}

/// The URL without its credentials or query (see [`streaming_core::telemetry::redacted_url`]).
impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &streaming_core::telemetry::redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("breaker_cool_down", &self.breaker_cool_down)
            .finish()
    }
}

impl PgConfig {
    /// A config for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(2),
            acquire_timeout: Duration::from_secs(2),
            breaker_cool_down: Duration::from_secs(5),
        }
    }
}

/// What went wrong with the database, in terms the adapters act on.
///
/// Every variant but `UniqueViolation` and `Schema` becomes a port's
/// `Unavailable` (503 with `Retry-After`); they differ in whether a retry
/// may help (see [`DbError::is_transient`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the row.
    #[error("unique violation")]
    UniqueViolation,
    /// A serialization failure or a detected deadlock: the transaction may be retried as a whole.
    #[error("serialization failure or deadlock")]
    Retryable,
    /// The statement ran past `statement_timeout`, or no pooled connection came in time.
    #[error("database timeout: {0}")]
    Timeout(&'static str),
    /// The connection broke (server restart, network, terminated backend).
    #[error("database connection lost: {0}")]
    ConnectionLost(String),
    /// Any other failure: down, refused, or an error this build does not expect.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Migrations failed or the schema is not what this build expects.
    #[error("schema: {0}")]
    Schema(String),
}

impl DbError {
    /// Whether running the same idempotent work again at once may succeed:
    /// serialization failures, deadlocks and broken connections. A timeout
    /// is not retried: it already took the whole budget.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Retryable | Self::ConnectionLost(_))
    }
}

/// PostgreSQL's messages for the failures diesel reports only as `Unknown`
/// (it keeps the SQLSTATE to itself): `57014` statement timeout, `40P01`
/// deadlock, `57P01`–`57P03` shutdown and termination of the backend.
const STATEMENT_TIMEOUT_MESSAGE: &str = "canceling statement due to statement timeout";
const DEADLOCK_MESSAGE: &str = "deadlock detected";
const TERMINATED_MESSAGE: &str = "terminating connection";

/// When a connection was last lost, in milliseconds since [`lost_clock`]'s
/// start, plus one (0: never).
static LAST_LOST: AtomicU64 = AtomicU64::new(0);

/// How long after a lost connection checkouts are verified by a statement.
const VERIFY_AFTER_LOSS: Duration = Duration::from_secs(10);

fn lost_clock() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn note_lost() {
    LAST_LOST.store(lost_clock().as_millis() as u64 + 1, Ordering::Relaxed);
}

/// Whether a connection of this process was lost within [`VERIFY_AFTER_LOSS`].
fn recently_lost() -> bool {
    match AtomicU64::load(&LAST_LOST, Ordering::Relaxed) {
        0 => false,
        at => lost_clock().as_millis() as u64 + 1 - at < VERIFY_AFTER_LOSS.as_millis() as u64,
    }
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        let classified = Self::classify(&error);
        if matches!(classified, Self::ConnectionLost(_)) {
            note_lost();
        }
        classified
    }
}

impl DbError {
    fn classify(error: &DieselError) -> Self {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::UniqueViolation,
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Self::Retryable,
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                info,
            ) => Self::ConnectionLost(info.message().to_owned()),
            DieselError::DatabaseError(_, info) => {
                let message = info.message();
                if message.starts_with(STATEMENT_TIMEOUT_MESSAGE) {
                    Self::Timeout("statement timeout")
                } else if message.starts_with(DEADLOCK_MESSAGE) {
                    Self::Retryable
                } else if message.starts_with(TERMINATED_MESSAGE) {
                    Self::ConnectionLost(message.to_owned())
                } else {
                    Self::Unavailable(message.to_owned())
                }
            }
            DieselError::BrokenTransactionManager => Self::ConnectionLost(error.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<diesel_async::pooled_connection::bb8::RunError> for DbError {
    fn from(error: diesel_async::pooled_connection::bb8::RunError) -> Self {
        match error {
            bb8::RunError::TimedOut => Self::Timeout("no pooled connection within the acquire timeout"),
            bb8::RunError::User(error) => Self::Unavailable(error.to_string()),
        }
    }
}

/// A connection pool with the adapters' settings.
#[derive(Clone)]
pub struct PgDatabase {
    pool: Pool<AsyncPgConnection>,
    url: String,
    /// Opened by failed connection attempts: while the database is down a
    /// request fails at once instead of waiting out the acquire timeout.
    breaker: Arc<CircuitBreaker>,
    /// The playback tables' layouts, read at their first use.
    layouts: Arc<tokio::sync::OnceCell<Layouts>>,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase").field("state", &self.pool.state().connections).finish_non_exhaustive()
    }
}

impl PgDatabase {
    /// A pool for `config`. Connections are opened on demand, so a database
    /// that is down at start makes requests fail with 503, not the process.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] if the pool cannot be built.
    pub async fn connect(config: &PgConfig) -> Result<Self, DbError> {
        let timeout_ms = config.statement_timeout.as_millis();
        let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
        manager_config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut connection = AsyncPgConnection::establish(&url).await?;
                diesel::sql_query(format!("SET statement_timeout = {timeout_ms}"))
                    .execute(&mut connection)
                    .await
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(connection)
            })
        });
        // A checkout sends the server nothing (the default `SELECT 1` was a
        // round trip and a transaction per checkout): a connection is handed
        // out unless it is known broken, which includes a socket the server
        // closed (a restart, a terminated backend). Shortly after any
        // connection was lost, when others may be broken without knowing it
        // yet, checkouts ask the server again (see [`recently_lost`]).
        manager_config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|connection| {
            let broken = PoolableConnection::is_broken(connection);
            Box::pin(async move {
                if broken {
                    return Err(DieselError::DatabaseError(
                        DatabaseErrorKind::ClosedConnection,
                        Box::new("the pooled connection is closed".to_owned()),
                    ));
                }
                if recently_lost() {
                    diesel::sql_query("SELECT 1").execute(connection).await?;
                }
                Ok(())
            })
        }));
        let manager = AsyncDieselConnectionManager::new_with_config(&config.url, manager_config);
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(config.acquire_timeout)
            .build_unchecked(manager);
        let breaker = Arc::new(CircuitBreaker::new(5, config.breaker_cool_down).named("postgres"));
        Ok(Self { pool, url: config.url.clone(), breaker, layouts: Arc::default() })
    }

    /// A pooled connection.
    ///
    /// # Errors
    /// [`DbError::Timeout`] if none can be had within the acquire timeout,
    /// [`DbError::Unavailable`] at once while the breaker is open.
    pub async fn connection(&self) -> Result<PooledConnection<'_, AsyncPgConnection>, DbError> {
        let Some(breaker) = self.breaker.call() else {
            return Err(DbError::Unavailable("circuit breaker open".into()));
        };
        match self.pool.get().await {
            Ok(connection) => {
                breaker.succeeded();
                Ok(connection)
            }
            Err(error) => {
                breaker.failed();
                Err(error.into())
            }
        }
    }

    /// How `watch_progress` and `stream_sessions` are typed: this service's
    /// layout, or the cinema service's that migration 000001 extended.
    /// Read from the database once, then remembered.
    ///
    /// # Errors
    /// [`DbError::Schema`] if the tables are missing or of neither layout;
    /// the errors of [`Self::connection`] while the database cannot be reached.
    pub async fn layouts(&self) -> Result<Layouts, DbError> {
        let read = async || {
            let mut connection = self.connection().await?;
            crate::layout::detect(&mut connection).await
        };
        self.layouts.get_or_try_init(read).await.copied()
    }

    /// Whether the breaker lets requests try the database: closed, or a
    /// trial under way for less than a cool-down.
    pub fn reachable(&self) -> bool {
        self.breaker.ready()
    }

    /// Applies every pending migration; returns how many ran.
    ///
    /// # Errors
    /// [`DbError::Schema`] if a migration fails, `Unavailable` if the database cannot be reached.
    pub async fn migrate(&self) -> Result<usize, DbError> {
        let connection =
            AsyncPgConnection::establish(&self.url).await.map_err(|e| DbError::Unavailable(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let mut wrapper: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(connection);
            // One instance at a time: replicas started together would race to
            // create the same tables. The others wait here, then find nothing
            // pending. The lock is the session's: it goes with the connection.
            wrapper.batch_execute(MIGRATION_LOCK).map_err(|e| DbError::Schema(format!("migration lock: {e}")))?;
            let applied =
                wrapper.run_pending_migrations(MIGRATIONS).map(|a| a.len()).map_err(|e| DbError::Schema(e.to_string()));
            let _ = wrapper.batch_execute(MIGRATION_UNLOCK);
            applied
        })
        .await
        .map_err(|e| DbError::Schema(e.to_string()))?
    }

    /// Reverts every applied migration (operations and tests); returns how many.
    ///
    /// # Errors
    /// [`DbError::Schema`] if a `down.sql` fails.
    pub async fn revert_all(&self) -> Result<usize, DbError> {
        let connection =
            AsyncPgConnection::establish(&self.url).await.map_err(|e| DbError::Unavailable(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let mut wrapper: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(connection);
            wrapper
                .revert_all_migrations(MIGRATIONS)
                .map(|reverted| reverted.len())
                .map_err(|e| DbError::Schema(e.to_string()))
        })
        .await
        .map_err(|e| DbError::Schema(e.to_string()))?
    }

    /// The names of migrations this build has that the database lacks.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be reached.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        let connection =
            AsyncPgConnection::establish(&self.url).await.map_err(|e| DbError::Unavailable(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let mut wrapper: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(connection);
            wrapper
                .pending_migrations(MIGRATIONS)
                .map(|pending| pending.iter().map(|m| m.name().to_string()).collect())
                .map_err(|e| DbError::Schema(e.to_string()))
        })
        .await
        .map_err(|e| DbError::Schema(e.to_string()))?
    }
}

/// Runs an idempotent read with one retry on a failure that may be transient
/// (see [`DbError::is_transient`]).
pub(crate) async fn retry_once<T, F, Fut>(call: F) -> Result<T, DbError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    match call().await {
        Err(error) if error.is_transient() => call().await,
        other => other,
    }
}

/// Not ready while the breaker is open: requests would fail fast.
impl streaming_core::ports::ReadinessCheck for PgDatabase {
    fn unready_reason(&self) -> Option<&'static str> {
        (!self.reachable()).then_some("circuit breaker open")
    }
}
