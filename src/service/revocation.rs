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
    /// A client revoked a personal access token (RFC 7009).
    PersonalTokenRevoked,
    /// An authorization code was presented a second time (RFC 6749 §4.1.2).
    CodeReuse,
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
            Reason::PersonalTokenRevoked => "personal_token_revoked",
            Reason::CodeReuse => "code_reuse",
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

/// Ends one session in answer to something presented (a reused refresh token, a revoked token),
/// and records the event only if this call ended it: concurrent requests that lost the race to a
/// revocation committed meanwhile change nothing and add no duplicate event.
pub fn end_session_in_tx(
    conn: &mut Conn,
    session_id: &str,
    reason: Reason,
    kind: &str,
    subject: Event<'_>,
    meta: &RequestMeta,
) -> store::Result<Counts> {
    let scope = Scope::Session(session_id.to_owned());
    let counts = store::revocation::revoke(conn, &scope, reason.as_str(), store::now())?;
    if counts.sessions_revoked > 0 {
        audit::record(
            conn,
            Event {
                kind,
                reason: Some(reason.as_str()),
                ..subject
            },
            meta,
        )?;
    }
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

/// How a presented token is found in the database.
enum Lookup {
    Refresh(String),
    Personal(String),
    Access(String),
}

/// RFC 7009 revocation of a token presented by `client`: an access token, a refresh token or a
/// personal access token (found by its shape, whatever the hint says). Any of them ends its
/// session. Unknown, expired, malformed and already revoked tokens are fine (nothing to do); a
/// token of another client is refused and nothing changes.
pub async fn revoke_presented(
    ctx: &Ctx,
    client: &ClientInfo,
    token: &str,
    meta: &RequestMeta,
) -> Result<()> {
    let (lookup, reason) = match TokenKind::of(token) {
        Some(TokenKind::Refresh) => (
            Lookup::Refresh(OpaqueToken::from_presented(token).hash().0),
            Reason::RefreshTokenRevoked,
        ),
        Some(TokenKind::Personal) => (
            Lookup::Personal(OpaqueToken::from_presented(token).hash().0),
            Reason::PersonalTokenRevoked,
        ),
        Some(TokenKind::ClientSecret) => return Ok(()),
        None => match identify_access_token(ctx, token).await? {
            Some(claims) => (Lookup::Access(claims.jti), Reason::AccessTokenRevoked),
            None => return Ok(()),
        },
    };
    let client_id = client.client_id.clone();
    let meta = meta.clone();
    let other_client = ctx
        .pool
        .run(move |conn| {
            conn.write(|conn| {
                let session = match &lookup {
                    Lookup::Refresh(hash) => {
                        store::tokens::find_refresh_by_hash(conn, hash)?.map(|(_, s)| s)
                    }
                    Lookup::Personal(hash) => {
                        store::tokens::find_personal_by_hash(conn, hash)?.map(|(_, s, _)| s)
                    }
                    Lookup::Access(jti) => {
                        store::tokens::find_access_context(conn, jti)?.map(|(_, s, _)| s)
                    }
                };
                match session {
                    None => Ok(false),
                    Some(session) if session.client_id != client_id => Ok(true),
                    Some(session) if session.revoked_at.is_some() => Ok(false),
                    Some(session) => {
                        let subject = Event {
                            user_id: session.user_id.as_deref(),
                            session_id: Some(&session.id),
                            client_id: Some(&client_id),
                            ..Default::default()
                        };
                        end_session_in_tx(
                            conn,
                            &session.id,
                            reason,
                            "token_revoked",
                            subject,
                            &meta,
                        )?;
                        Ok(false)
                    }
                }
            })
            .map_err(ServiceError::from)
        })
        .await?;
    if other_client {
        return Err(ServiceError::UnauthorizedClient(
            "the token was issued to another client".to_owned(),
        ));
    }
    Ok(())
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
