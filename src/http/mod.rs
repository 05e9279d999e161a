//! HTTP: routes, extractors, handlers and the mapping of errors to responses. Handlers parse and
//! authorise, call one service function, and map its result.

pub mod account;
pub mod bearer;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod health;
pub mod oauth;
pub mod params;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::service::RequestMeta;
use error::ApiError;

/// Who is calling, for audit and sessions: the peer address and the user agent.
pub fn meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta {
        ip: req.peer_addr().map(|a| a.ip().to_string()),
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

/// Every route tokend serves.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
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
    .service(
        web::resource("/api/me")
            .route(web::get().to(account::me))
            .default_service(web::to(method_not_allowed("GET"))),
    )
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
    .default_service(web::to(not_found));
}
