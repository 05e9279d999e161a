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
    // Control characters anywhere in a string (passwords aside) are refused by the field's path,
    // before the typed parse (which keeps its own checks: unknown and duplicate fields).
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(path) = control_character_path(&value, "") {
            return Err(invalid(format!(
                "the {path} field contains a control character"
            )));
        }
    }
    serde_json::from_slice(&body).map_err(|e| {
        // serde's message names the field and what was expected; it carries no internals.
        let message = e.to_string();
        let message = message.split(" at line").next().unwrap_or("invalid JSON");
        invalid(format!("invalid JSON body: {message}"))
    })
}

/// The path of the first member name or string in `value` holding a control character, the
/// top-level password fields aside (checked exactly as received, never stored).
fn control_character_path(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.chars().any(char::is_control).then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_character_path(v, &format!("{path}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(name, v)| {
            let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
            let here = if path.is_empty() {
                shown
            } else {
                format!("{path}.{shown}")
            };
            if name.chars().any(char::is_control) {
                Some(here)
            } else if path.is_empty() && super::params::VERBATIM_FIELDS.contains(&name.as_str()) {
                None
            } else {
                control_character_path(v, &here)
            }
        }),
        _ => None,
    }
}

/// Reads a query string into `T` (unknown parameters refused).
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| invalid(format!("invalid query string: {e}")))?;
    if let Some(name) =
        super::params::control_character_in(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        return Err(super::params::control_character_error(&name));
    }
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| invalid(format!("invalid query string: {e}")))
}
