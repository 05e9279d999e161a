//! The revocation module: the one place where sessions and tokens end.
//!
//! - revoking an access token ends the refresh tokens linked to it and its whole session;
//! - revoking a refresh token ends its session (RFC 7009 §2.1);
//! - reuse of a rotated refresh token ends its session (RFC 9700 §4.14.2);
//! - logout-all, a password change, disabling a user and deleting a client end every session in
//!   their scope.
//!
//! Every path runs the same three set-based statements in `store::revocation` inside one
//! transaction, stores its reason on every row it changes, writes an audit event, and returns counts.

use super::audit::{self, Event};
use super::clients::ClientInfo;
use super::{Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::jwt;
use crate::crypto::token::{OpaqueToken, TokenKind};
use crate::store::{self, Conn};

pub use crate::store::revocation::{Counts, Scope};

/// Why something was revoked; stored on every revoked row and in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A client revoked an access token (RFC 7009).
    AccessTokenRevoked,
    /// A client revoked a refresh token (RFC 7009).
    RefreshTokenRevoked,
    /// A rotated refresh token was presented again.
    RefreshReuse,
    Logout,
    LogoutAll,
    PasswordChanged,
    AdminLogoutAll,
    UserDisabled,
    ClientDeleted,
    /// The user logged one session out (this device, or another one from the session list).
    SessionEnded,
    /// An admin ended one session.
    AdminSessionEnded,
    /// The user deleted a personal access token (by id or by name).
    PersonalTokenDeleted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AccessTokenRevoked => "access_token_revoked",
            Reason::RefreshTokenRevoked => "refresh_token_revoked",
            Reason::RefreshReuse => "refresh_reuse",
            Reason::Logout => "logout",
            Reason::LogoutAll => "logout_all",
            Reason::PasswordChanged => "password_changed",
            Reason::AdminLogoutAll => "admin_logout_all",
            Reason::UserDisabled => "user_disabled",
            Reason::ClientDeleted => "client_deleted",
            Reason::SessionEnded => "device_logout",
            Reason::AdminSessionEnded => "admin_session_ended",
            Reason::PersonalTokenDeleted => "personal_token_deleted",
        }
    }
}

/// Ends every session in `scope` and records one audit event (call inside a write transaction).
pub fn revoke_in_tx(
    conn: &mut Conn,
    scope: &Scope,
    reason: Reason,
    kind: &str,
    subject: Event<'_>,
    meta: &RequestMeta,
) -> store::Result<Counts> {
    let counts = store::revocation::revoke(conn, scope, reason.as_str(), store::now())?;
    audit::record(
        conn,
        Event {
            kind,
            reason: Some(reason.as_str()),
            ..subject
        },
        meta,
    )?;
    Ok(counts)
}

/// Ends every session in `scope` in its own transaction.
pub fn revoke(
    conn: &mut Conn,
    scope: &Scope,
    reason: Reason,
    kind: &str,
    subject: Event<'_>,
    meta: &RequestMeta,
) -> Result<Counts> {
    Ok(conn.write(|conn| revoke_in_tx(conn, scope, reason, kind, subject, meta))?)
}

/// What a presented token turned out to be.
enum Found {
    Nothing,
    OtherClient,
    Session {
        session_id: String,
        user_id: Option<String>,
    },
}

/// RFC 7009 revocation of a token presented by `client`: an access token or a refresh token (found
/// by its shape, whatever the hint says). Unknown, expired, malformed and already revoked tokens
/// are fine (nothing to do); a token of another client is refused and nothing changes.
pub async fn revoke_presented(
    ctx: &Ctx,
    client: &ClientInfo,
    token: &str,
    meta: &RequestMeta,
) -> Result<()> {
    match TokenKind::of(token) {
        Some(TokenKind::Refresh) => {
            let hash = OpaqueToken::from_presented(token).hash();
            let client_id = client.client_id.clone();
            let meta = meta.clone();
            ctx.pool
                .run(move |conn| {
                    conn.write(|conn| {
                        let found = match store::tokens::find_refresh_by_hash(conn, &hash.0)? {
                            None => Found::Nothing,
                            Some((_, session)) if session.client_id != client_id => {
                                Found::OtherClient
                            }
                            Some((_, session)) if session.revoked_at.is_some() => Found::Nothing,
                            Some((_, session)) => Found::Session {
                                session_id: session.id,
                                user_id: session.user_id,
                            },
                        };
                        end_found(conn, &found, Reason::RefreshTokenRevoked, &client_id, &meta)?;
                        Ok(found)
                    })
                    .map_err(ServiceError::from)
                })
                .await
                .and_then(refuse_other_client)
        }
        Some(_) => Ok(()),
        None => {
            let Some(claims) = identify_access_token(ctx, token).await? else {
                return Ok(());
            };
            let client_id = client.client_id.clone();
            let meta = meta.clone();
            ctx.pool
                .run(move |conn| {
                    conn.write(|conn| {
                        let found = match store::tokens::find_access_context(conn, &claims.jti)? {
                            None => Found::Nothing,
                            Some((_, session, _)) if session.client_id != client_id => {
                                Found::OtherClient
                            }
                            Some((_, session, _)) if session.revoked_at.is_some() => Found::Nothing,
                            Some((_, session, _)) => Found::Session {
                                session_id: session.id,
                                user_id: session.user_id,
                            },
                        };
                        end_found(conn, &found, Reason::AccessTokenRevoked, &client_id, &meta)?;
                        Ok(found)
                    })
                    .map_err(ServiceError::from)
                })
                .await
                .and_then(refuse_other_client)
        }
    }
}

fn end_found(
    conn: &mut Conn,
    found: &Found,
    reason: Reason,
    client_id: &str,
    meta: &RequestMeta,
) -> store::Result<()> {
    if let Found::Session {
        session_id,
        user_id,
    } = found
    {
        revoke_in_tx(
            conn,
            &Scope::Session(session_id.clone()),
            reason,
            "token_revoked",
            Event {
                user_id: user_id.as_deref(),
                session_id: Some(session_id),
                client_id: Some(client_id),
                ..Default::default()
            },
            meta,
        )?;
    }
    Ok(())
}

fn refuse_other_client(found: Found) -> Result<()> {
    match found {
        Found::OtherClient => Err(ServiceError::UnauthorizedClient(
            "the token was issued to another client".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// The claims of a JWT we signed, expired or not (revoking an expired token still ends its
/// session); `None` for anything we did not sign.
async fn identify_access_token(ctx: &Ctx, token: &str) -> Result<Option<jwt::AccessClaims>> {
    let issuer = ctx.config.issuer.as_str();
    let verify =
        |keys: &crate::crypto::keys::KeySet| jwt::verify(token, keys, issuer, issuer, false);
    match verify(&ctx.keys.current()) {
        Ok(claims) => Ok(Some(claims)),
        Err(jwt::JwtError::UnknownKey) if jwt::kid_of(token).is_some() => {
            if ctx.keys.reload_for_unknown_kid(&ctx.pool).await? {
                Ok(verify(&ctx.keys.current()).ok())
            } else {
                Ok(None)
            }
        }
        Err(_) => Ok(None),
    }
}
