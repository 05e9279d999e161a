//! Queries on `audit_events`.

use diesel::prelude::*;

use super::models::AuditEvent;
use super::schema::audit_events;
use super::{Conn, Result};
use crate::db;

pub fn insert(conn: &mut Conn, event: &AuditEvent) -> Result<()> {
    db!(conn, c => diesel::insert_into(audit_events::table).values(event).execute(c))?;
    Ok(())
}

/// Filters for [`list`]; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<String>,
    pub kind: Option<String>,
    pub session_id: Option<String>,
    pub limit: i64,
}

/// Events matching `filter`, newest first.
pub fn list(conn: &mut Conn, filter: &Filter) -> Result<Vec<AuditEvent>> {
    Ok(db!(conn, c => {
        let mut query = audit_events::table.select(AuditEvent::as_select()).into_boxed();
        if let Some(user_id) = &filter.user_id {
            query = query.filter(audit_events::user_id.eq(user_id.clone()));
        }
        if let Some(kind) = &filter.kind {
            query = query.filter(audit_events::kind.eq(kind.clone()));
        }
        if let Some(session_id) = &filter.session_id {
            query = query.filter(audit_events::session_id.eq(session_id.clone()));
        }
        query
            .order((audit_events::at.desc(), audit_events::id.desc()))
            .limit(filter.limit)
            .load(c)
    })?)
}
