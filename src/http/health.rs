//! `GET /healthz` (the process answers), `GET /readyz` (the database answers) and `GET /metrics`
//! (Prometheus text exposition).

use super::responses::Status;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use crate::service::Ctx;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process answers", body = Status)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "the database answers", body = Status), (status = 503, body = crate::http::responses::ErrorBody)))]
pub async fn readyz(ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let pool = ctx.pool.clone();
    let ok = tokio::task::spawn_blocking(move || pool.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    if ok {
        Ok(HttpResponse::Ok().json(Status { status: "ready" }))
    } else {
        Err(ApiError::Unavailable)
    }
}

/// Marks the app of the separate metrics listener (`TOKEND_METRICS_BIND`).
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition: requests by route and status, latency histograms by route, tokens issued by grant, refreshes by outcome, reuse detections, sessions revoked by reason, sign-in failures and throttled attempts, database pool in use and waiting, SQLite write-lock wait. On TOKEND_METRICS_BIND instead when that is set (then 404 here). Never behind a token.", content_type = "text/plain")))]
pub async fn metrics(ctx: web::Data<Ctx>, req: actix_web::HttpRequest) -> HttpResponse {
    let on_own_listener = req.app_data::<web::Data<MetricsListener>>().is_some();
    if ctx.config.metrics_bind.is_some() && !on_own_listener {
        return actix_web::ResponseError::error_response(&ApiError::plain(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "metrics are served on TOKEND_METRICS_BIND",
        ));
    }
    let (in_use, idle) = ctx.pool.usage();
    crate::metrics::pool(in_use, idle);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(crate::metrics::render())
}
