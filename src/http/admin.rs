//! The admin API: a bearer token with the `admin` scope, held by a user who is still an admin.

use super::responses;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use super::{bearer, json, meta};
use crate::service::clients::{self, NewClient};
use crate::service::revocation::Reason;
use crate::service::scope::ADMIN;
use crate::service::sessions::{self, Owner};
use crate::service::{audit, keys, users, Ctx};
use crate::store;

/// Authenticates an admin; returns the admin's user id (the actor of every audit event).
async fn admin(ctx: &Ctx, req: &HttpRequest) -> Result<String, ApiError> {
    let principal = bearer::require(ctx, req, ADMIN).await?;
    match principal.user_id {
        Some(id) if principal.is_admin => Ok(id),
        _ => Err(ApiError::plain(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this request needs an admin user",
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    username: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /admin/users`
#[utoipa::path(post, path = "/admin/users", tag = "admin", security(("bearer" = [])), request_body(content = NewUser),
    responses((status = 201, body = crate::http::responses::CreatedUser), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 409, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn create_user(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let body: NewUser = json::read(&req, payload, None).await?;
    let user = users::create(
        &ctx,
        body.username,
        body.password,
        body.admin,
        Some(actor),
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::Created().json(responses::CreatedUser {
        id: user.id,
        username: user.username,
        is_admin: user.is_admin,
    }))
}

/// `GET /admin/users`
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = crate::http::responses::UserList), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn list_users(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admin(&ctx, &req).await?;
    Ok(HttpResponse::Ok().json(responses::UserList {
        users: users::list(&ctx).await?,
    }))
}

/// `GET /admin/users/{id}`
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = crate::service::users::UserView), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn get_user(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin(&ctx, &req).await?;
    Ok(HttpResponse::Ok().json(users::get(&ctx, id.into_inner()).await?))
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    #[schema(min_length = 8, max_length = 1024)]
    new_password: String,
    #[serde(default = "default_true")]
    logout_all: bool,
}

/// `POST /admin/users/{id}/password`: the seed case, "change the password and log the user out
/// of every device".
#[utoipa::path(post, path = "/admin/users/{id}/password", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    request_body(content = SetPassword),
    responses((status = 200, body = crate::store::revocation::Counts), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn set_password(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let body: SetPassword = json::read(&req, payload, None).await?;
    let counts = users::set_password(
        &ctx,
        id.into_inner(),
        body.new_password,
        !body.logout_all,
        None,
        Some(actor),
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// `POST /admin/users/{id}/logout-all`
#[utoipa::path(post, path = "/admin/users/{id}/logout-all", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = crate::store::revocation::Counts), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn logout_all(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let id = id.into_inner();
    users::get(&ctx, id.clone()).await?;
    let counts = users::logout_all(
        &ctx,
        id,
        None,
        None,
        Reason::AdminLogoutAll,
        Some(actor),
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// `POST /admin/users/{id}/disable`
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "disabled; everything the user held is revoked"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn disable(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    users::set_disabled(&ctx, id.into_inner(), true, Some(actor), meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /admin/users/{id}/enable`
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "enabled"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn enable(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    users::set_disabled(&ctx, id.into_inner(), false, Some(actor), meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /admin/users/{id}/sessions`
#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = crate::http::responses::SessionList), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn user_sessions(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin(&ctx, &req).await?;
    let id = id.into_inner();
    users::get(&ctx, id.clone()).await?;
    Ok(HttpResponse::Ok().json(responses::SessionList {
        sessions: users::sessions(&ctx, id, None).await?,
    }))
}

/// `DELETE /admin/sessions/{id}`
#[utoipa::path(delete, path = "/admin/sessions/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "ended"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn end_session(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    sessions::end(
        &ctx,
        id.into_inner(),
        Owner::Admin {
            actor_id: Some(actor),
        },
        Reason::AdminSessionEnded,
        meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    #[serde(default)]
    public: bool,
    #[schema(min_items = 1, inline, value_type = Vec<crate::service::grant_type::GrantType>)]
    grant_types: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::openapi::RedirectUri>)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::openapi::ScopeToken>)]
    scopes: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::openapi::Origin>)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::openapi::Audience>)]
    audiences: Vec<String>,
    /// Deliver the refresh token in an HttpOnly cookie instead of the response body (browser apps).
    #[serde(default)]
    refresh_token_cookie: bool,
}

/// `POST /admin/clients`
#[utoipa::path(post, path = "/admin/clients", tag = "admin", security(("bearer" = [])), request_body(content = NewClientBody),
    responses((status = 201, body = crate::http::responses::CreatedClient, description = "the client, with client_secret for a confidential one"), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn create_client(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let body: NewClientBody = json::read(&req, payload, None).await?;
    let new = NewClient {
        client_id: None,
        name: body.name,
        public: body.public,
        grant_types: body.grant_types,
        redirect_uris: body.redirect_uris,
        scopes: body.scopes,
        allowed_origins: body.allowed_origins,
        audiences: body.audiences,
        refresh_token_cookie: body.refresh_token_cookie,
    };
    let created = clients::register(&ctx, new, Some(actor), meta(&req)).await?;
    ctx.origins.reload(&ctx.pool).await?;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(responses::CreatedClient {
            client: created.client,
            client_secret: created.client_secret,
        }))
}

/// `GET /admin/clients`
#[utoipa::path(get, path = "/admin/clients", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = crate::http::responses::ClientList), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn list_clients(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admin(&ctx, &req).await?;
    Ok(HttpResponse::Ok().json(responses::ClientList {
        clients: clients::list(&ctx).await?,
    }))
}

/// `DELETE /admin/clients/{id}`: revokes every session of the client; answers the counts.
#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = crate::store::revocation::Counts), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 404, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn delete_client(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let (id, meta) = (id.into_inner(), meta(&req));
    let counts = ctx
        .pool
        .run(move |conn| clients::delete(conn, &id, Some(&actor), &meta))
        .await?;
    ctx.origins.reload(&ctx.pool).await?;
    Ok(HttpResponse::Ok().json(counts))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    user_id: Option<String>,
    kind: Option<String>,
    session_id: Option<String>,
    /// 1 to 1000, default 100
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /admin/audit?user_id=&kind=&session_id=&limit=`, newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = crate::http::responses::EventList), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn audit(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admin(&ctx, &req).await?;
    let q: AuditQuery = json::query(&req)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "limit: 1 to 1000",
        ));
    }
    if let Some(kind) = q.kind.as_deref().filter(|k| !k.is_empty()) {
        if !audit::KINDS.contains(&kind) {
            return Err(ApiError::plain(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!(
                    "kind: not an audit event kind; one of {}",
                    audit::KINDS.join(", ")
                ),
            ));
        }
    }
    let filter = store::audit::Filter {
        user_id: q.user_id.filter(|s| !s.is_empty()),
        kind: q.kind.filter(|s| !s.is_empty()),
        session_id: q.session_id.filter(|s| !s.is_empty()),
        limit,
    };
    Ok(HttpResponse::Ok().json(responses::EventList {
        events: audit::list(&ctx, filter).await?,
    }))
}

/// `POST /admin/keys/rotate`
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = crate::http::responses::RotatedKey), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn rotate_keys(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let kid = keys::rotate(&ctx, Some(actor), meta(&req)).await?;
    Ok(HttpResponse::Ok().json(responses::RotatedKey {
        kid,
        alg: ctx.config.signing_alg.as_str().to_owned(),
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    #[serde(default)]
    dry_run: bool,
}

/// `POST /admin/purge` (`{"dry_run": true}` counts only).
#[utoipa::path(post, path = "/admin/purge", tag = "admin", security(("bearer" = [])), request_body(content = Option<PurgeBody>),
    responses((status = 200, body = crate::service::purge::Report), (status = 400, body = crate::http::responses::ErrorBody), (status = 401, body = crate::http::responses::ErrorBody), (status = 403, body = crate::http::responses::ErrorBody), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn purge(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&ctx, &req).await?;
    let body: PurgeBody = json::read(&req, payload, Some(PurgeBody::default())).await?;
    let report = crate::service::purge::run(&ctx, body.dry_run, Some(actor), meta(&req)).await?;
    Ok(HttpResponse::Ok().json(report))
}
