//! What the scenarios need, written before the clock starts: a user, a confidential client for
//! introspection, and real sessions (each a session row holding its refresh chain, a signed access
//! token and the chain's first refresh token, exactly what a password grant writes) made in-process,
//! without Argon2, so 10,000 of them take seconds instead of minutes.

use diesel::prelude::*;
use tokend::config::{Config, SecretString};
use tokend::crypto::jwt::{self, AccessClaims};
use tokend::crypto::refresh::{self, RefreshSecret};
use tokend::service::bootstrap::{self, Purpose, CLI_CLIENT_ID};
use tokend::service::clients::{self, NewClient};
use tokend::service::Ctx;
use tokend::store::models::Session;
use tokend::store::schema::sessions;
use tokend::store::{self, Conn};

pub const USER_PASSWORD: &str = "loadgen-user-password";

/// One live session's tokens, as a client would hold them after signing in.
#[derive(Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// This process's own view of the server's database (same keys, same issuer).
pub async fn open(database_url: &str, issuer: &str) -> anyhow::Result<Ctx> {
    let mut config = Config::with_database(database_url)?;
    config.set_issuer(issuer);
    config.db_pool_size = 4;
    config.bootstrap_admin_password =
        Some(SecretString::new(crate::server::ADMIN_PASSWORD.to_owned()));
    tokio::task::spawn_blocking(move || bootstrap::open(config, Purpose::Serve)).await?
}

/// Creates a user (password [`USER_PASSWORD`]) and returns its id.
pub async fn user(ctx: &Ctx, username: &str) -> anyhow::Result<String> {
    let hash = tokend::crypto::password::hash_blocking(USER_PASSWORD)?;
    let username = username.to_owned();
    let user = ctx
        .pool
        .run(move |conn| {
            conn.write(|conn| {
                tokend::service::users::insert(conn, &username, hash, false)
                    .map_err(|e| store::StoreError::Unexpected(anyhow::anyhow!("{e}")))
            })
        })
        .await?;
    Ok(user.id)
}

/// A confidential client that may introspect: (client_id, client_secret).
/// Fills list 1 past the seeded sessions' block with revoked sessions at `percent` of its
/// entries, at random; returns how many.
pub async fn revoke_share_of_list(ctx: &Ctx, percent: i64) -> anyhow::Result<i64> {
    use diesel::connection::SimpleConnection as _;
    let last = store::status_lists::LIST_SIZE - 1;
    let first = store::status_lists::BLOCK_SIZE * 64;
    let added = ctx
        .pool
        .run(move |conn| {
            let (series, pick, cat) = match conn {
                store::Conn::Sqlite(..) => (
                    format!("WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) SELECT i FROM n"),
                    format!("abs(random()) % 100 < {percent}"),
                    "'revoked-' || i",
                ),
                store::Conn::Postgres(_) => (
                    format!("SELECT i FROM generate_series({first}, {last}) AS g(i)"),
                    format!("random() * 100 < {percent}"),
                    "'revoked-' || i::text",
                ),
            };
            let at = match conn {
                store::Conn::Sqlite(..) => "'2020-01-01 00:00:00'",
                store::Conn::Postgres(_) => "TIMESTAMP '2020-01-01 00:00:00'",
            };
            let sql = format!(
                "INSERT INTO sessions (id, user_id, client_id, kind, scope, created_at, last_used_at, expires_at,
                                       revoked_at, revoked_reason, refresh_generation, status_list, status_idx)
                 SELECT {cat}, NULL, '{CLI_CLIENT_ID}', 'client_credentials', '', {at}, {at}, {at}, {at}, 'logout', 0, 1, i
                   FROM ({series}) s WHERE {pick};
                 INSERT INTO status_list_blocks (list, block, claimed_at)
                 SELECT DISTINCT 1, status_idx / {block}, {at} FROM sessions
                  WHERE status_list = 1 AND status_idx >= {first}
                 ON CONFLICT DO NOTHING",
                block = store::status_lists::BLOCK_SIZE
            );
            conn.write(|conn| Ok(tokend::db!(conn, c => c.batch_execute(&sql))?))?;
            store::status_lists::revoked_indices(conn, 1).map(|v| v.len() as i64)
        })
        .await?;
    Ok(added)
}

pub async fn introspection_client(ctx: &Ctx) -> anyhow::Result<(String, String)> {
    let created = ctx
        .pool
        .run(move |conn| {
            conn.write(|conn| {
                clients::create(
                    conn,
                    NewClient {
                        client_id: Some("loadgen-resource-server".to_owned()),
                        name: "loadgen resource server".to_owned(),
                        public: false,
                        grant_types: vec!["client_credentials".to_owned()],
                        ..Default::default()
                    },
                )
                .map_err(|e| store::StoreError::Unexpected(anyhow::anyhow!("{e}")))
            })
        })
        .await?;
    let secret = created
        .client_secret
        .ok_or_else(|| anyhow::anyhow!("no secret"))?;
    Ok((created.client.client_id, secret))
}

/// `n` live sessions of `user_id` on the `tokend-cli` client, written in one transaction.
pub async fn sessions(ctx: &Ctx, user_id: &str, n: usize) -> anyhow::Result<Vec<Tokens>> {
    sessions_at(ctx, user_id, n, 0).await
}

