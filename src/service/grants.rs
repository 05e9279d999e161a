//! The token endpoint's grants: password, client credentials and refresh (rotation with reuse
//! detection and an optional grace window).

use std::sync::Arc;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::audit::{self, Event};
use super::clients::ClientInfo;
use super::revocation::{self, Reason};
use super::scope::{self, ScopeSet, ADMIN};
use super::throttle;
use super::{chrono_duration, new_id, Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::jwt::{self, AccessClaims};
use crate::crypto::keys::SigningKey;
use crate::crypto::password::Verified;
use crate::crypto::token::{OpaqueToken, TokenKind};
use crate::store::models::{AccessToken, RefreshToken, Session};
use crate::store::{self, Conn};

/// Longest password tokend will hash (SECURITY.md 24): longer ones are refused before Argon2.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Session kinds.
pub const KIND_PASSWORD: &str = "password";
pub const KIND_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const KIND_AUTHORIZATION_CODE: &str = "authorization_code";

const BAD_CREDENTIALS: &str = "invalid username or password";
const BAD_REFRESH: &str = "the refresh token is invalid, expired or revoked";

/// A new, live session's row (the caller inserts it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_session(
    user_id: Option<String>,
    client_id: &str,
    kind: &str,
    scope: &ScopeSet,
    device_name: Option<String>,
    meta: &RequestMeta,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Session {
    Session {
        id: new_id(),
        user_id,
        client_id: client_id.to_owned(),
        kind: kind.to_owned(),
        scope: scope.to_string(),
        device_name,
        user_agent: meta
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(500).collect()),
        ip: meta.ip.clone(),
        created_at: now,
        last_used_at: now,
        expires_at,
        revoked_at: None,
        revoked_reason: None,
    }
}

/// Signs an access token for `session` and writes its row (inside the caller's transaction).
fn issue_access_token(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &SigningKey,
    session: &Session,
    client: &ClientInfo,
    scope: &ScopeSet,
    now: NaiveDateTime,
) -> store::Result<(String, String, i64)> {
    let signed = sign_access_token(ctx, key, session, client, scope, now)?;
    store::tokens::insert_access_token(conn, &signed.row)?;
    Ok((signed.token, signed.row.jti, signed.expires_in))
}

/// An access token signed for a session, and the row that makes it valid once written.
struct SignedAccess {
    token: String,
    row: AccessToken,
    expires_in: i64,
}

fn sign_access_token(
    ctx: &Ctx,
    key: &SigningKey,
    session: &Session,
    client: &ClientInfo,
    scope: &ScopeSet,
    now: NaiveDateTime,
) -> store::Result<SignedAccess> {
    let expires_at = (now + chrono_duration(ctx.config.access_token_ttl)).min(session.expires_at);
    let jti = new_id();
    let issuer = ctx.config.issuer.clone();
    let mut aud = vec![issuer.clone()];
    aud.extend(client.audiences.iter().filter(|a| **a != issuer).cloned());
    let claims = AccessClaims {
        iss: issuer,
        sub: session
            .user_id
            .clone()
            .unwrap_or_else(|| client.client_id.clone()),
        aud,
        exp: expires_at.and_utc().timestamp(),
        iat: now.and_utc().timestamp(),
        nbf: now.and_utc().timestamp(),
        jti: jti.clone(),
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        sid: session.id.clone(),
    };
    let token = jwt::sign(key, &claims)?;
    Ok(SignedAccess {
        token,
        row: AccessToken {
            jti,
            session_id: session.id.clone(),
            scope: scope.to_string(),
            issued_at: now,
            expires_at,
            revoked_at: None,
            revoked_reason: None,
        },
        expires_in: (expires_at - now).num_seconds().max(0),
    })
}

