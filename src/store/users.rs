//! Queries on `users`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::User;
use super::schema::users;
use super::{Conn, Result};
use crate::db;

pub fn insert(conn: &mut Conn, user: &User) -> Result<()> {
    db!(conn, c => diesel::insert_into(users::table).values(user).execute(c))?;
    Ok(())
}

pub fn count(conn: &mut Conn) -> Result<i64> {
    Ok(db!(conn, c => users::table.count().get_result(c))?)
}

pub fn find_by_username(conn: &mut Conn, username: &str) -> Result<Option<User>> {
    Ok(db!(conn, c => users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .get_result(c)
        .optional())?)
}

pub fn find_by_id(conn: &mut Conn, id: &str) -> Result<Option<User>> {
    Ok(db!(conn, c => users::table
        .find(id)
        .select(User::as_select())
        .get_result(c)
        .optional())?)
}

/// What an opening transaction re-checks under the user's lock: when the password last changed,
/// and whether the user is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct UserLock {
    pub password_changed_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
}

/// Locks a user's row until the transaction ends and reads what issuance re-checks. Every
/// transaction that opens a session for the user and every user-wide revocation takes this lock
/// first, so neither can commit in the middle of the other (SECURITY.md 30). PostgreSQL: `SELECT
/// … FOR UPDATE`; SQLite: every write transaction holds the one write lock already.
pub fn lock(conn: &mut Conn, id: &str) -> Result<Option<UserLock>> {
    let query = users::table
        .find(id)
        .select((users::password_changed_at, users::disabled_at));
    Ok(match conn {
        Conn::Sqlite(c, _) => query.get_result::<UserLock>(&mut **c).optional()?,
        Conn::Postgres(c) => query
            .for_update()
            .get_result::<UserLock>(&mut **c)
            .optional()?,
    })
}

/// Sets a new password (a real change: `password_changed_at` moves, which is what sign-ins in
/// flight with the old password re-check).
pub fn set_password_hash(
    conn: &mut Conn,
    id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    Ok(db!(conn, c => diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(hash),
            users::password_changed_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(c))?)
}

/// Replaces a hash made with older Argon2 parameters, only if it is still the one the sign-in
/// verified: a password change committed meanwhile is never overwritten with the old password.
pub fn rehash_password(conn: &mut Conn, id: &str, verified: &str, rehashed: &str) -> Result<usize> {
    Ok(db!(conn, c => diesel::update(
            users::table.find(id).filter(users::password_hash.eq(verified)),
        )
        .set(users::password_hash.eq(rehashed))
        .execute(c))?)
}

pub fn set_disabled(
    conn: &mut Conn,
    id: &str,
    disabled_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<usize> {
    Ok(db!(conn, c => diesel::update(users::table.find(id))
        .set((users::disabled_at.eq(disabled_at), users::updated_at.eq(now)))
        .execute(c))?)
}

pub fn list(conn: &mut Conn) -> Result<Vec<User>> {
    Ok(db!(conn, c => users::table
        .order(users::username.asc())
        .select(User::as_select())
        .load(c))?)
}
