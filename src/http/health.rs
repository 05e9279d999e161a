//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use crate::service::Ctx;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process answers")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "the database answers"), (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn readyz(ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let pool = ctx.pool.clone();
    let ok = tokio::task::spawn_blocking(move || pool.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    if ok {
        Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::Unavailable)
    }
}