fn refresh_row(
    ctx: &Ctx,
    token: &OpaqueToken,
    session: &Session,
    access_jti: &str,
    parent_id: Option<String>,
    now: NaiveDateTime,
) -> RefreshToken {
    RefreshToken {
        id: new_id(),
        token_hash: token.hash().0,
        session_id: session.id.clone(),
        access_token_jti: Some(access_jti.to_owned()),
        parent_id,
        issued_at: now,
        expires_at: (now + chrono_duration(ctx.config.refresh_token_ttl)).min(session.expires_at),
        used_at: None,
        revoked_at: None,
        revoked_reason: None,
    }
}

/// Records a failed sign-in and returns the error the caller answers with. The answer is the same
/// whatever the reason, so unknown users and wrong passwords cannot be told apart.
/// `throttle_keys`: the username and address the failure counts against (none for an attempt that
/// was refused because it was throttled already).
async fn signin_failure(
    ctx: &Ctx,
    user_id: Option<String>,
    reason: &'static str,
    client: &ClientInfo,
    throttle_keys: Vec<String>,
    meta: RequestMeta,
) -> ServiceError {
    let client_id = client.client_id.clone();
    let config = ctx.config.clone();
    let recorded = ctx
        .pool
        .run(move |conn| {
            conn.write(|conn| {
                throttle::record_failure(conn, &config, &throttle_keys, store::now())?;
                let event = Event {
                    kind: "signin_failure",
                    reason: Some(reason),
                    user_id: user_id.as_deref(),
                    client_id: Some(&client_id),
                    ..Default::default()
                };
                audit::record(conn, event, &meta)
            })
            .map_err(ServiceError::from)
        })
        .await;
    match recorded {
        Ok(()) => ServiceError::InvalidGrant(BAD_CREDENTIALS.to_owned()),
        Err(err) => err,
    }
}

/// Answers a throttled sign-in (429 after `seconds`). It writes nothing: a flood of attempts
/// against a blocked name must not become a flood of writes that slows refreshes (DESIGN.md: a
/// flood of logins slows logins only). The block itself was audited with the failure that
/// caused it.
fn throttled(seconds: u64, client: &ClientInfo) -> ServiceError {
    tracing::warn!(client_id = %client.client_id, retry_after = seconds, "sign-in throttled");
    ServiceError::Throttled(seconds)
}

/// A user whose password checked out, and the new hash when the stored one needs upgrading.
pub struct SignedIn {
    pub user: crate::store::models::User,
    pub rehash: Option<String>,
}

