//! Users: creation, password changes, logout of every device, and the session list.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::{self, Event};
use super::revocation::{self, Counts, Reason, Scope};
use super::{new_id, Ctx, RequestMeta, Result, ServiceError};
use crate::store::models::{Session, User};
use crate::store::{self, Conn};

/// Passwords: 8 to 1024 characters, no composition rules (NIST SP 800-63B).
pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if (8..=1024).contains(&n) {
        Ok(())
    } else {
        Err(ServiceError::InvalidRequest(
            "password: 8 to 1024 characters".to_owned(),
        ))
    }
}

/// Usernames: 1 to 64 characters of letters, digits and `._@-`.
pub fn check_username(username: &str) -> Result<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidRequest(format!(
            "username: {} is not a username (1 to 64 letters, digits, '.', '_', '@' or '-'), e.g. alice or alice.smith@example.com",
            super::shown(username)
        )))
    }
}

/// A user as the APIs show it (never the hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            is_admin: u.is_admin,
            disabled: u.disabled_at.is_some(),
            created_at: u.created_at.and_utc(),
            password_changed_at: u.password_changed_at.and_utc(),
        }
    }
}

/// Inserts a user whose password is already hashed (inside the caller's transaction).
pub fn insert(
    conn: &mut Conn,
    username: &str,
    password_hash: String,
    is_admin: bool,
) -> Result<User> {
    let now = store::now();
    let user = User {
        id: new_id(),
        username: username.to_owned(),
        password_hash,
        is_admin,
        disabled_at: None,
        password_changed_at: now,
        created_at: now,
        updated_at: now,
    };
    match store::users::insert(conn, &user) {
        Err(store::StoreError::Conflict) => Err(ServiceError::Conflict(format!(
            "username {username} is taken"
        ))),
        other => Ok(other.map(|()| user)?),
    }
}

pub async fn create(
    ctx: &Ctx,
    username: String,
    password: String,
    is_admin: bool,
    actor_id: Option<String>,
    meta: RequestMeta,
) -> Result<UserView> {
    check_username(&username)?;
    check_password(&password)?;
    let hash = ctx.hasher.hash(password).await?;
    let user = ctx
        .write(move |conn| {
            let user = match insert(conn, &username, hash, is_admin) {
                Ok(user) => user,
                Err(e) => return Ok(Err(e)),
            };
            audit::record(
                conn,
                Event {
                    kind: "user_created",
                    reason: Some(if is_admin { "admin" } else { "user" }),
                    actor_id: actor_id.as_deref(),
                    user_id: Some(&user.id),
                    ..Default::default()
                },
                &meta,
            )?;
            Ok(Ok(user))
        })
        .await??;
    Ok(UserView::from(&user))
}

pub async fn find_by_username(ctx: &Ctx, username: String) -> Result<User> {
    ctx.query(move |conn| store::users::find_by_username(conn, &username))
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such user".to_owned()))
}

/// Sets a user's password and, unless `keep_sessions`, revokes every session the user holds
/// (`except_session` aside), in one transaction. Returns what was revoked.
pub async fn set_password(
    ctx: &Ctx,
    user_id: String,
    new_password: String,
    keep_sessions: bool,
    except_session: Option<String>,
    actor_id: Option<String>,
    meta: RequestMeta,
) -> Result<Counts> {
    let change = PasswordChange {
        user_id,
        keep_sessions,
        except_session,
        actor_id,
        verified_at: None,
    };
    set_password_checked(ctx, change, new_password, meta).await
}

/// A password change about to be written.
struct PasswordChange {
    user_id: String,
    keep_sessions: bool,
    except_session: Option<String>,
    actor_id: Option<String>,
    /// For a change that proved the current password: the `password_changed_at` of the password
    /// it proved. Under the user's lock the change goes ahead only if that is still the password,
    /// so of two changes racing with the same current password one wins and the other is refused
    /// (it no longer knows the current password).
    verified_at: Option<chrono::NaiveDateTime>,
}

