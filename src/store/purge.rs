//! Purge: deleting what can never be used again, in small batches, each its own short transaction.
//!
//! Only ended sessions go (revoked, or past their absolute limit), longer ago than the retention,
//! with their personal-token rows and codes. A live session keeps its row whatever its refresh
//! history: the row alone is what recognises a replayed refresh token of any older generation
//! (SECURITY.md 11). A session whose refresh token idled out goes at its absolute limit: it is one
//! row, and both terms of the filter are indexed (`revoked_at` partially: only ended sessions are
//! in it, so a revocation does not move every live session's entry).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{auth_codes, personal_access_tokens, sessions};
use super::{Conn, Result};
use crate::db;

/// Rows deleted (or, in a dry run, that would be).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = PurgeCounts)]
pub struct Counts {
    pub sessions: u64,
    pub personal_access_tokens: u64,
    pub auth_codes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.sessions += o.sessions;
        self.personal_access_tokens += o.personal_access_tokens;
        self.auth_codes += o.auth_codes;
    }
}

/// Sessions that ended before `before`, as a filter (built anew for each statement).
macro_rules! ended_before {
    ($before:expr) => {
        sessions::revoked_at
            .lt($before)
            .or(sessions::expires_at.lt($before))
    };
}

/// Up to `batch` ids of sessions that ended before `ended_before`.
pub fn ended_sessions(
    conn: &mut Conn,
    ended_before: NaiveDateTime,
    batch: i64,
) -> Result<Vec<String>> {
    Ok(db!(conn, c => sessions::table
        .select(sessions::id)
        .filter(ended_before!(ended_before))
        .limit(batch)
        .load(c))?)
}

/// Deletes these sessions with every row that belongs to them (call inside a write transaction).
pub fn delete_sessions(conn: &mut Conn, ids: &[String]) -> Result<Counts> {
    db!(conn, c => {
        let codes = diesel::delete(auth_codes::table.filter(auth_codes::session_id.eq_any(ids))).execute(c)?;
        let personal = diesel::delete(personal_access_tokens::table.filter(personal_access_tokens::session_id.eq_any(ids)))
            .execute(c)?;
        let ended = diesel::delete(sessions::table.filter(sessions::id.eq_any(ids))).execute(c)?;
        Ok(Counts {
            sessions: ended as u64,
            personal_access_tokens: personal as u64,
            auth_codes: codes as u64,
        })
    })
}

/// Deletes authorization codes that expired before `expired_before`: kept as long as ended
/// sessions are, so a late replay of a used code is still recognised.
pub fn delete_expired_codes(conn: &mut Conn, expired_before: NaiveDateTime) -> Result<u64> {
    Ok(
        db!(conn, c => diesel::delete(auth_codes::table.filter(auth_codes::expires_at.lt(expired_before)))
        .execute(c))? as u64,
    )
}

/// What a purge with this cut-off would delete.
pub fn count(conn: &mut Conn, ended_before: NaiveDateTime) -> Result<Counts> {
    db!(conn, c => {
        let ended = || sessions::table.select(sessions::id).filter(ended_before!(ended_before));
        let session_count: i64 = sessions::table
            .filter(ended_before!(ended_before))
            .count()
            .get_result(c)?;
        let personal: i64 = personal_access_tokens::table
            .filter(personal_access_tokens::session_id.eq_any(ended()))
            .count()
            .get_result(c)?;
        let codes: i64 = auth_codes::table
            .filter(auth_codes::session_id.eq_any(ended().select(sessions::id.nullable())).or(auth_codes::expires_at.lt(ended_before)))
            .count()
            .get_result(c)?;
        Ok(Counts {
            sessions: session_count as u64,
            personal_access_tokens: personal as u64,
            auth_codes: codes as u64,
        })
    })
}
