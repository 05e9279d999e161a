//! The account API: what a signed-in user does with a bearer token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::bearer;
use super::error::ApiError;
use crate::service::scope::ACCOUNT;
use crate::service::Ctx;

/// `GET /api/me`
pub async fn me(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let principal = bearer::require(&ctx, &req, ACCOUNT).await?;
    Ok(HttpResponse::Ok().json(json!({
        "id": principal.user_id,
        "username": principal.username,
        "is_admin": principal.is_admin,
        "session_id": principal.session_id,
        "client_id": principal.client_id,
        "scopes": principal.scopes,
    })))
}
