//! Queries on `login_attempts` (sign-in throttling).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::LoginAttempt;
use super::schema::login_attempts;
use super::{Conn, Result};
use crate::db;

pub fn find(conn: &mut Conn, keys: &[String]) -> Result<Vec<LoginAttempt>> {
    Ok(db!(conn, c => login_attempts::table
        .filter(login_attempts::key.eq_any(keys))
        .select(LoginAttempt::as_select())
        .load(c))?)
}

/// Counts one more failure for `key` (starting a new window if the old one began before
/// `window_cutoff`) and returns the row. Call inside a write transaction.
pub fn add_failure(
    conn: &mut Conn,
    key: &str,
    now: NaiveDateTime,
    window_cutoff: NaiveDateTime,
) -> Result<LoginAttempt> {
    db!(conn, c => {
        diesel::update(
            login_attempts::table
                .find(key)
                .filter(login_attempts::window_started_at.lt(window_cutoff)),
        )
        .set((login_attempts::failures.eq(0), login_attempts::window_started_at.eq(now), login_attempts::blocked_until.eq(None::<NaiveDateTime>)))
        .execute(c)?;
        diesel::insert_into(login_attempts::table)
            .values(&LoginAttempt {
                key: key.to_owned(),
                failures: 1,
                window_started_at: now,
                blocked_until: None,
                updated_at: now,
            })
            .on_conflict(login_attempts::key)
            .do_update()
            .set((login_attempts::failures.eq(login_attempts::failures + 1), login_attempts::updated_at.eq(now)))
            .execute(c)?;
        Ok(login_attempts::table.find(key).select(LoginAttempt::as_select()).get_result(c)?)
    })
}

pub fn block_until(conn: &mut Conn, key: &str, until: NaiveDateTime) -> Result<()> {
    db!(conn, c => diesel::update(login_attempts::table.find(key))
        .set(login_attempts::blocked_until.eq(until))
        .execute(c))?;
    Ok(())
}

pub fn clear(conn: &mut Conn, key: &str) -> Result<()> {
    db!(conn, c => diesel::delete(login_attempts::table.find(key)).execute(c))?;
    Ok(())
}

/// Deletes rows nobody has touched since `before` (purge).
pub fn delete_stale(conn: &mut Conn, before: NaiveDateTime) -> Result<u64> {
    Ok(
        db!(conn, c => diesel::delete(login_attempts::table.filter(login_attempts::updated_at.lt(before))).execute(c))?
            as u64,
    )
}
