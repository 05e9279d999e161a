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

pub fn mark_deleted(conn: &mut Conn, id: &str, now: NaiveDateTime) -> Result<usize> {
    Ok(
        db!(conn, c => diesel::update(clients::table.find(id).filter(clients::deleted_at.is_null()))
        .set(clients::deleted_at.eq(now))
        .execute(c))?,
    )
}
