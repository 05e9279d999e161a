//! The revocation module: the one place where sessions end, and with them their tokens.
//!
//! - revoking an access token (its `sid`) ends its session, and so every refresh token of it;
//! - revoking a refresh token ends its session (RFC 7009 §2.1);
//! - reuse of a rotated refresh token ends its session (RFC 9700 §4.14.2);
//! - logout-all, a password change, disabling a user and deleting a client end every session in
//!   their scope.
//!
//! Every path runs the one set-based UPDATE of `store::revocation` inside one transaction, stores
//! its reason on every session it ends, writes an audit event, and returns counts. A user-wide
//! revocation first takes the user's lock, which every session-opening transaction takes too.

use super::audit::{self, Event};
use super::clients::ClientInfo;
use super::{Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::jwt;
use crate::crypto::refresh;
use crate::crypto::token::{OpaqueToken, TokenKind};
use crate::store::models::Session;
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
    /// The session that created this one (a personal token's creator) ended for theft.
    ParentCompromised,
}

impl Reason {
    /// A session ending for this reason was in a thief's hands: whatever it created ends too.
    fn is_theft(self) -> bool {
        matches!(self, Reason::RefreshReuse | Reason::CodeReuse)
    }
}

/// How many generations of created sessions a theft cascade follows (a personal token made by
/// a personal token made by a sign-in is two).
const CASCADE_DEPTH: usize = 4;

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
            Reason::ParentCompromised => "parent_compromised",
        }
    }
}

/// Ends every session in `scope` and records one audit event (call inside a write transaction).
/// A user-wide scope locks the user first: no sign-in can commit a session in the middle of it.
pub fn revoke_in_tx(
    conn: &mut Conn,
    scope: &Scope,
    reason: Reason,
    kind: &str,
    subject: Event<'_>,
    meta: &RequestMeta,
) -> store::Result<Counts> {
    if let Some(user_id) = scope.user_wide() {
        store::users::lock(conn, user_id)?;
    }
    let counts = store::revocation::revoke(conn, scope, reason.as_str(), store::now())?;
    crate::metrics::sessions_revoked(reason.as_str(), counts.sessions_revoked);
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
    let now = store::now();
    let counts = store::revocation::revoke(conn, &scope, reason.as_str(), now)?;
    crate::metrics::sessions_revoked(reason.as_str(), counts.sessions_revoked);
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
        if reason.is_theft() {
            end_created_sessions(conn, session_id, now, meta)?;
        }
    }
    Ok(counts)
}

/// Ends, in the caller's transaction, every live session `parent` created (its personal
/// tokens), and theirs in turn: what a thief made with a stolen session goes with it
/// (SECURITY.md 31). One audit event each.
fn end_created_sessions(
    conn: &mut Conn,
    parent: &str,
    now: chrono::NaiveDateTime,
    meta: &RequestMeta,
) -> store::Result<()> {
    let mut parents = vec![parent.to_owned()];
    for _ in 0..CASCADE_DEPTH {
        if parents.is_empty() {
            break;
        }
        let ended = store::revocation::end_created_by(
            conn,
            &parents,
            Reason::ParentCompromised.as_str(),
            now,
        )?;
        crate::metrics::sessions_revoked(Reason::ParentCompromised.as_str(), ended.len() as u64);
        for (id, user_id, client_id) in &ended {
            tracing::warn!(session_id = %id, "session ended: the session that created it was stolen");
            audit::record(
                conn,
                Event {
                    kind: "session_ended",
                    reason: Some(Reason::ParentCompromised.as_str()),
                    user_id: user_id.as_deref(),
                    session_id: Some(id),
                    client_id: Some(client_id),
                    ..Default::default()
                },
                meta,
            )?;
        }
        parents = ended.into_iter().map(|(id, _, _)| id).collect();
    }
    Ok(())
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

/// RFC 7009 revocation of a token presented by `client`: an access token, a refresh token or a
/// personal access token (found by its shape, whatever the hint says). Any of them ends its
/// session. Unknown, expired, malformed, forged and already revoked tokens are fine (nothing to
/// do); a token of another client is refused and nothing changes.
pub async fn revoke_presented(
    ctx: &Ctx,
    client: &ClientInfo,
    token: &str,
    meta: &RequestMeta,
) -> Result<()> {
    let session = match TokenKind::of(token) {
        Some(TokenKind::Refresh) => match refresh::parse(token) {
            Some(presented) => Presented::Refresh(presented),
            None => return Ok(()),
        },
        Some(TokenKind::Personal) => {
            Presented::Personal(OpaqueToken::from_presented(token).hash().0)
        }
        Some(TokenKind::ClientSecret) => return Ok(()),
        // An access token is identified by its signature; its `sid` names the session.
        None => match identify_access_token(ctx, token).await? {
            Some(claims) => Presented::Access(claims.sid),
            None => return Ok(()),
        },
    };
    let reason = session.reason();
    let (ctx2, client_id, meta) = (ctx.clone(), client.client_id.clone(), meta.clone());
    let other_client = ctx
        .write(move |conn| {
            let Some(session) = session.find(conn, &ctx2)? else {
                return Ok(false);
            };
            if session.client_id != client_id {
                return Ok(true);
            }
            if session.revoked_at.is_none() {
                let subject = Event {
                    user_id: session.user_id.as_deref(),
                    session_id: Some(&session.id),
                    client_id: Some(&client_id),
                    ..Default::default()
                };
                end_session_in_tx(conn, &session.id, reason, "token_revoked", subject, &meta)?;
            }
            Ok(false)
        })
        .await?;
    if other_client {
        return Err(ServiceError::UnauthorizedClient(
            "the token was issued to another client".to_owned(),
        ));
    }
    Ok(())
}

/// A token presented for revocation, by what finds its session.
enum Presented {
    Refresh(refresh::Presented),
    /// The SHA-256 of a personal access token.
    Personal(String),
    /// The `sid` of an access token whose signature verified.
    Access(String),
}

impl Presented {
    fn reason(&self) -> Reason {
        match self {
            Presented::Refresh(_) => Reason::RefreshTokenRevoked,
            Presented::Personal(_) => Reason::PersonalTokenRevoked,
            Presented::Access(_) => Reason::AccessTokenRevoked,
        }
    }

    /// The session this token belongs to; `None` when there is none, or when a refresh token's
    /// tag does not verify (a forged token says nothing about the session it names). Any
    /// generation of a genuine refresh token counts: revoking a rotated one still ends its session.
    fn find(&self, conn: &mut Conn, ctx: &Ctx) -> store::Result<Option<Session>> {
        Ok(match self {
            Presented::Refresh(presented) => store::sessions::find(conn, &presented.session_id)?
                .filter(|session| super::refresh::is_genuine(ctx, presented, session)),
            Presented::Personal(hash) => {
                store::personal_tokens::find_by_hash(conn, hash)?.map(|(_, s, _)| s)
            }
            Presented::Access(sid) => store::sessions::find(conn, sid)?,
        })
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
        Err(jwt::JwtError::UnknownKey) => match jwt::kid_of(token) {
            Some(kid) if ctx.keys.reload_for_unknown_kid(&ctx.pool, &kid).await? => {
                Ok(verify(&ctx.keys.current()).ok())
            }
            _ => Ok(None),
        },
        Err(_) => Ok(None),
    }
}
