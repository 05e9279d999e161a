//! Row structs (what a SELECT gives) and insert structs, one pair per table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled_at: Option<NaiveDateTime>,
    pub password_changed_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub is_public: bool,
    pub grant_types: String,
    pub redirect_uris: String,
    pub scopes: String,
    pub allowed_origins: String,
    pub audiences: String,
    pub created_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub refresh_token_cookie: bool,
}

/// One sign-in on one device, one personal access token or one client-credentials issuance: the
/// unit of revocation, and since storage v2 the only state its tokens have (docs/revocation.md).
/// Access tokens name it (`sid`); refresh tokens are computed from its id, `refresh_generation`
/// and `refresh_secret`.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: Option<String>,
    pub client_id: String,
    pub kind: String,
    pub scope: String,
    pub device_name: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<String>,
    /// The generation of the one refresh token that rotates now; every older one is reuse.
    pub refresh_generation: i64,
    /// 256 random bits (base64url) in every refresh token's tag; `None`: no refresh chain.
    pub refresh_secret: Option<String>,
    /// When the refresh chain last moved forward (the grace window counts from here).
    pub rotated_at: Option<NaiveDateTime>,
    /// Idle expiry of the current refresh token (sliding; never past `expires_at`).
    pub refresh_expires_at: Option<NaiveDateTime>,
    /// When the newest access token issued for the session expires.
    pub access_expires_at: Option<NaiveDateTime>,
    /// The session that created this one (a personal token's creator): it ends with it when that
    /// one ends for theft.
    pub parent_session_id: Option<String>,
    /// The session's entry in a status list (list number, index): its bit turns 1 when the
    /// session is revoked. `None` for personal access tokens, which are not JWTs.
    pub status_list: Option<i64>,
    pub status_idx: Option<i64>,
}

impl Session {
    /// Neither ended nor past its absolute limit: its tokens may be used (each within its own
    /// lifetime). The one definition of a live session; SQL filters spell the same test.
    pub fn is_live(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// The session is live and its current refresh token has not idled out.
    pub fn refresh_usable(&self, now: NaiveDateTime) -> bool {
        self.is_live(now)
            && self.refresh_secret.is_some()
            && self.refresh_expires_at.is_some_and(|t| t > now)
    }
}

/// The refresh secret is a secret: never in a log line.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("client_id", &self.client_id)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("revoked_reason", &self.revoked_reason)
            .field("refresh_generation", &self.refresh_generation)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    pub public_jwk: String,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: String,
    pub at: NaiveDateTime,
    pub kind: String,
    pub reason: Option<String>,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = personal_access_tokens)]
pub struct PersonalAccessToken {
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_attempts)]
pub struct LoginAttempt {
    pub key: String,
    pub failures: i64,
    pub window_started_at: NaiveDateTime,
    pub blocked_until: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = auth_codes)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub session_id: Option<String>,
}