async fn set_password_checked(
    ctx: &Ctx,
    change: PasswordChange,
    new_password: String,
    meta: RequestMeta,
) -> Result<Counts> {
    check_password(&new_password)?;
    let hash = ctx.hasher.hash(new_password).await?;
    let PasswordChange {
        user_id,
        keep_sessions,
        except_session,
        actor_id,
        verified_at,
    } = change;
    ctx.write(move |conn| {
        let now = store::now();
        if let Some(verified_at) = verified_at {
            match store::users::lock(conn, &user_id)? {
                None => return Ok(None),
                Some(locked) if locked.password_changed_at != verified_at => {
                    return Ok(Some(Err(ServiceError::Forbidden(
                        "the current password is wrong".to_owned(),
                    ))));
                }
                Some(_) => {}
            }
        }
        // The UPDATE takes the user's lock: sign-ins with the old password that have not
        // committed yet wait, then see `password_changed_at` moved and give up.
        if store::users::set_password_hash(conn, &user_id, &hash, now)? == 0 {
            return Ok(None);
        }
        let subject = Event {
            actor_id: actor_id.as_deref(),
            user_id: Some(&user_id),
            ..Default::default()
        };
        audit::record(
            conn,
            Event {
                kind: "password_changed",
                reason: Some(if keep_sessions {
                    "sessions_kept"
                } else {
                    "sessions_revoked"
                }),
                ..subject.clone()
            },
            &meta,
        )?;
        if keep_sessions {
            return Ok(Some(Ok(Counts::default())));
        }
        let scope = Scope::User {
            user_id: user_id.clone(),
            except_session,
            kind: None,
        };
        revocation::revoke_in_tx(
            conn,
            &scope,
            Reason::PasswordChanged,
            "logout_all",
            subject,
            &meta,
        )
        .map(|counts| Some(Ok(counts)))
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound("no such user".to_owned()))?
}

/// Logs a user out of every device (`except_session` aside).
/// `kind`: only the user's sessions of that kind (Sanctum's "log out tokens of one type").
pub async fn logout_all(
    ctx: &Ctx,
    user_id: String,
    except_session: Option<String>,
    kind: Option<super::issuing::SessionKind>,
    reason: Reason,
    actor_id: Option<String>,
    meta: RequestMeta,
) -> Result<Counts> {
    if kind == Some(super::issuing::SessionKind::ClientCredentials) {
        return Err(ServiceError::InvalidRequest(
            "kind: client_credentials sessions belong to clients, not users".to_owned(),
        ));
    }
    ctx.write(move |conn| {
        let scope = Scope::User {
            user_id: user_id.clone(),
            except_session,
            kind: kind.map(|k| k.as_str().to_owned()),
        };
        let subject = Event {
            actor_id: actor_id.as_deref(),
            user_id: Some(&user_id),
            ..Default::default()
        };
        revocation::revoke_in_tx(conn, &scope, reason, "logout_all", subject, &meta)
    })
    .await
}

/// A session as the APIs and the CLI show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: String,
    pub kind: String,
    pub device_name: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub current: bool,
}

impl SessionView {
    pub fn new(s: &Session, current_session: Option<&str>) -> SessionView {
        SessionView {
            id: s.id.clone(),
            kind: s.kind.clone(),
            device_name: s.device_name.clone(),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            client_id: s.client_id.clone(),
            scopes: s
                .scope
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
            created_at: s.created_at.and_utc(),
            last_used_at: s.last_used_at.and_utc(),
            expires_at: s.expires_at.and_utc(),
            current: current_session == Some(s.id.as_str()),
        }
    }
}

/// A user's live sessions, newest first.
pub async fn sessions(
    ctx: &Ctx,
    user_id: String,
    current_session: Option<String>,
) -> Result<Vec<SessionView>> {
    let rows = ctx
        .query(move |conn| store::sessions::list_active(conn, &user_id, store::now()))
        .await?;
    Ok(rows
        .iter()
        .map(|s| SessionView::new(s, current_session.as_deref()))
        .collect())
}

