//! `GET /oauth/authorize` and `POST /oauth/authorize`: the authorization code flow's sign-in page
//! (RFC 6749 §4.1.1–4.1.2, RFC 7636, RFC 9207 for `iss`). Server-rendered HTML that works without
//! JavaScript. An unknown client or an unregistered `redirect_uri` is shown as a 400 page and never
//! redirected to (§4.1.2.1); every other error goes back to the client's redirect URI.
//!
//! The form is protected against cross-site posting by a per-browser random value in an HttpOnly,
//! SameSite=Strict cookie whose HMAC (under a server key shared by every node) the form carries.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use hmac::Mac;

use super::error::ApiError;
use super::{meta, params};
use crate::crypto::{b64url, constant_time_eq, random_bytes};
use crate::service::authorize::{self, Approval};
use crate::service::clients::{self, ClientInfo};
use crate::service::scope::ScopeSet;
use crate::service::{Ctx, ServiceError};

const CSRF_COOKIE: &str = "tokend_csrf";
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";
const MAX_STATE: usize = 1024;

/// A well-formed authorization request for a known client and one of its redirect URIs.
struct Request {
    client: ClientInfo,
    redirect_uri: String,
    state: Option<String>,
    scope: Option<String>,
    requested: Option<ScopeSet>,
    code_challenge: Option<String>,
}

/// Why an authorization request cannot go on.
enum Refusal {
    /// Shown to the user, never redirected: the client or the redirect URI cannot be trusted.
    Page(StatusCode, String),
    /// Sent back to the client's redirect URI with `error=`.
    Redirect(Box<HttpResponse>),
    /// The database is unreachable.
    Unavailable,
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn no_store(builder: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
}

/// A redirect to the client: `redirect_uri` with `params`, `state` and `iss` added to its query.
fn redirect_to(
    ctx: &Ctx,
    status: StatusCode,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> HttpResponse {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &ctx.config.issuer));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{query}");
    no_store(&mut HttpResponse::build(status))
        .insert_header((header::LOCATION, location))
        .finish()
}

