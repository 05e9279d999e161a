//! Personal access tokens (Sanctum's model for curl scripts and CI jobs): named, scoped, optionally
//! expiring, shown once. Each is a session of its own, so every revocation path ends them too.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use super::audit::Event;
use super::issuing::{self, SessionKind};
use super::revocation::{self, Reason, Scope};
use super::scope::{ScopeSet, ADMIN};
use super::validation::Principal;
use super::{new_id, Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::token::{OpaqueToken, TokenKind};
use crate::store::models::{PersonalAccessToken, Session};
use crate::store::{self, Conn};

/// Longest lifetime a token may ask for: ten years.
const MAX_EXPIRES_IN: i64 = 10 * 366 * 86_400;

/// A token without an expiry still needs a session expiry: the end of the representable calendar.
fn never() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(NaiveDateTime::MAX)
}

/// A personal access token as listed (never its value).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenView {
    fn new(token: &PersonalAccessToken, session: &Session) -> TokenView {
        TokenView {
            id: token.id.clone(),
            name: token.name.clone(),
            scopes: ScopeSet::from_stored(&session.scope).to_vec(),
            created_at: token.created_at.and_utc(),
            // A token that was never used shows no last use (its session starts with last = created).
            last_used_at: (session.last_used_at > session.created_at)
                .then(|| session.last_used_at.and_utc()),
            expires_at: token.expires_at.map(|t| t.and_utc()),
        }
    }
}

/// A new token: the only time its value is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if (1..=100).contains(&n) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ServiceError::InvalidRequest(
            "name: 1 to 100 characters, no control characters".to_owned(),
        ))
    }
}

/// How recent the caller's sign-in must be to create a personal token without its password.
const RECENT_SIGN_IN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

fn reauthenticate() -> ServiceError {
    ServiceError::ReauthenticationRequired(
        "creating a personal token needs a sign-in within the last 10 minutes or current_password"
            .to_owned(),
    )
}

/// Creates a token for the caller. Its scopes may not exceed what the caller's own token holds,
/// and `admin` needs an admin user. It needs recent authentication (SECURITY.md 31): the caller's
/// session signed in within 10 minutes, or `current_password`. The new token's session remembers
/// the caller's, and ends with it if that one ends for theft.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    ctx: &Ctx,
    caller: &Principal,
    name: String,
    scopes: Vec<String>,
    expires_in: Option<i64>,
    current_password: Option<String>,
    meta: RequestMeta,
) -> Result<CreatedToken> {
    let user_id = caller
        .user_id
        .clone()
        .ok_or_else(|| ServiceError::Forbidden("only users hold personal tokens".into()))?;
    check_name(&name)?;
    let requested = ScopeSet::from_list(&scopes)
        .map_err(|e| ServiceError::InvalidRequest(format!("scopes: {e}")))?;
    // No escalation: a personal token holds at most what the token that creates it holds (which
    // already excludes `admin` for users who are not admins).
    let held = ScopeSet::from_names(caller.scopes.0.iter().cloned());
    let beyond = requested.outside(&held);
    if !beyond.is_empty() {
        return Err(ServiceError::InvalidScope(format!(
            "a personal token cannot hold more than the token that creates it: {}",
            beyond.join(" ")
        )));
    }
    if requested.contains(ADMIN) && !caller.is_admin {
        return Err(ServiceError::InvalidScope(
            "only admin users may hold the admin scope".into(),
        ));
    }
    if let Some(seconds) = expires_in {
        if !(60..=MAX_EXPIRES_IN).contains(&seconds) {
            return Err(ServiceError::InvalidRequest(format!(
                "expires_in: 60 to {MAX_EXPIRES_IN} seconds"
            )));
        }
    }
    let reauthenticated = match current_password {
        Some(password) => {
            if !super::users::current_password_is_right(
                ctx,
                &user_id,
                password,
                &meta,
                "personal_token_failure",
            )
            .await?
            {
                return Err(reauthenticate());
            }
            true
        }
        None => false,
    };
    let (client_id, creator) = (caller.client_id.clone(), caller.session_id.clone());
    ctx.write(move |conn| {
        let now = store::now();
        // The user's lock, as every transaction that opens a session for the user takes it; then
        // the creating session must still be live and the user enabled: a logout-all, password
        // change or disable that committed since the bearer check wins (SECURITY.md 30).
        let user = store::users::lock(conn, &user_id)?;
        // And the client's: a deletion of the calling token's client either committed (and
        // ended the calling session) or waits for this transaction and ends the new one too.
        if !store::clients::lock_registered(conn, &client_id)? {
            return Ok(Err(ServiceError::InvalidToken(
                "the access token has been revoked".to_owned(),
            )));
        }
        let creator_session = store::sessions::find(conn, &creator)?.filter(|s| s.is_live(now));
        let Some(creator_session) = creator_session else {
            return Ok(Err(ServiceError::InvalidToken(
                "the access token has been revoked".to_owned(),
            )));
        };
        if user.is_none_or(|u| u.disabled_at.is_some()) {
            return Ok(Err(ServiceError::InvalidToken(
                "the access token has been revoked".to_owned(),
            )));
        }
        if !reauthenticated && creator_session.created_at <= now - RECENT_SIGN_IN {
            return Ok(Err(reauthenticate()));
        }
        let expires_at = expires_in.map(|s| now + chrono::TimeDelta::seconds(s));
        let mut session = issuing::new_session(
            Some(user_id.clone()),
            &client_id,
            SessionKind::PersonalAccessToken,
            &requested,
            Some(name.clone()),
            &meta,
            now,
            expires_at.unwrap_or_else(never),
        );
        session.parent_session_id = Some(creator.clone());
        store::sessions::insert(conn, &session)?;
        let token = OpaqueToken::generate(TokenKind::Personal);
        let row = PersonalAccessToken {
            id: new_id(),
            session_id: session.id.clone(),
            user_id: user_id.clone(),
            name: name.clone(),
            token_hash: token.hash().0,
            created_at: now,
            expires_at,
        };
        store::personal_tokens::insert(conn, &row)?;
        super::audit::record(
            conn,
            Event {
                kind: "personal_token_created",
                reason: Some("created"),
                actor_id: Some(&user_id),
                user_id: Some(&user_id),
                session_id: Some(&session.id),
                client_id: Some(&client_id),
            },
            &meta,
        )?;
        Ok(Ok(CreatedToken {
            id: row.id,
            name: row.name,
            token: token.into_inner(),
            scopes: requested.to_vec(),
            expires_at: expires_at.map(|t| t.and_utc()),
        }))
    })
    .await?
}

