//! Storage: the connection pool for SQLite or PostgreSQL, migrations, and every SQL query tokend runs.
//!
//! Both backends share one `schema.rs` and one query code path: a query is written once inside
//! [`db!`], which expands it for the concrete connection of each backend. A `match` on the backend
//! appears only where SQL truly differs (connection set-up, write-lock strategy, row locks,
//! advisory locks).
//!
//! - [`pool`]: the pool, the connection type and its transactions;
//! - [`gate`]: SQLite's write gate (one writer, group commit);
//! - [`migrations`]: the embedded migrations of each backend;
//! - [`error`]: what a query's failure means to the caller;
//! - one module per table or concern for the queries themselves.

pub mod audit;
pub mod clients;
pub mod codes;
pub mod error;
pub mod gate;
pub mod keys;
pub mod migrations;
pub mod models;
pub mod personal_tokens;
pub mod pool;
pub mod purge;
pub mod revocation;
pub mod schema;
pub mod sessions;
pub mod status_lists;
pub mod throttle;
pub mod users;

pub use error::{Result, StoreError};
pub use gate::WriteGate;
pub use pool::{check_database, sqlite_path, Backend, Conn, Pool, PoolOptions, SqliteSynchronous};

/// The current time as stored: UTC, microsecond precision (what PostgreSQL keeps), so a value read
/// back compares equal to the value written on both backends.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

/// Every table of the schema (the migrations' own bookkeeping aside): what tests and the load
/// benchmark count to show that an operation grew nothing it should not.
pub const TABLES: [&str; 10] = [
    "users",
    "clients",
    "sessions",
    "personal_access_tokens",
    "auth_codes",
    "signing_keys",
    "audit_events",
    "login_attempts",
    "server_secrets",
    "status_list_blocks",
];
