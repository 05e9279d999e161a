//! Set-based revocation: whatever the scope (one session, a user's sessions, a client's), three
//! UPDATE statements mark every live access token, every live refresh token and every live session
//! in it revoked, with a reason. The cost does not grow in round trips with the number of tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{access_tokens, auth_codes, personal_access_tokens, refresh_tokens, sessions};
use super::{Conn, Result};
use crate::db;

/// Which sessions a revocation ends.
#[derive(Debug, Clone)]
pub enum Scope {
    Session(String),
    User {
        user_id: String,
        except_session: Option<String>,
    },
    Client(String),
    /// A user's personal access tokens of one name (`DELETE /api/tokens?name=…`).
    PersonalTokensNamed {
        user_id: String,
        name: String,
    },
}

/// How many rows a revocation changed: only rows that were live (not revoked, not expired, and for
/// refresh tokens not already rotated) count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = RevocationCounts)]
pub struct Counts {
    pub sessions_revoked: u64,
    pub access_tokens_revoked: u64,
    pub refresh_tokens_revoked: u64,
}

/// Marks everything in `scope` revoked. Call inside a write transaction.
pub fn revoke(conn: &mut Conn, scope: &Scope, reason: &str, now: NaiveDateTime) -> Result<Counts> {
    db!(conn, c => {
        // The ids of the live sessions in scope, as a subquery (built anew for each statement).
        let live_sessions = || {
            let query = sessions::table
                .select(sessions::id)
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now))
                .into_boxed();
            match scope {
                Scope::Session(id) => query.filter(sessions::id.eq(id.clone())),
                Scope::User { user_id, except_session: None } => {
                    query.filter(sessions::user_id.eq(user_id.clone()))
                }
                Scope::User { user_id, except_session: Some(keep) } => query
                    .filter(sessions::user_id.eq(user_id.clone()))
                    .filter(sessions::id.ne(keep.clone())),
                Scope::Client(client_id) => query.filter(sessions::client_id.eq(client_id.clone())),
                Scope::PersonalTokensNamed { user_id, name } => query.filter(
                    sessions::id.eq_any(
                        personal_access_tokens::table
                            .select(personal_access_tokens::session_id)
                            .filter(personal_access_tokens::user_id.eq(user_id.clone()))
                            .filter(personal_access_tokens::name.eq(name.clone())),
                    ),
                ),
            }
        };
        let access = diesel::update(
            access_tokens::table
                .filter(access_tokens::session_id.eq_any(live_sessions()))
                .filter(access_tokens::revoked_at.is_null())
                .filter(access_tokens::expires_at.gt(now)),
        )
        .set((access_tokens::revoked_at.eq(now), access_tokens::revoked_reason.eq(reason)))
        .execute(c)?;
        let refresh = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq_any(live_sessions()))
                .filter(refresh_tokens::revoked_at.is_null())
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set((refresh_tokens::revoked_at.eq(now), refresh_tokens::revoked_reason.eq(reason)))
        .execute(c)?;
        // The sessions themselves by the scope's own column (its index), not through the list
        // of ids: on SQLite that list is built again as a temporary index, and every session
        // found twice, once in it and once by its primary key.
        let live = diesel::update(sessions::table)
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .into_boxed();
        let in_scope = match scope {
            Scope::Session(id) => live.filter(sessions::id.eq(id.clone())),
            Scope::User { user_id, except_session: None } => {
                live.filter(sessions::user_id.eq(user_id.clone()))
            }
            Scope::User { user_id, except_session: Some(keep) } => live
                .filter(sessions::user_id.eq(user_id.clone()))
                .filter(sessions::id.ne(keep.clone())),
            Scope::Client(client_id) => live.filter(sessions::client_id.eq(client_id.clone())),
            Scope::PersonalTokensNamed { .. } => live.filter(sessions::id.eq_any(live_sessions())),
        };
        let ended = in_scope
            .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
            .execute(c)?;
        // Codes issued but not yet exchanged would open new sessions after a logout-all, a
        // password change, disabling or deleting a client: they are used up with the rest.
        let pending_codes = diesel::update(auth_codes::table.filter(auth_codes::used_at.is_null()));
        match scope {
            Scope::User { user_id, .. } => {
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
            Scope::Session(_) | Scope::PersonalTokensNamed { .. } => {}
        }
        Ok(Counts {
            sessions_revoked: ended as u64,
            access_tokens_revoked: access as u64,
            refresh_tokens_revoked: refresh as u64,
        })
    })
}
