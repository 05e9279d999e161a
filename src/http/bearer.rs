//! Bearer tokens on tokend's own API (RFC 6750): read from the Authorization header only, never
//! from the query string or the body.

use actix_web::http::header;
use actix_web::HttpRequest;

use super::error::ApiError;
use crate::service::validation::{self, Principal};
use crate::service::Ctx;

/// `b64token` of RFC 6750 §2.1.
fn is_b64token(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The bearer token of a request.
pub fn token(req: &HttpRequest) -> Result<&str, ApiError> {
    let mut headers = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = headers.next() else {
        return Err(ApiError::missing_bearer());
    };
    if headers.next().is_some() {
        return Err(ApiError::malformed_bearer(
            "more than one Authorization header",
        ));
    }
    parse(value.as_bytes())
}

/// The token of one `Authorization` header value (`Bearer <b64token>`); pure, for the fuzzer too.
pub fn parse(value: &[u8]) -> Result<&str, ApiError> {
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .ok_or_else(|| ApiError::malformed_bearer("the Authorization header is not readable"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::malformed_bearer(
            "the Authorization header must use the Bearer scheme",
        ));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(ApiError::malformed_bearer(
            "the Authorization header has no token",
        ));
    }
    if token.contains(char::is_whitespace) || !is_b64token(token) {
        return Err(ApiError::malformed_bearer(
            "the Authorization header must carry exactly one token",
        ));
    }
    Ok(token)
}

/// Authenticates the request's bearer token and checks it holds `scope`.
pub async fn require(ctx: &Ctx, req: &HttpRequest, scope: &str) -> Result<Principal, ApiError> {
    let token = token(req)?;
    let principal = validation::authenticate(ctx, token)
        .await
        .map_err(ApiError::bearer)?;
    if !principal.has_scope(scope) {
        return Err(ApiError::insufficient_scope(scope));
    }
    Ok(principal)
}
