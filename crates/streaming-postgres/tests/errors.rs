//! Driver errors from a real PostgreSQL, each provoked for real, and the
//! classification the adapters act on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use streaming_core::contract::infra_var;
use streaming_postgres::testing::fresh_database_url;
use streaming_postgres::{DbError, PgConfig, PgDatabase};

async fn database(config: impl FnOnce(String) -> PgConfig) -> (String, PgDatabase) {
    let url = fresh_database_url(&infra_var("STREAMGATE_POSTGRES_URL")).await;
    let db = PgDatabase::connect(&config(url.clone())).await.unwrap();
    db.migrate().await.unwrap();
    (url, db)
}

async fn execute(db: &PgDatabase, sql: &str) -> Result<usize, DbError> {
    let mut connection = db.connection().await?;
    Ok(diesel::sql_query(sql).execute(&mut connection).await?)
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_a_timeout_and_not_retried() {
    let (_, db) =
        database(|url| PgConfig { statement_timeout: Duration::from_millis(200), ..PgConfig::new(url) }).await;
    let error = execute(&db, "SELECT pg_sleep(5)").await.unwrap_err();
    assert_eq!(error, DbError::Timeout("statement timeout"));
    assert!(!error.is_transient(), "a timeout already used the whole budget");
    assert_eq!(execute(&db, "SELECT pg_sleep(0.05)").await.unwrap(), 1, "shorter statements still run");
}

#[tokio::test]
async fn a_duplicate_key_is_a_unique_violation() {
    let (_, db) = database(PgConfig::new).await;
    let insert = "INSERT INTO users (id) VALUES ('viewer-1')";
    execute(&db, insert).await.unwrap();
    assert_eq!(execute(&db, insert).await.unwrap_err(), DbError::UniqueViolation);
}

#[tokio::test]
async fn a_serializable_conflict_is_retryable() {
    let (url, db) = database(PgConfig::new).await;
    execute(&db, "INSERT INTO users (id) VALUES ('a'), ('b')").await.unwrap();
    let mut first = AsyncPgConnection::establish(&url).await.unwrap();
    let mut second = AsyncPgConnection::establish(&url).await.unwrap();
    // Write skew: each reads what the other writes.
    for connection in [&mut first, &mut second] {
        connection.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE").await.unwrap();
        diesel::sql_query("SELECT count(*) FROM users WHERE status = 'suspended'").execute(connection).await.unwrap();
    }
    diesel::sql_query("UPDATE users SET status = 'suspended' WHERE id = 'a'").execute(&mut first).await.unwrap();
    diesel::sql_query("UPDATE users SET status = 'suspended' WHERE id = 'b'").execute(&mut second).await.unwrap();
    first.batch_execute("COMMIT").await.unwrap();
    let error = match second.batch_execute("COMMIT").await {
        Err(error) => DbError::from(error),
        Ok(()) => panic!("the second transaction must not commit"),
    };
    assert_eq!(error, DbError::Retryable);
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_deadlock_is_retryable() {
    let (url, db) = database(PgConfig::new).await;
    execute(&db, "INSERT INTO users (id) VALUES ('a'), ('b')").await.unwrap();
    let mut first = AsyncPgConnection::establish(&url).await.unwrap();
    let mut second = AsyncPgConnection::establish(&url).await.unwrap();
    first.batch_execute("BEGIN; UPDATE users SET status = 'suspended' WHERE id = 'a'").await.unwrap();
    second.batch_execute("BEGIN; UPDATE users SET status = 'suspended' WHERE id = 'b'").await.unwrap();
    // Each now waits for the other's row; PostgreSQL breaks the cycle after `deadlock_timeout`.
    let (one, two) = tokio::join!(
        diesel::sql_query("UPDATE users SET status = 'active' WHERE id = 'b'").execute(&mut first),
        diesel::sql_query("UPDATE users SET status = 'active' WHERE id = 'a'").execute(&mut second),
    );
    let errors: Vec<DbError> = [one, two].into_iter().filter_map(Result::err).map(DbError::from).collect();
    assert_eq!(errors, vec![DbError::Retryable], "exactly one side is chosen as the victim");
}

#[tokio::test]
async fn a_backend_terminated_mid_statement_is_a_lost_connection_and_the_pool_recovers() {
    let (url, db) = database(|url| PgConfig { pool_size: 1, ..PgConfig::new(url) }).await;
    let killer = tokio::spawn(async move {
        let mut admin = AsyncPgConnection::establish(&url).await.unwrap();
        let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'";
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            #[derive(diesel::QueryableByName)]
            struct Killed {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                pg_terminate_backend: bool,
            }
            let killed: Vec<Killed> = diesel::sql_query(kill).load(&mut admin).await.unwrap();
            if killed.iter().any(|k| k.pg_terminate_backend) {
                return;
            }
        }
        panic!("the sleeping statement never showed up");
    });
    let error = execute(&db, "SELECT pg_sleep(5)").await.unwrap_err();
    killer.await.unwrap();
    assert!(matches!(error, DbError::ConnectionLost(_)), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(execute(&db, "SELECT 1").await.unwrap(), 1, "the pool replaced the broken connection");
}

#[tokio::test]
async fn an_exhausted_pool_is_a_timeout() {
    let (_, db) =
        database(|url| PgConfig { pool_size: 1, acquire_timeout: Duration::from_millis(800), ..PgConfig::new(url) })
            .await;
    let held = db.connection().await.unwrap();
    assert_eq!(
        execute(&db, "SELECT 1").await.unwrap_err(),
        DbError::Timeout("no pooled connection within the acquire timeout")
    );
    drop(held);
    assert_eq!(execute(&db, "SELECT 1").await.unwrap(), 1);
}

#[derive(diesel::QueryableByName)]
struct Query {
    #[diesel(sql_type = diesel::sql_types::Text)]
    query: String,
}

/// The last statement each backend of the pool's database ran, as the server saw it.
async fn last_statements(admin: &mut AsyncPgConnection) -> Vec<String> {
    let sql = "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    diesel::sql_query(sql).load::<Query>(admin).await.unwrap().into_iter().map(|q| q.query).collect()
}

#[tokio::test]
async fn a_checkout_costs_the_database_no_statement() {
    let (url, db) = database(|url| PgConfig { pool_size: 1, ..PgConfig::new(url) }).await;
    execute(&db, "SELECT 'the last work'").await.unwrap();
    let mut admin = AsyncPgConnection::establish(&url).await.unwrap();
    assert_eq!(last_statements(&mut admin).await, vec!["SELECT 'the last work'".to_owned()]);
    let connection = db.connection().await.unwrap();
    assert_eq!(
        last_statements(&mut admin).await,
        vec!["SELECT 'the last work'".to_owned()],
        "a checkout sent the server a statement of its own"
    );
    drop(connection);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_handed_out() {
    let (url, db) = database(|url| PgConfig { pool_size: 1, ..PgConfig::new(url) }).await;
    execute(&db, "SELECT 1").await.unwrap();
    let mut admin = AsyncPgConnection::establish(&url).await.unwrap();
    let terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()";
    diesel::sql_query(terminate).execute(&mut admin).await.unwrap();
    // The server closed the idle pooled connection (as on a restart); the
    // next checkout must not hand it out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(execute(&db, "SELECT 1").await, Ok(1));
}
