//! Queries on `auth_codes` (the authorization code flow). Codes are looked up by their hash only.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::AuthCode;
use super::schema::auth_codes;
use super::{Conn, Result};
use crate::db;

pub fn insert(conn: &mut Conn, code: &AuthCode) -> Result<()> {
    db!(conn, c => diesel::insert_into(auth_codes::table).values(code).execute(c))?;
    Ok(())
}

pub fn find(conn: &mut Conn, code_hash: &str) -> Result<Option<AuthCode>> {
    Ok(db!(conn, c => auth_codes::table
        .find(code_hash)
        .select(AuthCode::as_select())
        .get_result(c)
        .optional())?)
}

/// Marks an unused code used; 0 when another request used it first.
pub fn claim(conn: &mut Conn, code_hash: &str, now: NaiveDateTime) -> Result<usize> {
    Ok(db!(conn, c => diesel::update(
            auth_codes::table
                .find(code_hash)
                .filter(auth_codes::used_at.is_null()),
        )
        .set(auth_codes::used_at.eq(now))
        .execute(c))?)
}

/// Records the session a code's first use opened, so that a second use can end it.
pub fn set_session(conn: &mut Conn, code_hash: &str, session_id: &str) -> Result<()> {
    db!(conn, c => diesel::update(auth_codes::table.find(code_hash))
        .set(auth_codes::session_id.eq(session_id))
        .execute(c))?;
    Ok(())
}
