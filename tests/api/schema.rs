//! Schema invariants: every migration's down.sql really reverts it; every foreign key has an
//! index; SQLite runs with the settings DESIGN.md asks for.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use tokend::db;
use tokend::store::Backend;

use crate::helpers::*;

#[tokio::test]
async fn migrations_revert_and_reapply() {
    let app = spawn_app().await;
    let pool = app.ctx.pool.clone();
    tokio::task::spawn_blocking(move || {
        pool.revert_all().expect("revert every migration");
        let applied = pool.migrate().expect("apply again");
        assert!(!applied.is_empty());
    })
    .await
    .expect("task");
}

#[derive(QueryableByName, Debug)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = BigInt)]
    indexed: i64,
}

#[tokio::test]
async fn every_foreign_key_has_an_index() {
    let app = spawn_app().await;
    let fks: Vec<ForeignKey> = app
        .db(|conn| {
            let sql = match conn.backend() {
                Backend::Sqlite => {
                    "SELECT m.name AS table_name, f.\"from\" AS column_name,
                        (SELECT COUNT(*) FROM pragma_index_list(m.name) il
                           JOIN pragma_index_info(il.name) ii
                          WHERE ii.seqno = 0 AND ii.name = f.\"from\") AS indexed
                       FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
                      WHERE m.type = 'table'"
                }
                Backend::Postgres => {
                    "SELECT c.conrelid::regclass::text AS table_name, a.attname::text AS column_name,
                        (SELECT COUNT(*) FROM pg_index i
                          WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])::bigint AS indexed
                       FROM pg_constraint c
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                      WHERE c.contype = 'f'"
                }
            };
            Ok(db!(conn, c => diesel::sql_query(sql).load::<ForeignKey>(c))?)
        })
        .await;
    assert_eq!(fks.len(), 11, "found the foreign keys: {fks:?}");
    let missing: Vec<String> = fks
        .iter()
        .filter(|f| f.indexed == 0)
        .map(|f| format!("{}.{}", f.table_name, f.column_name))
        .collect();
    assert!(
        missing.is_empty(),
        "foreign keys without an index: {missing:?}"
    );
}

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    v: String,
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout() {
    let app = spawn_app().await;
    if app.ctx.pool.backend() != Backend::Sqlite {
        return;
    }
    let read = |pragma: &'static str| {
        let column = if pragma == "busy_timeout" {
            "timeout"
        } else {
            pragma
        };
        let sql = format!("SELECT CAST({column} AS TEXT) AS v FROM pragma_{pragma}()");
        app.db(move |conn| Ok(db!(conn, c => diesel::sql_query(&sql).get_result::<Pragma>(c))?.v))
    };
    assert_eq!(read("journal_mode").await, "wal");
    assert_eq!(read("foreign_keys").await, "1");
    assert_eq!(read("synchronous").await, "1", "NORMAL");
    assert_ne!(read("busy_timeout").await, "0");
}
