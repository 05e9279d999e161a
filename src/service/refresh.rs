//! The refresh grant (RFC 6749 §6) with rotation, reuse detection (RFC 9700 §4.14.2) and an
//! optional grace window, over the one session row that holds the whole chain.
//!
//! A presented token is classified once, from one primary-key read of its session:
//!
//! | class | when | what happens |
//! |---|---|---|
//! | `Forged` | not a v2 token, no such session, or the tag does not verify | `invalid_grant`, nothing changes (it cannot be attributed) |
//! | `Dead` | another client's, or the session ended, idled out, or its user is disabled | `invalid_grant`, nothing changes |
//! | `Rotate` | the current generation | signed, then one conditional UPDATE moves the chain on |
//! | `Grace` | the previous generation, within the grace window of the rotation | the current generation's token again (the same string), with a fresh access token |
//! | `Reuse` | any older generation | the session ends (`refresh_reuse`), audit event, WARN line |
//!
//! The JWT is signed before the write, outside SQLite's write lock; on PostgreSQL the write is a
//! single autocommit statement. A write that loses to a concurrent one reclassifies: the loser of
//! two refreshes of one token then finds it rotated, which is reuse (or grace).

use chrono::NaiveDateTime;

use super::audit::Event;
use super::clients::ClientInfo;
use super::grant_type::GrantType;
use super::issuing::{self, TokenResponse};
use super::revocation::{self, Reason};
use super::scope::{self, ScopeSet};
use super::{chrono_duration, Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::keys::SigningKey;
use crate::crypto::refresh::{self, Presented, RefreshSecret};
use crate::store::models::Session;
use crate::store::sessions::{Reissue, Rotation, UserMark};
use crate::store::{self, Conn};

const BAD_REFRESH: &str = "the refresh token is invalid, expired or revoked";

fn refused() -> ServiceError {
    ServiceError::InvalidGrant(BAD_REFRESH.to_owned())
}

/// What a presented refresh token turned out to be (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Rotate,
    Grace,
    Reuse,
    Dead,
    Forged,
}

/// Whether `presented` was minted for `session`: its tag verifies under the refresh key over the
/// session's secret, for a generation the chain has reached. Compared in constant time. Without
/// the refresh key (a process that did not load the server secrets) nothing is genuine.
pub(crate) fn is_genuine(ctx: &Ctx, presented: &Presented, session: &Session) -> bool {
    let Some(secrets) = ctx.secrets.as_deref() else {
        return false;
    };
    presented.session_id == session.id
        && presented.generation <= session.refresh_generation
        && session
            .refresh_secret
            .as_deref()
            .and_then(RefreshSecret::from_stored)
            .is_some_and(|secret| presented.verify(&secrets.refresh_key, &secret))
}

