//! Every error as a well-formed response: OAuth errors (RFC 6749 §5.2), bearer errors with
//! `WWW-Authenticate` (RFC 6750 §3), the rest as `{"error", "error_description"}`. A 5xx body is
//! always generic; its cause goes to the log only.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::service::ServiceError;

/// An error response, already decided.
#[derive(Debug)]
pub enum ApiError {
    /// Token, revocation and introspection endpoints.
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
    /// Bearer-protected endpoints. `error: None` is "no credentials" (no error code in the challenge).
    Bearer {
        status: StatusCode,
        error: Option<&'static str>,
        description: String,
        scope: Option<String>,
    },
    Plain {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
    /// Too many failed sign-ins (429 with `Retry-After`).
    Throttled {
        retry_after: u64,
    },
    Unavailable,
    Internal,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::OAuth {
                error, description, ..
            }
            | ApiError::Plain {
                error, description, ..
            } => {
                write!(f, "{error}: {description}")
            }
            ApiError::Bearer {
                error, description, ..
            } => write!(f, "{}: {description}", error.unwrap_or("unauthorized")),
            ApiError::Throttled { .. } | ApiError::Unavailable => {
                f.write_str("temporarily_unavailable")
            }
            ApiError::Internal => f.write_str("server_error"),
        }
    }
}

impl ApiError {
    pub fn invalid_request(description: impl Into<String>) -> ApiError {
        ApiError::OAuth {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    pub fn invalid_client(description: impl Into<String>) -> ApiError {
        ApiError::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }

    pub fn plain(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> ApiError {
        ApiError::Plain {
            status,
            error,
            description: description.into(),
        }
    }

    /// Maps a service error at the token, revocation and introspection endpoints.
    pub fn oauth(err: ServiceError) -> ApiError {
        let (status, error, description) = match err {
            ServiceError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
            ServiceError::InvalidClient(d) => return ApiError::invalid_client(d),
            ServiceError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
            ServiceError::UnauthorizedClient(d) => {
                (StatusCode::BAD_REQUEST, "unauthorized_client", d)
            }
            ServiceError::UnsupportedGrantType(d) => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
            }
            ServiceError::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d),
            other => return ApiError::from(other),
        };
        ApiError::OAuth {
            status,
            error,
            description,
        }
    }

    /// Maps a service error at a bearer-protected endpoint.
    pub fn bearer(err: ServiceError) -> ApiError {
        match err {
            ServiceError::InvalidToken(d) => ApiError::Bearer {
                status: StatusCode::UNAUTHORIZED,
                error: Some("invalid_token"),
                description: d,
                scope: None,
            },
            other => ApiError::from(other),
        }
    }

    pub fn missing_bearer() -> ApiError {
        ApiError::Bearer {
            status: StatusCode::UNAUTHORIZED,
            error: None,
            description: "this endpoint needs a bearer token in the Authorization header"
                .to_owned(),
            scope: None,
        }
    }

    pub fn malformed_bearer(description: &str) -> ApiError {
        ApiError::Bearer {
            status: StatusCode::BAD_REQUEST,
            error: Some("invalid_request"),
            description: description.to_owned(),
            scope: None,
        }
    }

    pub fn insufficient_scope(scope: &str) -> ApiError {
        ApiError::Bearer {
            status: StatusCode::FORBIDDEN,
            error: Some("insufficient_scope"),
            description: format!("this request needs the {scope} scope"),
            scope: Some(scope.to_owned()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> ApiError {
        match err {
            ServiceError::InvalidRequest(d) => {
                ApiError::plain(StatusCode::BAD_REQUEST, "invalid_request", d)
            }
            ServiceError::NotFound(d) => ApiError::plain(StatusCode::NOT_FOUND, "not_found", d),
            ServiceError::Conflict(d) => ApiError::plain(StatusCode::CONFLICT, "conflict", d),
            ServiceError::Forbidden(d) => ApiError::plain(StatusCode::FORBIDDEN, "forbidden", d),
            ServiceError::ReauthenticationRequired(d) => {
                ApiError::plain(StatusCode::FORBIDDEN, "reauthentication_required", d)
            }
            ServiceError::InsufficientScope(scope) => ApiError::insufficient_scope(&scope),
            ServiceError::InvalidToken(d) => ApiError::Bearer {
                status: StatusCode::UNAUTHORIZED,
                error: Some("invalid_token"),
                description: d,
                scope: None,
            },
            ServiceError::InvalidClient(d) => ApiError::invalid_client(d),
            e @ (ServiceError::InvalidGrant(_)
            | ServiceError::UnauthorizedClient(_)
            | ServiceError::UnsupportedGrantType(_)
            | ServiceError::InvalidScope(_)) => ApiError::oauth(e),
            ServiceError::Throttled(seconds) => {
                crate::metrics::signin_throttled();
                ApiError::Throttled {
                    retry_after: seconds,
                }
            }
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::Unavailable
            }
            ServiceError::Unexpected(cause) => {
                tracing::error!(error = ?cause, "request failed");
                ApiError::Internal
            }
        }
    }
}

/// A header value with quotes and control characters removed (descriptions are ours, but never
/// trust a string inside a quoted header parameter).
fn quoted(value: &str) -> String {
    value
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::OAuth { status, .. }
            | ApiError::Bearer { status, .. }
            | ApiError::Plain { status, .. } => *status,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        let (error, description): (&str, &str) = match self {
            ApiError::OAuth {
                error,
                description,
                status,
            } => {
                // RFC 6749 §5.2: a 401 (invalid_client) always says how to authenticate.
                if *status == StatusCode::UNAUTHORIZED {
                    response.insert_header((
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"tokend\""),
                    ));
                }
                (error, description)
            }
            ApiError::Bearer {
                error,
                description,
                scope,
                ..
            } => {
                let challenge = match (error, scope) {
                    (None, _) => "Bearer realm=\"tokend\"".to_owned(),
                    (Some(code), None) => format!(
                        "Bearer realm=\"tokend\", error=\"{code}\", error_description=\"{}\"",
                        quoted(description)
                    ),
                    (Some(code), Some(scope)) => format!(
                        "Bearer realm=\"tokend\", error=\"{code}\", error_description=\"{}\", scope=\"{}\"",
                        quoted(description),
                        quoted(scope)
                    ),
                };
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
                (error.unwrap_or("unauthorized"), description)
            }
            ApiError::Plain {
                error, description, ..
            } => (error, description),
            ApiError::Throttled { retry_after } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
                (
                    "temporarily_unavailable",
                    "too many failed sign-ins; wait as long as Retry-After says and try again",
                )
            }
            ApiError::Unavailable => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
                (
                    "temporarily_unavailable",
                    "the service cannot reach its database; try again shortly",
                )
            }
            ApiError::Internal => ("server_error", "the server failed to handle the request"),
        };
        response.json(super::responses::ErrorBody {
            error: error.to_owned(),
            error_description: description.to_owned(),
        })
    }
}
