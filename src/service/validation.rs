//! Bearer-token validation for tokend's own API: the signature and claims, then one indexed lookup
//! that proves the token, its session and its user are all still live. No cache decides "not
//! revoked", so a revocation through any node is seen by every node on the next request.

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
        Err(JwtError::UnknownKey) if jwt::kid_of(token).is_some() => {
            match ctx.keys.reload_for_unknown_kid(&ctx.pool).await {
                Ok(true) => verify(&ctx.keys.current()),
                _ => Err(JwtError::UnknownKey),
            }
        }
        other => other,
    }
}

/// Authenticates a bearer token: a JWT access token whose row, session and user are live.
pub async fn authenticate(ctx: &Ctx, token: &str) -> Result<Principal> {
    validate(ctx, token).await.map(|(principal, _)| principal)
}

/// [`authenticate`], also returning the token's claims.
pub async fn validate(ctx: &Ctx, token: &str) -> Result<(Principal, AccessClaims)> {
    if TokenKind::of(token).is_some() {
        return Err(invalid("this token is not an access token"));
    }
    let claims = verify_jwt(ctx, token, true).await.map_err(|e| match e {
        JwtError::Expired => invalid("the access token has expired"),
        _ => invalid("the access token is invalid"),
    })?;
    let jti = claims.jti.clone();
    let found = ctx
        .pool
        .run(move |conn| store::tokens::find_access_context(conn, &jti).map_err(ServiceError::from))
        .await?;
    let Some((row, session, user)) = found else {
        return Err(invalid("the access token is invalid"));
    };
    let now = store::now();
    if row.revoked_at.is_some() || session.revoked_at.is_some() {
        return Err(invalid("the access token has been revoked"));
    }
    if row.expires_at <= now || session.expires_at <= now {
        return Err(invalid("the access token has expired"));
    }
    if session.id != claims.sid || session.client_id != claims.client_id {
        return Err(invalid("the access token is invalid"));
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
        scopes: ScopeSetView(ScopeSet::from_stored(&row.scope).to_vec()),
    };
    Ok((principal, claims))
}
