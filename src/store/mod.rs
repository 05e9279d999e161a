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

use std::sync::atomic::{AtomicUsize, Ordering};
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
///
/// **Group commit.** Writers that queue behind each other share one transaction: each runs its
/// work inside a `SAVEPOINT` of the open transaction (its failure rolls back only its own work),
/// and a writer that sees another one queued leaves the transaction open for it instead of
/// committing. The last writer of the group (nobody queued behind it, or the group is full or
/// old) commits for everyone; the others wait for that commit before they answer, so nobody
/// reports a write that is not durable, and a failed commit fails every writer of the group.
/// `BEGIN` and `COMMIT`, and the WAL writes of the pages every refresh touches, are paid once per
/// group instead of once per writer (docs/benchmarks.md).
pub type WriteGate = std::sync::Arc<Gate>;

/// At most this many writers share one transaction, so a member never waits behind an unbounded
/// group.
const GROUP_MAX_MEMBERS: usize = 32;
/// A group older than this commits even when writers are still queued.
const GROUP_MAX_AGE: Duration = Duration::from_millis(5);

/// See [`WriteGate`].
pub struct Gate {
    /// Whose turn it is to write, and the group transaction that is open, if any.
    turn: parking_lot::FairMutex<Turn>,
    /// Writers waiting for the turn. A writer that sees one leaves the transaction open for it:
    /// it has committed to taking the turn, so the group is sure to be committed by someone.
    queued: AtomicUsize,
    /// Groups that ended, for the members waiting on another member's commit.
    ended: parking_lot::Mutex<Ended>,
    ended_changed: parking_lot::Condvar,
    writer: diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>,
}

#[derive(Default)]
struct Turn {
    group: Option<Group>,
    last_group: u64,
}

/// A write transaction shared by the writers that queued behind each other.
struct Group {
    id: u64,
    conn: Conn,
    started: std::time::Instant,
    members: usize,
    /// Members whose work succeeded and who wait for the commit.
    waiting: usize,
}

#[derive(Default)]
struct Ended {
    /// The newest group that ended (groups end in order).
    last: u64,
    /// Groups that ended without a commit, with how many of their members have yet to hear it.
    failed: std::collections::HashMap<u64, usize>,
}

impl Gate {
    fn new(writer: diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>) -> Gate {
        Gate {
            turn: parking_lot::FairMutex::new(Turn::default()),
            queued: AtomicUsize::new(0),
            ended: parking_lot::Mutex::new(Ended::default()),
            ended_changed: parking_lot::Condvar::new(),
            writer,
        }
    }

    /// Runs `f` as one member of a group transaction. `wait`: queue for the turn; without it,
    /// `Ok(None)` when the turn is taken or another process holds SQLite's write lock.
    fn write<T, F>(self: &WriteGate, wait: bool, f: F) -> Result<Option<T>>
    where
        F: FnOnce(&mut Conn) -> Result<T>,
    {
        let mut turn = if wait {
            self.queued.fetch_add(1, Ordering::SeqCst);
            let turn = self.turn.lock();
            self.queued.fetch_sub(1, Ordering::SeqCst);
            turn
        } else {
            // Not counted as queued: nobody may leave a transaction open for a writer that can
            // walk away.
            match self.turn.try_lock() {
                Some(turn) => turn,
                None => return Ok(None),
            }
        };
        let mut group = match turn.group.take() {
            Some(group) => group,
            None => match self.begin(wait)? {
                Some(conn) => {
                    turn.last_group += 1;
                    Group {
                        id: turn.last_group,
                        conn,
                        started: std::time::Instant::now(),
                        members: 0,
                        waiting: 0,
                    }
                }
                None => return Ok(None),
            },
        };
        group.members += 1;
        let outcome = match exec(&mut group.conn, "SAVEPOINT member") {
            Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut group.conn))),
            Err(err) => Ok(Err(err)),
        };
        let kept = match &outcome {
            Ok(Ok(_)) => exec(&mut group.conn, "RELEASE member"),
            _ => exec(&mut group.conn, "ROLLBACK TO member")
                .and_then(|()| exec(&mut group.conn, "RELEASE member")),
        };
        if let Err(err) = kept {
            // The transaction is gone (SQLite rolls it back by itself on some errors): the whole
            // group failed, this member with the rest.
            let _ = exec(&mut group.conn, "ROLLBACK");
            self.end(&group, false);
            drop(turn);
            return match outcome {
                Err(panic) => std::panic::resume_unwind(panic),
                _ => Err(err),
            };
        }
        let succeeded = matches!(outcome, Ok(Ok(_)));
        let full = group.members >= GROUP_MAX_MEMBERS || group.started.elapsed() >= GROUP_MAX_AGE;
        if self.queued.load(Ordering::SeqCst) > 0 && !full {
            // Someone is queued for the turn: the transaction stays open for them, and whoever
            // ends the group reports its commit to this member.
            let id = group.id;
            if succeeded {
                group.waiting += 1;
            }
            turn.group = Some(group);
            drop(turn);
            return match outcome {
                Ok(Ok(value)) => self.wait_for(id).map(|()| Some(value)),
                Ok(Err(err)) => Err(err),
                Err(panic) => std::panic::resume_unwind(panic),
            };
        }
        let committed = exec(&mut group.conn, "COMMIT");
        if committed.is_err() {
            // SQLite leaves the transaction open when COMMIT fails (busy): end it here so the
            // connection goes back to the pool clean.
            let _ = exec(&mut group.conn, "ROLLBACK");
        }
        self.end(&group, committed.is_ok());
        drop(group);
        drop(turn);
        match outcome {
            Ok(Ok(value)) => committed.map(|()| Some(value)),
            Ok(Err(err)) => Err(err),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// A connection of the writer pool in a new write transaction, or `None` when `!wait` and
    /// another process holds SQLite's write lock.
    fn begin(self: &WriteGate, wait: bool) -> Result<Option<Conn>> {
        let mut writer = self.writer.get()?;
        let c: &mut SqliteConnection = &mut writer;
        if wait {
            c.batch_execute("BEGIN IMMEDIATE")?;
        } else {
            c.batch_execute("PRAGMA busy_timeout = 0")?;
            let begun = c.batch_execute("BEGIN IMMEDIATE");
            c.batch_execute(&format!("PRAGMA busy_timeout = {}", c_busy_timeout()))?;
            match begun {
                Ok(()) => {}
                Err(DieselError::DatabaseError(_, ref info)) if is_transient(info.message()) => {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(Conn::Sqlite(writer, self.clone())))
    }

    /// Records that `group` ended, and wakes its members.
    fn end(&self, group: &Group, committed: bool) {
        let mut ended = self.ended.lock();
        ended.last = group.id;
        if !committed && group.waiting > 0 {
            ended.failed.insert(group.id, group.waiting);
        }
        drop(ended);
        self.ended_changed.notify_all();
    }

    /// Waits until group `id` has ended; an error if it did not commit.
    fn wait_for(&self, id: u64) -> Result<()> {
        let mut ended = self.ended.lock();
        while ended.last < id {
            self.ended_changed.wait(&mut ended);
        }
        let Some(left) = ended.failed.get_mut(&id) else {
            return Ok(());
        };
        *left -= 1;
        if *left == 0 {
            ended.failed.remove(&id);
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "the write transaction this write shared could not commit"
        )))
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

fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    db!(conn, c => c.batch_execute(sql))?;
    Ok(())
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
                let gate = WriteGate::new(Gate::new(build(1)));
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