fn error_redirect(
    ctx: &Ctx,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Refusal {
    Refusal::Redirect(Box::new(redirect_to(
        ctx,
        StatusCode::FOUND,
        redirect_uri,
        state,
        &[("error", error), ("error_description", description)],
    )))
}

/// The parameters, once each; a repeated one is reported by name.
fn single(pairs: Vec<(String, String)>) -> (Vec<(String, String)>, Option<String>) {
    let mut seen: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    let mut repeated = None;
    for (k, v) in pairs {
        if seen.iter().any(|(name, _)| *name == k) {
            repeated.get_or_insert(k);
        } else {
            seen.push((k, v));
        }
    }
    (seen, repeated)
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Checks an authorization request in the order RFC 6749 §4.1.2.1 asks for: first what decides
/// whether redirecting is safe, then everything else.
async fn validate(ctx: &Ctx, pairs: Vec<(String, String)>) -> Result<Request, Refusal> {
    let (pairs, repeated) = single(pairs);
    let page = |message: &str| Refusal::Page(StatusCode::BAD_REQUEST, message.to_owned());
    let Some(client_id) = get(&pairs, "client_id") else {
        return Err(page(
            "The request does not say which application is asking (client_id is missing).",
        ));
    };
    if client_id.len() > 100 || client_id.chars().any(char::is_control) {
        return Err(page(
            "The application that sent you here is not registered with this server.",
        ));
    }
    let client = match clients::find(ctx, client_id.to_owned()).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(page(
                "The application that sent you here is not registered with this server.",
            ))
        }
        Err(ServiceError::Unavailable(_)) => return Err(Refusal::Unavailable),
        Err(err) => {
            tracing::error!(error = %err, "authorize: client lookup failed");
            return Err(Refusal::Unavailable);
        }
    };
    let Some(redirect_uri) = get(&pairs, "redirect_uri") else {
        return Err(page("The request has no redirect_uri."));
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(page(
            "The redirect_uri is not one the application registered, so you are not sent there.",
        ));
    }
    if matches!(repeated.as_deref(), Some("client_id" | "redirect_uri")) {
        return Err(page("The request repeats client_id or redirect_uri."));
    }
    let redirect_uri = redirect_uri.to_owned();
    let state = get(&pairs, "state").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return Err(error_redirect(
            ctx,
            &redirect_uri,
            None,
            "invalid_request",
            "state is longer than 1024 characters",
        ));
    }
    let fail = |error: &str, description: &str| {
        error_redirect(ctx, &redirect_uri, state.as_deref(), error, description)
    };
    if let Some(name) = repeated {
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        return Err(fail(
            "invalid_request",
            &format!("the {name} parameter is repeated"),
        ));
    }
    if let Some(name) =
        params::control_character_in(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        return Err(fail(
            "invalid_request",
            &format!("the {name} parameter contains a control character"),
        ));
    }
    match get(&pairs, "response_type") {
        None => return Err(fail("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if !client.allows_grant(crate::service::grant_type::GrantType::AuthorizationCode) {
        return Err(fail(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let code_challenge = get(&pairs, "code_challenge");
    match (code_challenge, get(&pairs, "code_challenge_method")) {
        (None, None) if client.public => {
            return Err(fail(
                "invalid_request",
                "public clients must send a PKCE code_challenge (S256)",
            ))
        }
        (None, None) => {}
        (None, Some(_)) => return Err(fail("invalid_request", "code_challenge is missing")),
        (Some(_), None | Some("plain")) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            ))
        }
        (Some(_), Some("S256")) => {}
        (Some(_), Some(_)) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256",
            ))
        }
    }
    if code_challenge.is_some_and(|c| !authorize::is_s256_challenge(c)) {
        return Err(fail(
            "invalid_request",
            "code_challenge must be 43 base64url characters (S256)",
        ));
    }
    let scope = get(&pairs, "scope").map(str::to_owned);
    let requested = match scope.as_deref().map(ScopeSet::parse).transpose() {
        Ok(requested) => requested,
        Err(e) => return Err(fail("invalid_scope", &e)),
    };
    if let Some(requested) = &requested {
        let outside = requested.outside(&client.scope_set());
        if !outside.is_empty() {
            return Err(fail(
                "invalid_scope",
                &format!(
                    "this client may not ask for: {}",
                    outside.join(" ").chars().take(200).collect::<String>()
                ),
            ));
        }
    }
    Ok(Request {
        client,
        redirect_uri,
        state,
        scope,
        requested,
        code_challenge: code_challenge.map(str::to_owned),
    })
}

/// The HMAC under which the form carries the browser's CSRF cookie value.
fn csrf_field(ctx: &Ctx, browser_value: &str) -> Result<String, ServiceError> {
    let mut mac = ctx.secrets()?.csrf_key.mac();
    mac.update(b"tokend sign-in form\0");
    mac.update(browser_value.as_bytes());
    Ok(b64url(&mac.finalize().into_bytes()))
}

/// The browser's CSRF value: its cookie when it has a well-formed one, else a new one.
fn browser_value(req: &HttpRequest) -> (String, bool) {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if c.value().len() == 43 => (c.value().to_owned(), false),
        _ => (b64url(&random_bytes::<32>()), true),
    }
}

fn csrf_cookie(ctx: &Ctx, value: String) -> Cookie<'static> {
    Cookie::build(CSRF_COOKIE, value)
        .path("/oauth/authorize")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(ctx.config.issuer.starts_with("https://"))
        .finish()
}

