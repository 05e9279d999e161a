//! Queries on `clients`. A deleted client keeps its row (audit and session history point at it)
//! with `deleted_at` set, and is invisible to every lookup here.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::Client;
use super::schema::clients;
use super::{Conn, Result};
use crate::db;

pub fn insert(conn: &mut Conn, client: &Client) -> Result<()> {
    db!(conn, c => diesel::insert_into(clients::table).values(client).execute(c))?;
    Ok(())
}

pub fn find(conn: &mut Conn, id: &str) -> Result<Option<Client>> {
    Ok(db!(conn, c => clients::table
        .find(id)
        .filter(clients::deleted_at.is_null())
        .select(Client::as_select())
        .get_result(c)
        .optional())?)
}

pub fn list(conn: &mut Conn) -> Result<Vec<Client>> {
    Ok(db!(conn, c => clients::table
        .filter(clients::deleted_at.is_null())
        .order(clients::created_at.asc())
        .select(Client::as_select())
        .load(c))?)
}

/// Whether the client is still registered, holding its row against deletion until the caller's
/// transaction ends (PostgreSQL: `FOR SHARE`, which a deletion's `UPDATE` waits for and which
/// concurrent sign-ins on the same client do not; SQLite: its one writer already serializes).
/// A sign-in opens its session only after this, so a deletion either sees the session and revokes
/// it, or is seen here.
pub fn lock_registered(conn: &mut Conn, id: &str) -> Result<bool> {
    let query = clients::table
        .find(id)
        .filter(clients::deleted_at.is_null())
        .select(clients::id);
    let found = match conn {
        Conn::Sqlite(c, _) => query.get_result::<String>(&mut **c).optional()?,
        Conn::Postgres(c) => query
            .for_share()
            .get_result::<String>(&mut **c)
            .optional()?,
    };
    Ok(found.is_some())
}

pub fn mark_deleted(conn: &mut Conn, id: &str, now: NaiveDateTime) -> Result<usize> {
    Ok(
        db!(conn, c => diesel::update(clients::table.find(id).filter(clients::deleted_at.is_null()))
        .set(clients::deleted_at.eq(now))
        .execute(c))?,
    )
}
