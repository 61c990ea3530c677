//! Test support: a fresh, empty database per test on a shared server.
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Creates an empty database named after a random id on the server of
/// `admin_url` (a URL to any database there) and returns its URL.
pub async fn fresh_database_url(admin_url: &str) -> String {
    let name = format!("test_{:032x}", streaming_core::domain::SessionId::random().as_uuid().as_u128());
    let mut admin = AsyncPgConnection::establish(admin_url).await.expect("connecting to the test server");
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("creating a test database");
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    format!("{base}/{name}")
}
