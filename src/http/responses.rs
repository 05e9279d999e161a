//! Every JSON body tokend answers with, one type per shape. Handlers serialize exactly these and
//! the OpenAPI document is derived from the same types, so the two cannot drift apart
//! (`tests/api/openapi.rs` compares the served document with the committed one). Types the
//! service layer already returns whole (`SessionView`, `ClientInfo`, revocation counts, …) are
//! used as they are.

use serde::Serialize;
use utoipa::ToSchema;

use crate::service::audit::EventView;
use crate::service::clients::ClientInfo;
use crate::service::personal_tokens::TokenView;
use crate::service::users::{SessionView, UserView};

/// Every error body: `{"error": CODE, "error_description": SENTENCE}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub error_description: String,
}

/// `GET /api/me`: who the bearer token speaks for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user's id; `null` for a client's own token.
    pub id: Option<String>,
    pub username: Option<String>,
    pub is_admin: bool,
    pub session_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

/// `GET /api/sessions`, `GET /admin/users/{id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// `GET /api/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// `GET /admin/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// `GET /admin/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientInfo>,
}

/// `GET /admin/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventView>,
}

/// `DELETE /api/tokens?name=…`: how many personal tokens ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// `POST /admin/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
}

/// `POST /admin/clients`: the client, with its secret (shown once) when it is confidential.
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// `POST /admin/keys/rotate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    pub kid: String,
    pub alg: String,
}

/// `GET /healthz` (`ok`), `GET /readyz` (`ready`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub status: &'static str,
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub authorization_response_iss_parameter_supported: bool,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub scopes_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub access_token_signing_alg_values_supported: Vec<&'static str>,
    /// Where every status list's uri is listed (draft-ietf-oauth-status-list, aggregation):
    /// access tokens carry a `status` claim resource servers can check without introspection.
    pub status_list_aggregation_endpoint: String,
}

/// `GET /oauth/statuslists`: the uri of every status list (draft-ietf-oauth-status-list).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusListAggregation {
    pub status_lists: Vec<String>,
}

/// `GET /.well-known/jwks.json` (RFC 7517): the public keys that verify access tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<jsonwebtoken::jwk::Jwk>,
}
