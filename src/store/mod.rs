//! Storage: the connection pool for SQLite or PostgreSQL, migrations, and every SQL query tokend runs.
//!
//! Both backends share one `schema.rs` and one query code path: a query is written once inside
//! [`db!`], which expands it for the concrete connection of each backend. A `match` on the backend
//! appears only where SQL truly differs (connection set-up, write-lock strategy, advisory locks).

pub mod audit;
pub mod clients;
pub mod codes;
pub mod keys;
pub mod models;
pub mod purge;
pub mod revocation;
pub mod schema;
pub mod throttle;
pub mod tokens;
pub mod users;

use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

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
fn is_transient(message: &str) -> bool {
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

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite://") || url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// The path SQLite opens for a `sqlite://PATH` URL (`sqlite:///abs/path` and `sqlite://rel/path`).
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connect_timeout: Duration,
}

/// SQLite has one writer at a time. Writers of this process queue here, first come first served,
/// before `BEGIN IMMEDIATE`: a waiting writer is handed the lock the moment it is free instead of
/// sleeping in SQLite's busy handler (whose back-off, up to 100 ms a nap, is what made refresh
/// tails long and let a purge loop starve everyone else). The busy timeout still covers writers
/// in other processes (the CLI).
///
/// Every write transaction of this process runs on the gate's one writer connection. A SQLite
/// connection drops its whole page cache when it sees that another connection wrote since its last
/// transaction; with writes spread over the pool, every write started cold and read its pages
/// again. The writer only ever sees its own writes, so its cache stays warm.
pub type WriteGate = std::sync::Arc<Gate>;

/// See [`WriteGate`].
pub struct Gate {
    turn: parking_lot::FairMutex<()>,
    writer: diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>,
}

/// One pool of either backend.
#[derive(Clone)]
pub enum Pool {
    Sqlite(
        diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>,
        WriteGate,
    ),
    Postgres(diesel::r2d2::Pool<ConnectionManager<PgConnection>>),
}

/// A connection checked out of [`Pool`].
pub enum Conn {
    Sqlite(
        PooledConnection<ConnectionManager<SqliteConnection>>,
        WriteGate,
    ),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
}

/// Runs `$body` with `$c` bound to the concrete diesel connection of either backend, so a query is
/// written once and compiled for both.
#[macro_export]
macro_rules! db {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c, _) => {
                let $c: &mut ::diesel::SqliteConnection = &mut *$c;
                $body
            }
            $crate::store::Conn::Postgres($c) => {
                let $c: &mut ::diesel::PgConnection = &mut *$c;
                $body
            }
        }
    };
}

impl Conn {
    /// Runs `f` in one write transaction that holds the write lock from its first statement:
    /// `BEGIN IMMEDIATE` on SQLite (two writers never deadlock upgrading a read lock), a plain
    /// transaction on PostgreSQL (whose row locks and conditional updates do that job).
    pub fn write<T, F>(&mut self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Conn) -> Result<T>,
    {
        match self {
            Conn::Sqlite(_, gate) => {
                let gate = gate.clone();
                let _turn = gate.turn.lock();
                let mut writer = Conn::Sqlite(gate.writer.get()?, gate.clone());
                if let Conn::Sqlite(c, _) = &mut writer {
                    (**c).batch_execute("BEGIN IMMEDIATE")?;
                }
                finish(&mut writer, f)
            }
            Conn::Postgres(c) => {
                (**c).batch_execute("BEGIN")?;
                finish(self, f)
            }
        }
    }

