//! Queries on `sessions`: opening, finding, rotating the refresh chain, recording use. Ending
//! sessions lives in [`super::revocation`].
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite
//! (3.47+) plans with the bound LIMIT value, so rebinding it expires the cached statement and every
//! execution parsed and planned the query again (docs/benchmarks.md).

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text, Timestamp};

use super::models::Session;
use super::schema::{sessions, users};
use super::{Conn, Result};
use crate::db;

pub fn insert(conn: &mut Conn, session: &Session) -> Result<()> {
    db!(conn, c => diesel::insert_into(sessions::table).values(session).execute(c))?;
    Ok(())
}

pub fn find(conn: &mut Conn, id: &str) -> Result<Option<Session>> {
    Ok(db!(conn, c => sessions::table
        .find(id)
        .select(Session::as_select())
        .get_result(c)
        .optional())?)
}

/// What a session's user looks like to a token check: name, admin flag, disabled mark.
pub type UserMark = (String, bool, Option<NaiveDateTime>);

/// A session and (for a user's session) its user's mark, in one primary-key lookup: everything
/// validating an access token or classifying a refresh token needs.
pub fn find_with_user(conn: &mut Conn, id: &str) -> Result<Option<(Session, Option<UserMark>)>> {
    Ok(db!(conn, c => sessions::table
        .left_join(users::table)
        .filter(sessions::id.eq(id))
        .select((
            Session::as_select(),
            (users::username, users::is_admin, users::disabled_at).nullable(),
        ))
        .get_result(c)
        .optional())?)
}

/// A user's live sessions, newest first: not ended, and for a session with a refresh chain, still
/// refreshable or holding an unexpired access token (a device idle past its refresh lifetime is
/// gone from the list, as it is from the user's reach).
pub fn list_active(conn: &mut Conn, user_id: &str, now: NaiveDateTime) -> Result<Vec<Session>> {
    Ok(db!(conn, c => sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(
            sessions::refresh_expires_at
                .is_null()
                .or(sessions::refresh_expires_at.gt(now))
                .or(sessions::access_expires_at.gt(now)),
        )
        .order(sessions::created_at.desc())
        .select(Session::as_select())
        .load(c))?)
}

/// Moves a session's refresh chain from `from_generation` to the next one, only if that is still
/// its generation and the session and its refresh token are live: the one statement that decides
/// which of several concurrent refreshes rotates. 1 for the winner, 0 for everyone else.
pub fn rotate(conn: &mut Conn, rotation: &Rotation<'_>) -> Result<usize> {
    Ok(db!(conn, c => rotation.execute(c))?)
}

/// Records an access token issued for the current generation without rotating (a replay inside
/// the grace window), only while that is still the generation and the session is live. 1 or 0.
pub fn reissue(conn: &mut Conn, reissue: &Reissue<'_>) -> Result<usize> {
    Ok(db!(conn, c => reissue.execute(c))?)
}

/// Records use of a session: its first use, then at most once per `every` (the row is only
/// written when `last_used_at` is older than that), so a busy token costs one write a minute, not
/// one a request. A single autocommit statement: no lock outlives it.
pub fn touch_if_stale(
    conn: &mut Conn,
    id: &str,
    now: NaiveDateTime,
    every: chrono::TimeDelta,
) -> Result<usize> {
    let touch = TouchSession {
        id,
        now,
        unless_since: now - every,
    };
    Ok(db!(conn, c => touch.execute(c))?)
}

// The UPDATEs on every refresh and validation, written out so that the connection keeps them
// prepared. diesel never keeps an UPDATE built with its DSL prepared (its SQL may vary with the
// changeset's values, and its cache is keyed by the Rust type): every execution parsed and
// planned it again, 7 % of the server's CPU under refresh load and inside the write lock
// (docs/benchmarks.md). These never vary, so they have a static query id and are cached like
// any SELECT. Every refresh test runs them on both backends.

/// [`rotate`]'s statement.
#[derive(Clone, Copy)]
pub struct Rotation<'a> {
    pub session_id: &'a str,
    pub from_generation: i64,
    pub now: NaiveDateTime,
    /// The new refresh token's idle expiry.
    pub refresh_expires_at: NaiveDateTime,
    /// The new access token's expiry.
    pub access_expires_at: NaiveDateTime,
}

/// `access_expires_at` only moves forward (a shorter TTL configured later must not hide a
/// longer-lived token issued before it from the revocation counts).
fn push_access_expiry<'b, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    at: &'b NaiveDateTime,
) -> QueryResult<()>
where
    DB: Backend + HasSqlType<Timestamp>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    out.push_sql("access_expires_at = CASE WHEN access_expires_at > ");
    out.push_bind_param::<Timestamp, _>(at)?;
    out.push_sql(" THEN access_expires_at ELSE ");
    out.push_bind_param::<Timestamp, _>(at)?;
    out.push_sql(" END");
    Ok(())
}

/// `WHERE` of both chain statements: this session, at this generation, live, and its current
/// refresh token not idled out.
fn push_chain_filter<'b, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    id: &'b str,
    generation: &'b i64,
    now: &'b NaiveDateTime,
) -> QueryResult<()>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    out.push_sql(" WHERE id = ");
    out.push_bind_param::<Text, _>(id)?;
    out.push_sql(" AND refresh_generation = ");
    out.push_bind_param::<BigInt, _>(generation)?;
    out.push_sql(" AND revoked_at IS NULL AND expires_at > ");
    out.push_bind_param::<Timestamp, _>(now)?;
    out.push_sql(" AND refresh_expires_at > ");
    out.push_bind_param::<Timestamp, _>(now)?;
    Ok(())
}

impl<DB> QueryFragment<DB> for Rotation<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "UPDATE sessions SET refresh_generation = refresh_generation + 1, rotated_at = ",
        );
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", last_used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", refresh_expires_at = ");
        out.push_bind_param::<Timestamp, _>(&self.refresh_expires_at)?;
        out.push_sql(", ");
        push_access_expiry(&mut out, &self.access_expires_at)?;
        push_chain_filter(&mut out, self.session_id, &self.from_generation, &self.now)
    }
}

impl QueryId for Rotation<'_> {
    type QueryId = Rotation<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C> RunQueryDsl<C> for Rotation<'_> {}

/// [`reissue`]'s statement.
#[derive(Clone, Copy)]
pub struct Reissue<'a> {
    pub session_id: &'a str,
    pub generation: i64,
    pub now: NaiveDateTime,
    pub access_expires_at: NaiveDateTime,
}

impl<DB> QueryFragment<DB> for Reissue<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE sessions SET last_used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        push_access_expiry(&mut out, &self.access_expires_at)?;
        push_chain_filter(&mut out, self.session_id, &self.generation, &self.now)
    }
}

impl QueryId for Reissue<'_> {
    type QueryId = Reissue<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C> RunQueryDsl<C> for Reissue<'_> {}

/// [`touch_if_stale`]'s statement.
struct TouchSession<'a> {
    id: &'a str,
    now: NaiveDateTime,
    /// Only if the session was not used since then (or never).
    unless_since: NaiveDateTime,
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
        out.push_sql(" AND (last_used_at < ");
        out.push_bind_param::<Timestamp, _>(&self.unless_since)?;
        out.push_sql(" OR last_used_at = created_at)");
        Ok(())
    }
}

impl QueryId for TouchSession<'_> {
    type QueryId = TouchSession<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C> RunQueryDsl<C> for TouchSession<'_> {}
