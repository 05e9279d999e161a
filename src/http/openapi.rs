//! The OpenAPI 3.1 document, generated from the handlers' annotations and the response types
//! (`GET /openapi.json`, committed at `docs/openapi.json`; a test fails when the two drift).

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// One scope token (RFC 6749 §3.3).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$")]
#[allow(dead_code)]
pub struct ScopeToken(String);

/// An absolute redirect URI without a fragment.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z][A-Za-z0-9+.-]*://[^\\s#]{1,1990}$")]
#[allow(dead_code)]
pub struct RedirectUri(String);

/// A browser origin: `http(s)://host[:port]`, nothing after it.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^https?://[^/?#\\s]{1,1990}$")]
#[allow(dead_code)]
pub struct Origin(String);

/// An audience a client's access tokens carry.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^\\S{1,2000}$")]
#[allow(dead_code)]
pub struct Audience(String);

/// `POST /oauth/token` parameters (form or JSON). Which are required depends on `grant_type`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    #[schema(value_type = crate::service::grant_type::GrantType)]
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// Optional for a client registered with `refresh_token_cookie`: the cookie carries it
    refresh_token: Option<String>,
    /// `authorization_code`: the code from the redirect
    code: Option<String>,
    /// `authorization_code`: exactly the authorization request's
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636)
    code_verifier: Option<String>,
    /// Space-separated; narrows what the client and user may hold
    scope: Option<String>,
    device_name: Option<String>,
}

/// `POST /oauth/authorize`: the sign-in form, with the authorization request in hidden fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SignInForm {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// The page's anti-forgery value (bound to an HttpOnly cookie)
    csrf_token: String,
    username: Option<String>,
    password: Option<String>,
    /// `sign_in` or `cancel`
    action: Option<String>,
}

/// `POST /oauth/revoke` and `POST /oauth/introspect` parameters.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenParam {
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; a hint only
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or tokend_pat_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tokend", description = "OAuth 2 token service: JWT access tokens, rotating refresh tokens, revocation that sticks."),
    paths(
        super::authorize::show,
        super::authorize::submit,
        super::oauth::token,
        super::oauth::revoke,
        super::oauth::introspect,
        super::discovery::metadata,
        super::discovery::jwks,
        super::status_list::list,
        super::status_list::aggregation,
        super::account::me,
        super::account::sessions,
        super::account::end_session,
        super::account::logout,
        super::account::logout_all,
        super::account::change_password,
        super::account::create_token,
        super::account::list_tokens,
        super::account::delete_token,
        super::account::delete_tokens_named,
        super::admin::create_user,
        super::admin::list_users,
        super::admin::get_user,
        super::admin::set_password,
        super::admin::logout_all,
        super::admin::disable,
        super::admin::enable,
        super::admin::user_sessions,
        super::admin::end_session,
        super::admin::create_client,
        super::admin::list_clients,
        super::admin::delete_client,
        super::admin::audit,
        super::admin::rotate_keys,
        super::admin::purge,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "oauth", description = "RFC 6749, 7009, 7662"),
        (name = "discovery", description = "RFC 8414, 7517"),
        (name = "account", description = "a signed-in user's own sessions, password and personal tokens"),
        (name = "admin", description = "users, clients, audit, keys, purge: admin users with the admin scope"),
        (name = "operations", description = "health and readiness"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "this document")))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
