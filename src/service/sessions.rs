//! Ending one session: a device logged out by its user, by the user from another device, or by an
//! admin.

use super::audit::Event;
use super::revocation::{self, Reason, Scope};
use super::{Ctx, RequestMeta, Result, ServiceError};
use crate::store;

/// Who may end the session: its owner (anyone else's session is 404), or an admin (`None` is the
/// operator's shell).
#[derive(Debug, Clone)]
pub enum Owner {
    User(String),
    Admin { actor_id: Option<String> },
}

/// Ends a live session. An unknown, ended, or someone else's session is `NotFound`.
pub async fn end(
    ctx: &Ctx,
    session_id: String,
    owner: Owner,
    reason: Reason,
    meta: RequestMeta,
) -> Result<()> {
    ctx.write(move |conn| {
        let Some(session) = store::sessions::find(conn, &session_id)? else {
            return Ok(false);
        };
        let (allowed, actor) = match &owner {
            Owner::User(user_id) => (
                session.user_id.as_deref() == Some(user_id.as_str()),
                Some(user_id.as_str()),
            ),
            Owner::Admin { actor_id } => (true, actor_id.as_deref()),
        };
        if !allowed || !session.is_live(store::now()) {
            return Ok(false);
        }
        let subject = Event {
            actor_id: actor,
            user_id: session.user_id.as_deref(),
            session_id: Some(&session.id),
            client_id: Some(&session.client_id),
            ..Default::default()
        };
        revocation::revoke_in_tx(
            conn,
            &Scope::Session(session.id.clone()),
            reason,
            "logout",
            subject,
            &meta,
        )?;
        Ok(true)
    })
    .await?
    .then_some(())
    .ok_or_else(|| ServiceError::NotFound("no such session".to_owned()))
}