pub async fn list(ctx: &Ctx, user_id: String) -> Result<Vec<TokenView>> {
    let rows = ctx
        .query(move |conn| store::personal_tokens::list_live(conn, &user_id, store::now()))
        .await?;
    Ok(rows.iter().map(|(t, s)| TokenView::new(t, s)).collect())
}

/// Revokes one of the caller's tokens; another user's (or an unknown, or an ended) token is 404.
pub async fn revoke(ctx: &Ctx, user_id: String, id: String, meta: RequestMeta) -> Result<()> {
    ctx.write(move |conn| {
        let Some((token, session)) = store::personal_tokens::find(conn, &id)? else {
            return Ok(false);
        };
        if token.user_id != user_id || !session.is_live(store::now()) {
            return Ok(false);
        }
        revoke_in_tx(
            conn,
            &Scope::Session(session.id.clone()),
            &user_id,
            Some(&session.id),
            &meta,
        )?;
        Ok(true)
    })
    .await?
    .then_some(())
    .ok_or_else(|| ServiceError::NotFound("no such token".to_owned()))
}

/// Revokes every live token of the caller with this name; returns how many.
pub async fn revoke_named(
    ctx: &Ctx,
    user_id: String,
    name: String,
    meta: RequestMeta,
) -> Result<u64> {
    check_name(&name)?;
    ctx.write(move |conn| {
        let scope = Scope::PersonalTokensNamed {
            user_id: user_id.clone(),
            name,
        };
        Ok(revoke_in_tx(conn, &scope, &user_id, None, &meta)?.sessions_revoked)
    })
    .await
}

/// Ends every personal token of the user (Sanctum's `tokens()->delete()`); sign-in sessions are
/// untouched. Returns how many ended.
pub async fn revoke_all(ctx: &Ctx, user_id: String, meta: RequestMeta) -> Result<u64> {
    ctx.write(move |conn| {
        let scope = Scope::User {
            user_id: user_id.clone(),
            except_session: None,
            kind: Some(SessionKind::PersonalAccessToken.as_str().to_owned()),
        };
        Ok(revoke_in_tx(conn, &scope, &user_id, None, &meta)?.sessions_revoked)
    })
    .await
}

fn revoke_in_tx(
    conn: &mut Conn,
    scope: &Scope,
    user_id: &str,
    session_id: Option<&str>,
    meta: &RequestMeta,
) -> store::Result<revocation::Counts> {
    let subject = Event {
        actor_id: Some(user_id),
        user_id: Some(user_id),
        session_id,
        ..Default::default()
    };
    revocation::revoke_in_tx(
        conn,
        scope,
        Reason::PersonalTokenDeleted,
        "personal_token_revoked",
        subject,
        meta,
    )
}
