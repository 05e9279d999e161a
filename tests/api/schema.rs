//! Schema invariants: every migration's down.sql really reverts it; every foreign key has an
//! index; SQLite runs with the settings DESIGN.md asks for.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use reqwest::StatusCode;
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
    assert_eq!(fks.len(), 7, "found the foreign keys: {fks:?}");
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

#[tokio::test]
async fn tokend_sqlite_synchronous_full_makes_every_commit_durable() {
    let app =
        spawn_app_with(|c| c.sqlite_synchronous = tokend::store::SqliteSynchronous::Full).await;
    if app.ctx.pool.backend() != Backend::Sqlite {
        return;
    }
    let synchronous = app
        .db(|conn| {
            Ok(db!(conn, c => diesel::sql_query(
                "SELECT CAST(synchronous AS TEXT) AS v FROM pragma_synchronous()"
            )
            .get_result::<Pragma>(c))?
            .v)
        })
        .await;
    assert_eq!(synchronous, "2", "FULL");
    // And it works: a sign-in and a refresh commit.
    let t = app.login("admin", ADMIN_PASSWORD).await;
    tokens(app.refresh(t.refresh()).await).await;
}

/// One statement per backend, with `{future}`/`{past}` standing for an hour from now / ago in
/// the UTC `TIMESTAMP` the schema stores.
fn at_times(conn: &tokend::store::Conn, sql: &str) -> String {
    let (future, past) = match conn.backend() {
        Backend::Sqlite => (
            "strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 hour')",
            "strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour')",
        ),
        Backend::Postgres => (
            "((now() AT TIME ZONE 'UTC') + interval '1 hour')",
            "((now() AT TIME ZONE 'UTC') - interval '1 hour')",
        ),
    };
    sql.replace("{future}", future).replace("{past}", past)
}

