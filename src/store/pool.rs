//! The connection pool of either backend, the connection type every query takes, and the
//! transactions queries run in.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, PooledConnection};

use super::gate::{Gate, WriteGate};
use super::{Result, StoreError};

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
    /// SQLite only: `PRAGMA synchronous` (what a power loss may take back).
    pub sqlite_synchronous: SqliteSynchronous,
}

/// SQLite's `synchronous` setting in WAL mode (`TOKEND_SQLITE_SYNCHRONOUS`). `normal` is the
/// default: `full` cost refreshes 27–32 % at 16 workers and 11 % at 32 in the load benchmark
/// (docs/benchmarks.md, "Durability"), over the 15 % this project accepts for a default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every commit is fsynced before it is acknowledged: a power loss (not a crash of tokend,
    /// which loses nothing either way) never takes back an acknowledged revocation. With group
    /// commit, one fsync per group of writers.
    Full,
    /// Commits are fsynced at checkpoints (every 100 ms here): the database stays consistent
    /// after a power loss, but the last commits before it (a logout-all, a rotation) can be lost.
    #[default]
    Normal,
}

impl SqliteSynchronous {
    pub fn parse(value: &str) -> Option<SqliteSynchronous> {
        match value.to_ascii_lowercase().as_str() {
            "full" => Some(SqliteSynchronous::Full),
            "normal" => Some(SqliteSynchronous::Normal),
            _ => None,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
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
                match gate.write(true, f)? {
                    Some(value) => Ok(value),
                    None => Err(StoreError::Unexpected(anyhow::anyhow!(
                        "the write gate turned a waiting writer away"
                    ))),
                }
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
                gate.write(false, f)
            }
            Conn::Postgres(_) => self.write(f).map(Some),
        }
    }

    /// Runs `f`, one statement that writes, as a transaction of its own: on SQLite through the
    /// write gate like any write, on PostgreSQL as a single autocommit statement (no `BEGIN` and
    /// `COMMIT` round trips, no lock held past the statement). For the hot paths whose write is
    /// one conditional statement (the refresh rotation).
    pub fn write_statement<T, F>(&mut self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Conn) -> Result<T>,
    {
        match self {
            Conn::Sqlite(..) => self.write(f),
            Conn::Postgres(_) => f(self),
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

#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u64,
    synchronous: SqliteSynchronous,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
             PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = {};",
            self.busy_timeout_ms,
            self.synchronous.pragma(),
            SQLITE_AUTOCHECKPOINT_PAGES
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

/// Fails at once, in one line naming it, on a database that waiting cannot bring: an SQLite
/// file that is missing where `may_create` is false (an admin command run in the wrong directory
/// would otherwise answer from a new empty file), or whose directory does not exist; a
/// PostgreSQL database the server says does not exist. A server that does not answer yet is
/// left to the pool's timeout. Blocking: call it off the async workers.
pub fn check_database(url: &str, may_create: bool) -> anyhow::Result<()> {
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => {
            let path = std::path::Path::new(sqlite_path(url));
            if path.exists() {
                return Ok(());
            }
            if !may_create {
                anyhow::bail!(
                    "no database at {}: admin commands never create one; check TOKEND_DATABASE_URL, or run `tokend migrate` to create it",
                    path.display()
                );
            }
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                anyhow::bail!(
                    "cannot create the database {}: its directory does not exist",
                    path.display()
                );
            }
            Ok(())
        }
        Some(Backend::Postgres) => match PgConnection::establish(url) {
            Err(diesel::ConnectionError::BadConnection(why)) if why.contains("does not exist") => {
                let database = url
                    .rsplit('/')
                    .next()
                    .and_then(|d| d.split('?').next())
                    .unwrap_or_default();
                anyhow::bail!(
                    "the PostgreSQL database {database:?} does not exist: create it (createdb {database}) or fix TOKEND_DATABASE_URL"
                )
            }
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

impl Pool {
    /// Builds the pool without requiring the database to answer yet (it may come up later).
    pub fn new(url: &str, options: &PoolOptions) -> anyhow::Result<Pool> {
        match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let path = sqlite_path(url).to_owned();
                let busy_timeout_ms = options.connect_timeout.as_millis() as u64;
                let build = |max_size: u32| {
                    diesel::r2d2::Pool::builder()
                        .max_size(max_size)
                        .connection_timeout(options.connect_timeout)
                        // A file does not go away like a server does: no `SELECT 1` per checkout.
                        .test_on_check_out(false)
                        // Not a log line per failed attempt (70 in 5 s for a bad path): the
                        // checkout's error carries the last cause, and it is logged once.
                        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
                        .connection_customizer(Box::new(SqlitePragmas {
                            busy_timeout_ms,
                            synchronous: options.sqlite_synchronous,
                        }))
                        .build_unchecked(ConnectionManager::<SqliteConnection>::new(path.clone()))
                };
                let gate = WriteGate::new(Gate::new(build(1), busy_timeout_ms));
                let pool = build(options.max_size);
                spawn_checkpointer(path, &gate);
                Ok(Pool::Sqlite(pool, gate))
            }
            Some(Backend::Postgres) => {
                let pool = diesel::r2d2::Pool::builder()
                    .max_size(options.max_size)
                    // No background refill: with a minimum of idle connections r2d2 opens one
                    // on its own thread whenever a checkout takes the last idle one, and a
                    // command that fails right after start-up (a wrong key-encryption key) then
                    // exited while that thread was inside libpq's TLS handshake, which OpenSSL's
                    // exit handler can crash (the CLI died of a signal instead of exiting 1).
                    // Connections are opened on demand and kept for r2d2's idle timeout.
                    .min_idle(Some(0))
                    .connection_timeout(options.connect_timeout)
                    .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
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
        let _waiting = crate::metrics::Waiting::start();
        Ok(match self {
            Pool::Sqlite(p, gate) => Conn::Sqlite(p.get()?, gate.clone()),
            Pool::Postgres(p) => Conn::Postgres(p.get()?),
        })
    }

    /// (connections in use, idle connections) of the request pool, for `/metrics`.
    pub fn usage(&self) -> (u32, u32) {
        let state = match self {
            Pool::Sqlite(p, _) => p.state(),
            Pool::Postgres(p) => p.state(),
        };
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
        )
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

    /// Answers whether the database takes a query right now (for `/readyz`).
    pub fn ping(&self) -> Result<()> {
        let mut conn = self.get()?;
        db!(&mut conn, c => c.batch_execute("SELECT 1"))?;
        Ok(())
    }
}
