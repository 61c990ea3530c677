//! The two shapes `watch_progress` and `stream_sessions` come in, and the SQL
//! fragments that let one adapter read and write both.
//!
//! A database this service created has its own layout (text ids, seconds as
//! `double precision`, `timestamptz`, `inet`). A database the cinema
//! streaming service created keeps that service's columns (`uuid` ids,
//! `integer` seconds, `timestamp` in UTC, `varchar` addresses) so that both
//! services can use it during a migration window; migration 000001 only adds
//! this service's columns to it. Which one a table has is read once from the
//! type of its `user_id` column.

use std::sync::LazyLock;

use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use streaming_core::domain::{IdFormat, MediaId, UserId};

use crate::database::DbError;

/// How one of the playback tables is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLayout {
    /// Created by this service's migrations.
    Own,
    /// Created by the cinema streaming service, extended by this service's migrations.
    Cinema,
}

/// The layouts of the two playback tables of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layouts {
    /// `watch_progress`.
    pub progress: TableLayout,
    /// `stream_sessions`.
    pub sessions: TableLayout,
}

impl Layouts {
    /// Whether either table is the cinema service's.
    pub fn any_cinema(&self) -> bool {
        self.progress == TableLayout::Cinema || self.sessions == TableLayout::Cinema
    }
}

#[derive(QueryableByName)]
struct UserIdColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

/// Reads the layouts from the catalog.
pub(crate) async fn detect(connection: &mut AsyncPgConnection) -> Result<Layouts, DbError> {
    let columns: Vec<UserIdColumn> = diesel::sql_query(
        "SELECT table_name::text AS table_name, data_type::text AS data_type FROM information_schema.columns \
         WHERE table_schema = current_schema() AND column_name = 'user_id' \
         AND table_name IN ('watch_progress', 'stream_sessions')",
    )
    .load(connection)
    .await?;
    let layout_of = |table: &str| match columns.iter().find(|c| c.table_name == table) {
        Some(column) if column.data_type == "text" => Ok(TableLayout::Own),
        Some(column) if column.data_type == "uuid" => Ok(TableLayout::Cinema),
        Some(column) => Err(DbError::Schema(format!("{table}.user_id has the unexpected type {}", column.data_type))),
        None => Err(DbError::Schema(format!("table {table} is missing: run the migrations"))),
    };
    Ok(Layouts { progress: layout_of("watch_progress")?, sessions: layout_of("stream_sessions")? })
}

impl TableLayout {
    /// A text expression as a value of the table's id columns.
    pub(crate) fn id_in(self, text: &str) -> String {
        match self {
            Self::Own => text.to_owned(),
            Self::Cinema => format!("{text}::uuid"),
        }
    }

    /// A `double precision` number of seconds as a value of the table's
    /// seconds columns (whole seconds, rounded down, in the cinema layout).
    pub(crate) fn seconds_in(self, seconds: &str) -> String {
        match self {
            Self::Own => seconds.to_owned(),
            Self::Cinema => format!("floor({seconds})::integer"),
        }
    }

    /// A `timestamptz` expression as a value of the table's time columns.
    pub(crate) fn time_in(self, instant: &str) -> String {
        match self {
            Self::Own => instant.to_owned(),
            Self::Cinema => format!("({instant} AT TIME ZONE 'UTC')"),
        }
    }

    /// A time column of the table as a `timestamptz`.
    pub(crate) fn time_out(self, column: &str) -> String {
        match self {
            Self::Own => column.to_owned(),
            Self::Cinema => format!("({column} AT TIME ZONE 'UTC')"),
        }
    }

    /// A text IP address as a value of the table's address column.
    pub(crate) fn ip_in(self, text: &str) -> String {
        match self {
            Self::Own => format!("{text}::inet"),
            Self::Cinema => text.to_owned(),
        }
    }

    /// The table's address column as text (the bare address).
    pub(crate) fn ip_out(self, column: &str) -> String {
        match self {
            Self::Own => format!("host({column})"),
            Self::Cinema => format!("{column}::text"),
        }
    }

    /// Whether the table can hold rows of `user` and `media`: the cinema
    /// layout keeps both as `uuid`.
    pub(crate) fn holds(self, user: &UserId, media: &MediaId) -> bool {
        self.holds_user(user) && (self == Self::Own || media.format() == IdFormat::Uuid)
    }

    /// Whether the table can hold rows of `user`.
    pub(crate) fn holds_user(self, user: &UserId) -> bool {
        self == Self::Own || is_uuid(user.as_str())
    }

    /// Why a row of `holds() == false` was not written.
    pub(crate) fn refusal(self) -> &'static str {
        "the cinema service's tables hold only UUID user and movie ids (set auth.uuid_subjects)"
    }
}

/// A value built once per layout, on first use (the statements of an adapter).
pub(crate) struct PerLayout<T> {
    own: LazyLock<T>,
    cinema: LazyLock<T>,
}

impl<T> PerLayout<T> {
    /// Each function runs at most once, when its layout is first asked for.
    pub(crate) const fn new(own: fn() -> T, cinema: fn() -> T) -> Self {
        Self { own: LazyLock::new(own), cinema: LazyLock::new(cinema) }
    }

    /// The value of `layout`.
    pub(crate) fn get(&self, layout: TableLayout) -> &T {
        match layout {
            TableLayout::Own => &self.own,
            TableLayout::Cinema => &self.cinema,
        }
    }
}

/// Whether `text` is a hyphenated UUID.
fn is_uuid(text: &str) -> bool {
    text.len() == uuid::fmt::Hyphenated::LENGTH && uuid::Uuid::try_parse(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cinema_layout_holds_uuid_users_only() {
        let movie = MediaId::parse_uuid("3f2b8c1e-6f4a-4c1e-9b7d-2a5e8f0c1d3b").unwrap();
        let uuid_user = UserId::try_from("9b2e4f6a-1c3d-4e5f-8a7b-0c1d2e3f4a5b").unwrap();
        let other_user = UserId::try_from("auth0|alice").unwrap();
        assert!(TableLayout::Cinema.holds(&uuid_user, &movie));
        assert!(!TableLayout::Cinema.holds(&other_user, &movie));
        assert!(TableLayout::Own.holds(&other_user, &movie));
        let track = MediaId::parse_ulid("01HXKZ3Y8Q4N7W2M5V6B9C0D1E").unwrap();
        assert!(!TableLayout::Cinema.holds(&uuid_user, &track));
    }

    #[test]
    fn fragments_convert_only_in_the_cinema_layout() {
        assert_eq!(TableLayout::Own.id_in("$1"), "$1");
        assert_eq!(TableLayout::Cinema.id_in("$1"), "$1::uuid");
        assert_eq!(TableLayout::Cinema.seconds_in("$3"), "floor($3)::integer");
        assert_eq!(TableLayout::Cinema.time_in("$4"), "($4 AT TIME ZONE 'UTC')");
        assert_eq!(TableLayout::Own.ip_out("ip_address"), "host(ip_address)");
    }
}