#[tokio::test]
async fn upgrading_from_token_rows_ends_v1_sessions_and_keeps_everything_else() {
    use diesel::connection::SimpleConnection as _;
    let app = spawn_app().await;
    app.create_user("ulla", "ulla-password", false).await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let pat = app.create_pat(&admin.access, "script", &["account"]).await;
    let pat = pat["token"].as_str().expect("token").to_owned();
    // Throttling state: one failed sign-in.
    app.password_grant("ulla", "wrong-password").await;
    let signed_in = admin.sid();
    let ended_before = app.login("admin", ADMIN_PASSWORD).await.sid();
    app.post(
        "/api/logout",
        &app.login("admin", ADMIN_PASSWORD).await.access,
    )
    .await;

    // Back to the previous release's schema, holding what v1 held for the two sign-ins: token
    // rows. One of them had already ended; one session is expired with its rows still there.
    let pool = app.ctx.pool.clone();
    let (signed_in2, ended2) = (signed_in.clone(), ended_before.clone());
    tokio::task::spawn_blocking(move || {
        // Back past every migration since 0.1: the newest first, storage v2 last.
        for expected in ["20261206020000", "20261206010000", "20261206000000"] {
            assert_eq!(pool.revert_last().expect("revert"), expected);
        }
        let mut conn = pool.get().expect("connection");
        let sql = at_times(
            &conn,
            &format!(
                "UPDATE sessions SET revoked_at = {{past}}, revoked_reason = 'logout' WHERE id = '{ended2}';
                 INSERT INTO sessions (id, user_id, client_id, kind, scope, created_at, last_used_at, expires_at)
                   SELECT 'v1-expired', user_id, client_id, kind, scope, created_at, created_at, {{past}}
                     FROM sessions WHERE id = '{signed_in2}';
                 INSERT INTO access_tokens (jti, session_id, scope, issued_at, expires_at)
                   VALUES ('v1-jti', '{signed_in2}', 'account admin', {{past}}, {{future}});
                 INSERT INTO refresh_tokens (id, token_hash, session_id, access_token_jti, issued_at, expires_at)
                   VALUES ('v1-rt', 'hash-1', '{signed_in2}', 'v1-jti', {{past}}, {{future}}),
                          ('v1-rt-ended', 'hash-2', '{ended2}', NULL, {{past}}, {{future}}),
                          ('v1-rt-expired', 'hash-3', 'v1-expired', NULL, {{past}}, {{past}});
                 INSERT INTO server_secrets (name, value, created_at)
                   VALUES ('refresh_successor_key', 'v1', {{past}});"
            ),
        );
        tokend::db!(&mut conn, c => c.batch_execute(&sql)).expect("v1 rows");
    })
    .await
    .expect("task");
    // The tables 0.1 had: every table but those of later migrations.
    let v1_tables: Vec<&'static str> = tokend::store::TABLES
        .into_iter()
        .filter(|t| *t != "status_list_blocks")
        .collect();
    let before = app.row_counts_of(&v1_tables).await;

    let pool = app.ctx.pool.clone();
    let applied = tokio::task::spawn_blocking(move || pool.migrate().expect("upgrade"))
        .await
        .expect("task");
    assert_eq!(applied.len(), 3, "{applied:?}");

    // The live v1 sign-in ended with its reason and one audit event; nothing else did.
    let session = app.session(&signed_in).await;
    assert_eq!(session.revoked_reason.as_deref(), Some("storage_upgrade"));
    assert!(
        session.access_expires_at.is_some(),
        "its v1 access token's expiry"
    );
    assert_eq!(
        app.session(&ended_before).await.revoked_reason.as_deref(),
        Some("logout")
    );
    assert!(app.session("v1-expired").await.revoked_at.is_none());
    let events = app.audit("session_ended").await;
    let upgrade: Vec<_> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("storage_upgrade"))
        .collect();
    assert_eq!(upgrade.len(), 1, "{events:?}");
    assert_eq!(upgrade[0].session_id.as_deref(), Some(signed_in.as_str()));
    assert_eq!(
        app.me(&admin.access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Users, clients, keys, personal tokens, audit events and throttling state survive.
    let after = app.row_counts_of(&v1_tables).await;
    for table in [
        "users",
        "clients",
        "signing_keys",
        "personal_access_tokens",
        "login_attempts",
        "sessions",
    ] {
        assert_eq!(after[table], before[table], "{table}");
    }
    assert_eq!(after["audit_events"], before["audit_events"] + 1);
    assert_eq!(
        after["server_secrets"],
        before["server_secrets"] - 1,
        "the v1 successor key is gone"
    );
    assert_eq!(app.me(&pat).await.status(), StatusCode::OK);
    let gone = app
        .ctx
        .pool
        .run(|conn| {
            Ok::<_, tokend::store::StoreError>(
                ["access_tokens", "refresh_tokens"]
                    .iter()
                    .map(|t| {
                        db!(conn, c => diesel::sql_query(format!("SELECT 1 FROM {t}")).execute(c))
                            .is_err()
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .expect("query");
    assert_eq!(gone, [true, true], "the token tables are dropped");

    // Signing in again works, with a v2 refresh token.
    let again = app.login("admin", ADMIN_PASSWORD).await;
    tokens(app.refresh(again.refresh()).await).await;
}

#[derive(QueryableByName, Debug)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[tokio::test]
async fn store_tables_names_every_table_of_the_schema() {
    // `store::TABLES` is what the row-count checks of the tests and the load benchmark read: a
    // table added by a migration must be added there, or those checks would not see it grow.
    let app = spawn_app().await;
    let mut names: Vec<String> = app
        .db(|conn| {
            let sql = match conn.backend() {
                Backend::Sqlite => {
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                      AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'"
                }
                Backend::Postgres => {
                    "SELECT table_name::text AS name FROM information_schema.tables
                      WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'"
                }
            };
            Ok(db!(conn, c => diesel::sql_query(sql).load::<TableName>(c))?)
        })
        .await
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    let mut expected: Vec<String> = tokend::store::TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}
