//! HTTP: routes, extractors, handlers and the mapping of errors to responses. Handlers parse and
//! authorise, call one service function, and map its result.

pub mod account;
pub mod admin;
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod health;
pub mod json;
pub mod oauth;
pub mod openapi;
pub mod params;
pub mod responses;
pub mod status_list;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;

use crate::service::RequestMeta;
use error::ApiError;

/// CORS for the origins clients registered (`allowed_origins`); never a wildcard. A request from
/// an origin no client lists gets no CORS headers (the browser then refuses the answer); the
/// token and revocation endpoints also check the authenticating client's own list.
pub fn cors(origins: std::sync::Arc<crate::service::origins::OriginCache>) -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _| origin.to_str().is_ok_and(|o| origins.allows(o)))
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-requested-with"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
        .supports_credentials()
        .max_age(600)
        .block_on_origin_mismatch(false)
}

/// Headers every response carries (unless a handler set its own).
pub fn security_headers(https: bool) -> actix_web::middleware::DefaultHeaders {
    let headers = actix_web::middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if https {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}

/// A path whose decoded form holds a control character (`/admin/users/a%00b`) is refused with 400
/// before routing: path parameters are ids and names, and PostgreSQL's text type cannot hold a
/// NUL (the same answer on both backends). Query strings and bodies are checked where they are
/// parsed (`params`, `json`).
pub fn refuse_control_characters_in_path<S>(
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    use actix_web::ResponseError as _;
    let decoded = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy();
    if decoded.chars().any(char::is_control) {
        let response = ApiError::invalid_request("the request path contains a control character")
            .error_response();
        return Box::pin(std::future::ready(Ok(req.into_response(response))));
    }
    Box::pin(srv.call(req))
}

/// A browser request's `Origin` must be one the client registered (RFC 9700 §4.4 in spirit: a
/// public client's id alone must not let any website use it from a user's browser).
pub fn check_origin(
    req: &HttpRequest,
    client: &crate::service::clients::ClientInfo,
) -> Result<(), ApiError> {
    match req.headers().get(header::ORIGIN) {
        None => Ok(()),
        Some(origin) => {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| client.allowed_origins.iter().any(|a| a == o));
            if allowed {
                Ok(())
            } else {
                Err(ApiError::invalid_client(
                    "this client does not accept requests from that browser origin",
                ))
            }
        }
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy
/// (`TOKEND_TRUSTED_PROXIES`), the last address in `X-Forwarded-For` that is not a trusted proxy
/// itself. Addresses further left were written by the client and are never believed.
pub fn client_ip(req: &HttpRequest, trusted: &[crate::config::IpNet]) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return Some(peer);
        };
        for hop in value.split(',') {
            match hop.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => hops.push(ip),
                // One unreadable hop and the chain cannot be followed: the proxy is the client.
                Err(_) => return Some(peer),
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(hop) {
            break;
        }
    }
    Some(client)
}

/// Who is calling, for audit and sessions: the client's address and the user agent.
pub fn meta(req: &HttpRequest) -> RequestMeta {
    let trusted = req
        .app_data::<web::Data<crate::service::Ctx>>()
        .map(|ctx| ctx.config.trusted_proxies.as_slice())
        .unwrap_or_default();
    RequestMeta {
        ip: client_ip(req, trusted).map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(500).collect()),
    }
}

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::plain(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    ))
}

fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone {
    move || {
        let mut response = actix_web::ResponseError::error_response(&ApiError::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("this endpoint answers {allow} only"),
        ));
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(response)
    }
}

/// A resource answering one method, and a JSON 405 with `Allow` for the others.
macro_rules! one_method {
    ($name:ident, $method:ident, $allow:literal) => {
        fn $name<F, Args>(path: &str, handler: F) -> actix_web::Resource
        where
            F: actix_web::Handler<Args>,
            Args: actix_web::FromRequest + 'static,
            F::Output: actix_web::Responder + 'static,
        {
            web::resource(path)
                .route(web::$method().to(handler))
                .default_service(web::to(method_not_allowed($allow)))
        }
    };
}
one_method!(get, get, "GET");
one_method!(post, post, "POST");
one_method!(delete, delete, "DELETE");

/// Every route tokend serves.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/authorize")
            .route(web::get().to(authorize::show))
            .route(web::post().to(authorize::submit))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/oauth/token")
            .route(web::post().to(oauth::token))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/oauth/revoke")
            .route(web::post().to(oauth::revoke))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/oauth/introspect")
            .route(web::post().to(oauth::introspect))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/.well-known/oauth-authorization-server")
            .route(web::get().to(discovery::metadata))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/.well-known/jwks.json")
            .route(web::get().to(discovery::jwks))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(get("/oauth/statuslists", status_list::aggregation))
    .service(get("/oauth/statuslists/{list}", status_list::list))
    .service(get("/api/me", account::me))
    .service(get("/api/sessions", account::sessions))
    .service(delete("/api/sessions/{id}", account::end_session))
    .service(post("/api/logout", account::logout))
    .service(post("/api/logout-all", account::logout_all))
    .service(post("/api/password", account::change_password))
    .service(
        web::resource("/api/tokens")
            .route(web::get().to(account::list_tokens))
            .route(web::post().to(account::create_token))
            .route(web::delete().to(account::delete_tokens_named))
            .default_service(web::to(method_not_allowed("GET, POST, DELETE"))),
    )
    .service(delete("/api/tokens/{id}", account::delete_token))
    .service(
        web::resource("/admin/users")
            .route(web::get().to(admin::list_users))
            .route(web::post().to(admin::create_user))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(get("/admin/users/{id}", admin::get_user))
    .service(post("/admin/users/{id}/password", admin::set_password))
    .service(post("/admin/users/{id}/logout-all", admin::logout_all))
    .service(post("/admin/users/{id}/disable", admin::disable))
    .service(post("/admin/users/{id}/enable", admin::enable))
    .service(get("/admin/users/{id}/sessions", admin::user_sessions))
    .service(delete("/admin/sessions/{id}", admin::end_session))
    .service(
        web::resource("/admin/clients")
            .route(web::get().to(admin::list_clients))
            .route(web::post().to(admin::create_client))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(delete("/admin/clients/{id}", admin::delete_client))
    .service(get("/admin/audit", admin::audit))
    .service(post("/admin/keys/rotate", admin::rotate_keys))
    .service(post("/admin/purge", admin::purge))
    .service(get("/openapi.json", openapi::openapi_json))
    .service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(get("/metrics", health::metrics))
    .default_service(web::to(not_found));
}
