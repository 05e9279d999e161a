//! Set-based revocation: whatever the scope (one session, a user's sessions, a client's), one
//! UPDATE of `sessions` ends every live session in it, with a reason. Tokens have no rows: every
//! access token and every refresh token of those sessions, past and future, dies with the row. The
//! cost grows with the sessions in scope, never with how often they refreshed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{auth_codes, personal_access_tokens, sessions};
use super::{Conn, Result};
use crate::db;

/// Which sessions a revocation ends.
#[derive(Debug, Clone)]
pub enum Scope {
    Session(String),
    /// A user's sessions (`kind`: only those of that kind, as `POST /api/logout-all` with `kind`
    /// and `DELETE /api/tokens` without a name ask).
    User {
        user_id: String,
        except_session: Option<String>,
        kind: Option<String>,
    },
    Client(String),
    /// A user's personal access tokens of one name (`DELETE /api/tokens?name=…`).
    PersonalTokensNamed {
        user_id: String,
        name: String,
    },
}

impl Scope {
    /// Whether the scope covers everything a user holds, so that sessions opening for that user
    /// concurrently must be serialized with it (SECURITY.md 30), and pending codes go too.
    pub fn user_wide(&self) -> Option<&str> {
        match self {
            Scope::User { user_id, .. } => Some(user_id),
            _ => None,
        }
    }
}

/// What a revocation ended: sessions that were live, and of those, how many had an unexpired
/// access token and a usable refresh token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = RevocationCounts)]
pub struct Counts {
    pub sessions_revoked: u64,
    pub access_tokens_revoked: u64,
    pub refresh_tokens_revoked: u64,
}

/// Ends every live session in `scope` (and, for a user or a client, the authorization codes not yet
/// exchanged, which would open new sessions). Call inside a write transaction.
pub fn revoke(conn: &mut Conn, scope: &Scope, reason: &str, now: NaiveDateTime) -> Result<Counts> {
    db!(conn, c => {
        // By the scope's own column (its index).
        let live = diesel::update(sessions::table)
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .into_boxed();
        let in_scope = match scope {
            Scope::Session(id) => live.filter(sessions::id.eq(id.clone())),
            Scope::User {
                user_id,
                except_session,
                kind,
            } => {
                let mut of_user = live.filter(sessions::user_id.eq(user_id.clone()));
                if let Some(keep) = except_session {
                    of_user = of_user.filter(sessions::id.ne(keep.clone()));
                }
                if let Some(kind) = kind {
                    of_user = of_user.filter(sessions::kind.eq(kind.clone()));
                }
                of_user
            }
            Scope::Client(client_id) => live.filter(sessions::client_id.eq(client_id.clone())),
            Scope::PersonalTokensNamed { user_id, name } => live.filter(
                sessions::id.eq_any(
                    personal_access_tokens::table
                        .select(personal_access_tokens::session_id)
                        .filter(personal_access_tokens::user_id.eq(user_id.clone()))
                        .filter(personal_access_tokens::name.eq(name.clone())),
                ),
            ),
        };
        let ended: Vec<(Option<bool>, Option<bool>)> = in_scope
            .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
            .returning((sessions::access_expires_at.gt(now), sessions::refresh_expires_at.gt(now)))
            .get_results(c)?;
        // Codes not yet exchanged would open new sessions in scope: a user's (of the kind a code
        // opens, `authorization_code`, when the scope is one kind) or a client's.
        let pending_codes = diesel::update(auth_codes::table.filter(auth_codes::used_at.is_null()));
        match scope {
            Scope::User { user_id, kind, .. }
                if kind.as_deref().is_none_or(|k| k == "authorization_code") =>
            {
                pending_codes
                    .filter(auth_codes::user_id.eq(user_id.clone()))
                    .set(auth_codes::used_at.eq(now))
                    .execute(c)?;
            }
            Scope::Client(client_id) => {
                pending_codes
                    .filter(auth_codes::client_id.eq(client_id.clone()))
                    .set(auth_codes::used_at.eq(now))
                    .execute(c)?;
            }
            Scope::Session(_) | Scope::User { .. } | Scope::PersonalTokensNamed { .. } => {}
        }
        let live = |at: &Option<bool>| *at == Some(true);
        Ok(Counts {
            sessions_revoked: ended.len() as u64,
            access_tokens_revoked: ended.iter().filter(|(a, _)| live(a)).count() as u64,
            refresh_tokens_revoked: ended.iter().filter(|(_, r)| live(r)).count() as u64,
        })
    })
}

/// Ends the live sessions created by any of `parents` (`parent_session_id`), with `reason`;
/// returns each one ended as (id, user id, client id). Call inside a write transaction.
pub fn end_created_by(
    conn: &mut Conn,
    parents: &[String],
    reason: &str,
    now: NaiveDateTime,
) -> Result<Vec<(String, Option<String>, String)>> {
    Ok(db!(conn, c => diesel::update(sessions::table)
        .filter(sessions::parent_session_id.eq_any(parents))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
        .returning((sessions::id, sessions::user_id, sessions::client_id))
        .get_results(c))?)
}
