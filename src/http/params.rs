//! Request bodies of the OAuth endpoints: `application/x-www-form-urlencoded` (RFC 6749) or
//! `application/json`, read with a size limit, decoded strictly (broken UTF-8 and repeated
//! parameters are refused, RFC 6749 §3.2), with empty values treated as absent (§3.1).

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt as _;
use serde::de::{Deserializer, MapAccess, Visitor};

use super::error::ApiError;

/// Largest body the OAuth endpoints read.
pub const MAX_BODY: usize = 16 * 1024;
/// Most parameters one request may carry.
pub const MAX_FIELDS: usize = 32;

/// Parameters that carry credentials or tokens and so are refused in a query string (RFC 9700 §4.3.2).
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "access_token",
    "token",
    "code",
    "code_verifier",
];

/// Fields whose value is checked exactly as received and never stored (SECURITY.md 24): the only
/// text allowed to hold control characters.
pub(crate) const VERBATIM_FIELDS: &[&str] = &["password", "current_password", "new_password"];

/// The first field (by name) of `pairs` whose name or value holds a control character (NUL, the
/// other C0 and C1 codes, DEL), passwords aside. Such text is never a valid username, name, scope,
/// URI or token, and PostgreSQL's text type cannot even hold a NUL: refused before anything reads
/// the database, the same on both backends.
pub fn control_character_in<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    pairs.into_iter().find_map(|(name, value)| {
        let bad_value = !VERBATIM_FIELDS.contains(&name) && value.chars().any(char::is_control);
        (bad_value || name.chars().any(char::is_control)).then(|| printable(name))
    })
}

/// The error for [`control_character_in`]'s finding.
pub fn control_character_error(name: &str) -> ApiError {
    ApiError::invalid_request(format!("the {name} parameter contains a control character"))
}

#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// A parameter's value; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid_request(format!("the {name} parameter is missing")))
    }

    /// Refuses repeated parameters, control characters and more than [`MAX_FIELDS`].
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, ApiError> {
        if pairs.len() > MAX_FIELDS {
            return Err(ApiError::invalid_request(format!(
                "more than {MAX_FIELDS} parameters"
            )));
        }
        if let Some(name) =
            control_character_in(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            return Err(control_character_error(&name));
        }
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(ApiError::invalid_request(format!(
                    "the {} parameter is repeated",
                    printable(&k)
                )));
            }
            map.insert(k, v);
        }
        Ok(Params(map))
    }
}

fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Refuses credentials and tokens in the query string.
pub fn refuse_secrets_in_query(req: &HttpRequest) -> Result<(), ApiError> {
    let query = req.query_string();
    if query.is_empty() {
        return Ok(());
    }
    for part in query.split('&') {
        let name = part.split('=').next().unwrap_or_default();
        if SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            return Err(ApiError::invalid_request(format!(
                "{} must not be sent in the query string; send it in the request body",
                printable(name)
            )));
        }
    }
    Ok(())
}

/// Reads the body with a limit; larger bodies get 413.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::invalid_request("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::plain(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the request body is larger than {} KiB", limit / 1024),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

enum BodyKind {
    Form,
    Json,
}

fn body_kind(req: &HttpRequest, empty: bool) -> Result<Option<BodyKind>, ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return if empty {
            Ok(None)
        } else {
            Err(ApiError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded or application/json",
            ))
        };
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(Some(BodyKind::Form)),
        "application/json" => Ok(Some(BodyKind::Json)),
        _ => Err(ApiError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// Reads and parses the parameters of an OAuth request.
pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Params, ApiError> {
    refuse_secrets_in_query(req)?;
    let body = read_body(payload, MAX_BODY).await?;
    match body_kind(req, body.is_empty())? {
        None => Ok(Params::default()),
        Some(BodyKind::Form) => Params::from_pairs(parse_form(&body)?),
        Some(BodyKind::Json) => Params::from_pairs(parse_json(&body)?),
    }
}

fn decode_component(raw: &[u8]) -> Result<String, ApiError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid_request("the request body is not valid UTF-8"))
}

pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        pairs.push((decode_component(name)?, decode_component(value)?));
        if pairs.len() > MAX_FIELDS {
            return Err(ApiError::invalid_request(format!(
                "more than {MAX_FIELDS} parameters"
            )));
        }
    }
    Ok(pairs)
}

/// A JSON object's members in order, duplicates kept (serde_json would silently keep the last).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(entry);
                    if members.len() > MAX_FIELDS {
                        return Err(serde::de::Error::custom("too many members"));
                    }
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

pub fn parse_json(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let members: Members = serde_json::from_slice(body).map_err(|_| {
        ApiError::invalid_request("the request body is not a JSON object of string parameters")
    })?;
    let mut pairs = Vec::with_capacity(members.0.len());
    for (name, value) in members.0 {
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "the {} parameter must be a string",
                    printable(&name)
                )))
            }
        };
        pairs.push((name, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_is_strict() {
        let pairs = parse_form(b"a=1&b=x+y%21&c=&d").expect("valid");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("c".into(), "".into()),
                ("d".into(), "".into())
            ]
        );
        assert!(
            parse_form(b"a=%ff%fe").is_err(),
            "broken UTF-8 in an escape"
        );
        assert!(parse_form(b"a=\xff").is_err(), "broken UTF-8 raw");
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::from_pairs(parse_form(b"a=1&a=2").expect("parse")).is_err());
        assert!(Params::from_pairs(parse_json(br#"{"a":"1","a":"2"}"#).expect("parse")).is_err());
    }

    #[test]
    fn json_values_must_be_strings() {
        assert!(parse_json(br#"{"a":1}"#).is_err());
        assert!(parse_json(br#"["a"]"#).is_err());
        assert!(parse_json(b"{").is_err());
        let params = Params::from_pairs(parse_json(br#"{"a":"x","b":null}"#).expect("parse"))
            .expect("params");
        assert_eq!(params.get("a"), Some("x"));
        assert_eq!(params.get("b"), None);
    }
}
