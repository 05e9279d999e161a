//! The SQLite write gate: one writer connection, writers queued first come first served, and
//! group commit. PostgreSQL needs none of it (its row locks and conditional updates do the job).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::result::Error as DieselError;

use super::error::is_transient;
use super::{Conn, Result, StoreError};
use crate::db;

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
    /// The busy timeout (ms) of this pool's connections, restored after a write that would not
    /// wait.
    busy_timeout_ms: u64,
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
    pub(super) fn new(
        writer: diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>,
        busy_timeout_ms: u64,
    ) -> Gate {
        Gate {
            busy_timeout_ms,
            turn: parking_lot::FairMutex::new(Turn::default()),
            queued: AtomicUsize::new(0),
            ended: parking_lot::Mutex::new(Ended::default()),
            ended_changed: parking_lot::Condvar::new(),
            writer,
        }
    }

    /// Runs `f` as one member of a group transaction. `wait`: queue for the turn; without it,
    /// `Ok(None)` when the turn is taken or another process holds SQLite's write lock.
    pub(super) fn write<T, F>(self: &WriteGate, wait: bool, f: F) -> Result<Option<T>>
    where
        F: FnOnce(&mut Conn) -> Result<T>,
    {
        let mut turn = if wait {
            self.queued.fetch_add(1, Ordering::SeqCst);
            let asked = std::time::Instant::now();
            let turn = self.turn.lock();
            crate::metrics::sqlite_write_lock_wait(asked.elapsed());
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
            c.batch_execute(&format!("PRAGMA busy_timeout = {}", self.busy_timeout_ms))?;
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

fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    db!(conn, c => c.batch_execute(sql))?;
    Ok(())
}
