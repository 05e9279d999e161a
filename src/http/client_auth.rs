//! Client authentication at the token, revocation and introspection endpoints: HTTP Basic
//! (`client_secret_basic`), `client_id` + `client_secret` in the body (`client_secret_post`), or a
//! public client's bare `client_id`. Two methods at once is `invalid_request` (RFC 6749 §2.3).

use actix_web::http::header;
use actix_web::HttpRequest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::error::ApiError;
use super::params::Params;
use crate::service::clients::{self, ClientCredentials, ClientInfo};
use crate::service::Ctx;

fn form_decode(value: &str) -> Option<String> {
    let plus_as_space = value.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// `(client_id, client_secret)` of a Basic `Authorization` value (RFC 6749 §2.3.1); pure, for the
/// fuzzer too.
pub fn parse_basic(value: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::invalid_client("the Basic Authorization header is malformed");
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::invalid_request(
            "the Authorization header of this endpoint takes Basic client credentials only",
        ));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
    let id = form_decode(id).filter(|s| !s.is_empty()).ok_or_else(bad)?;
    let secret = form_decode(secret).ok_or_else(bad)?;
    // As in every other text input: never a client id or secret, and never to the database.
    if let Some(name) = super::params::control_character_in([
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ]) {
        return Err(super::params::control_character_error(&name));
    }
    Ok((id, secret))
}

/// Reads the client credentials a request presents, refusing ambiguous combinations.
pub fn presented(
    req: &HttpRequest,
    params: &Params,
) -> Result<Option<ClientCredentials>, ApiError> {
    let mut headers = req.headers().get_all(header::AUTHORIZATION);
    let first = headers.next();
    if headers.next().is_some() {
        return Err(ApiError::invalid_request(
            "more than one Authorization header",
        ));
    }
    match first {
        Some(value) => {
            let value = value.to_str().map_err(|_| {
                ApiError::invalid_client("the Basic Authorization header is malformed")
            })?;
            let (id, secret) = parse_basic(value)?;
            if params.get("client_secret").is_some() {
                return Err(ApiError::invalid_request(
                    "use one client authentication method: Basic or client_secret in the body, not both",
                ));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(ApiError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            Ok(Some(ClientCredentials {
                client_id: id,
                secret: Some(secret),
            }))
        }
        None => match params.get("client_id") {
            Some(id) => Ok(Some(ClientCredentials {
                client_id: id.to_owned(),
                secret: params.get("client_secret").map(str::to_owned),
            })),
            None if params.get("client_secret").is_some() => Err(ApiError::invalid_request(
                "client_secret was sent without client_id",
            )),
            None => Ok(None),
        },
    }
}

/// Authenticates the calling client (public clients by id alone).
pub async fn authenticate(
    ctx: &Ctx,
    req: &HttpRequest,
    params: &Params,
) -> Result<ClientInfo, ApiError> {
    let credentials = presented(req, params)?;
    let credentials = credentials.ok_or_else(|| {
        ApiError::invalid_client(
            "client authentication is required (Basic, or client_id in the body)",
        )
    })?;
    clients::authenticate(ctx, credentials)
        .await
        .map_err(ApiError::oauth)
}