fn shell(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; color: #1d2330; }}
main {{ max-width: 22rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
label {{ display: block; margin: 1rem 0 .3rem; font-weight: 600; }}
input {{ width: 100%; box-sizing: border-box; padding: .55rem; font-size: 1rem; border: 1px solid #8a93a6; border-radius: 4px; }}
.actions {{ display: flex; gap: .5rem; margin-top: 1.5rem; }}
button {{ flex: 1; padding: .6rem; font-size: 1rem; border-radius: 4px; border: 1px solid #2450a6; background: #2f62c8; color: #fff; cursor: pointer; }}
button.secondary {{ background: #fff; color: #2450a6; }}
.error {{ background: #fdecea; border: 1px solid #d93025; color: #8c1d18; padding: .7rem; border-radius: 4px; }}
.client {{ color: #4a5468; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#
    )
}

fn page_response(status: StatusCode, html: String) -> HttpResponse {
    no_store(&mut HttpResponse::build(status))
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .body(html)
}

/// The page shown instead of a redirect (unknown client, unregistered redirect URI, outage).
fn refusal_page(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<h1>This sign-in request cannot be completed</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n<p>Go back to the application and try again. If this keeps happening, tell its developers.</p>",
        escape(message)
    );
    page_response(status, shell("Sign-in request refused", &body))
}

fn refused(refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::Page(status, message) => refusal_page(status, &message),
        Refusal::Redirect(response) => *response,
        Refusal::Unavailable => {
            let mut response = refusal_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in service is temporarily unavailable. Please try again in a moment.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// The sign-in form, carrying the authorization request in hidden fields.
fn form_page(
    status: StatusCode,
    request: &Request,
    csrf: &str,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    let mut hidden = vec![
        ("response_type", "code"),
        ("client_id", request.client.client_id.as_str()),
        ("redirect_uri", request.redirect_uri.as_str()),
        ("csrf_token", csrf),
    ];
    if let Some(state) = &request.state {
        hidden.push(("state", state));
    }
    if let Some(scope) = &request.scope {
        hidden.push(("scope", scope));
    }
    if let Some(challenge) = &request.code_challenge {
        hidden.push(("code_challenge", challenge));
        hidden.push(("code_challenge_method", "S256"));
    }
    let hidden: String = hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                escape(value)
            )
        })
        .collect();
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"error\">{}</p>\n",
                escape(e)
            )
        })
        .unwrap_or_default();
    let (user_focus, password_focus) = if username.is_empty() {
        (" autofocus", "")
    } else {
        ("", " autofocus")
    };
    let body = format!(
        r#"<h1>Sign in</h1>
<p class="client">to continue to <strong>{client}</strong></p>
{error}<form method="post" action="authorize">
{hidden}<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="256" required value="{username}"{user_focus}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" maxlength="1024" required{password_focus}>
<div class="actions">
<button type="submit" name="action" value="sign_in">Sign in</button>
<button type="submit" name="action" value="cancel" class="secondary" formnovalidate>Cancel</button>
</div>
</form>"#,
        client = escape(&request.client.name),
        username = escape(username),
    );
    page_response(status, shell("Sign in", &body))
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, Refusal> {
    params::parse_form(req.query_string().as_bytes()).map_err(|_| {
        Refusal::Page(
            StatusCode::BAD_REQUEST,
            "The request's parameters cannot be read.".to_owned(),
        )
    })
}

/// `GET /oauth/authorize`: checks the request and shows the sign-in form.
#[utoipa::path(get, path = "/oauth/authorize", tag = "oauth",
    params(
        ("response_type" = String, Query, description = "code"),
        ("client_id" = String, Query),
        ("redirect_uri" = String, Query, description = "exactly one of the client's registered redirect URIs"),
        ("state" = Option<String>, Query),
        ("scope" = Option<String>, Query),
        ("code_challenge" = Option<String>, Query, description = "PKCE S256 challenge; required for public clients"),
        ("code_challenge_method" = Option<String>, Query, description = "S256"),
    ),
    responses(
        (status = 200, description = "the sign-in page", content_type = "text/html"),
        (status = 302, description = "an error sent back to the client's redirect URI"),
        (status = 400, description = "unknown client or unregistered redirect URI: a page, never a redirect", content_type = "text/html"),
        (status = 503, description = "database unavailable", content_type = "text/html")))]
pub async fn show(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let request = match query_pairs(&req) {
        Ok(pairs) => validate(&ctx, pairs).await,
        Err(refusal) => Err(refusal),
    };
    let request = match request {
        Ok(request) => request,
        Err(refusal) => return refused(refusal),
    };
    let (browser, new) = browser_value(&req);
    let csrf = match csrf_field(&ctx, &browser) {
        Ok(csrf) => csrf,
        Err(err) => {
            tracing::error!(error = %err, "sign-in page: unexpected failure");
            return refusal_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.",
            );
        }
    };
    let mut response = form_page(StatusCode::OK, &request, &csrf, "", None);
    if new {
        let cookie = csrf_cookie(&ctx, browser);
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `POST /oauth/authorize`: the sign-in form. Success redirects to the client with a code.
#[utoipa::path(post, path = "/oauth/authorize", tag = "oauth",
    request_body(content = crate::http::openapi::SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "signed in (code) or cancelled (access_denied): back to the client"),
        (status = 302, description = "an error sent back to the client's redirect URI"),
        (status = 400, description = "a malformed request or form", content_type = "text/html"),
        (status = 401, description = "wrong username or password: the form again", content_type = "text/html"),
        (status = 403, description = "the form's CSRF check failed", content_type = "text/html"),
        (status = 413, body = crate::http::responses::ErrorBody),
        (status = 429, description = "too many failed sign-ins", content_type = "text/html"),
        (status = 503, description = "database unavailable", content_type = "text/html")))]
pub async fn submit(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = params::read_body(payload, params::MAX_BODY).await?;
    let pairs = match params::parse_form(&body) {
        Ok(pairs) => pairs,
        Err(_) => {
            return Ok(refusal_page(
                StatusCode::BAD_REQUEST,
                "The sign-in form could not be read.",
            ))
        }
    };
    let field = |name: &str| get(&pairs, name).map(str::to_owned);
    let (csrf, action) = (field("csrf_token"), field("action"));
    let (username, password) = (field("username"), field("password"));
    let request = match validate(&ctx, pairs.clone()).await {
        Ok(request) => request,
        Err(refusal) => return Ok(refused(refusal)),
    };
    let csrf_ok = match (req.cookie(CSRF_COOKIE), &csrf) {
        (Some(cookie), Some(field)) => constant_time_eq(&csrf_field(&ctx, cookie.value())?, field),
        _ => false,
    };
    if !csrf_ok {
        return Ok(refusal_page(
            StatusCode::FORBIDDEN,
            "This sign-in form has expired or did not come from this server's page.",
        ));
    }
    let csrf = csrf.unwrap_or_default();
    if action.as_deref() == Some("cancel") {
        return Ok(redirect_to(
            &ctx,
            StatusCode::SEE_OTHER,
            &request.redirect_uri,
            request.state.as_deref(),
            &[
                ("error", "access_denied"),
                ("error_description", "the user cancelled the sign-in"),
            ],
        ));
    }
    let (Some(username), Some(password)) = (username, password) else {
        return Ok(form_page(
            StatusCode::BAD_REQUEST,
            &request,
            &csrf,
            "",
            Some("Enter your username and password."),
        ));
    };
    let meta = meta(&req);
    let signed_in =
        match authorize::sign_in(&ctx, &request.client, username.clone(), password, &meta).await {
            Ok(signed_in) => signed_in,
            Err(err) => return Ok(sign_in_failed(&request, &csrf, &username, err)),
        };
    let approval = Approval {
        client: request.client.clone(),
        redirect_uri: request.redirect_uri.clone(),
        requested: request.requested.clone(),
        code_challenge: request.code_challenge.clone(),
    };
    match authorize::issue_code(&ctx, signed_in, approval, meta).await {
        Ok(code) => Ok(redirect_to(
            &ctx,
            StatusCode::SEE_OTHER,
            &request.redirect_uri,
            request.state.as_deref(),
            &[("code", &code)],
        )),
        Err(ServiceError::InvalidScope(description)) => Ok(redirect_to(
            &ctx,
            StatusCode::SEE_OTHER,
            &request.redirect_uri,
            request.state.as_deref(),
            &[
                ("error", "invalid_scope"),
                ("error_description", &description),
            ],
        )),
        Err(err) => Ok(sign_in_failed(&request, &csrf, &username, err)),
    }
}

fn sign_in_failed(
    request: &Request,
    csrf: &str,
    username: &str,
    err: ServiceError,
) -> HttpResponse {
    let shown_name: String = username.chars().take(256).collect();
    match err {
        ServiceError::InvalidGrant(_) => form_page(
            StatusCode::UNAUTHORIZED,
            request,
            csrf,
            &shown_name,
            Some("Invalid username or password."),
        ),
        ServiceError::Throttled(seconds) => {
            let mut response = form_page(
                StatusCode::TOO_MANY_REQUESTS,
                request,
                csrf,
                &shown_name,
                Some(&format!(
                    "Too many failed sign-ins. Try again in {seconds} second{}.",
                    if seconds == 1 { "" } else { "s" }
                )),
            );
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        ServiceError::Unavailable(_) => refused(Refusal::Unavailable),
        other => {
            tracing::error!(error = %other, "sign-in page: unexpected failure");
            refusal_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.",
            )
        }
    }
}
