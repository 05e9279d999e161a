//! Token introspection (RFC 7662): anything not usable right now is exactly `{"active": false}`.

use serde::Serialize;

use super::clients::ClientInfo;
use super::{Ctx, Result, ServiceError};
use crate::crypto::refresh;
use crate::crypto::token::TokenKind;
use crate::store;

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Details {
    pub scope: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub sub: String,
    pub token_type: &'static str,
    pub token_use: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub iat: i64,
    pub nbf: i64,
    pub aud: Vec<String>,
    pub iss: String,
    pub jti: String,
    pub sid: String,
}

const INACTIVE: Introspection = Introspection {
    active: false,
    details: None,
};

/// Introspects `token` for the confidential client `caller`.
pub async fn introspect(ctx: &Ctx, caller: &ClientInfo, token: &str) -> Result<Introspection> {
    match TokenKind::of(token) {
        Some(TokenKind::Refresh) => introspect_refresh(ctx, caller, token).await,
        Some(TokenKind::Personal) => {
            match super::validation::authenticate_personal(ctx, token).await {
                Ok((principal, row)) => Ok(Introspection {
                    active: true,
                    details: Some(Details {
                        scope: principal.scopes.0.join(" "),
                        client_id: principal.client_id,
                        username: principal.username,
                        sub: principal.user_id.unwrap_or_default(),
                        token_type: "Bearer",
                        token_use: "personal_access_token",
                        exp: row.expires_at.map(|t| t.and_utc().timestamp()),
                        iat: row.created_at.and_utc().timestamp(),
                        nbf: row.created_at.and_utc().timestamp(),
                        aud: vec![ctx.config.issuer.clone()],
                        iss: ctx.config.issuer.clone(),
                        jti: row.id,
                        sid: principal.session_id,
                    }),
                }),
                Err(ServiceError::InvalidToken(_)) => Ok(INACTIVE),
                Err(other) => Err(other),
            }
        }
        Some(_) => Ok(INACTIVE),
        None => match super::validation::validate(ctx, token).await {
            Ok((principal, claims)) => Ok(Introspection {
                active: true,
                details: Some(Details {
                    scope: principal.scopes.0.join(" "),
                    client_id: claims.client_id,
                    username: principal.username,
                    sub: claims.sub,
                    token_type: "Bearer",
                    token_use: "access_token",
                    exp: Some(claims.exp),
                    iat: claims.iat,
                    nbf: claims.nbf,
                    aud: claims.aud,
                    iss: claims.iss,
                    jti: claims.jti,
                    sid: claims.sid,
                }),
            }),
            Err(ServiceError::InvalidToken(_)) => Ok(INACTIVE),
            Err(other) => Err(other),
        },
    }
}

/// A refresh token is active while it is its session's current generation and usable. Only the
/// client it was issued to learns anything about it: to anyone else it is `{"active": false}`, so
/// introspection is no oracle for testing stolen refresh tokens.
async fn introspect_refresh(ctx: &Ctx, caller: &ClientInfo, token: &str) -> Result<Introspection> {
    let Some(presented) = refresh::parse(token) else {
        return Ok(INACTIVE);
    };
    let sid = presented.session_id.clone();
    let found = ctx
        .query(move |conn| store::sessions::find_with_user(conn, &sid))
        .await?;
    let Some((session, user)) = found else {
        return Ok(INACTIVE);
    };
    let now = store::now();
    let username = match user {
        Some((_, _, Some(_))) => return Ok(INACTIVE),
        Some((name, _, None)) => Some(name),
        None => None,
    };
    let active = super::refresh::is_genuine(ctx, &presented, &session)
        && presented.generation == session.refresh_generation
        && session.client_id == caller.client_id
        && session.refresh_usable(now);
    if !active {
        return Ok(INACTIVE);
    }
    let issued_at = session.rotated_at.unwrap_or(session.created_at);
    Ok(Introspection {
        active: true,
        details: Some(Details {
            scope: session.scope,
            client_id: session.client_id.clone(),
            username,
            sub: session.user_id.unwrap_or(session.client_id),
            token_type: "Bearer",
            token_use: "refresh_token",
            exp: session.refresh_expires_at.map(|t| t.and_utc().timestamp()),
            iat: issued_at.and_utc().timestamp(),
            nbf: issued_at.and_utc().timestamp(),
            aud: vec![ctx.config.issuer.clone()],
            iss: ctx.config.issuer.clone(),
            // One value per token: the session and the generation.
            jti: format!("{}.{}", session.id, session.refresh_generation),
            sid: session.id,
        }),
    })
}