/// Checks a username and password the way every sign-in does (the password grant and the sign-in
/// page): throttled before any Argon2 work, the same answer for an unknown user and a wrong
/// password, each failure counted and audited.
pub(crate) async fn verify_credentials(
    ctx: &Ctx,
    client: &ClientInfo,
    username: String,
    password: String,
    meta: &RequestMeta,
) -> Result<SignedIn> {
    let throttle_keys = throttle::keys(&username, meta);
    if password.chars().count() > MAX_PASSWORD_LEN || username.len() > 256 {
        // Refused before Argon2 ever sees it (SECURITY.md 24), and still audited and counted.
        return Err(signin_failure(
            ctx,
            None,
            "credentials_too_long",
            client,
            throttle_keys,
            meta.clone(),
        )
        .await);
    }
    let (lookup, keys) = (username.clone(), throttle_keys.clone());
    let user = ctx
        .pool
        .run(move |conn| {
            // A throttled name or address is refused before any Argon2 work.
            throttle::check(conn, &keys, store::now())?;
            store::users::find_by_username(conn, &lookup).map_err(ServiceError::from)
        })
        .await;
    let user = match user {
        Err(ServiceError::Throttled(seconds)) => return Err(throttled(seconds, client)),
        other => other?,
    };
    // Guesses sent all at once pass the first check together and queue for Argon2. Each looks
    // again when its turn comes, and holds the turn until its own failure is written, so once a
    // name or address is blocked at most one guess per turn (per core) is still in flight.
    let turn = ctx.hasher.turn().await?;
    let keys = throttle_keys.clone();
    let recheck = ctx
        .pool
        .run(move |conn| throttle::check(conn, &keys, store::now()))
        .await;
    if let Err(ServiceError::Throttled(seconds)) = recheck {
        drop(turn);
        return Err(throttled(seconds, client));
    }
    recheck?;
    let verified = ctx
        .hasher
        .verify_in_turn(
            &turn,
            password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let failure = match (&user, verified) {
        (None, _) => Some("unknown_user"),
        (Some(_), Verified::No) => Some("bad_password"),
        (Some(u), Verified::Yes { .. }) if u.disabled_at.is_some() => Some("user_disabled"),
        _ => None,
    };
    if let Some(reason) = failure {
        let user_id = user.as_ref().map(|u| u.id.clone());
        let recorded =
            signin_failure(ctx, user_id, reason, client, throttle_keys, meta.clone()).await;
        drop(turn);
        return Err(recorded);
    }
    // Released before a rehash takes a turn of its own.
    drop(turn);
    let Some(user) = user else {
        return Err(ServiceError::InvalidGrant(BAD_CREDENTIALS.to_owned()));
    };
    let rehash = match verified {
        Verified::Yes { needs_rehash: true } => Some(ctx.hasher.hash(password).await?),
        _ => None,
    };
    Ok(SignedIn { user, rehash })
}

/// The scopes `client` may grant to `user`: the client's, less `admin` for a user who is not one.
pub(crate) fn allowed_scopes(client: &ClientInfo, user: &crate::store::models::User) -> ScopeSet {
    let allowed = client.scope_set();
    if user.is_admin {
        allowed
    } else {
        allowed.without(ADMIN)
    }
}

/// A successful sign-in, inside the caller's transaction: the throttle counters reset, and the
/// password hash upgraded when it was made with older parameters.
pub(crate) fn record_signin_in_tx(conn: &mut Conn, signed_in: &SignedIn) -> store::Result<()> {
    throttle::record_success(conn, &signed_in.user.username)?;
    if let Some(hash) = &signed_in.rehash {
        store::users::set_password_hash(conn, &signed_in.user.id, hash, store::now(), false)?;
    }
    Ok(())
}

/// A new user session: its row, an access token and a refresh token, and an audit event (inside
/// the caller's transaction).
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_user_session_in_tx(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &SigningKey,
    signed_in: &SignedIn,
    client: &ClientInfo,
    granted: &ScopeSet,
    kind: &str,
    device_name: Option<String>,
    meta: &RequestMeta,
) -> store::Result<(Session, TokenResponse)> {
    let now = store::now();
    let user = &signed_in.user;
    let session = new_session(
        Some(user.id.clone()),
        &client.client_id,
        kind,
        granted,
        device_name.map(|d| d.chars().take(200).collect::<String>()),
        meta,
        now,
        now + chrono_duration(ctx.config.session_max_age),
    );
    store::tokens::insert_session(conn, &session)?;
    let (access_token, jti, expires_in) =
        issue_access_token(conn, ctx, key, &session, client, granted, now)?;
    // A refresh token only for a client that may use the refresh grant.
    let refresh = if client.allows_grant("refresh_token") {
        let refresh = OpaqueToken::generate(TokenKind::Refresh);
        store::tokens::insert_refresh_token(
            conn,
            &refresh_row(ctx, &refresh, &session, &jti, None, now),
        )?;
        Some(refresh)
    } else {
        None
    };
    audit::record(
        conn,
        Event {
            // A code's sign-in was recorded when the code was issued.
            kind: match kind {
                KIND_AUTHORIZATION_CODE => "code_exchanged",
                _ => "signin_success",
            },
            reason: Some(match kind {
                KIND_AUTHORIZATION_CODE => "authorization_code",
                _ => "password_grant",
            }),
            user_id: Some(&user.id),
            session_id: Some(&session.id),
            client_id: Some(&client.client_id),
            ..Default::default()
        },
        meta,
    )?;
    let response = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: refresh.map(OpaqueToken::into_inner),
        scope: granted.to_string(),
    };
    Ok((session, response))
}

