//! What tokend does, independent of HTTP: grants, rotation, the revocation cascade, validation,
//! users and clients. Each operation that writes is one transaction; Argon2 and the database run
//! on blocking pools, never on the caller's async worker.

pub mod audit;
pub mod authorize;
pub mod bootstrap;
pub mod clients;
pub mod grant_type;
pub mod introspection;
pub mod issuing;
pub mod keys;
pub mod origins;
pub mod personal_tokens;
pub mod purge;
pub mod refresh;
pub mod revocation;
pub mod scope;
pub mod sessions;
pub mod signin;
pub mod status_list;
pub mod throttle;
pub mod users;
pub mod validation;

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::password::PasswordHasher;
use crate::crypto::HmacKey;
use crate::store::{self, Conn, Pool, StoreError};

/// Everything a service operation needs, cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub pool: Pool,
    pub config: Arc<Config>,
    pub keys: Arc<keys::KeyManager>,
    pub hasher: PasswordHasher,
    /// Server-held keys every node shares, one per purpose. Only `serve` loads them: admin
    /// commands sign, tag and check nothing with them, so they run without the key-encryption
    /// key that seals them (docs/operations.md#the-key-encryption-key).
    pub secrets: Option<Arc<ServerSecrets>>,
    /// Browser origins registered by clients (CORS).
    pub origins: Arc<origins::OriginCache>,
    /// This node's status-list entries and the lists it built.
    pub status: Arc<status_list::StatusLists>,
}

/// The HMAC keys kept in `server_secrets` (sealed at rest when a key-encryption key is set), each
/// for one purpose only.
#[derive(Debug)]
pub struct ServerSecrets {
    /// Tags every refresh token (docs/revocation.md).
    pub refresh_key: HmacKey,
    /// Binds the sign-in form to the browser's CSRF cookie.
    pub csrf_key: HmacKey,
}

impl Ctx {
    /// The server secrets; an error in a process that did not load them (an admin command).
    pub fn secrets(&self) -> Result<&ServerSecrets> {
        self.secrets.as_deref().ok_or_else(|| {
            ServiceError::Unexpected(anyhow::anyhow!(
                "the server secrets are not loaded in this process"
            ))
        })
    }

    /// Runs `f` with a pooled connection on the blocking pool, never on an async worker; `f`
    /// opens whatever transactions it needs.
    pub async fn db<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Conn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.pool.run(f).await
    }

    /// Runs store queries outside any transaction of their own (a read, or one statement).
    pub async fn query<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Conn) -> store::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.pool
            .run(move |conn| f(conn).map_err(ServiceError::from))
            .await
    }

    /// Runs `f` as one write transaction (see [`Conn::write`]).
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Conn) -> store::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.pool
            .run(move |conn| conn.write(f).map_err(ServiceError::from))
            .await
    }
}

/// A value someone gave, quoted for an error message: escaped, and cut after 100 characters.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(100) {
        Some((end, _)) => format!("{:?}…", &value[..end]),
        None => format!("{value:?}"),
    }
}

/// Who is asking, for the audit trail and the session list.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Errors a service operation reports; the HTTP layer maps each to the contract's status and code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    InsufficientScope(String),
    #[error("{0}")]
    Forbidden(String),
    /// The action needs a recent sign-in or the current password (SECURITY.md 31).
    #[error("{0}")]
    ReauthenticationRequired(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many failed sign-ins: retry after this many seconds.
    #[error("too many failed sign-ins; try again in {0} s")]
    Throttled(u64),
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => ServiceError::Unavailable(e),
            StoreError::NotFound => ServiceError::NotFound("not found".to_owned()),
            StoreError::Conflict => ServiceError::Conflict("already exists".to_owned()),
            StoreError::Unexpected(e) => ServiceError::Unexpected(e),
        }
    }
}

impl From<anyhow::Error> for ServiceError {
    fn from(err: anyhow::Error) -> Self {
        ServiceError::Unexpected(err)
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Converts a configured duration to chrono's, saturating (durations come from validated config).
pub(crate) fn chrono_duration(d: std::time::Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