/// Classifies `presented` against its session as read at `now`. The only place that decides.
pub fn classify(
    ctx: &Ctx,
    presented: &Presented,
    found: Option<&(Session, Option<UserMark>)>,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> Class {
    let Some((session, user)) = found else {
        return Class::Forged;
    };
    if !is_genuine(ctx, presented, session) {
        return Class::Forged;
    }
    let user_disabled = user
        .as_ref()
        .is_some_and(|(_, _, disabled)| disabled.is_some());
    if session.client_id != client.client_id || !session.is_live(now) || user_disabled {
        return Class::Dead;
    }
    let current = session.refresh_generation;
    if presented.generation == current {
        return if session.refresh_usable(now) {
            Class::Rotate
        } else {
            Class::Dead
        };
    }
    let grace = chrono_duration(ctx.config.refresh_reuse_grace);
    let in_grace = presented.generation == current - 1
        && !grace.is_zero()
        && session.rotated_at.is_some_and(|at| now - at < grace)
        && session.refresh_usable(now);
    if in_grace {
        Class::Grace
    } else {
        Class::Reuse
    }
}

/// The refresh grant.
pub async fn refresh(
    ctx: &Ctx,
    client: ClientInfo,
    presented: String,
    requested: Option<ScopeSet>,
    meta: RequestMeta,
) -> Result<TokenResponse> {
    client.require_grant(GrantType::RefreshToken)?;
    let Some(presented) = refresh::parse(&presented) else {
        return Err(refused());
    };
    let key = ctx.keys.signing_key()?;
    let ctx2 = ctx.clone();
    ctx.db(move |conn| {
        exchange(
            conn,
            &ctx2,
            &key,
            &client,
            &presented,
            requested.as_ref(),
            &meta,
        )
    })
    .await
}

/// Classifies and acts, on the blocking pool. Three rounds at most: a write that lost to a
/// concurrent one reads the row again, and the second reading is final (the chain moved on, so
/// the token is now reuse or grace, or the session ended).
fn exchange(
    conn: &mut Conn,
    ctx: &Ctx,
    key: &SigningKey,
    client: &ClientInfo,
    presented: &Presented,
    requested: Option<&ScopeSet>,
    meta: &RequestMeta,
) -> Result<TokenResponse> {
    for _ in 0..3 {
        let now = store::now();
        let found = store::sessions::find_with_user(conn, &presented.session_id)?;
        let class = classify(ctx, presented, found.as_ref(), client, now);
        let Some((session, _)) = found else {
            return Err(refused());
        };
        match class {
            Class::Forged | Class::Dead => {
                tracing::debug!(session_id = %session.id, ?class, "refresh refused");
                crate::metrics::refresh("refused");
                return Err(refused());
            }
            Class::Reuse => {
                end_for_reuse(conn, &session, client, meta)?;
                crate::metrics::refresh("reuse");
                return Err(refused());
            }
            Class::Rotate => {
                let granted = narrowed(&session, requested)?;
                let access = issuing::sign_access_token(ctx, key, &session, client, &granted, now)?;
                let next = session.refresh_generation + 1;
                let successor = issuing::refresh_token(ctx, &session, next)?;
                let rotation = Rotation {
                    session_id: &session.id,
                    from_generation: session.refresh_generation,
                    now,
                    refresh_expires_at: (now + chrono_duration(ctx.config.refresh_token_ttl))
                        .min(session.expires_at),
                    access_expires_at: access.expires_at,
                };
                if conn.write_statement(|conn| store::sessions::rotate(conn, &rotation))? == 1 {
                    crate::metrics::refresh("rotated");
                    return Ok(response(access, successor, &granted));
                }
            }
            Class::Grace => {
                let granted = narrowed(&session, requested)?;
                let access = issuing::sign_access_token(ctx, key, &session, client, &granted, now)?;
                // The token the rotation handed out, computed again: the same string.
                let current = issuing::refresh_token(ctx, &session, session.refresh_generation)?;
                let reissue = Reissue {
                    session_id: &session.id,
                    generation: session.refresh_generation,
                    now,
                    access_expires_at: access.expires_at,
                };
                if conn.write_statement(|conn| store::sessions::reissue(conn, &reissue))? == 1 {
                    crate::metrics::refresh("grace");
                    return Ok(response(access, current, &granted));
                }
            }
        }
    }
    Err(refused())
}

/// The scope of the new access token: the session's, or narrower on request, never wider
/// (RFC 6749 §6). The refresh token keeps the session's scope.
fn narrowed(session: &Session, requested: Option<&ScopeSet>) -> Result<ScopeSet> {
    scope::grant(requested, &ScopeSet::from_stored(&session.scope))
        .map_err(ServiceError::InvalidScope)
}

fn response(
    access: issuing::SignedAccess,
    refresh_token: Option<String>,
    scope: &ScopeSet,
) -> TokenResponse {
    TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token,
        scope: scope.to_string(),
    }
}

/// A rotated token came back: whoever holds it, the chain is no longer trustworthy, and the
/// session ends with every token it ever issued.
fn end_for_reuse(
    conn: &mut Conn,
    session: &Session,
    client: &ClientInfo,
    meta: &RequestMeta,
) -> Result<()> {
    let counts = conn.write(|conn| {
        revocation::end_session_in_tx(
            conn,
            &session.id,
            Reason::RefreshReuse,
            "refresh_reuse",
            Event {
                user_id: session.user_id.as_deref(),
                session_id: Some(&session.id),
                client_id: Some(&client.client_id),
                ..Default::default()
            },
            meta,
        )
    })?;
    if counts.sessions_revoked > 0 {
        tracing::warn!(session_id = %session.id, client_id = %client.client_id, "refresh token reuse: session revoked");
    }
    Ok(())
}