/// The password grant (RFC 6749 §4.3): first-party clients that list it only.
pub async fn password(
    ctx: &Ctx,
    client: ClientInfo,
    username: String,
    password: String,
    requested: Option<ScopeSet>,
    device_name: Option<String>,
    meta: RequestMeta,
) -> Result<TokenResponse> {
    client.require_grant("password")?;
    let signed_in = verify_credentials(ctx, &client, username, password, &meta).await?;
    let allowed = allowed_scopes(&client, &signed_in.user);
    let granted = scope::grant(requested.as_ref(), &allowed).map_err(ServiceError::InvalidScope)?;
    let key = ctx.keys.signing_key()?;
    let ctx2 = ctx.clone();
    ctx.pool
        .run(move |conn| {
            conn.write(|conn| {
                record_signin_in_tx(conn, &signed_in)?;
                open_user_session_in_tx(
                    conn,
                    &ctx2,
                    &key,
                    &signed_in,
                    &client,
                    &granted,
                    KIND_PASSWORD,
                    device_name,
                    &meta,
                )
                .map(|(_, response)| response)
            })
            .map_err(ServiceError::from)
        })
        .await
}

/// The client credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token.
/// The user-bound scopes `account` and `admin` are never granted to a client alone.
pub async fn client_credentials(
    ctx: &Ctx,
    client: ClientInfo,
    requested: Option<ScopeSet>,
    meta: RequestMeta,
) -> Result<TokenResponse> {
    if client.public {
        return Err(ServiceError::UnauthorizedClient(
            "public clients may not use the client_credentials grant".to_owned(),
        ));
    }
    client.require_grant("client_credentials")?;
    let allowed = client.scope_set().without(scope::ACCOUNT).without(ADMIN);
    let granted = scope::grant(requested.as_ref(), &allowed).map_err(ServiceError::InvalidScope)?;
    let key = ctx.keys.signing_key()?;
    let ctx2 = ctx.clone();
    ctx.pool
        .run(move |conn| {
            conn.write(|conn| {
                let now = store::now();
                let session = new_session(
                    None,
                    &client.client_id,
                    KIND_CLIENT_CREDENTIALS,
                    &granted,
                    None,
                    &meta,
                    now,
                    now + chrono_duration(ctx2.config.access_token_ttl),
                );
                store::tokens::insert_session(conn, &session)?;
                let (access_token, _, expires_in) =
                    issue_access_token(conn, &ctx2, &key, &session, &client, &granted, now)?;
                Ok(TokenResponse {
                    access_token,
                    token_type: "Bearer",
                    expires_in,
                    refresh_token: None,
                    scope: granted.to_string(),
                })
            })
            .map_err(ServiceError::from)
        })
        .await
}

/// What one attempt at a refresh found.
enum Refreshed {
    Issued(TokenResponse),
    /// A rotated token came back outside the grace window: the session was revoked (committed).
    Reused,
    Refused(ServiceError),
}