/// As [`sessions`], each session as it stands after `refreshed` rotations: the same one row at
/// that generation, and the tokens of that generation.
pub async fn sessions_at(
    ctx: &Ctx,
    user_id: &str,
    n: usize,
    refreshed: i64,
) -> anyhow::Result<Vec<Tokens>> {
    let ctx2 = ctx.clone();
    let user_id = user_id.to_owned();
    let key = ctx.keys.signing_key()?;
    let tokens = ctx
        .pool
        .run(move |conn| {
            let now = store::now();
            let secrets = ctx2.secrets.clone().ok_or_else(|| {
                store::StoreError::Unexpected(anyhow::anyhow!("the server secrets are not loaded"))
            })?;
            let issuer = ctx2.config.issuer.clone();
            let access_ttl = chrono::TimeDelta::from_std(ctx2.config.access_token_ttl)
                .map_err(|e| store::StoreError::Unexpected(e.into()))?;
            let mut rows = Vec::with_capacity(n);
            let mut out = Vec::with_capacity(n);
            // Status-list entries as a node hands them out: blocks claimed in the database.
            let mut block: Option<(store::status_lists::Block, i64)> = None;
            for _ in 0..n {
                let (list, idx) = match block {
                    Some((b, next)) if next < b.first + store::status_lists::BLOCK_SIZE => {
                        block = Some((b, next + 1));
                        (b.list, next)
                    }
                    _ => {
                        let b = store::status_lists::claim_block(conn, now)?;
                        block = Some((b, b.first + 1));
                        (b.list, b.first)
                    }
                };
                let id = uuid::Uuid::now_v7().to_string();
                let expires_at = now + access_ttl;
                let secret = RefreshSecret::generate();
                let refresh = refresh::mint(&secrets.refresh_key, &id, refreshed, &secret)
                    .ok_or_else(|| store::StoreError::Unexpected(anyhow::anyhow!("mint")))?;
                let session = Session {
                    id,
                    user_id: Some(user_id.clone()),
                    client_id: CLI_CLIENT_ID.to_owned(),
                    kind: "password".to_owned(),
                    scope: "account".to_owned(),
                    device_name: Some("loadgen".to_owned()),
                    user_agent: None,
                    ip: Some("127.0.0.1".to_owned()),
                    created_at: now,
                    last_used_at: now,
                    expires_at: now + chrono::TimeDelta::days(90),
                    revoked_at: None,
                    revoked_reason: None,
                    refresh_generation: refreshed,
                    refresh_secret: Some(secret.to_stored()),
                    rotated_at: (refreshed > 0).then_some(now),
                    refresh_expires_at: Some(now + chrono::TimeDelta::days(30)),
                    access_expires_at: Some(expires_at),
                    parent_session_id: None,
                    status_list: Some(list),
                    status_idx: Some(idx),
                };
                let claims = AccessClaims {
                    iss: issuer.clone(),
                    sub: user_id.clone(),
                    aud: vec![issuer.clone()],
                    exp: expires_at.and_utc().timestamp(),
                    iat: now.and_utc().timestamp(),
                    nbf: now.and_utc().timestamp(),
                    jti: uuid::Uuid::now_v7().to_string(),
                    client_id: CLI_CLIENT_ID.to_owned(),
                    scope: "account".to_owned(),
                    sid: session.id.clone(),
                    status: Some(tokend::service::status_list::claim(
                        &issuer,
                        tokend::service::status_list::Entry { list, idx },
                    )),
                };
                let access = jwt::sign(&key, &claims)?;
                rows.push(session);
                out.push(Tokens { access, refresh });
            }
            conn.write(|conn| insert_all(conn, &rows))?;
            Ok::<_, store::StoreError>(out)
        })
        .await?;
    Ok(tokens)
}

/// Row by row inside the caller's one transaction: the store's own insert statement, so the rows
/// are exactly what a sign-in writes. (diesel's multi-row insert opens a transaction of its own on
/// SQLite, which cannot nest in ours.)
fn insert_all(conn: &mut Conn, rows: &[Session]) -> store::Result<()> {
    for session in rows {
        store::sessions::insert(conn, session)?;
    }
    if let Conn::Postgres(c) = conn {
        use diesel::connection::SimpleConnection as _;
        (**c).batch_execute("ANALYZE sessions")?;
    }
    Ok(())
}

/// What a logout-all left of a user: (live sessions, sessions with an unexpired access token,
/// sessions with a usable refresh token), all three from the one table that holds them.
pub async fn live_counts(ctx: &Ctx, user_id: &str) -> anyhow::Result<(i64, i64, i64)> {
    let user_id = user_id.to_owned();
    let counts = ctx
        .pool
        .run(move |conn| {
            let now = store::now();
            Ok::<_, store::StoreError>(tokend::db!(conn, c => {
                let live = || {
                    sessions::table
                        .filter(sessions::user_id.eq(user_id.clone()))
                        .filter(sessions::revoked_at.is_null())
                };
                let s: i64 = live().count().get_result(c)?;
                let a: i64 = live()
                    .filter(sessions::access_expires_at.gt(now))
                    .count()
                    .get_result(c)?;
                let r: i64 = live()
                    .filter(sessions::refresh_expires_at.gt(now))
                    .count()
                    .get_result(c)?;
                (s, a, r)
            }))
        })
        .await?;
    Ok(counts)
}

/// Rows in every table of the schema, by name: what a scenario grew.
pub async fn table_rows(ctx: &Ctx) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let counts = ctx
        .pool
        .run(|conn| {
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut counts = std::collections::BTreeMap::new();
            for table in tokend::store::TABLES {
                let n: N = tokend::db!(conn, c => diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")).get_result(c))?;
                counts.insert(table.to_owned(), n.n);
            }
            Ok::<_, store::StoreError>(counts)
        })
        .await?;
    Ok(counts)
}
