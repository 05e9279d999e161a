//! JSON bodies of the account and admin APIs: `application/json`, size-limited, unknown fields
//! refused (each request type has `deny_unknown_fields`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::params::{read_body, MAX_BODY};

fn invalid(description: impl Into<String>) -> ApiError {
    ApiError::plain(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Reads a JSON body; an empty body is `T::default()` when `T` has defaults for every field.
pub async fn read<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    empty: Option<T>,
) -> Result<T, ApiError> {
    let body = read_body(payload, MAX_BODY).await?;
    // An empty body, or a literal `null`, is "no options" where options are optional.
    if body.iter().all(u8::is_ascii_whitespace) || (empty.is_some() && body.trim_ascii() == b"null")
    {
        return empty.ok_or_else(|| invalid("this request needs a JSON body"));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(invalid("Content-Type must be application/json"));
    }
    serde_json::from_slice(&body).map_err(|e| {
        // serde's message names the field and what was expected; it carries no internals.
        let message = e.to_string();
        let message = message.split(" at line").next().unwrap_or("invalid JSON");
        invalid(format!("invalid JSON body: {message}"))
    })
}

/// Reads a query string into `T` (unknown parameters refused).
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| invalid(format!("invalid query string: {e}")))
}
