//! Token introspection (RFC 7662): anything not usable right now is exactly `{"active": false}`.

use serde::Serialize;

use super::{Ctx, Result, ServiceError};
use crate::crypto::token::{OpaqueToken, TokenKind};
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

pub async fn introspect(ctx: &Ctx, token: &str) -> Result<Introspection> {
    match TokenKind::of(token) {
        Some(TokenKind::Refresh) => introspect_refresh(ctx, token).await,
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
                    scope: claims.scope,
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

async fn introspect_refresh(ctx: &Ctx, token: &str) -> Result<Introspection> {
    let hash = OpaqueToken::from_presented(token).hash();
    let found = ctx
        .pool
        .run(move |conn| {
            let Some((token, session)) = store::tokens::find_refresh_by_hash(conn, &hash.0)? else {
                return Ok(None);
            };
            let username = match &session.user_id {
                Some(id) => store::users::find_by_id(conn, id)?
                    .filter(|u| u.disabled_at.is_none())
                    .map(|u| u.username),
                None => None,
            };
            Ok::<_, ServiceError>(Some((token, session, username)))
        })
        .await?;
    let Some((token, session, username)) = found else {
        return Ok(INACTIVE);
    };
    let now = store::now();
    let live = token.used_at.is_none()
        && token.revoked_at.is_none()
        && token.expires_at > now
        && session.revoked_at.is_none()
        && session.expires_at > now
        && (session.user_id.is_none() || username.is_some());
    if !live {
        return Ok(INACTIVE);
    }
    Ok(Introspection {
        active: true,
        details: Some(Details {
            scope: session.scope,
            client_id: session.client_id.clone(),
            username,
            sub: session.user_id.unwrap_or(session.client_id),
            token_type: "Bearer",
            token_use: "refresh_token",
            exp: Some(token.expires_at.and_utc().timestamp()),
            iat: token.issued_at.and_utc().timestamp(),
            nbf: token.issued_at.and_utc().timestamp(),
            aud: vec![ctx.config.issuer.clone()],
            iss: ctx.config.issuer.clone(),
            jti: token.id,
            sid: session.id,
        }),
    })
}
