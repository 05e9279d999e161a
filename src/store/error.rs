//! Errors of the storage layer, sorted by what the caller can do about them.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Errors of the storage layer, sorted by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("row not found")]
    NotFound,
    #[error("unique constraint violated")]
    Conflict,
    /// The database cannot be reached or is too busy: the request may be retried later.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => StoreError::Unavailable(anyhow::anyhow!("connection lost: {}", info.message())),
            DieselError::DatabaseError(_, ref info) if is_transient(info.message()) => {
                StoreError::Unavailable(anyhow::anyhow!("database busy: {}", info.message()))
            }
            other => StoreError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// SQLite reports a lock it could not get within the busy timeout, or a file it cannot write, as
/// plain errors; PostgreSQL reports an admin shutdown or a server gone away. Neither is a bug in the
/// request: both mean "try again later".
pub(crate) fn is_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "database is locked",
        "database table is locked",
        "readonly database",
        "disk i/o error",
        "unable to open database",
        "terminating connection",
        "server closed the connection",
        "could not connect",
        "connection refused",
        "the database system is",
        "no connection to the server",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(anyhow::Error::new(err))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
