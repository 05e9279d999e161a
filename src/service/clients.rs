//! OAuth clients: registration, authentication, listing and deletion.

use serde::Serialize;

use super::audit::{self, Event};
use super::grant_type::GrantType;
use super::revocation;
use super::scope::ScopeSet;
use super::{Ctx, RequestMeta, Result, ServiceError};
use crate::crypto::token::{OpaqueToken, TokenKind};
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::store::models::Client;
use crate::store::{self, Conn};

/// A registered client, with its lists parsed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub audiences: Vec<String>,
    /// The refresh token travels in an HttpOnly cookie instead of the response body.
    pub refresh_token_cookie: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn split(value: &str) -> Vec<String> {
    value
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ClientInfo {
    pub fn from_row(row: &Client) -> ClientInfo {
        ClientInfo {
            client_id: row.id.clone(),
            name: row.name.clone(),
            public: row.is_public,
            // A name this version does not know grants nothing.
            grant_types: split(&row.grant_types)
                .iter()
                .filter_map(|g| GrantType::parse(g))
                .collect(),
            redirect_uris: split(&row.redirect_uris),
            scopes: split(&row.scopes),
            allowed_origins: split(&row.allowed_origins),
            audiences: split(&row.audiences),
            refresh_token_cookie: row.refresh_token_cookie,
            created_at: row.created_at.and_utc(),
        }
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// `unauthorized_client` unless the client is registered for `grant` (RFC 6749 §5.2).
    pub fn require_grant(&self, grant: GrantType) -> Result<()> {
        if self.allows_grant(grant) {
            Ok(())
        } else {
            Err(ServiceError::UnauthorizedClient(format!(
                "this client may not use the {grant} grant"
            )))
        }
    }

    pub fn scope_set(&self) -> ScopeSet {
        ScopeSet::from_names(self.scopes.iter().cloned())
    }
}

/// Credentials a request presented, already checked for shape by the HTTP layer.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

const AUTH_FAILED: &str = "client authentication failed";

/// Authenticates a client: a public client by its id alone, a confidential one by its secret
/// (SHA-256 compared in constant time; secrets are high-entropy, so no Argon2 is needed).
pub async fn authenticate(ctx: &Ctx, creds: ClientCredentials) -> Result<ClientInfo> {
    let ClientCredentials { client_id, secret } = creds;
    let row = ctx
        .query(move |conn| store::clients::find(conn, &client_id))
        .await?
        .ok_or_else(|| ServiceError::InvalidClient(AUTH_FAILED.to_owned()))?;
    match (&row.secret_hash, secret) {
        (None, None) => Ok(ClientInfo::from_row(&row)),
        (None, Some(_)) => Err(ServiceError::InvalidClient(
            "public clients authenticate with client_id alone".to_owned(),
        )),
        (Some(_), None) => Err(ServiceError::InvalidClient(
            "this client must authenticate with its client_secret".to_owned(),
        )),
        (Some(stored), Some(secret)) => {
            if constant_time_eq(stored, &sha256_hex(secret.as_bytes())) {
                Ok(ClientInfo::from_row(&row))
            } else {
                Err(ServiceError::InvalidClient(AUTH_FAILED.to_owned()))
            }
        }
    }
}

/// A registered, not deleted client by its id.
pub async fn find(ctx: &Ctx, client_id: String) -> Result<Option<ClientInfo>> {
    let row = ctx
        .query(move |conn| store::clients::find(conn, &client_id))
        .await?;
    Ok(row.as_ref().map(ClientInfo::from_row))
}

/// A client to register.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub client_id: Option<String>,
    pub name: String,
    pub public: bool,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub audiences: Vec<String>,
    pub refresh_token_cookie: bool,
}

/// A registered client and, for a confidential one, its secret (shown this once).
pub struct CreatedClient {
    pub client: ClientInfo,
    pub client_secret: Option<String>,
}

/// Checks each item of a list field; the error names the field and the item, and says what a
/// valid one looks like (`expected`: "an origin …, e.g. https://app.example").
fn check_list(
    what: &str,
    items: &[String],
    valid: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<()> {
    for item in items {
        if item.is_empty()
            || item.len() > 2000
            || item.chars().any(char::is_whitespace)
            || !valid(item)
        {
            return Err(ServiceError::InvalidRequest(format!(
                "{what}: {} is not {expected}",
                super::shown(item)
            )));
        }
    }
    Ok(())
}

const REDIRECT_URI: &str = "an absolute URI without a fragment, e.g. https://app.example/callback";
const ORIGIN: &str = "an origin (http or https, a host, an optional port, no path), e.g. https://app.example or http://127.0.0.1:5173";
const AUDIENCE: &str =
    "an audience (one value without spaces, up to 2000 bytes), e.g. https://api.example";

fn is_absolute_uri(value: &str) -> bool {
    match value.split_once("://") {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
                && !value.contains('#')
        }
        None => false,
    }
}

fn is_origin(value: &str) -> bool {
    match value.split_once("://") {
        Some((scheme, host)) => {
            (scheme == "http" || scheme == "https")
                && !host.is_empty()
                && !host.contains(['/', '?', '#'])
        }
        None => false,
    }
}

/// Validates and inserts a client (call inside a write transaction).
pub fn create(conn: &mut Conn, new: NewClient) -> Result<CreatedClient> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ServiceError::InvalidRequest(
            "name: 1 to 200 characters, e.g. \"Billing dashboard\"".to_owned(),
        ));
    }
    check_list(
        "grant_types",
        &new.grant_types,
        |g| GrantType::parse(g).is_some(),
        &format!("a grant type (one of {})", GrantType::names()),
    )?;
    if new.grant_types.is_empty() {
        return Err(ServiceError::InvalidRequest(format!(
            "grant_types: at least one of {}",
            GrantType::names()
        )));
    }
    let grants: Vec<GrantType> = new
        .grant_types
        .iter()
        .filter_map(|g| GrantType::parse(g))
        .collect();
    if new.public && grants.contains(&GrantType::ClientCredentials) {
        return Err(ServiceError::InvalidRequest(
            "grant_types: client_credentials needs a confidential client".to_owned(),
        ));
    }
    check_list(
        "redirect_uris",
        &new.redirect_uris,
        is_absolute_uri,
        REDIRECT_URI,
    )?;
    if grants.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
        return Err(ServiceError::InvalidRequest(
            "redirect_uris: the authorization_code grant needs at least one, e.g. https://app.example/callback".to_owned(),
        ));
    }
    let scopes = ScopeSet::from_list(&new.scopes)
        .map_err(|e| ServiceError::InvalidRequest(format!("scopes: {e}")))?;
    check_list("allowed_origins", &new.allowed_origins, is_origin, ORIGIN)?;
    check_list("audiences", &new.audiences, |_| true, AUDIENCE)?;
    if new.refresh_token_cookie {
        if !grants.contains(&GrantType::RefreshToken) {
            return Err(ServiceError::InvalidRequest(
                "refresh_token_cookie: the client needs the refresh_token grant".to_owned(),
            ));
        }
        if new.allowed_origins.is_empty() {
            return Err(ServiceError::InvalidRequest(
                "refresh_token_cookie: a browser client needs allowed_origins".to_owned(),
            ));
        }
    }
    let client_id = match new.client_id {
        Some(id) => {
            if id.is_empty()
                || id.len() > 100
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(ServiceError::InvalidRequest(format!(
                    "client_id: {id:?} is not valid"
                )));
            }
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let secret = (!new.public).then(|| OpaqueToken::generate(TokenKind::ClientSecret));
    let row = Client {
        id: client_id,
        name: name.to_owned(),
        secret_hash: secret.as_ref().map(|s| s.hash().0),
        is_public: new.public,
        grant_types: new.grant_types.join(" "),
        redirect_uris: new.redirect_uris.join(" "),
        scopes: scopes.to_string(),
        allowed_origins: new.allowed_origins.join(" "),
        audiences: new.audiences.join(" "),
        created_at: store::now(),
        deleted_at: None,
        refresh_token_cookie: new.refresh_token_cookie,
    };
    match store::clients::insert(conn, &row) {
        Err(store::StoreError::Conflict) => {
            return Err(ServiceError::Conflict(format!(
                "client {} already exists",
                row.id
            )))
        }
        other => other?,
    }
    Ok(CreatedClient {
        client: ClientInfo::from_row(&row),
        client_secret: secret.map(OpaqueToken::into_inner),
    })
}