    /// Runs the write `f` only if it can start at once: on SQLite, when no writer of this process
    /// holds the gate, and without waiting in the busy handler for other processes. `Ok(None)`
    /// when it would have had to wait. For bookkeeping that a later request can do instead.
    pub fn write_if_free<T, F>(&mut self, f: F) -> Result<Option<T>>
    where
        F: FnOnce(&mut Conn) -> Result<T>,
    {
        match self {
            Conn::Sqlite(_, gate) => {
                let gate = gate.clone();
                let Some(_turn) = gate.turn.try_lock() else {
                    return Ok(None);
                };
                let mut writer = Conn::Sqlite(gate.writer.get()?, gate.clone());
                let Conn::Sqlite(c, _) = &mut writer else {
                    return Ok(None);
                };
                (**c).batch_execute("PRAGMA busy_timeout = 0")?;
                let begun = (**c).batch_execute("BEGIN IMMEDIATE");
                let outcome = match begun {
                    Ok(()) => finish(&mut writer, f).map(Some),
                    Err(DieselError::DatabaseError(_, ref info))
                        if is_transient(info.message()) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                };
                if let Conn::Sqlite(c, _) = &mut writer {
                    (**c).batch_execute(&format!("PRAGMA busy_timeout = {}", c_busy_timeout()))?;
                }
                outcome
            }
            Conn::Postgres(_) => self.write(f).map(Some),
        }
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T, F>(&mut self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Conn) -> Result<T>,
    {
        match self {
            Conn::Sqlite(c, _) => (**c).batch_execute("BEGIN DEFERRED")?,
            Conn::Postgres(c) => (**c).batch_execute("BEGIN")?,
        }
        finish(self, f)
    }

    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(..) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }
}

fn finish<T, F>(conn: &mut Conn, f: F) -> Result<T>
where
    F: FnOnce(&mut Conn) -> Result<T>,
{
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    match outcome {
        Ok(Ok(value)) => match db!(conn, c => c.batch_execute("COMMIT")) {
            Ok(()) => Ok(value),
            Err(err) => {
                // SQLite leaves the transaction open when COMMIT fails (busy): end it here so the
                // connection goes back to the pool clean.
                let _ = db!(conn, c => c.batch_execute("ROLLBACK"));
                Err(err.into())
            }
        },
        Ok(Err(err)) => {
            let _ = db!(conn, c => c.batch_execute("ROLLBACK"));
            Err(err)
        }
        Err(panic) => {
            let _ = db!(conn, c => c.batch_execute("ROLLBACK"));
            std::panic::resume_unwind(panic)
        }
    }
}

/// The busy timeout SQLite connections use (ms), restored after a `write_if_free`.
static SQLITE_BUSY_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(5_000);

