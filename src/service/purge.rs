//! Purge orchestration: batches, each its own short write transaction, so a purge of millions of
//! rows never holds the write lock for long and refreshes keep flowing while it runs.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{chrono_duration, Ctx, Result};
use crate::store::purge::Counts;
use crate::store::{self, Conn};

/// Sessions per batch: a few ms of work, the longest a refresh waits for the purge
/// (docs/benchmarks.md).
pub const BATCH: i64 = 200;
/// A breath between batches, so writers in other processes (which wait in SQLite's busy handler,
/// not in this process's queue) get their turn too.
const PAUSE: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub dry_run: bool,
    pub deleted: Counts,
    pub batches: u64,
    pub elapsed_ms: u64,
}

/// Purges (or with `dry_run`, counts) with the configured retention. Blocking: run it on the
/// blocking pool or a thread of its own.
pub fn run_blocking(conn: &mut Conn, retention: Duration, dry_run: bool) -> store::Result<Report> {
    let started = Instant::now();
    let now = store::now();
    let ended_before = now - chrono_duration(retention);
    if dry_run {
        let deleted = conn.read(|conn| store::purge::count(conn, ended_before))?;
        return Ok(Report {
            dry_run,
            deleted,
            batches: 0,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
    let mut deleted = Counts::default();
    let mut batches = 0;
    loop {
        let done = conn.write(|conn| {
            let ids = store::purge::ended_sessions(conn, ended_before, BATCH)?;
            if ids.is_empty() {
                return Ok(None);
            }
            store::purge::delete_sessions(conn, &ids).map(Some)
        })?;
        match done {
            Some(counts) => {
                deleted += counts;
                batches += 1;
                std::thread::sleep(PAUSE);
            }
            None => break,
        }
    }
    // Throttling rows nobody touched for a day carry no information any more.
    conn.write(|conn| store::throttle::delete_stale(conn, now - chrono::TimeDelta::days(1)))?;
    deleted.auth_codes +=
        conn.write(|conn| store::purge::delete_expired_codes(conn, ended_before))?;
    Ok(Report {
        dry_run,
        deleted,
        batches,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Purges on the blocking pool and records it in the audit trail.
pub async fn run(
    ctx: &Ctx,
    dry_run: bool,
    actor_id: Option<String>,
    meta: super::RequestMeta,
) -> Result<Report> {
    // An ended session's row also holds its status-list entry at 1: it stays at least until the
    // last access token issued before the end has expired, whatever the retention says.
    let retention = ctx.config.purge_retention.max(
        ctx.config.access_token_ttl
            + std::time::Duration::from_secs(crate::crypto::jwt::LEEWAY_SECONDS),
    );
    ctx.db(move |conn| {
        let report = run_blocking(conn, retention, dry_run)?;
        if !dry_run {
            let event = super::audit::Event {
                kind: "purge",
                reason: Some("expired_and_ended"),
                actor_id: actor_id.as_deref(),
                ..Default::default()
            };
            conn.write(|conn| super::audit::record(conn, event, &meta))?;
        }
        Ok(report)
    })
    .await
}