/// The refresh grant (RFC 6749 §6) with rotation: the token is found by its hash and the new
/// access token signed before the write lock; one write transaction then marks the token used with
/// a conditional update (exactly one of many concurrent refreshes wins, and only while the token
/// and its session are still live) and writes the new pair. A rotated token presented again
/// revokes the whole session, except inside the grace window, where it gets the same successor
/// again and a fresh access token.
pub async fn refresh(
    ctx: &Ctx,
    client: ClientInfo,
    presented: String,
    requested: Option<ScopeSet>,
    meta: RequestMeta,
) -> Result<TokenResponse> {
    client.require_grant("refresh_token")?;
    if TokenKind::of(&presented) != Some(TokenKind::Refresh) || presented.len() > 200 {
        return Err(ServiceError::InvalidGrant(BAD_REFRESH.to_owned()));
    }
    let key = ctx.keys.signing_key()?;
    let ctx2 = ctx.clone();
    let outcome = ctx
        .pool
        .run(move |conn| {
            // The common case, a live token presented once, is prepared before the write lock
            // (the lookup, the checks, the signature) and only claimed and written under it.
            let token = OpaqueToken::from_presented(&presented);
            let prepared =
                prepare_rotation(conn, &ctx2, &key, &client, &token, requested.as_ref())?;
            if let Some(rotation) = prepared {
                if let Some(response) = conn.write(|conn| commit_rotation(conn, rotation))? {
                    return Ok(Refreshed::Issued(response));
                }
            }
            // Anything else (unknown, revoked, expired, already rotated, or claimed by a
            // concurrent refresh since the lookup) is decided under the write lock.
            conn.write(|conn| {
                refresh_in_tx(
                    conn,
                    &ctx2,
                    &key,
                    &client,
                    &presented,
                    requested.as_ref(),
                    &meta,
                )
            })
            .map_err(ServiceError::from)
        })
        .await?;
    match outcome {
        Refreshed::Issued(response) => Ok(response),
        Refreshed::Reused => Err(ServiceError::InvalidGrant(BAD_REFRESH.to_owned())),
        Refreshed::Refused(err) => Err(err),
    }
}

/// A rotation checked and signed outside the write lock, to be claimed and written under it.
struct Rotation {
    token_id: String,
    session_id: String,
    now: NaiveDateTime,
    access: SignedAccess,
    refresh: RefreshToken,
    successor: OpaqueToken,
    scope: String,
}

/// Looks the presented token up without the write lock and, when it is live, unused and belongs
/// to `client`'s live session, signs the new access token and derives the successor. `None` for
/// everything else: the caller then decides under the write lock, as [`refresh_in_tx`] does.
fn prepare_rotation(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &SigningKey,
    client: &ClientInfo,
    presented: &OpaqueToken,
    requested: Option<&ScopeSet>,
) -> store::Result<Option<Rotation>> {
    let now = store::now();
    let Some((token, session)) = store::tokens::find_refresh_by_hash(conn, &presented.hash().0)?
    else {
        return Ok(None);
    };
    let live = session.client_id == client.client_id
        && session.revoked_at.is_none()
        && session.expires_at > now
        && token.revoked_at.is_none()
        && token.used_at.is_none()
        && token.expires_at > now;
    if !live {
        return Ok(None);
    }
    let Ok(granted) = scope::grant(requested, &ScopeSet::from_stored(&session.scope)) else {
        return Ok(None);
    };
    let access = sign_access_token(ctx, key, &session, client, &granted, now)?;
    let successor = presented.successor(&ctx.successor_key);
    let refresh = refresh_row(
        ctx,
        &successor,
        &session,
        &access.row.jti,
        Some(token.id.clone()),
        now,
    );
    Ok(Some(Rotation {
        token_id: token.id,
        session_id: session.id,
        now,
        access,
        refresh,
        successor,
        scope: granted.to_string(),
    }))
}

/// Claims the prepared token (only if it is still unused and unrevoked, its session still live)
/// and writes the new pair. `None` when the claim lost: something changed since the lookup.
fn commit_rotation(conn: &mut Conn, rotation: Rotation) -> store::Result<Option<TokenResponse>> {
    let claimed =
        store::tokens::claim_refresh(conn, &rotation.token_id, &rotation.session_id, rotation.now)?;
    if claimed == 0 {
        return Ok(None);
    }
    store::tokens::insert_access_token(conn, &rotation.access.row)?;
    store::tokens::insert_refresh_token(conn, &rotation.refresh)?;
    store::tokens::touch_session(conn, &rotation.session_id, rotation.now)?;
    Ok(Some(TokenResponse {
        access_token: rotation.access.token,
        token_type: "Bearer",
        expires_in: rotation.access.expires_in,
        refresh_token: Some(rotation.successor.into_inner()),
        scope: rotation.scope,
    }))
}