fn c_busy_timeout() -> u64 {
    SQLITE_BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u64,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = {};",
            self.busy_timeout_ms, SQLITE_AUTOCHECKPOINT_PAGES
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// How often the background checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// SQLite's own checkpoint, run by whichever connection commits past this many WAL pages, stays
/// only as a safety net (default 1000): with it, every ~80th refresh ran the checkpoint and its
/// fsyncs inside its write transaction, while every other writer queued behind it (p99 73 ms, max
/// 950 ms at 16 clients; docs/benchmarks.md).
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Checkpoints the WAL of `path` every [`CHECKPOINT_EVERY`] on a connection of its own, off every
/// request's path. PASSIVE: it never waits for or blocks a writer or a reader; what it cannot copy
/// yet it copies next time. Stops when the last clone of the pool (and so of `gate`) is gone.
fn spawn_checkpointer(path: String, gate: &WriteGate) {
    let alive = std::sync::Arc::downgrade(gate);
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".to_owned())
        .spawn(move || {
            let mut conn: Option<SqliteConnection> = None;
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if alive.strong_count() == 0 {
                    return;
                }
                // Never create the file: that is the pool's job (and its error to report).
                if conn.is_none() && std::path::Path::new(&path).exists() {
                    conn = SqliteConnection::establish(&path).ok();
                }
                if let Some(c) = conn.as_mut() {
                    if let Err(err) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::debug!(error = %err, "WAL checkpoint failed; trying again");
                        conn = None;
                    }
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the WAL checkpointer; SQLite checkpoints by itself");
    }
}

impl Pool {
    /// Builds the pool without requiring the database to answer yet (it may come up later).
    pub fn new(url: &str, options: &PoolOptions) -> anyhow::Result<Pool> {
        match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let path = sqlite_path(url).to_owned();
                SQLITE_BUSY_TIMEOUT_MS.store(
                    options.connect_timeout.as_millis() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                let build = |max_size: u32| {
                    diesel::r2d2::Pool::builder()
                        .max_size(max_size)
                        .connection_timeout(options.connect_timeout)
                        // A file does not go away like a server does: no `SELECT 1` per checkout.
                        .test_on_check_out(false)
                        .connection_customizer(Box::new(SqlitePragmas {
                            busy_timeout_ms: options.connect_timeout.as_millis() as u64,
                        }))
                        .build_unchecked(ConnectionManager::<SqliteConnection>::new(path.clone()))
                };
                let gate = WriteGate::new(Gate {
                    turn: parking_lot::FairMutex::new(()),
                    writer: build(1),
                });
                let pool = build(options.max_size);
                spawn_checkpointer(path, &gate);
                Ok(Pool::Sqlite(pool, gate))
            }
            Some(Backend::Postgres) => {
                let pool = diesel::r2d2::Pool::builder()
                    .max_size(options.max_size)
                    .min_idle(Some(1.min(options.max_size)))
                    .connection_timeout(options.connect_timeout)
                    .build_unchecked(ConnectionManager::<PgConnection>::new(url));
                Ok(Pool::Postgres(pool))
            }
            None => anyhow::bail!("unsupported database URL: use sqlite://PATH or postgres://…"),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(..) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks a connection out; blocks up to the pool's connection timeout.
    pub fn get(&self) -> Result<Conn> {
        Ok(match self {
            Pool::Sqlite(p, gate) => Conn::Sqlite(p.get()?, gate.clone()),
            Pool::Postgres(p) => Conn::Postgres(p.get()?),
        })
    }

    /// Runs `f` with a connection on the blocking pool, never on an async worker thread.
    pub async fn run<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&mut Conn) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let pool = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|join| {
            E::from(StoreError::Unexpected(anyhow::anyhow!(
                "database task failed: {join}"
            )))
        })?
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock keeps several nodes starting at
    /// once from racing each other.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.get().context("connecting to the database")?;
        let applied = match &mut conn {
            Conn::Sqlite(c, _) => {
                let c: &mut SqliteConnection = c;
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("applying SQLite migrations: {e}"))?
                    .iter()
                    .map(|v| v.to_string())
                    .collect()
            }
            Conn::Postgres(c) => {
                let c: &mut PgConnection = c;
                c.batch_execute("SELECT pg_advisory_lock(7418012026)")
                    .context("taking the migration lock")?;
                let result = c
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|v| v.to_string()).collect())
                    .map_err(|e| anyhow::anyhow!("applying PostgreSQL migrations: {e}"));
                c.batch_execute("SELECT pg_advisory_unlock(7418012026)")
                    .context("releasing the migration lock")?;
                result?
            }
        };
        Ok(applied)
    }

    /// Reverts every migration (used by the schema tests to prove each `down.sql` works).
    pub fn revert_all(&self) -> anyhow::Result<()> {
        let mut conn = self.get()?;
        match &mut conn {
            Conn::Sqlite(c, _) => {
                let c: &mut SqliteConnection = c;
                c.revert_all_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("reverting: {e}"))?;
            }
            Conn::Postgres(c) => {
                let c: &mut PgConnection = c;
                c.revert_all_migrations(PG_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("reverting: {e}"))?;
            }
        }
        Ok(())
    }

    /// Answers whether the database takes a query right now (for `/readyz`).
    pub fn ping(&self) -> Result<()> {
        let mut conn = self.get()?;
        db!(&mut conn, c => c.batch_execute("SELECT 1"))?;
        Ok(())
    }
}

/// The current time as stored: UTC, microsecond precision (what PostgreSQL keeps), so a value read
/// back compares equal to the value written on both backends.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}
