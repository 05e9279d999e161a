//! The account API: what a signed-in user does with a bearer token (an access token or a personal
//! access token) holding the `account` scope.

use super::responses;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use super::{bearer, json, meta};
use crate::service::revocation::Reason;
use crate::service::scope::ACCOUNT;
use crate::service::sessions::{self, Owner};
use crate::service::validation::Principal;
use crate::service::{personal_tokens, users, Ctx};

/// Authenticates the caller as a user holding `account`.
async fn caller(ctx: &Ctx, req: &HttpRequest) -> Result<(Principal, String), ApiError> {
    let principal = bearer::require(ctx, req, ACCOUNT).await?;
    let user_id = principal.user_id.clone().ok_or_else(|| {
        ApiError::plain(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token does not belong to a user",
        )
    })?;
    Ok((principal, user_id))
}

/// `GET /api/me`
#[utoipa::path(get, path = "/api/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = crate::http::responses::Me), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn me(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let principal = bearer::require(&ctx, &req, ACCOUNT).await?;
    Ok(HttpResponse::Ok().json(responses::Me {
        id: principal.user_id,
        username: principal.username,
        is_admin: principal.is_admin,
        session_id: principal.session_id,
        client_id: principal.client_id,
        scopes: principal.scopes.0,
    }))
}

/// `GET /api/sessions`
#[utoipa::path(get, path = "/api/sessions", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = crate::http::responses::SessionList), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn sessions(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (principal, user_id) = caller(&ctx, &req).await?;
    let list = users::sessions(&ctx, user_id, Some(principal.session_id)).await?;
    Ok(HttpResponse::Ok().json(responses::SessionList { sessions: list }))
}

/// `DELETE /api/sessions/{id}`
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "account", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "that device is logged out"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn end_session(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, user_id) = caller(&ctx, &req).await?;
    sessions::end(
        &ctx,
        id.into_inner(),
        Owner::User(user_id),
        Reason::SessionEnded,
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/logout`
#[utoipa::path(post, path = "/api/logout", tag = "account", security(("bearer" = [])),
    responses((status = 204, description = "the current session ended"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn logout(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (principal, user_id) = caller(&ctx, &req).await?;
    let client_id = principal.client_id.clone();
    sessions::end(
        &ctx,
        principal.session_id,
        Owner::User(user_id),
        Reason::Logout,
        meta(&req),
    )
    .await?;
    let mut response = HttpResponse::NoContent().finish();
    // A browser client's refresh cookie belongs to the session that just ended.
    super::oauth::clear_refresh_cookie(&mut response, &client_id);
    Ok(response)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutAll {
    #[serde(default)]
    except_current: bool,
    /// Only sessions of this kind: `password`, `authorization_code` or `personal_access_token`
    kind: Option<crate::service::issuing::SessionKind>,
}

/// `POST /api/logout-all`
#[utoipa::path(post, path = "/api/logout-all", tag = "account", security(("bearer" = [])), request_body(content = Option<LogoutAll>),
    responses((status = 200, body = crate::store::revocation::Counts), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn logout_all(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (principal, user_id) = caller(&ctx, &req).await?;
    let body: LogoutAll = json::read(&req, payload, Some(LogoutAll::default())).await?;
    let except = body.except_current.then_some(principal.session_id);
    let counts = users::logout_all(
        &ctx,
        user_id.clone(),
        except,
        body.kind,
        Reason::LogoutAll,
        Some(user_id),
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(counts))
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    #[schema(min_length = 8, max_length = 1024)]
    new_password: String,
    #[serde(default = "default_true")]
    logout_other_sessions: bool,
}

/// `POST /api/password`
#[utoipa::path(post, path = "/api/password", tag = "account", security(("bearer" = [])), request_body(content = ChangePassword),
    responses((status = 200, body = crate::store::revocation::Counts), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn change_password(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (principal, user_id) = caller(&ctx, &req).await?;
    let body: ChangePassword = json::read(&req, payload, None).await?;
    let counts = users::change_own_password(
        &ctx,
        user_id,
        principal.session_id,
        body.current_password,
        body.new_password,
        body.logout_other_sessions,
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(counts))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f]+$")]
    name: String,
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::openapi::ScopeToken>)]
    scopes: Vec<String>,
    /// Seconds, 60 to ten years; none: no expiry (setting one is recommended)
    #[schema(minimum = 60, maximum = 316224000)]
    expires_in: Option<i64>,
    /// Needed unless the caller's session signed in within the last 10 minutes; otherwise 403
    /// `reauthentication_required`
    #[schema(max_length = 1024)]
    current_password: Option<String>,
}

/// `POST /api/tokens`
#[utoipa::path(post, path = "/api/tokens", tag = "account", security(("bearer" = [])), request_body(content = NewToken),
    responses((status = 201, body = crate::service::personal_tokens::CreatedToken), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn create_token(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (principal, _) = caller(&ctx, &req).await?;
    let body: NewToken = json::read(&req, payload, None).await?;
    let created = personal_tokens::create(
        &ctx,
        &principal,
        body.name,
        body.scopes,
        body.expires_in,
        body.current_password,
        meta(&req),
    )
    .await
    .map_err(scope_as_request_error)?;
    crate::metrics::token_issued("personal_access_token");
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(created))
}

/// Asking a personal token for a scope the calling token does not hold is a question of
/// authority, not of syntax: 403 `insufficient_scope`, as JSON (the calling token itself is fine
/// for this endpoint, so no bearer challenge).
fn scope_as_request_error(err: crate::service::ServiceError) -> ApiError {
    match err {
        crate::service::ServiceError::InvalidScope(d) => {
            ApiError::plain(StatusCode::FORBIDDEN, "insufficient_scope", d)
        }
        other => other.into(),
    }
}

/// `GET /api/tokens`
#[utoipa::path(get, path = "/api/tokens", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = crate::http::responses::TokenList), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn list_tokens(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (_, user_id) = caller(&ctx, &req).await?;
    let tokens = personal_tokens::list(&ctx, user_id).await?;
    Ok(HttpResponse::Ok().json(responses::TokenList { tokens }))
}

/// `DELETE /api/tokens/{id}`
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "account", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn delete_token(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, user_id) = caller(&ctx, &req).await?;
    personal_tokens::revoke(&ctx, user_id, id.into_inner(), meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ByName {
    /// Only the tokens of this name; without it, every personal token of the caller
    #[param(min_length = 1, max_length = 100)]
    name: Option<String>,
}

/// `DELETE /api/tokens?name=NAME`: the caller's personal tokens of that name; without `name`,
/// every personal token of the caller (sign-in sessions untouched).
#[utoipa::path(delete, path = "/api/tokens", tag = "account", security(("bearer" = [])), params(ByName),
    responses((status = 200, body = crate::http::responses::Revoked), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn delete_tokens_named(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, user_id) = caller(&ctx, &req).await?;
    let query: ByName = json::query(&req)?;
    let revoked = match query.name {
        Some(name) => personal_tokens::revoke_named(&ctx, user_id, name, meta(&req)).await?,
        None => personal_tokens::revoke_all(&ctx, user_id, meta(&req)).await?,
    };
    Ok(HttpResponse::Ok().json(responses::Revoked { revoked }))
}
