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

pub fn record(conn: &mut Conn, event: Event<'_>, meta: &RequestMeta) -> store::Result<()> {
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
