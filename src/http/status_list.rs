//! `GET /oauth/statuslists/{list}`: a signed Token Status List (draft-ietf-oauth-status-list),
//! and `GET /oauth/statuslists`: every list's uri (the draft's status list aggregation).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::responses::StatusListAggregation;
use crate::service::status_list::StatusLists;
use crate::service::Ctx;

/// The media type of a status list token.
pub const MEDIA_TYPE: &str = "application/statuslist+jwt";

#[utoipa::path(get, path = "/oauth/statuslists/{list}", tag = "oauth",
    params(("list" = String, Path, description = "list number, as in a token's `status.status_list.uri`")),
    responses(
        (status = 200, description = "the list as a signed JWT (`typ: statuslist+jwt`)",
            content_type = "application/statuslist+jwt", body = String),
        (status = 304, description = "`If-None-Match` names the copy this node serves"),
        (status = 400, description = "a control character in the path", body = crate::http::responses::ErrorBody),
        (status = 404, description = "no such list", body = crate::http::responses::ErrorBody)))]
pub async fn list(
    ctx: web::Data<Ctx>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    // Only the spelling tokend puts in tokens: digits, no sign, no leading zero.
    let number = raw
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1 && n.to_string() == raw);
    let built = match number {
        Some(number) => StatusLists::get(&ctx, number).await?,
        None => None,
    };
    let Some(built) = built else {
        return Err(ApiError::plain(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "no such status list",
        ));
    };
    let ttl = ctx.config.status_list_ttl;
    // A consumer caches the copy no longer than this node would serve it.
    let max_age = ttl.saturating_sub(built.built.elapsed()).as_secs();
    let cache_control = format!("public, max-age={max_age}");
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == "*" || tag == built.etag)
        });
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::ETAG, built.etag.clone()));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response
        .insert_header((header::CONTENT_TYPE, MEDIA_TYPE))
        .body(built.jwt.clone()))
}

#[utoipa::path(get, path = "/oauth/statuslists", tag = "oauth",
    responses((status = 200, description = "the uri of every status list", body = StatusListAggregation)))]
pub async fn aggregation(ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let status_lists = StatusLists::all_uris(&ctx).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", ctx.config.status_list_ttl.as_secs()),
        ))
        .json(StatusListAggregation { status_lists }))
}