fn refresh_in_tx(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &Arc<SigningKey>,
    client: &ClientInfo,
    presented: &str,
    requested: Option<&ScopeSet>,
    meta: &RequestMeta,
) -> store::Result<Refreshed> {
    let presented = OpaqueToken::from_presented(presented);
    let hash = presented.hash();
    let refused = || {
        Ok(Refreshed::Refused(ServiceError::InvalidGrant(
            BAD_REFRESH.to_owned(),
        )))
    };
    // Two passes at most: on PostgreSQL a concurrent refresh can win the conditional update after
    // we read the row; the second pass then sees it used and takes the reuse / grace path.
    for _ in 0..2 {
        let now = store::now();
        let Some((token, session)) = store::tokens::find_refresh_by_hash(conn, &hash.0)? else {
            return refused();
        };
        if session.client_id != client.client_id {
            return refused();
        }
        if session.revoked_at.is_some() || session.expires_at <= now || token.revoked_at.is_some() {
            return refused();
        }
        if let Some(used_at) = token.used_at {
            return replayed(
                conn, ctx, key, client, &presented, &token, &session, used_at, meta,
            );
        }
        if token.expires_at <= now {
            return refused();
        }
        let session_scope = ScopeSet::from_stored(&session.scope);
        let granted = match scope::grant(requested, &session_scope) {
            Ok(granted) => granted,
            Err(e) => return Ok(Refreshed::Refused(ServiceError::InvalidScope(e))),
        };
        if store::tokens::claim_refresh(conn, &token.id, &session.id, now)? == 0 {
            continue;
        }
        let (access_token, jti, expires_in) =
            issue_access_token(conn, ctx, key, &session, client, &granted, now)?;
        let successor = presented.successor(&ctx.successor_key);
        store::tokens::insert_refresh_token(
            conn,
            &refresh_row(ctx, &successor, &session, &jti, Some(token.id.clone()), now),
        )?;
        store::tokens::touch_session(conn, &session.id, now)?;
        return Ok(Refreshed::Issued(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token: Some(successor.into_inner()),
            scope: granted.to_string(),
        }));
    }
    refused()
}

/// A rotated refresh token came back. Inside the grace window, and while its successor is still
/// unused, the caller gets that same successor and a fresh access token; otherwise it is reuse.
#[allow(clippy::too_many_arguments)]
fn replayed(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &Arc<SigningKey>,
    client: &ClientInfo,
    presented: &OpaqueToken,
    token: &RefreshToken,
    session: &Session,
    used_at: NaiveDateTime,
    meta: &RequestMeta,
) -> store::Result<Refreshed> {
    let now = store::now();
    let grace = chrono_duration(ctx.config.refresh_reuse_grace);
    if !grace.is_zero() && now - used_at < grace {
        let successor = presented.successor(&ctx.successor_key);
        if let Some((child, _)) = store::tokens::find_refresh_by_hash(conn, &successor.hash().0)? {
            let child_live = child.parent_id.as_deref() == Some(token.id.as_str())
                && child.used_at.is_none()
                && child.revoked_at.is_none()
                && child.expires_at > now;
            if child_live {
                let scope = ScopeSet::from_stored(&session.scope);
                let (access_token, _, expires_in) =
                    issue_access_token(conn, ctx, key, session, client, &scope, now)?;
                return Ok(Refreshed::Issued(TokenResponse {
                    access_token,
                    token_type: "Bearer",
                    expires_in,
                    refresh_token: Some(successor.into_inner()),
                    scope: scope.to_string(),
                }));
            }
        }
    }
    let counts = revocation::end_session_in_tx(
        conn,
        &session.id,
        Reason::RefreshReuse,
        "refresh_reuse",
        Event {
            user_id: session.user_id.as_deref(),
            session_id: Some(&session.id),
            client_id: Some(&client.client_id),
            ..Default::default()
        },
        meta,
    )?;
    if counts.sessions_revoked > 0 {
        tracing::warn!(session_id = %session.id, client_id = %client.client_id, "refresh token reuse: session revoked");
    }
    Ok(Refreshed::Reused)
}
