//! Queries on `signing_keys` and `server_secrets`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::SigningKeyRow;
use super::schema::{server_secrets, signing_keys};
use super::{Conn, Result};
use crate::db;

/// Keys that may still sign or verify: not retired, or retired after `retired_after`.
pub fn usable(conn: &mut Conn, retired_after: NaiveDateTime) -> Result<Vec<SigningKeyRow>> {
    Ok(db!(conn, c => signing_keys::table
        .filter(signing_keys::retired_at.is_null().or(signing_keys::retired_at.gt(retired_after)))
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(c))?)
}

pub fn insert(conn: &mut Conn, key: &SigningKeyRow) -> Result<()> {
    db!(conn, c => diesel::insert_into(signing_keys::table).values(key).execute(c))?;
    Ok(())
}

/// Retires every active key but `keep`.
pub fn retire_others(conn: &mut Conn, keep: &str, now: NaiveDateTime) -> Result<usize> {
    Ok(db!(conn, c => diesel::update(
        signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .filter(signing_keys::kid.ne(keep)),
    )
    .set(signing_keys::retired_at.eq(now))
    .execute(c))?)
}

pub fn all(conn: &mut Conn) -> Result<Vec<SigningKeyRow>> {
    Ok(db!(conn, c => signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(c))?)
}

/// Stores `value` under `name` unless a value is there already; returns the stored value, so every
/// node that races here ends up with the same secret.
pub fn secret_get_or_insert(
    conn: &mut Conn,
    name: &str,
    value: &str,
    now: NaiveDateTime,
) -> Result<String> {
    db!(conn, c => diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(value),
            server_secrets::created_at.eq(now),
        ))
        .on_conflict(server_secrets::name)
        .do_nothing()
        .execute(c))?;
    Ok(db!(conn, c => server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .get_result(c))?)
}

/// Inserts `name` unless present; true when this call inserted it (exactly one caller wins).
pub fn secret_insert_if_absent(
    conn: &mut Conn,
    name: &str,
    value: &str,
    now: NaiveDateTime,
) -> Result<bool> {
    let inserted = db!(conn, c => diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(value),
            server_secrets::created_at.eq(now),
        ))
        .on_conflict(server_secrets::name)
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Every row of `server_secrets` (the secrets, and the bootstrap marker) as (name, stored value),
/// by name.
pub fn secrets(conn: &mut Conn) -> Result<Vec<(String, String)>> {
    Ok(db!(conn, c => server_secrets::table
        .order(server_secrets::name)
        .select((server_secrets::name, server_secrets::value))
        .load(c))?)
}

pub fn secret_set(conn: &mut Conn, name: &str, value: &str) -> Result<()> {
    db!(conn, c => diesel::update(server_secrets::table.find(name))
        .set(server_secrets::value.eq(value))
        .execute(c))?;
    Ok(())
}
