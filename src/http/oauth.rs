//! `POST /oauth/token`, `POST /oauth/revoke`, `POST /oauth/introspect`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::{client_auth, meta, params};
use crate::service::scope::ScopeSet;
use crate::service::{authorize, introspection, issuing, refresh, revocation, signin, Ctx};

fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The cookie that carries a cookie-mode client's refresh token (one per client, so two SPAs on
/// one tokend do not overwrite each other's).
pub fn refresh_cookie_name(client_id: &str) -> String {
    format!("tokend_rt_{client_id}")
}

/// The refresh cookie: HttpOnly, Secure, SameSite=Strict, sent only to the token endpoint.
/// Browsers keep `Secure` cookies over plain http on 127.0.0.1 and localhost, for development.
fn refresh_cookie(client_id: &str, value: String, max_age: std::time::Duration) -> HeaderValue {
    let cookie = actix_web::cookie::Cookie::build(refresh_cookie_name(client_id), value)
        .path("/oauth/token")
        .http_only(true)
        .secure(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// A `Set-Cookie` that deletes the client's refresh cookie.
pub fn clear_refresh_cookie(response: &mut HttpResponse, client_id: &str) {
    let value = refresh_cookie(client_id, String::new(), std::time::Duration::ZERO);
    if !value.is_empty() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A cookie-mode request must come from a browser page of the client's: an `Origin` it registered
/// (checked by `check_origin`) and a custom header no cross-site form can send without a CORS
/// preflight (the CSRF defence besides SameSite=Strict).
fn require_browser_request(req: &HttpRequest) -> Result<(), ApiError> {
    if req.headers().get(header::ORIGIN).is_none() {
        return Err(ApiError::invalid_request(
            "this client receives its refresh token in a cookie: requests must come from one of its browser origins",
        ));
    }
    let custom = req
        .headers()
        .get("x-requested-with")
        .is_some_and(|v| !v.is_empty());
    if !custom {
        return Err(ApiError::invalid_request(
            "this client receives its refresh token in a cookie: send the X-Requested-With header",
        ));
    }
    Ok(())
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
    responses((status = 200, body = crate::service::issuing::TokenResponse), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 413, body = crate::http::responses::ErrorBody), (status = 429, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn token(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let params = params::read(&req, payload).await?;
    let grant_type = params.require("grant_type")?.to_owned();
    let client = client_auth::authenticate(&ctx, &req, &params).await?;
    super::check_origin(&req, &client)?;
    let cookie_mode = client.refresh_token_cookie;
    if cookie_mode {
        require_browser_request(&req)?;
    }
    let client_id = client.client_id.clone();
    let meta = meta(&req);
    let result = match grant_type.as_str() {
        "password" => {
            let username = params.require("username")?.to_owned();
            let password = params.require("password")?.to_owned();
            let scope = requested_scope(&params)?;
            let device_name = params.get("device_name").map(str::to_owned);
            signin::password(&ctx, client, username, password, scope, device_name, meta).await
        }
        "refresh_token" => {
            let refresh_token = match params.get("refresh_token") {
                Some(token) => token.to_owned(),
                None if cookie_mode => req
                    .cookie(&refresh_cookie_name(&client_id))
                    .map(|c| c.value().to_owned())
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid_request(
                            "no refresh token: neither the refresh_token parameter nor the refresh cookie was sent",
                        )
                    })?,
                None => params.require("refresh_token")?.to_owned(),
            };
            let scope = requested_scope(&params)?;
            refresh::refresh(&ctx, client, refresh_token, scope, meta).await
        }
        "client_credentials" => {
            let scope = requested_scope(&params)?;
            issuing::client_credentials(&ctx, client, scope, meta).await
        }
        "authorization_code" => {
            let code = params.require("code")?.to_owned();
            let redirect_uri = params.require("redirect_uri")?.to_owned();
            let verifier = params.get("code_verifier").map(str::to_owned);
            authorize::exchange(&ctx, client, code, redirect_uri, verifier, meta).await
        }
        other => Err(crate::service::ServiceError::UnsupportedGrantType(format!(
            "grant_type {:?} is not supported",
            other.chars().take(64).collect::<String>()
        ))),
    };
    let mut response = match result {
        Ok(response) => {
            if let Some(grant) = crate::service::grant_type::GrantType::parse(&grant_type) {
                crate::metrics::token_issued(grant.as_str());
            }
            response
        }
        Err(err) => {
            let failed_refresh = grant_type == "refresh_token"
                && matches!(err, crate::service::ServiceError::InvalidGrant(_));
            let mut response = actix_web::ResponseError::error_response(&ApiError::oauth(err));
            if cookie_mode && failed_refresh {
                // The cookie's token is dead: the browser should stop sending it.
                clear_refresh_cookie(&mut response, &client_id);
            }
            return Ok(response);
        }
    };
    let cookie = match (cookie_mode, response.refresh_token.take()) {
        (true, Some(token)) => Some(refresh_cookie(
            &client_id,
            token,
            ctx.config.refresh_token_ttl,
        )),
        (_, token) => {
            response.refresh_token = token;
            None
        }
    };
    let mut http = no_store(HttpResponse::Ok().json(response));
    if let Some(cookie) = cookie {
        http.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(http)
}

#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = crate::http::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "revoked, or nothing to revoke"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 413, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn revoke(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let params = params::read(&req, payload).await?;
    let client = client_auth::authenticate(&ctx, &req, &params).await?;
    super::check_origin(&req, &client)?;
    if client.refresh_token_cookie {
        require_browser_request(&req)?;
    }
    let token = params.require("token")?;
    // The hint is only an optimisation; the token's shape says what it is (RFC 7009 §2.1).
    revocation::revoke_presented(&ctx, &client, token, &meta(&req))
        .await
        .map_err(ApiError::oauth)?;
    let mut response = no_store(HttpResponse::Ok().finish());
    if client.refresh_token_cookie {
        // Revoking either token ends the session, so its refresh cookie is dead too.
        clear_refresh_cookie(&mut response, &client.client_id);
    }
    Ok(response)
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth", security(("client_basic" = [])),
    request_body(content = crate::http::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = crate::service::introspection::Introspection), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 413, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
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
    let answer = introspection::introspect(&ctx, &client, token)
        .await
        .map_err(ApiError::oauth)?;
    Ok(no_store(HttpResponse::Ok().json(answer)))
}
