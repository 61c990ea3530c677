//! # streaming-postgres
//!
//! The catalog read model, watch progress, stream sessions, the event outbox and the
//! operators' audit trail on PostgreSQL,
//! with diesel-async on a bb8 pool. diesel is built with `postgres_backend`
//! only, so no libpq is linked; migrations (`migrations/`) are compiled in and
//! run through diesel-async's connection wrapper.
//!
//! Every connection has a server-side `statement_timeout` (2 s); driver errors
//! become the ports' `Unavailable` (503), unique violations `Duplicate`.

mod audit;
mod catalog;
mod database;
mod grouped;
mod layout;
mod offsets;
mod outbox;
mod progress;
mod relay;
mod rescue;
mod schema;
mod session_reads;
mod sessions;
mod settings;
mod starts;
mod status_reads;
#[cfg(feature = "test-support")]
pub mod testing;
mod write_behind;
mod write_behind_outbox;
mod write_behind_sessions;

pub use audit::PgAuditLog;
pub use catalog::PgCatalog;
pub use database::{DbError, PgConfig, PgDatabase, MIGRATIONS};
pub use layout::{Layouts, TableLayout};
pub use offsets::{PgConsumerOffsets, PgDeadLetters};
pub use outbox::{PgOutbox, RelayError, RelayOutcome, INSERT_CHUNK};
pub use progress::PgProgressStore;
pub use relay::{OutboxRelay, RelaySettings};
pub use rescue::RESCUE_LEASE;
pub use sessions::PgSessionStore;
pub use settings::PgSettings;
pub use write_behind::{RescuedHook, WriteBehindProgress, WriteBehindStats};
pub use write_behind_outbox::{WriteBehindOutbox, WriteBehindOutboxStats};
pub use write_behind_sessions::{WriteBehindSessionStats, WriteBehindSessions, HEARTBEAT_STEP, OPEN_SESSIONS_MARGIN};