/// Registers a client and records who did it, in one transaction.
pub async fn register(
    ctx: &Ctx,
    new: NewClient,
    actor_id: Option<String>,
    meta: RequestMeta,
) -> Result<CreatedClient> {
    ctx.write(move |conn| {
        let created = match create(conn, new) {
            Ok(created) => created,
            Err(e) => return Ok(Err(e)),
        };
        audit::record(
            conn,
            Event {
                kind: "client_created",
                reason: Some(if created.client.public {
                    "public"
                } else {
                    "confidential"
                }),
                actor_id: actor_id.as_deref(),
                client_id: Some(&created.client.client_id),
                ..Default::default()
            },
            &meta,
        )?;
        Ok(Ok(created))
    })
    .await?
}

pub async fn list(ctx: &Ctx) -> Result<Vec<ClientInfo>> {
    let rows = ctx.query(store::clients::list).await?;
    Ok(rows.iter().map(ClientInfo::from_row).collect())
}

/// Deletes a client and revokes every session it holds, in one transaction.
pub fn delete(
    conn: &mut Conn,
    client_id: &str,
    actor_id: Option<&str>,
    meta: &RequestMeta,
) -> Result<revocation::Counts> {
    conn.write(|conn| {
        let now = store::now();
        if store::clients::mark_deleted(conn, client_id, now)? == 0 {
            return Ok(None);
        }
        let counts = store::revocation::revoke(
            conn,
            &store::revocation::Scope::Client(client_id.to_owned()),
            revocation::Reason::ClientDeleted.as_str(),
            now,
        )?;
        audit::record(
            conn,
            Event {
                kind: "client_deleted",
                reason: Some(revocation::Reason::ClientDeleted.as_str()),
                actor_id,
                client_id: Some(client_id),
                ..Default::default()
            },
            meta,
        )?;
        Ok(Some(counts))
    })?
    .ok_or_else(|| ServiceError::NotFound(format!("no client {client_id}")))
}
