//! Purge: deleting what can never be used again, in small batches, each its own short transaction.
//!
//! - ended sessions (revoked, or past their absolute expiry, longer ago than the retention) go
//!   whole: their access tokens, refresh tokens and personal-token rows, then the session;
//! - expired access tokens go from every session (a refresh token's link to one becomes NULL);
//! - rotated refresh tokens of a live session stay: a replay of one must still be recognised as
//!   reuse (SECURITY.md 11), so they go only with their session.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{access_tokens, auth_codes, personal_access_tokens, refresh_tokens, sessions};
use super::{Conn, Result};
use crate::db;

/// Rows deleted (or, in a dry run, that would be).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = PurgeCounts)]
pub struct Counts {
    pub sessions: u64,
    pub access_tokens: u64,
    pub refresh_tokens: u64,
    pub personal_access_tokens: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.sessions += o.sessions;
        self.access_tokens += o.access_tokens;
        self.refresh_tokens += o.refresh_tokens;
        self.personal_access_tokens += o.personal_access_tokens;
    }
}

/// Up to `batch` ids of sessions that ended before `ended_before`.
pub fn ended_sessions(
    conn: &mut Conn,
    ended_before: NaiveDateTime,
    batch: i64,
) -> Result<Vec<String>> {
    Ok(db!(conn, c => sessions::table
        .select(sessions::id)
        .filter(sessions::revoked_at.lt(ended_before).or(sessions::expires_at.lt(ended_before)))
        .limit(batch)
        .load(c))?)
}

/// Deletes these sessions with every row that belongs to them (call inside a write transaction).
pub fn delete_sessions(conn: &mut Conn, ids: &[String]) -> Result<Counts> {
    db!(conn, c => {
        diesel::delete(auth_codes::table.filter(auth_codes::session_id.eq_any(ids))).execute(c)?;
        let personal = diesel::delete(personal_access_tokens::table.filter(personal_access_tokens::session_id.eq_any(ids)))
            .execute(c)?;
        let refresh = diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(ids))).execute(c)?;
        let access = diesel::delete(access_tokens::table.filter(access_tokens::session_id.eq_any(ids))).execute(c)?;
        let ended = diesel::delete(sessions::table.filter(sessions::id.eq_any(ids))).execute(c)?;
        Ok(Counts {
            sessions: ended as u64,
            access_tokens: access as u64,
            refresh_tokens: refresh as u64,
            personal_access_tokens: personal as u64,
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

/// Deletes up to `batch` access tokens that expired before `expired_before`.
pub fn delete_expired_access_tokens(
    conn: &mut Conn,
    expired_before: NaiveDateTime,
    batch: i64,
) -> Result<u64> {
    db!(conn, c => {
        let jtis: Vec<String> = access_tokens::table
            .select(access_tokens::jti)
            .filter(access_tokens::expires_at.lt(expired_before))
            .limit(batch)
            .load(c)?;
        if jtis.is_empty() {
            return Ok(0);
        }
        Ok(diesel::delete(access_tokens::table.filter(access_tokens::jti.eq_any(&jtis))).execute(c)? as u64)
    })
}

/// What a purge with these cut-offs would delete.
pub fn count(
    conn: &mut Conn,
    ended_before: NaiveDateTime,
    expired_before: NaiveDateTime,
) -> Result<Counts> {
    db!(conn, c => {
        let ended = || {
            sessions::table
                .select(sessions::id)
                .filter(sessions::revoked_at.lt(ended_before).or(sessions::expires_at.lt(ended_before)))
        };
        let session_count: i64 = sessions::table
            .filter(sessions::revoked_at.lt(ended_before).or(sessions::expires_at.lt(ended_before)))
            .count()
            .get_result(c)?;
        let refresh: i64 = refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(ended())).count().get_result(c)?;
        let personal: i64 = personal_access_tokens::table
            .filter(personal_access_tokens::session_id.eq_any(ended()))
            .count()
            .get_result(c)?;
        let access: i64 = access_tokens::table
            .filter(access_tokens::session_id.eq_any(ended()).or(access_tokens::expires_at.lt(expired_before)))
            .count()
            .get_result(c)?;
        Ok(Counts {
            sessions: session_count as u64,
            access_tokens: access as u64,
            refresh_tokens: refresh as u64,
            personal_access_tokens: personal as u64,
        })
    })
}
