//! Issuing: opening a session and signing the tokens it starts with, and the client credentials
//! grant. A session is one sign-in on one device, one personal access token, or one
//! client-credentials issuance; its row is the only state its tokens will ever have.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::clients::ClientInfo;
use super::grant_type::GrantType;
use super::scope::{self, ScopeSet, ADMIN};
use super::status_list::StatusLists;
use super::{chrono_duration, new_id, Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::jwt::{self, AccessClaims};
use crate::crypto::keys::SigningKey;
use crate::crypto::refresh::{self, RefreshSecret};
use crate::store::models::{Session, User};
use crate::store::{self, Conn};

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

/// What opened a session (stored in `sessions.kind`; `POST /api/logout-all` can end one kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// The password grant.
    Password,
    /// An authorization code exchanged at the token endpoint.
    AuthorizationCode,
    /// A personal access token (`POST /api/tokens`).
    PersonalAccessToken,
    /// The client credentials grant (no user).
    ClientCredentials,
}

impl SessionKind {
    pub const ALL: [SessionKind; 4] = [
        SessionKind::Password,
        SessionKind::AuthorizationCode,
        SessionKind::PersonalAccessToken,
        SessionKind::ClientCredentials,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SessionKind::Password => "password",
            SessionKind::AuthorizationCode => "authorization_code",
            SessionKind::PersonalAccessToken => "personal_access_token",
            SessionKind::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(value: &str) -> Option<SessionKind> {
        SessionKind::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// A new, live session's row without a refresh chain (the caller inserts it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_session(
    user_id: Option<String>,
    client_id: &str,
    kind: SessionKind,
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
        kind: kind.as_str().to_owned(),
        scope: scope.to_string(),
        device_name: device_name.map(|d| d.chars().take(200).collect()),
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
        refresh_generation: 0,
        refresh_secret: None,
        rotated_at: None,
        refresh_expires_at: None,
        access_expires_at: None,
        parent_session_id: None,
        status_list: None,
        status_idx: None,
    }
}

/// An access token signed for a session (never stored: its `sid` is what makes it valid).
pub(crate) struct SignedAccess {
    pub token: String,
    pub expires_at: NaiveDateTime,
    pub expires_in: i64,
}

pub(crate) fn sign_access_token(
    ctx: &Ctx,
    key: &SigningKey,
    session: &Session,
    client: &ClientInfo,
    scope: &ScopeSet,
    now: NaiveDateTime,
) -> store::Result<SignedAccess> {
    let expires_at = (now + chrono_duration(ctx.config.access_token_ttl)).min(session.expires_at);
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
        jti: new_id(),
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        sid: session.id.clone(),
        status: session
            .status_list
            .zip(session.status_idx)
            .map(|(list, idx)| {
                super::status_list::claim(
                    &ctx.config.issuer,
                    super::status_list::Entry { list, idx },
                )
            }),
    };
    Ok(SignedAccess {
        token: jwt::sign(key, &claims)?,
        expires_at,
        expires_in: (expires_at - now).num_seconds().max(0),
    })
}

/// The refresh token of `generation` in `session`'s chain (`None` for a session without one).
pub(crate) fn refresh_token(
    ctx: &Ctx,
    session: &Session,
    generation: i64,
) -> store::Result<Option<String>> {
    let Some(stored) = &session.refresh_secret else {
        return Ok(None);
    };
    let secret = RefreshSecret::from_stored(stored).ok_or_else(|| {
        anyhow::anyhow!("session {} has an unreadable refresh secret", session.id)
    })?;
    let secrets = ctx
        .secrets
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the server secrets are not loaded in this process"))?;
    let token = refresh::mint(&secrets.refresh_key, &session.id, generation, &secret)
        .ok_or_else(|| anyhow::anyhow!("session {} cannot mint a refresh token", session.id))?;
    Ok(Some(token))
}

/// A session to open.
pub(crate) struct Opening<'a> {
    /// `None` for the client credentials grant.
    pub user: Option<&'a User>,
    pub client: &'a ClientInfo,
    pub kind: SessionKind,
    pub scope: &'a ScopeSet,
    pub device_name: Option<String>,
    pub meta: &'a RequestMeta,
    /// The session's status-list entry ([`super::status_list::StatusLists::allocate`], before
    /// the transaction).
    pub status: super::status_list::Entry,
}

pub(crate) struct Opened {
    pub session: Session,
    pub response: TokenResponse,
}

/// Opens a session with its first access token and, for a user of a client that may refresh, its
/// refresh chain at generation 0 (inside the caller's transaction, which has checked the user
/// under its lock).
///
/// First it checks that the client is still registered and holds its row until the transaction
/// ends: a sign-in authenticates its client before its transaction, and a client deleted since
/// then gets no session (its deletion's revocation could not have seen one opened after it).
/// `Ok(Err(invalid_client))` then, with nothing opened.
pub(crate) fn open_session_in_tx(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &SigningKey,
    opening: Opening<'_>,
) -> store::Result<Result<Opened>> {
    if !store::clients::lock_registered(conn, &opening.client.client_id)? {
        return Ok(Err(ServiceError::InvalidClient(
            "the client has been deleted".to_owned(),
        )));
    }
    let now = store::now();
    let chain = opening.user.is_some() && opening.client.allows_grant(GrantType::RefreshToken);
    // A session without a refresh chain (a client's own, or a user's on a client that may not
    // refresh) lasts as long as its one access token.
    let lifetime = if chain {
        ctx.config.session_max_age
    } else {
        ctx.config.access_token_ttl
    };
    let mut session = new_session(
        opening.user.map(|u| u.id.clone()),
        &opening.client.client_id,
        opening.kind,
        opening.scope,
        opening.device_name,
        opening.meta,
        now,
        now + chrono_duration(lifetime),
    );
    session.status_list = Some(opening.status.list);
    session.status_idx = Some(opening.status.idx);
    let access = sign_access_token(ctx, key, &session, opening.client, opening.scope, now)?;
    session.access_expires_at = Some(access.expires_at);
    if chain {
        session.refresh_secret = Some(RefreshSecret::generate().to_stored());
        session.refresh_expires_at =
            Some((now + chrono_duration(ctx.config.refresh_token_ttl)).min(session.expires_at));
    }
    let refresh_token = refresh_token(ctx, &session, 0)?;
    store::sessions::insert(conn, &session)?;
    let response = TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token,
        scope: opening.scope.to_string(),
    };
    Ok(Ok(Opened { session, response }))
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
    client.require_grant(GrantType::ClientCredentials)?;
    let allowed = client.scope_set().without(scope::ACCOUNT).without(ADMIN);
    let granted = scope::grant(requested.as_ref(), &allowed).map_err(ServiceError::InvalidScope)?;
    let key = ctx.keys.signing_key()?;
    let status = StatusLists::allocate(ctx).await?;
    let ctx2 = ctx.clone();
    let outcome = ctx
        .write(move |conn| {
            let opening = Opening {
                user: None,
                client: &client,
                kind: SessionKind::ClientCredentials,
                scope: &granted,
                device_name: None,
                meta: &meta,
                status,
            };
            Ok(open_session_in_tx(conn, &ctx2, &key, opening)?.map(|opened| opened.response))
        })
        .await?;
    if outcome.is_err() {
        ctx.status.unused(status);
    }
    outcome
}
