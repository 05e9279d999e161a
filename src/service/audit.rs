//! The audit trail: one row per security-relevant event, with its reason, never a secret.

use super::{new_id, RequestMeta};
use crate::store::models::AuditEvent;
use crate::store::{self, Conn};

/// An event about to be recorded.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub reason: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

/// Every kind of audit event tokend writes (docs/admin.md has what each means).
pub const KINDS: &[&str] = &[
    "client_created",
    "client_deleted",
    "code_exchanged",
    "code_reuse",
    "key_rotated",
    "logout",
    "logout_all",
    "password_change_failure",
    "password_changed",
    "personal_token_created",
    "personal_token_failure",
    "personal_token_revoked",
    "purge",
    "refresh_reuse",
    "session_ended",
    "signin_failure",
    "signin_success",
    "token_revoked",
    "user_created",
    "user_disabled",
    "user_enabled",
];

pub fn record(conn: &mut Conn, event: Event<'_>, meta: &RequestMeta) -> store::Result<()> {
    debug_assert!(
        KINDS.contains(&event.kind),
        "audit kind {} is missing from audit::KINDS",
        event.kind
    );
    crate::metrics::audit_event(event.kind, event.reason);
    let row = AuditEvent {
        id: new_id(),
        at: store::now(),
        kind: event.kind.to_owned(),
        reason: event.reason.map(str::to_owned),
        actor_id: event.actor_id.map(str::to_owned),
        user_id: event.user_id.map(str::to_owned),
        session_id: event.session_id.map(str::to_owned),
        client_id: event.client_id.map(str::to_owned),
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
    };
    store::audit::insert(conn, &row)
}

/// An audit event as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub kind: String,
    pub reason: Option<String>,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<AuditEvent> for EventView {
    fn from(e: AuditEvent) -> Self {
        EventView {
            id: e.id,
            at: e.at.and_utc(),
            kind: e.kind,
            reason: e.reason,
            actor_id: e.actor_id,
            user_id: e.user_id,
            session_id: e.session_id,
            client_id: e.client_id,
            ip: e.ip,
            user_agent: e.user_agent,
        }
    }
}

/// Events matching `filter`, newest first.
pub async fn list(ctx: &super::Ctx, filter: store::audit::Filter) -> super::Result<Vec<EventView>> {
    let rows = ctx
        .pool
        .run(move |conn| store::audit::list(conn, &filter).map_err(super::ServiceError::from))
        .await?;
    Ok(rows.into_iter().map(EventView::from).collect())
}
