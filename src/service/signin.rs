//! Sign-in: checking a username and password the way every sign-in does (the password grant and
//! the sign-in page), with throttling, one answer for every failure, and an audit trail; and the
//! password grant itself.

use super::audit::{self, Event};
use super::clients::ClientInfo;
use super::grant_type::GrantType;
use super::issuing::{self, SessionKind, TokenResponse};
use super::scope::{self, ScopeSet, ADMIN};
use super::throttle;
use super::{Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::password::Verified;
use crate::store::models::User;
use crate::store::{self, Conn};

/// Longest password tokend will hash (SECURITY.md 24): longer ones are refused before Argon2.
pub const MAX_PASSWORD_LEN: usize = 1024;

pub(crate) const BAD_CREDENTIALS: &str = "invalid username or password";

/// Records a failed sign-in and returns the error the caller answers with. The answer is the same
/// whatever the reason, so unknown users and wrong passwords cannot be told apart.
/// `throttle_keys`: the username and address the failure counts against (none for an attempt that
/// was refused because it was throttled already).
async fn failure(
    ctx: &Ctx,
    user_id: Option<String>,
    reason: &'static str,
    client: &ClientInfo,
    throttle_keys: Vec<String>,
    meta: RequestMeta,
) -> ServiceError {
    let client_id = client.client_id.clone();
    let config = ctx.config.clone();
    let recorded = ctx
        .write(move |conn| {
            throttle::record_failure(conn, &config, &throttle_keys, store::now())?;
            let event = Event {
                kind: "signin_failure",
                reason: Some(reason),
                user_id: user_id.as_deref(),
                client_id: Some(&client_id),
                ..Default::default()
            };
            audit::record(conn, event, &meta)
        })
        .await;
    match recorded {
        Ok(()) => ServiceError::InvalidGrant(BAD_CREDENTIALS.to_owned()),
        Err(err) => err,
    }
}

/// Answers a throttled sign-in (429 after `seconds`). It writes nothing: a flood of attempts
/// against a blocked name must not become a flood of writes that slows refreshes (DESIGN.md: a
/// flood of logins slows logins only). The block itself was audited with the failure that
/// caused it.
fn throttled(seconds: u64, client: &ClientInfo) -> ServiceError {
    tracing::warn!(client_id = %client.client_id, retry_after = seconds, "sign-in throttled");
    ServiceError::Throttled(seconds)
}

/// A user whose password checked out, and the new hash when the stored one needs upgrading. The
/// user row is as it was read before Argon2 ran: the session that opens from it re-checks, under
/// the user's lock, that its `password_changed_at` is still current.
pub struct SignedIn {
    pub user: User,
    pub rehash: Option<String>,
}

/// Checks a username and password the way every sign-in does: throttled before any Argon2 work,
/// the same answer for an unknown user and a wrong password, each failure counted and audited.
pub(crate) async fn verify_credentials(
    ctx: &Ctx,
    client: &ClientInfo,
    username: String,
    password: String,
    meta: &RequestMeta,
) -> Result<SignedIn> {
    let throttle_keys = throttle::keys(&username, meta);
    if password.chars().count() > MAX_PASSWORD_LEN || username.len() > 256 {
        // Refused before Argon2 ever sees it (SECURITY.md 24), and still audited and counted.
        return Err(failure(
            ctx,
            None,
            "credentials_too_long",
            client,
            throttle_keys,
            meta.clone(),
        )
        .await);
    }
    let (lookup, keys) = (username.clone(), throttle_keys.clone());
    let user = ctx
        .db(move |conn| {
            // A throttled name or address is refused before any Argon2 work.
            throttle::check(conn, &keys, store::now())?;
            store::users::find_by_username(conn, &lookup).map_err(ServiceError::from)
        })
        .await;
    let user = match user {
        Err(ServiceError::Throttled(seconds)) => return Err(throttled(seconds, client)),
        other => other?,
    };
    // Guesses sent all at once pass the first check together and queue for Argon2. Each looks
    // again when its turn comes, and holds the turn until its own failure is written, so once a
    // name or address is blocked at most one guess per turn (per core) is still in flight.
    let turn = ctx.hasher.turn().await?;
    let keys = throttle_keys.clone();
    let recheck = ctx
        .db(move |conn| throttle::check(conn, &keys, store::now()))
        .await;
    if let Err(ServiceError::Throttled(seconds)) = recheck {
        drop(turn);
        return Err(throttled(seconds, client));
    }
    recheck?;
    let verified = ctx
        .hasher
        .verify_in_turn(
            &turn,
            password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let refused = match (&user, verified) {
        (None, _) => Some("unknown_user"),
        (Some(_), Verified::No) => Some("bad_password"),
        (Some(u), Verified::Yes { .. }) if u.disabled_at.is_some() => Some("user_disabled"),
        _ => None,
    };
    if let Some(reason) = refused {
        let user_id = user.as_ref().map(|u| u.id.clone());
        let recorded = failure(ctx, user_id, reason, client, throttle_keys, meta.clone()).await;
        drop(turn);
        return Err(recorded);
    }
    // Released before a rehash takes a turn of its own.
    drop(turn);
    let Some(user) = user else {
        return Err(ServiceError::InvalidGrant(BAD_CREDENTIALS.to_owned()));
    };
    let rehash = match verified {
        Verified::Yes { needs_rehash: true } => Some(ctx.hasher.hash(password).await?),
        _ => None,
    };
    Ok(SignedIn { user, rehash })
}

/// The scopes `client` may grant to `user`: the client's, less `admin` for a user who is not one.
pub(crate) fn allowed_scopes(client: &ClientInfo, user: &User) -> ScopeSet {
    let allowed = client.scope_set();
    if user.is_admin {
        allowed
    } else {
        allowed.without(ADMIN)
    }
}

/// Under the user's lock (SECURITY.md 30): the sign-in still stands only if its password is still
/// the current one and the user is still enabled. `Ok(Err(..))` is a refusal to commit: the audit
/// event says why; the client hears what any failed sign-in hears.
pub(crate) fn confirm_in_tx(
    conn: &mut Conn,
    signed_in: &SignedIn,
    client: &ClientInfo,
    meta: &RequestMeta,
) -> store::Result<Result<()>> {
    let user = &signed_in.user;
    let refused = match store::users::lock(conn, &user.id)? {
        None => Some("unknown_user"),
        Some(now) if now.disabled_at.is_some() => Some("user_disabled"),
        Some(now) if now.password_changed_at != user.password_changed_at => {
            Some("password_changed")
        }
        Some(_) => None,
    };
    if let Some(reason) = refused {
        tracing::info!(user_id = %user.id, reason, "sign-in overtaken by a change to the user");
        audit::record(
            conn,
            Event {
                kind: "signin_failure",
                reason: Some(reason),
                user_id: Some(&user.id),
                client_id: Some(&client.client_id),
                ..Default::default()
            },
            meta,
        )?;
        return Ok(Err(ServiceError::InvalidGrant(BAD_CREDENTIALS.to_owned())));
    }
    throttle::record_success(conn, &user.username)?;
    if let Some(hash) = &signed_in.rehash {
        store::users::rehash_password(conn, &user.id, &user.password_hash, hash)?;
    }
    Ok(Ok(()))
}

/// The password grant (RFC 6749 §4.3): first-party clients that list it only.
pub async fn password(
    ctx: &Ctx,
    client: ClientInfo,
    username: String,
    password: String,
    requested: Option<ScopeSet>,
    device_name: Option<String>,
    meta: RequestMeta,
) -> Result<TokenResponse> {
    client.require_grant(GrantType::Password)?;
    let signed_in = verify_credentials(ctx, &client, username, password, &meta).await?;
    let allowed = allowed_scopes(&client, &signed_in.user);
    let granted = scope::grant(requested.as_ref(), &allowed).map_err(ServiceError::InvalidScope)?;
    let key = ctx.keys.signing_key()?;
    let status = super::status_list::StatusLists::allocate(ctx).await?;
    let ctx2 = ctx.clone();
    let outcome = ctx
        .write(move |conn| {
            if let Err(refused) = confirm_in_tx(conn, &signed_in, &client, &meta)? {
                return Ok(Err(refused));
            }
            let user = &signed_in.user;
            let opened = issuing::open_session_in_tx(
                conn,
                &ctx2,
                &key,
                issuing::Opening {
                    user: Some(user),
                    client: &client,
                    kind: SessionKind::Password,
                    scope: &granted,
                    device_name,
                    meta: &meta,
                    status,
                },
            )?;
            let opened = match opened {
                Ok(opened) => opened,
                Err(gone) => return Ok(Err(gone)),
            };
            audit::record(
                conn,
                Event {
                    kind: "signin_success",
                    reason: Some("password_grant"),
                    user_id: Some(&user.id),
                    session_id: Some(&opened.session.id),
                    client_id: Some(&client.client_id),
                    ..Default::default()
                },
                &meta,
            )?;
            Ok(Ok(opened.response))
        })
        .await?;
    if outcome.is_err() {
        ctx.status.unused(status);
    }
    outcome
}
