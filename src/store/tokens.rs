//! Queries on `sessions`, `access_tokens` and `refresh_tokens`: issuing, finding and rotating.
//! Revocation lives in [`super::revocation`].
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite
//! (3.47+) plans with the bound LIMIT value, so rebinding it expires the cached statement and every
//! execution parsed and planned the query again (a third of a refresh's CPU; docs/benchmarks.md).

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Text, Timestamp};

use super::models::{AccessToken, PersonalAccessToken, RefreshToken, Session};
use super::schema::{access_tokens, personal_access_tokens, refresh_tokens, sessions, users};
use super::{Conn, Result};
use crate::db;

pub fn insert_session(conn: &mut Conn, session: &Session) -> Result<()> {
    db!(conn, c => diesel::insert_into(sessions::table).values(session).execute(c))?;
    Ok(())
}

pub fn insert_access_token(conn: &mut Conn, token: &AccessToken) -> Result<()> {
    db!(conn, c => diesel::insert_into(access_tokens::table).values(token).execute(c))?;
    Ok(())
}

pub fn insert_refresh_token(conn: &mut Conn, token: &RefreshToken) -> Result<()> {
    db!(conn, c => diesel::insert_into(refresh_tokens::table).values(token).execute(c))?;
    Ok(())
}

pub fn find_session(conn: &mut Conn, id: &str) -> Result<Option<Session>> {
    Ok(db!(conn, c => sessions::table
        .find(id)
        .select(Session::as_select())
        .get_result(c)
        .optional())?)
}

/// A refresh token by the SHA-256 of its value, with its session.
pub fn find_refresh_by_hash(
    conn: &mut Conn,
    hash: &str,
) -> Result<Option<(RefreshToken, Session)>> {
    Ok(db!(conn, c => refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(hash))
        .select((RefreshToken::as_select(), Session::as_select()))
        .get_result(c)
        .optional())?)
}

/// Marks a refresh token used, only if nobody else has, it is neither revoked nor expired, and its
/// session is live: the one statement that decides which of several concurrent refreshes
/// rotates. Returns 1 for the winner, 0 for everyone else.
pub fn claim_refresh(
    conn: &mut Conn,
    id: &str,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    let claim = ClaimRefresh {
        id,
        session_id,
        now,
    };
    Ok(db!(conn, c => claim.execute(c))?)
}

/// The child of a rotated refresh token, if one was issued.
pub fn find_refresh_child(conn: &mut Conn, parent_id: &str) -> Result<Option<RefreshToken>> {
    Ok(db!(conn, c => refresh_tokens::table
        .filter(refresh_tokens::parent_id.eq(parent_id))
        .select(RefreshToken::as_select())
        .first(c)
        .optional())?)
}

/// What validating an access token needs, in one indexed lookup: the token row, its session and
/// (for user sessions) the user's name, admin flag and disabled mark.
pub type AccessTokenContext = (
    AccessToken,
    Session,
    Option<(String, bool, Option<NaiveDateTime>)>,
);

pub fn find_access_context(conn: &mut Conn, jti: &str) -> Result<Option<AccessTokenContext>> {
    Ok(db!(conn, c => access_tokens::table
        .inner_join(sessions::table.left_join(users::table))
        .filter(access_tokens::jti.eq(jti))
        .select((
            AccessToken::as_select(),
            Session::as_select(),
            (users::username, users::is_admin, users::disabled_at).nullable(),
        ))
        .get_result(c)
        .optional())?)
}