/// Disables a user (revoking everything the user holds, in the same transaction) or enables one.
pub async fn set_disabled(
    ctx: &Ctx,
    user_id: String,
    disabled: bool,
    actor_id: Option<String>,
    meta: RequestMeta,
) -> Result<Counts> {
    ctx.write(move |conn| {
        let now = store::now();
        // The UPDATE takes the user's lock (see `set_password`).
        if store::users::set_disabled(conn, &user_id, disabled.then_some(now), now)? == 0 {
            return Ok(None);
        }
        let subject = Event {
            actor_id: actor_id.as_deref(),
            user_id: Some(&user_id),
            ..Default::default()
        };
        if disabled {
            let scope = Scope::User {
                user_id: user_id.clone(),
                except_session: None,
                kind: None,
            };
            revocation::revoke_in_tx(
                conn,
                &scope,
                Reason::UserDisabled,
                "user_disabled",
                subject,
                &meta,
            )
            .map(Some)
        } else {
            audit::record(
                conn,
                Event {
                    kind: "user_enabled",
                    reason: Some("enabled"),
                    ..subject
                },
                &meta,
            )?;
            Ok(Some(Counts::default()))
        }
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound("no such user".to_owned()))
}

/// Checks a signed-in user's current password, throttled like a sign-in (the same counters per
/// username and address, checked before Argon2) so that a stolen access token cannot be used to
/// guess it; a wrong one counts as a failure and is audited as `failure_kind`.
pub(crate) async fn current_password_is_right(
    ctx: &Ctx,
    user_id: &str,
    current_password: String,
    meta: &RequestMeta,
    failure_kind: &'static str,
) -> Result<bool> {
    Ok(
        verify_current_password(ctx, user_id, current_password, meta, failure_kind)
            .await?
            .is_some(),
    )
}

/// [`current_password_is_right`], returning the `password_changed_at` of the password it proved.
async fn verify_current_password(
    ctx: &Ctx,
    user_id: &str,
    current_password: String,
    meta: &RequestMeta,
    failure_kind: &'static str,
) -> Result<Option<chrono::NaiveDateTime>> {
    if current_password.chars().count() > super::signin::MAX_PASSWORD_LEN {
        return Ok(None);
    }
    let id = user_id.to_owned();
    let user = ctx
        .query(move |conn| store::users::find_by_id(conn, &id))
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such user".to_owned()))?;
    let throttle_keys = super::throttle::keys(&user.username, meta);
    let keys = throttle_keys.clone();
    ctx.db(move |conn| super::throttle::check(conn, &keys, store::now()))
        .await?;
    let verified = ctx
        .hasher
        .verify(current_password, Some(user.password_hash))
        .await?;
    if verified != crate::crypto::password::Verified::No {
        return Ok(Some(user.password_changed_at));
    }
    let (uid, meta, config) = (user_id.to_owned(), meta.clone(), ctx.config.clone());
    ctx.write(move |conn| {
        super::throttle::record_failure(conn, &config, &throttle_keys, store::now())?;
        let event = Event {
            kind: failure_kind,
            reason: Some("bad_current_password"),
            actor_id: Some(&uid),
            user_id: Some(&uid),
            ..Default::default()
        };
        audit::record(conn, event, &meta)
    })
    .await?;
    Ok(None)
}

/// A user changes their own password: the current one must be right (403 otherwise), and still be
/// the current one when the change is written; other sessions are logged out unless
/// `logout_other_sessions` is false; the current one stays.
pub async fn change_own_password(
    ctx: &Ctx,
    user_id: String,
    current_session: String,
    current_password: String,
    new_password: String,
    logout_other_sessions: bool,
    meta: RequestMeta,
) -> Result<Counts> {
    check_password(&new_password)?;
    let Some(verified_at) = verify_current_password(
        ctx,
        &user_id,
        current_password,
        &meta,
        "password_change_failure",
    )
    .await?
    else {
        return Err(ServiceError::Forbidden(
            "the current password is wrong".to_owned(),
        ));
    };
    let change = PasswordChange {
        user_id: user_id.clone(),
        keep_sessions: !logout_other_sessions,
        except_session: Some(current_session),
        actor_id: Some(user_id),
        verified_at: Some(verified_at),
    };
    set_password_checked(ctx, change, new_password, meta).await
}

pub async fn list(ctx: &Ctx) -> Result<Vec<UserView>> {
    let rows = ctx.query(store::users::list).await?;
    Ok(rows.iter().map(UserView::from).collect())
}

pub async fn get(ctx: &Ctx, id: String) -> Result<UserView> {
    ctx.query(move |conn| store::users::find_by_id(conn, &id))
        .await?
        .map(|u| UserView::from(&u))
        .ok_or_else(|| ServiceError::NotFound("no such user".to_owned()))
}
