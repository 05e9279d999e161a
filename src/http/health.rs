//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use crate::service::Ctx;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

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
