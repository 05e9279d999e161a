//! What the scenarios need, written before the clock starts: a user, a confidential client for
//! introspection, and real sessions (each a session row, a signed access token with its row, and a
//! refresh token stored by its hash, exactly what a password grant writes) made in-process,
//! without Argon2, so 10,000 of them take seconds instead of minutes.

use diesel::prelude::*;
use tokend::config::{Config, SecretString};
use tokend::crypto::jwt::{self, AccessClaims};
use tokend::crypto::token::{OpaqueToken, TokenKind};
use tokend::service::bootstrap::{self, Purpose, CLI_CLIENT_ID};
use tokend::service::clients::{self, NewClient};
use tokend::service::Ctx;
use tokend::store::models::{AccessToken, RefreshToken, Session};
use tokend::store::schema::{access_tokens, refresh_tokens, sessions};
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
    let ctx2 = ctx.clone();
    let user_id = user_id.to_owned();
    let key = ctx.keys.signing_key()?;
    let tokens = ctx
        .pool
        .run(move |conn| {
            let now = store::now();
            let issuer = ctx2.config.issuer.clone();
            let access_ttl = chrono::TimeDelta::from_std(ctx2.config.access_token_ttl)
                .map_err(|e| store::StoreError::Unexpected(e.into()))?;
            let mut rows = Vec::with_capacity(n);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let session = Session {
                    id: uuid::Uuid::now_v7().to_string(),
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
                };
                let jti = uuid::Uuid::now_v7().to_string();
                let expires_at = now + access_ttl;
                let claims = AccessClaims {
                    iss: issuer.clone(),
                    sub: user_id.clone(),
                    aud: vec![issuer.clone()],
                    exp: expires_at.and_utc().timestamp(),
                    iat: now.and_utc().timestamp(),
                    nbf: now.and_utc().timestamp(),
                    jti: jti.clone(),
                    client_id: CLI_CLIENT_ID.to_owned(),
                    scope: "account".to_owned(),
                    sid: session.id.clone(),
                };
                let access = jwt::sign(&key, &claims)?;
                let refresh = OpaqueToken::generate(TokenKind::Refresh);
                let access_row = AccessToken {
                    jti: jti.clone(),
                    session_id: session.id.clone(),
                    scope: "account".to_owned(),
                    issued_at: now,
                    expires_at,
                    revoked_at: None,
                    revoked_reason: None,
                };
                let refresh_row = RefreshToken {
                    id: uuid::Uuid::now_v7().to_string(),
                    token_hash: refresh.hash().0,
                    session_id: session.id.clone(),
                    access_token_jti: Some(jti),
                    parent_id: None,
                    issued_at: now,
                    expires_at: now + chrono::TimeDelta::days(30),
                    used_at: None,
                    revoked_at: None,
                    revoked_reason: None,
                };
                rows.push((session, access_row, refresh_row));
                out.push(Tokens {
                    access,
                    refresh: refresh.into_inner(),
                });
            }
            conn.write(|conn| insert_all(conn, &rows))?;
            Ok::<_, store::StoreError>(out)
        })
        .await?;
    Ok(tokens)
}

/// Row by row inside the caller's one transaction: the store's own insert statements, so the rows
/// are exactly what a sign-in writes. (diesel's multi-row insert opens a transaction of its own on
/// SQLite, which cannot nest in ours.)
fn insert_all(conn: &mut Conn, rows: &[(Session, AccessToken, RefreshToken)]) -> store::Result<()> {
    for (session, access, refresh) in rows {
        store::tokens::insert_session(conn, session)?;
        store::tokens::insert_access_token(conn, access)?;
        store::tokens::insert_refresh_token(conn, refresh)?;
    }
    if let Conn::Postgres(c) = conn {
        use diesel::connection::SimpleConnection as _;
        (**c).batch_execute("ANALYZE sessions; ANALYZE access_tokens; ANALYZE refresh_tokens")?;
    }
    Ok(())
}

/// Live rows of a user left after a logout-all: (sessions, access tokens, refresh tokens).
pub async fn live_counts(ctx: &Ctx, user_id: &str) -> anyhow::Result<(i64, i64, i64)> {
    let user_id = user_id.to_owned();
    let counts = ctx
        .pool
        .run(move |conn| {
            let of_user = sessions::table
                .select(sessions::id)
                .filter(sessions::user_id.eq(user_id.clone()));
            Ok::<_, store::StoreError>(tokend::db!(conn, c => {
                let s: i64 = sessions::table
                    .filter(sessions::user_id.eq(user_id.clone()))
                    .filter(sessions::revoked_at.is_null())
                    .count()
                    .get_result(c)?;
                let a: i64 = access_tokens::table
                    .filter(access_tokens::session_id.eq_any(of_user.clone()))
                    .filter(access_tokens::revoked_at.is_null())
                    .count()
                    .get_result(c)?;
                let r: i64 = refresh_tokens::table
                    .filter(refresh_tokens::session_id.eq_any(of_user.clone()))
                    .filter(refresh_tokens::revoked_at.is_null())
                    .filter(refresh_tokens::used_at.is_null())
                    .count()
                    .get_result(c)?;
                (s, a, r)
            }))
        })
        .await?;
    Ok(counts)
}
