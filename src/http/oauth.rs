//! `POST /oauth/token`, `POST /oauth/revoke`, `POST /oauth/introspect`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::{client_auth, meta, params};
use crate::service::scope::ScopeSet;
use crate::service::{grants, introspection, revocation, Ctx};

fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn requested_scope(params: &params::Params) -> Result<Option<ScopeSet>, ApiError> {
    params
        .get("scope")
        .map(|s| {
            ScopeSet::parse(s)
                .map_err(|e| ApiError::oauth(crate::service::ServiceError::InvalidScope(e)))
        })
        .transpose()
}

#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = crate::http::openapi::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = crate::service::grants::TokenResponse), (status = 400, body = crate::http::openapi::ErrorBody), (status = 401, body = crate::http::openapi::ErrorBody), (status = 413, body = crate::http::openapi::ErrorBody), (status = 429, body = crate::http::openapi::ErrorBody), (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn token(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let params = params::read(&req, payload).await?;
    let grant_type = params.require("grant_type")?.to_owned();
    let client = client_auth::authenticate(&ctx, &req, &params).await?;
    super::check_origin(&req, &client)?;
    let meta = meta(&req);
    let response = match grant_type.as_str() {
        "password" => {
            let username = params.require("username")?.to_owned();
            let password = params.require("password")?.to_owned();
            let scope = requested_scope(&params)?;
            let device_name = params.get("device_name").map(str::to_owned);
            grants::password(&ctx, client, username, password, scope, device_name, meta).await
        }
        "refresh_token" => {
            let refresh_token = params.require("refresh_token")?.to_owned();
            let scope = requested_scope(&params)?;
            grants::refresh(&ctx, client, refresh_token, scope, meta).await
        }
        "client_credentials" => {
            let scope = requested_scope(&params)?;
            grants::client_credentials(&ctx, client, scope, meta).await
        }
        "authorization_code" => Err(crate::service::ServiceError::UnsupportedGrantType(
            "the authorization_code grant is not enabled on this server".to_owned(),
        )),
        other => Err(crate::service::ServiceError::UnsupportedGrantType(format!(
            "grant_type {:?} is not supported",
            other.chars().take(64).collect::<String>()
        ))),
    }
    .map_err(ApiError::oauth)?;
    Ok(no_store(HttpResponse::Ok().json(response)))
}

#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = crate::http::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "revoked, or nothing to revoke"), (status = 400, body = crate::http::openapi::ErrorBody), (status = 401, body = crate::http::openapi::ErrorBody), (status = 413, body = crate::http::openapi::ErrorBody), (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn revoke(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let params = params::read(&req, payload).await?;
    let client = client_auth::authenticate(&ctx, &req, &params).await?;
    super::check_origin(&req, &client)?;
    let token = params.require("token")?;
    // The hint is only an optimisation; the token's shape says what it is (RFC 7009 §2.1).
    revocation::revoke_presented(&ctx, &client, token, &meta(&req))
        .await
        .map_err(ApiError::oauth)?;
    Ok(no_store(HttpResponse::Ok().finish()))
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth", security(("client_basic" = [])),
    request_body(content = crate::http::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = crate::service::introspection::Introspection), (status = 400, body = crate::http::openapi::ErrorBody), (status = 401, body = crate::http::openapi::ErrorBody), (status = 413, body = crate::http::openapi::ErrorBody), (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn introspect(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let params = params::read(&req, payload).await?;
    let client = client_auth::authenticate(&ctx, &req, &params).await?;
    if client.public {
        return Err(ApiError::invalid_client(
            "introspection is for confidential clients",
        ));
    }
    let token = params.require("token")?;
    let answer = introspection::introspect(&ctx, token)
        .await
        .map_err(ApiError::oauth)?;
    Ok(no_store(HttpResponse::Ok().json(answer)))
}