/// A user's sessions that are neither revoked nor expired, newest first.
pub fn list_active_sessions(
    conn: &mut Conn,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<Session>> {
    Ok(db!(conn, c => sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order(sessions::created_at.desc())
        .select(Session::as_select())
        .load(c))?)
}

/// Every access token of a session (for tests of what the database holds, and for the admin view).
pub fn access_tokens_of_session(conn: &mut Conn, session_id: &str) -> Result<Vec<AccessToken>> {
    Ok(db!(conn, c => access_tokens::table
        .filter(access_tokens::session_id.eq(session_id))
        .order(access_tokens::issued_at.asc())
        .select(AccessToken::as_select())
        .load(c))?)
}

pub fn refresh_tokens_of_session(conn: &mut Conn, session_id: &str) -> Result<Vec<RefreshToken>> {
    Ok(db!(conn, c => refresh_tokens::table
        .filter(refresh_tokens::session_id.eq(session_id))
        .order(refresh_tokens::issued_at.asc())
        .select(RefreshToken::as_select())
        .load(c))?)
}

/// Records use of a session.
pub fn touch_session(conn: &mut Conn, id: &str, now: NaiveDateTime) -> Result<usize> {
    let touch = TouchSession {
        id,
        now,
        unless_since: None,
    };
    Ok(db!(conn, c => touch.execute(c))?)
}

pub fn insert_personal_token(conn: &mut Conn, token: &PersonalAccessToken) -> Result<()> {
    db!(conn, c => diesel::insert_into(personal_access_tokens::table).values(token).execute(c))?;
    Ok(())
}

/// What validating a personal access token needs, in one indexed lookup.
pub type PersonalTokenContext = (
    PersonalAccessToken,
    Session,
    (String, bool, Option<NaiveDateTime>),
);

pub fn find_personal_by_hash(conn: &mut Conn, hash: &str) -> Result<Option<PersonalTokenContext>> {
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
pub fn list_personal_tokens(
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

pub fn find_personal_token(
    conn: &mut Conn,
    id: &str,
) -> Result<Option<(PersonalAccessToken, Session)>> {
    Ok(db!(conn, c => personal_access_tokens::table
        .inner_join(sessions::table)
        .filter(personal_access_tokens::id.eq(id))
        .select((PersonalAccessToken::as_select(), Session::as_select()))
        .get_result(c)
        .optional())?)
}

/// Records use of a session: its first use, then at most once per `every` (the row is only
/// written when `last_used_at` is older than that), so a busy token costs one write a minute, not
/// one a request.
/// A single autocommit statement: no lock outlives it.
pub fn touch_session_if_stale(
    conn: &mut Conn,
    id: &str,
    now: NaiveDateTime,
    every: chrono::TimeDelta,
) -> Result<usize> {
    let touch = TouchSession {
        id,
        now,
        unless_since: Some(now - every),
    };
    Ok(db!(conn, c => touch.execute(c))?)
}

// The UPDATEs on every refresh and validation, written out so that the connection keeps them
// prepared. diesel never keeps an UPDATE built with its DSL prepared (its SQL may vary with the
// changeset's values, and its cache is keyed by the Rust type): every execution parsed and
// planned it again, 7 % of the server's CPU under refresh load and inside the write lock
// (docs/benchmarks.md). These never vary, so they have a static query id and are cached like
// any SELECT. The schema tests and every refresh test run them on both backends.

/// `claim_refresh`'s statement.
struct ClaimRefresh<'a> {
    id: &'a str,
    session_id: &'a str,
    now: NaiveDateTime,
}

impl<DB> QueryFragment<DB> for ClaimRefresh<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_tokens SET used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        out.push_sql(" AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" AND session_id IN (SELECT id FROM sessions WHERE id = ");
        out.push_bind_param::<Text, _>(self.session_id)?;
        out.push_sql(" AND revoked_at IS NULL AND expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryId for ClaimRefresh<'_> {
    type QueryId = ClaimRefresh<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C> RunQueryDsl<C> for ClaimRefresh<'_> {}

/// `touch_session`'s and `touch_session_if_stale`'s statement.
struct TouchSession<'a> {
    id: &'a str,
    now: NaiveDateTime,
    /// Only if the session was not used since then (or never).
    unless_since: Option<NaiveDateTime>,
}

impl<DB> QueryFragment<DB> for TouchSession<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE sessions SET last_used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        if let Some(since) = &self.unless_since {
            out.push_sql(" AND (last_used_at < ");
            out.push_bind_param::<Timestamp, _>(since)?;
            out.push_sql(" OR last_used_at = created_at)");
        }
        Ok(())
    }
}

impl QueryId for TouchSession<'_> {
    type QueryId = TouchSession<'static>;
    // Two SQL texts (with and without the staleness test): keyed by the text, not the type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C> RunQueryDsl<C> for TouchSession<'_> {}
