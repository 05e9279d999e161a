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

/// Sets a new password hash; `changed` marks a real password change (not a rehash).
pub fn set_password_hash(
    conn: &mut Conn,
    id: &str,
    hash: &str,
    now: NaiveDateTime,
    changed: bool,
) -> Result<usize> {
    Ok(db!(conn, c => if changed {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(hash),
                users::password_changed_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(c)
    } else {
        diesel::update(users::table.find(id))
            .set(users::password_hash.eq(hash))
            .execute(c)
    })?)
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
