//! Queries on `personal_access_tokens`. Each token is a session of kind `personal_access_token`:
//! its scope, expiry, last use and revocation live on the session row.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{PersonalAccessToken, Session};
use super::schema::{personal_access_tokens, sessions, users};
use super::sessions::UserMark;
use super::{Conn, Result};
use crate::db;

pub fn insert(conn: &mut Conn, token: &PersonalAccessToken) -> Result<()> {
    db!(conn, c => diesel::insert_into(personal_access_tokens::table).values(token).execute(c))?;
    Ok(())
}

/// What validating a personal access token needs, in one indexed lookup.
pub type PersonalTokenContext = (PersonalAccessToken, Session, UserMark);

pub fn find_by_hash(conn: &mut Conn, hash: &str) -> Result<Option<PersonalTokenContext>> {
    Ok(db!(conn, c => personal_access_tokens::table
        .inner_join(sessions::table)
        .inner_join(users::table)
        .filter(personal_access_tokens::token_hash.eq(hash))
        .select((
            PersonalAccessToken::as_select(),
            Session::as_select(),
            (users::username, users::is_admin, users::disabled_at),
        ))
        .get_result(c)
        .optional())?)
}

/// A user's live personal access tokens with their sessions, newest first.
pub fn list_live(
    conn: &mut Conn,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<(PersonalAccessToken, Session)>> {
    Ok(db!(conn, c => personal_access_tokens::table
        .inner_join(sessions::table)
        .filter(personal_access_tokens::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order(personal_access_tokens::created_at.desc())
        .select((PersonalAccessToken::as_select(), Session::as_select()))
        .load(c))?)
}

pub fn find(conn: &mut Conn, id: &str) -> Result<Option<(PersonalAccessToken, Session)>> {
    Ok(db!(conn, c => personal_access_tokens::table
        .inner_join(sessions::table)
        .filter(personal_access_tokens::id.eq(id))
        .select((PersonalAccessToken::as_select(), Session::as_select()))
        .get_result(c)
        .optional())?)
}
