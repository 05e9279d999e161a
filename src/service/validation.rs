//! Bearer-token validation for tokend's own API: the signature and claims, then one primary-key
//! read of the token's session (`sid`) that proves the session and its user are still live. Access
//! tokens have no rows: the session is their only state. No cache decides "not revoked", so a
//! revocation through any node is seen by every node on the next request.

use serde::Serialize;

use super::scope::ScopeSet;
use super::{Ctx, Result, ServiceError};
use crate::crypto::jwt::{self, AccessClaims, JwtError};
use crate::crypto::keys::KeySet;
use crate::crypto::token::TokenKind;
use crate::store;

/// The caller a valid bearer token stands for.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub is_admin: bool,
    pub session_id: String,
    pub client_id: String,
    pub scopes: ScopeSetView,
    /// `access_token` (a JWT) or `personal_access_token`.
    pub token_use: &'static str,
}

/// A session's `last_used_at` is written at most this often (issue: Sanctum's per-request write).
pub const LAST_USED_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Records use of a live session if its mark is stale; a failure here never fails the request.
fn touch(conn: &mut store::Conn, session: &crate::store::models::Session) {
    let now = store::now();
    let never_used = session.last_used_at == session.created_at;
    if session.revoked_at.is_none() && (never_used || session.last_used_at < now - LAST_USED_EVERY)
    {
        // Never wait for it: if the write lock is taken right now, a later request records it.
        let touched = conn.write_if_free(|conn| {
            store::sessions::touch_if_stale(conn, &session.id, now, LAST_USED_EVERY)
        });
        if let Err(err) = touched {
            tracing::debug!(error = %err, "could not record session use");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ScopeSetView(pub Vec<String>);

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.0.iter().any(|s| s == scope)
    }
}

fn invalid(why: &str) -> ServiceError {
    ServiceError::InvalidToken(why.to_owned())
}

/// Verifies a JWT access token, reloading the key set once for a `kid` this node has not seen.
pub async fn verify_jwt(ctx: &Ctx, token: &str, check_exp: bool) -> Result<AccessClaims, JwtError> {
    let issuer = ctx.config.issuer.as_str();
    let verify = |keys: &KeySet| jwt::verify(token, keys, issuer, issuer, check_exp);
    match verify(&ctx.keys.current()) {
        Err(JwtError::UnknownKey) => match jwt::kid_of(token) {
            Some(kid) => match ctx.keys.reload_for_unknown_kid(&ctx.pool, &kid).await {
                Ok(true) => verify(&ctx.keys.current()),
                _ => Err(JwtError::UnknownKey),
            },
            None => Err(JwtError::UnknownKey),
        },
        other => other,
    }
}

/// Authenticates a bearer token: a JWT access token or a personal access token whose session and
/// user are live.
pub async fn authenticate(ctx: &Ctx, token: &str) -> Result<Principal> {
    match TokenKind::of(token) {
        Some(TokenKind::Personal) => authenticate_personal(ctx, token)
            .await
            .map(|(principal, _)| principal),
        Some(_) => Err(invalid("this token is not an access token")),
        None => validate(ctx, token).await.map(|(principal, _)| principal),
    }
}

/// Validates a personal access token; also returns its row (for introspection).
pub async fn authenticate_personal(
    ctx: &Ctx,
    token: &str,
) -> Result<(Principal, crate::store::models::PersonalAccessToken)> {
    if token.len() > 200 {
        return Err(invalid("the token is invalid"));
    }
    let hash = crate::crypto::token::OpaqueToken::from_presented(token).hash();
    let found = ctx
        .query(move |conn| {
            let found = store::personal_tokens::find_by_hash(conn, &hash.0)?;
            if let Some((_, session, _)) = &found {
                touch(conn, session);
            }
            Ok(found)
        })
        .await?;
    let Some((row, session, (username, is_admin, disabled_at))) = found else {
        return Err(invalid("the token is invalid"));
    };
    if !crate::crypto::constant_time_eq(
        &row.token_hash,
        &crate::crypto::token::OpaqueToken::from_presented(token)
            .hash()
            .0,
    ) {
        return Err(invalid("the token is invalid"));
    }
    if session.revoked_at.is_some() || disabled_at.is_some() {
        return Err(invalid("the token has been revoked"));
    }
    if !session.is_live(store::now()) {
        return Err(invalid("the token has expired"));
    }
    let principal = Principal {
        user_id: session.user_id,
        username: Some(username),
        is_admin,
        session_id: session.id,
        client_id: session.client_id,
        scopes: ScopeSetView(ScopeSet::from_stored(&session.scope).to_vec()),
        token_use: "personal_access_token",
    };
    Ok((principal, row))
}

/// Validates a JWT access token; also returns its claims.
pub async fn validate(ctx: &Ctx, token: &str) -> Result<(Principal, AccessClaims)> {
    if TokenKind::of(token).is_some() {
        return Err(invalid("this token is not an access token"));
    }
    let claims = verify_jwt(ctx, token, true).await.map_err(|e| match e {
        JwtError::Expired => invalid("the access token has expired"),
        _ => invalid("the access token is invalid"),
    })?;
    let sid = claims.sid.clone();
    let found = ctx
        .query(move |conn| {
            let found = store::sessions::find_with_user(conn, &sid)?;
            if let Some((session, _)) = &found {
                touch(conn, session);
            }
            Ok(found)
        })
        .await?;
    let Some((session, user)) = found else {
        return Err(invalid("the access token is invalid"));
    };
    if session.client_id != claims.client_id {
        return Err(invalid("the access token is invalid"));
    }
    if session.revoked_at.is_some() {
        return Err(invalid("the access token has been revoked"));
    }
    if !session.is_live(store::now()) {
        return Err(invalid("the access token has expired"));
    }
    let (username, is_admin) = match user {
        Some((_, _, Some(_))) => return Err(invalid("the access token has been revoked")),
        Some((name, admin, None)) => (Some(name), admin),
        None => (None, false),
    };
    let principal = Principal {
        user_id: session.user_id,
        username,
        is_admin,
        session_id: session.id,
        client_id: session.client_id,
        scopes: ScopeSetView(granted_scopes(&claims.scope, &session.scope)),
        token_use: "access_token",
    };
    Ok((principal, claims))
}

/// What an access token may do: the scopes it names that its session holds. A token only ever
/// names a subset (refresh narrows, never widens), so this is its claim; but a JWT signed with a
/// leaked key gets no more than the session it names.
fn granted_scopes(claimed: &str, session: &str) -> Vec<String> {
    let held = ScopeSet::from_stored(session);
    ScopeSet::from_stored(claimed)
        .iter()
        .filter(|s| held.contains(s))
        .map(str::to_owned)
        .collect()
}
