//! The authorization code flow with PKCE: the sign-in page, the redirects, the code grant, reuse,
//! and cookie delivery of refresh tokens. Driven over HTTP as a browser would, with the database
//! checked afterwards.

use reqwest::header::HeaderMap;
use reqwest::{header, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokend::service::clients::NewClient;
use tokend::store;

use crate::helpers::*;

const SPA_ORIGIN: &str = "http://127.0.0.1:5173";
const REDIRECT: &str = "http://127.0.0.1:5173/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const PASSWORD: &str = "alice-password-1";

/// A named authorization request and the error it must be redirected with.
type ErrorCase = (&'static str, Vec<(String, String)>, &'static str);

fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A public SPA client (code + refresh), body or cookie delivery.
async fn spa_client(app: &TestApp, cookie: bool) -> String {
    app.create_client(NewClient {
        name: "Example <SPA>".into(),
        public: true,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec!["account".into(), "admin".into()],
        allowed_origins: vec![SPA_ORIGIN.into()],
        refresh_token_cookie: cookie,
        ..Default::default()
    })
    .await
    .0
}

/// What a browser holds after loading the sign-in page.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
    csrf_cookie: Option<String>,
    csrf_field: Option<String>,
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
}

fn set_cookie_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn authorize_query(client_id: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let challenge = challenge(VERIFIER);
    let mut q: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("state".into(), "st-123".into()),
        ("code_challenge".into(), challenge),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (k, v) in extra {
        q.retain(|(name, _)| name != k);
        if !v.is_empty() {
            q.push(((*k).into(), (*v).into()));
        }
    }
    q
}

async fn get_page(app: &TestApp, query: &[(String, String)]) -> Page {
    let response = app
        .http
        .get(app.url("/oauth/authorize"))
        .query(query)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let csrf_cookie = cookie_value(&headers, "tokend_csrf");
    let html = response.text().await.expect("body");
    let csrf_field = hidden(&html, "csrf_token");
    Page {
        status,
        headers,
        html,
        csrf_cookie,
        csrf_field,
    }
}

/// Submits the sign-in form the page rendered (hidden fields + credentials).
async fn submit(app: &TestApp, page: &Page, fields: &[(&str, &str)]) -> Response {
    let mut form: Vec<(String, String)> = Vec::new();
    for name in [
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "csrf_token",
    ] {
        if let Some(v) = hidden(&page.html, name) {
            form.push((name.into(), html_unescape(&v)));
        }
    }
    for (k, v) in fields {
        form.retain(|(name, _)| name != k);
        form.push(((*k).into(), (*v).into()));
    }
    let mut request = app.http.post(app.url("/oauth/authorize")).form(&form);
    if let Some(cookie) = &page.csrf_cookie {
        request = request.header(header::COOKIE, format!("tokend_csrf={cookie}"));
    }
    request.send().await.expect("request")
}

fn html_unescape(v: &str) -> String {
    v.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The query parameters of a redirect's `Location`, which must start with `REDIRECT?`.
fn redirect_params(headers: &HeaderMap) -> Vec<(String, String)> {
    let location = headers
        .get(header::LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("ascii");
    let query = location
        .strip_prefix(&format!("{REDIRECT}?"))
        .unwrap_or_else(|| panic!("redirect to the registered URI, got {location}"));
    serde_urlencoded::from_str(query).expect("query")
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Signs in through the page and returns the code from the redirect.
async fn code_for(
    app: &TestApp,
    client_id: &str,
    username: &str,
    extra: &[(&str, &str)],
) -> String {
    let page = get_page(app, &authorize_query(client_id, extra)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let response = submit(
        app,
        &page,
        &[
            ("username", username),
            ("password", PASSWORD),
            ("action", "sign_in"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let params = redirect_params(response.headers());
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.address.as_str()));
    param(&params, "code").expect("a code").to_owned()
}

async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> Response {
    app.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ])
    .await
}

async fn code_row(app: &TestApp, code: &str) -> store::models::AuthCode {
    let hash = tokend::crypto::sha256_hex(code.as_bytes());
    app.db(move |c| store::codes::find(c, &hash))
        .await
        .expect("code row")
}

async fn code_count(app: &TestApp) -> i64 {
    app.db(|c| {
        use diesel::prelude::*;
        use tokend::store::schema::auth_codes;
        Ok(tokend::db!(c, c => auth_codes::table.count().get_result::<i64>(c))?)
    })
    .await
}

#[tokio::test]
async fn sign_in_page_code_and_tokens_end_to_end() {
    let app = spawn_app().await;
    let user_id = app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;

    let page = get_page(&app, &authorize_query(&client, &[("scope", "account")])).await;
    assert_eq!(page.status, StatusCode::OK);
    let h = &page.headers;
    assert!(h["content-type"]
        .to_str()
        .expect("present")
        .starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-security-policy"]
        .to_str()
        .expect("present")
        .contains("frame-ancestors 'none'"));
    // Labelled fields, the client's name escaped, and no script at all.
    assert!(page.html.contains("<label for=\"username\">"));
    assert!(page.html.contains("<label for=\"password\">"));
    assert!(page.html.contains("Example &lt;SPA&gt;"));
    assert!(!page.html.contains("<script"));
    let csrf_set = set_cookie_header(&page.headers, "tokend_csrf").expect("csrf cookie");
    assert!(csrf_set.contains("HttpOnly") && csrf_set.contains("SameSite=Strict"));
    assert!(page.csrf_field.is_some());

    let response = submit(
        &app,
        &page,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("action", "sign_in"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let params = redirect_params(response.headers());
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.address.as_str()));
    let code = param(&params, "code").expect("code").to_owned();

    // Stored as a hash only, unused, for this user and client.
    let row = code_row(&app, &code).await;
    assert_ne!(row.code_hash, code);
    assert_eq!(row.user_id, user_id);
    assert_eq!(row.client_id, client);
    assert!(row.used_at.is_none() && row.session_id.is_none());
    assert!((row.expires_at - row.created_at).num_seconds() <= 60);

    let response = exchange(&app, &client, &code, VERIFIER).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens = tokens(response).await;
    assert_eq!(tokens.body["scope"], "account");
    let me = json(app.me(&tokens.access).await).await;
    assert_eq!(me["username"], "alice");

    let row = code_row(&app, &code).await;
    assert!(row.used_at.is_some());
    let session = app
        .session(row.session_id.as_deref().expect("session"))
        .await;
    assert_eq!(session.kind, "authorization_code");
    assert_eq!(session.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(claims(&tokens.access)["sid"], session.id);
    assert_eq!(app.audit("signin_success").await.len(), 1);
    assert_eq!(app.audit("code_exchanged").await.len(), 1);

    // The refresh token rotates as usual for this client.
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", tokens.refresh()),
        ])
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_code_used_twice_revokes_what_it_issued() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let code = code_for(&app, &client, "alice", &[]).await;
    let first = tokens(exchange(&app, &client, &code, VERIFIER).await).await;

    let again = exchange(&app, &client, &code, VERIFIER).await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let session_id = claims(&first.access)["sid"]
        .as_str()
        .expect("present")
        .to_owned();
    let session = app.session(&session_id).await;
    assert_eq!(session.revoked_reason.as_deref(), Some("code_reuse"));
    assert_eq!(
        app.me(&first.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", first.refresh()),
        ])
        .await;
    assert_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let (_, chain) = app.refresh_session(first.refresh()).await;
    assert_eq!(
        chain.id, session_id,
        "the refresh chain lives on the ended session"
    );
    assert_eq!(app.audit("code_reuse").await.len(), 1);
}

#[tokio::test]
async fn the_code_grant_refuses_a_wrong_verifier_redirect_uri_client_or_age() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let other = spa_client(&app, false).await;

    // A wrong verifier uses the code up: the right one afterwards is refused too.
    let code = code_for(&app, &client, "alice", &[]).await;
    let wrong = exchange(&app, &client, &code, &"x".repeat(43)).await;
    assert_error(wrong, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let right = exchange(&app, &client, &code, VERIFIER).await;
    assert_error(right, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(code_row(&app, &code).await.session_id.is_none());

    // No verifier at all.
    let code = code_for(&app, &client, "alice", &[]).await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Another redirect URI than the request's.
    let code = code_for(&app, &client, "alice", &[]).await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:5173/other"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Another client's code is refused and left for its rightful client.
    let code = code_for(&app, &client, "alice", &[]).await;
    let stolen = exchange(&app, &other, &code, VERIFIER).await;
    assert_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(code_row(&app, &code).await.used_at.is_none());
    assert_eq!(
        exchange(&app, &client, &code, VERIFIER).await.status(),
        StatusCode::OK
    );

    // An expired code.
    let code = code_for(&app, &client, "alice", &[]).await;
    let hash = tokend::crypto::sha256_hex(code.as_bytes());
    app.db(move |c| {
        use diesel::prelude::*;
        use tokend::store::schema::auth_codes;
        let past = store::now() - chrono::TimeDelta::seconds(1);
        tokend::db!(c, c => diesel::update(auth_codes::table.find(&hash)).set(auth_codes::expires_at.eq(past)).execute(c))?;
        Ok(())
    })
    .await;
    let late = exchange(&app, &client, &code, VERIFIER).await;
    assert_error(late, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // An unknown code, and a client without the grant.
    let unknown = exchange(&app, &client, "tokend_ac_nope", VERIFIER).await;
    assert_error(unknown, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLI),
            ("code", "tokend_ac_nope"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;

    // Exactly two sessions were opened: the rightful client's, nothing for the refusals.
    let sessions: i64 = app
        .db(|c| {
            use diesel::prelude::*;
            use tokend::store::schema::sessions;
            Ok(tokend::db!(c, c => sessions::table
                .filter(sessions::kind.eq("authorization_code"))
                .count()
                .get_result::<i64>(c))?)
        })
        .await;
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_is_a_page_never_a_redirect() {
    let app = spawn_app().await;
    let client = spa_client(&app, false).await;
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "no client_id",
            authorize_query(&client, &[("client_id", "")]),
        ),
        ("unknown client", authorize_query("no-such-client", &[])),
        (
            "no redirect_uri",
            authorize_query(&client, &[("redirect_uri", "")]),
        ),
        (
            "unregistered redirect_uri",
            authorize_query(&client, &[("redirect_uri", "https://evil.example/cb")]),
        ),
        (
            "redirect_uri differs by a slash",
            authorize_query(
                &client,
                &[("redirect_uri", "http://127.0.0.1:5173/callback/")],
            ),
        ),
        (
            "redirect_uri with an extra query",
            authorize_query(
                &client,
                &[("redirect_uri", "http://127.0.0.1:5173/callback?x=1")],
            ),
        ),
        ("repeated redirect_uri", {
            let mut q = authorize_query(&client, &[]);
            q.push(("redirect_uri".into(), REDIRECT.into()));
            q
        }),
    ];
    for (what, query) in cases {
        let page = get_page(&app, &query).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{what}");
        assert!(page.headers.get(header::LOCATION).is_none(), "{what}");
        assert!(
            page.html.contains("role=\"alert\""),
            "{what}: {}",
            page.html
        );
        assert!(!page.html.contains("<form"), "{what}");
    }
    // A client without the code grant but with a redirect URI is redirected (unauthorized_client).
    let (cc, _) = app
        .create_client(NewClient {
            name: "no code grant".into(),
            public: true,
            grant_types: vec!["refresh_token".into()],
            redirect_uris: vec![REDIRECT.into()],
            ..Default::default()
        })
        .await;
    let page = get_page(&app, &authorize_query(&cc, &[])).await;
    assert_eq!(page.status, StatusCode::FOUND);
    let params = redirect_params(&page.headers);
    assert_eq!(param(&params, "error"), Some("unauthorized_client"));
    assert_eq!(code_count(&app).await, 0);
}

#[tokio::test]
async fn other_request_errors_go_back_to_the_client_with_state() {
    let app = spawn_app().await;
    let client = spa_client(&app, false).await;
    let cases: Vec<ErrorCase> = vec![
        (
            "no response_type",
            authorize_query(&client, &[("response_type", "")]),
            "invalid_request",
        ),
        (
            "implicit flow",
            authorize_query(&client, &[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (
            "public client without PKCE",
            authorize_query(
                &client,
                &[("code_challenge", ""), ("code_challenge_method", "")],
            ),
            "invalid_request",
        ),
        (
            "plain PKCE",
            authorize_query(&client, &[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (
            "no challenge method",
            authorize_query(&client, &[("code_challenge_method", "")]),
            "invalid_request",
        ),
        (
            "a challenge that is not S256-shaped",
            authorize_query(&client, &[("code_challenge", "short")]),
            "invalid_request",
        ),
        (
            "a scope the client does not have",
            authorize_query(&client, &[("scope", "account payments")]),
            "invalid_scope",
        ),
        (
            "repeated scope",
            {
                let mut q = authorize_query(&client, &[]);
                q.push(("scope".into(), "account".into()));
                q.push(("scope".into(), "admin".into()));
                q
            },
            "invalid_request",
        ),
    ];
    for (what, query, error) in cases {
        let page = get_page(&app, &query).await;
        assert_eq!(page.status, StatusCode::FOUND, "{what}: {}", page.html);
        let params = redirect_params(&page.headers);
        assert_eq!(param(&params, "error"), Some(error), "{what}");
        assert!(param(&params, "error_description").is_some(), "{what}");
        assert_eq!(param(&params, "state"), Some("st-123"), "{what}");
        assert_eq!(param(&params, "iss"), Some(app.address.as_str()), "{what}");
        assert!(param(&params, "code").is_none(), "{what}");
    }
    assert_eq!(code_count(&app).await, 0);
}

#[tokio::test]
async fn the_form_needs_its_csrf_cookie_and_field() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let page = get_page(&app, &authorize_query(&client, &[])).await;
    let creds = [("username", "alice"), ("password", PASSWORD)];

    // No cookie (a cross-site post): refused.
    let no_cookie = Page {
        status: page.status,
        headers: page.headers.clone(),
        html: page.html.clone(),
        csrf_cookie: None,
        csrf_field: None,
    };
    let response = submit(&app, &no_cookie, &creds).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(header::LOCATION).is_none());

    // Another browser's cookie with this page's field: refused.
    let other = get_page(&app, &authorize_query(&client, &[])).await;
    let mixed = Page {
        status: page.status,
        headers: page.headers.clone(),
        html: page.html.clone(),
        csrf_cookie: other.csrf_cookie.clone(),
        csrf_field: None,
    };
    let response = submit(&app, &mixed, &creds).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A forged field with the right cookie: refused.
    let response = submit(&app, &page, &[creds[0], creds[1], ("csrf_token", "forged")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    assert_eq!(code_count(&app).await, 0);
    assert!(app.audit("signin_success").await.is_empty());
    // The genuine form still works.
    let response = submit(&app, &page, &creds).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn wrong_passwords_cancel_and_throttling_on_the_page() {
    let app = spawn_app_with(|c| c.signin_user_free = 1).await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let page = get_page(&app, &authorize_query(&client, &[])).await;

    let response = submit(
        &app,
        &page,
        &[("username", "alice"), ("password", "wrong-password")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let html = response.text().await.expect("present");
    assert!(html.contains("Invalid username or password."));
    assert!(html.contains("value=\"alice\""), "the username is kept");
    assert!(
        !html.contains("wrong-password"),
        "the password is never echoed"
    );

    // Missing fields: the form again, nothing counted.
    let response = submit(&app, &page, &[("username", "alice"), ("password", "")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("present").contains("<form"));

    // Cancel goes back with access_denied and the state.
    let response = submit(&app, &page, &[("action", "cancel")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let params = redirect_params(response.headers());
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("st-123"));

    // The password grant's throttle applies: after the free failures, 429 with Retry-After,
    // even for the right password.
    let response = submit(
        &app,
        &page,
        &[("username", "alice"), ("password", "wrong-again")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = submit(
        &app,
        &page,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get(header::RETRY_AFTER).is_some());
    assert!(response
        .text()
        .await
        .expect("present")
        .contains("Too many failed sign-ins"));
    assert_eq!(app.audit("signin_failure").await.len(), 2);
    assert_eq!(code_count(&app).await, 0);
}

#[tokio::test]
async fn scopes_follow_the_user_and_a_confidential_client_may_skip_pkce() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;

    // A user who is not an admin asking for admin: invalid_scope back to the client.
    let page = get_page(
        &app,
        &authorize_query(&client, &[("scope", "account admin")]),
    )
    .await;
    let response = submit(
        &app,
        &page,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        param(&redirect_params(response.headers()), "error"),
        Some("invalid_scope")
    );
    // Without a scope: everything the user may hold from this client.
    let code = code_for(&app, &client, "alice", &[]).await;
    let tokens = tokens(exchange(&app, &client, &code, VERIFIER).await).await;
    assert_eq!(tokens.body["scope"], "account");

    // A confidential client without PKCE authenticates with its secret instead.
    let (web, secret) = app
        .create_client(NewClient {
            name: "server-side web app".into(),
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["account".into()],
            ..Default::default()
        })
        .await;
    let secret = secret.expect("present");
    let code = code_for(
        &app,
        &web,
        "alice",
        &[("code_challenge", ""), ("code_challenge_method", "")],
    )
    .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", web.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let no_secret = app.token(&form).await;
    assert_error(no_secret, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let mut with_secret = form.to_vec();
    with_secret.push(("client_secret", &secret));
    let response = app.token(&with_secret).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        json(response).await.get("refresh_token").is_none(),
        "no refresh grant, no refresh token"
    );
}

#[tokio::test]
async fn logout_all_and_disabling_use_up_codes_not_yet_exchanged() {
    let app = spawn_app().await;
    let user_id = app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let pending = code_for(&app, &client, "alice", &[]).await;
    let tokens_now = tokens(
        exchange(
            &app,
            &client,
            &code_for(&app, &client, "alice", &[]).await,
            VERIFIER,
        )
        .await,
    )
    .await;
    let response = app
        .post_json("/api/logout-all", &tokens_now.access, json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let late = exchange(&app, &client, &pending, VERIFIER).await;
    assert_error(late, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let pending = code_for(&app, &client, "alice", &[]).await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let response = app
        .post(&format!("/admin/users/{user_id}/disable"), &admin.access)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let late = exchange(&app, &client, &pending, VERIFIER).await;
    assert_error(late, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn logout_all_racing_a_code_exchange_leaves_no_session() {
    // SECURITY.md 30: the exchange locks the user before it claims the code; logout-all takes the
    // same lock and uses up pending codes. Either the exchange commits first and its session is
    // ended, or it comes second and finds its code used: never a live session after the logout.
    let app = spawn_app().await;
    let user_id = app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let (mut exchanged, mut refused) = (0, 0);
    for trial in 0..race_trials() {
        let caller = app.login("alice", PASSWORD).await;
        let code = code_for(&app, &client, "alice", &[]).await;
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        // From the exchange held back 4 ms to the logout held back 4 ms, in 11 steps.
        let shift = (trial % 11) as i64 * 800 - 4_000;
        let exchange_wait = std::time::Duration::from_micros((-shift).max(0) as u64);
        let logout_wait = std::time::Duration::from_micros(shift.max(0) as u64);
        let exchanging = {
            let (http, url, client, start) = (
                app.http.clone(),
                app.url("/oauth/token"),
                client.clone(),
                start.clone(),
            );
            tokio::spawn(async move {
                start.wait().await;
                tokio::time::sleep(exchange_wait).await;
                http.post(url)
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("client_id", client.as_str()),
                        ("code", code.as_str()),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", VERIFIER),
                    ])
                    .send()
                    .await
                    .expect("request")
            })
        };
        start.wait().await;
        tokio::time::sleep(logout_wait).await;
        let logout = app
            .post_json("/api/logout-all", &caller.access, json!({}))
            .await;
        assert_eq!(logout.status(), StatusCode::OK);
        let response = exchanging.await.expect("task");
        if response.status() == StatusCode::OK {
            exchanged += 1;
            let t = tokens(response).await;
            assert_eq!(
                app.me(&t.access).await.status(),
                StatusCode::UNAUTHORIZED,
                "trial {trial}"
            );
            assert_error(
                app.token(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client.as_str()),
                    ("refresh_token", t.refresh()),
                ])
                .await,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            )
            .await;
        } else {
            refused += 1;
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        }
        let id = user_id.clone();
        let live = app
            .db(move |c| store::sessions::list_active(c, &id, store::now()))
            .await;
        assert!(live.is_empty(), "trial {trial}: {live:?}");
    }
    eprintln!("code-exchange race: {exchanged} exchanged then ended, {refused} refused");
}

#[tokio::test]
async fn two_exchanges_of_one_code_released_together_end_what_the_winner_got() {
    // RFC 6749 §4.1.2: a code used twice revokes what it issued, also when the two uses race
    // (the loser must see the winner's session, whichever backend).
    let app = spawn_app().await;
    let user_id = app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let mut won = 0;
    for trial in 0..race_trials() {
        let code = code_for(&app, &client, "alice", &[]).await;
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let mut racers = Vec::new();
        for _ in 0..2 {
            let (http, url, client, code, start) = (
                app.http.clone(),
                app.url("/oauth/token"),
                client.clone(),
                code.clone(),
                start.clone(),
            );
            racers.push(tokio::spawn(async move {
                start.wait().await;
                http.post(url)
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("client_id", client.as_str()),
                        ("code", code.as_str()),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", VERIFIER),
                    ])
                    .send()
                    .await
                    .expect("request")
            }));
        }
        let mut issued = Vec::new();
        for racer in racers {
            let response = racer.await.expect("task");
            if response.status() == StatusCode::OK {
                issued.push(tokens(response).await);
            } else {
                assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
            }
        }
        assert!(issued.len() <= 1, "trial {trial}: one code, two sessions");
        won += issued.len();
        for t in &issued {
            assert_eq!(
                app.me(&t.access).await.status(),
                StatusCode::UNAUTHORIZED,
                "trial {trial}: the winner's tokens outlived the second use"
            );
            assert_eq!(
                app.session(&t.sid()).await.revoked_reason.as_deref(),
                Some("code_reuse")
            );
        }
        let id = user_id.clone();
        let live = app
            .db(move |c| store::sessions::list_active(c, &id, store::now()))
            .await;
        assert!(live.is_empty(), "trial {trial}: {live:?}");
    }
    assert_eq!(app.audit("code_reuse").await.len(), won);
}

#[tokio::test]
async fn control_characters_on_the_sign_in_page_are_refused_before_the_database() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    // In client_id: a page (never a redirect), as for any unknown client.
    let page = get_page(&app, &authorize_query("a\u{0}b", &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    // Anywhere else, once the redirect is known to be safe: back to the client, invalid_request.
    for (name, value) in [("state", "s\u{0}"), ("scope", "account\u{7}")] {
        let page = get_page(&app, &authorize_query(&client, &[(name, value)])).await;
        assert_eq!(page.status, StatusCode::FOUND, "{name}: {}", page.html);
        let params = redirect_params(&page.headers);
        assert_eq!(param(&params, "error"), Some("invalid_request"), "{name}");
        assert!(
            param(&params, "error_description").is_some_and(|d| d.contains(name)),
            "{name}: {params:?}"
        );
    }
    // In the username the form posts.
    let page = get_page(&app, &authorize_query(&client, &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    let response = submit(
        &app,
        &page,
        &[
            ("username", "ali\u{0}ce"),
            ("password", PASSWORD),
            ("action", "sign_in"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let params = redirect_params(response.headers());
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert_eq!(code_count(&app).await, 0, "no code was issued");
}

#[tokio::test]
async fn a_personal_token_made_with_a_session_whose_code_is_replayed_ends_with_it() {
    // SECURITY.md 31: code reuse means someone else held the code; what its session made goes.
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, false).await;
    let code = code_for(&app, &client, "alice", &[]).await;
    let t = tokens(exchange(&app, &client, &code, VERIFIER).await).await;
    let pat = app.create_pat(&t.access, "made", &["account"]).await;
    let pat = pat["token"].as_str().expect("token").to_owned();
    assert_eq!(app.me(&pat).await.status(), StatusCode::OK);
    assert_error(
        exchange(&app, &client, &code, VERIFIER).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&pat).await.status(), StatusCode::UNAUTHORIZED);
}

/// A browser request from the SPA's origin, as `fetch(..., {credentials: 'include'})` sends it.
fn browser(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.http
        .post(app.url(path))
        .header(header::ORIGIN, SPA_ORIGIN)
        .header("x-requested-with", "XMLHttpRequest")
}

#[tokio::test]
async fn cookie_delivery_keeps_the_refresh_token_out_of_the_body() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, true).await;
    let cookie_name = format!("tokend_rt_{client}");
    let code = code_for(&app, &client, "alice", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];

    // Without the custom header, or without an Origin, the request is refused (CSRF defence).
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header(header::ORIGIN, SPA_ORIGIN)
        .form(&form)
        .send()
        .await
        .expect("present");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("x-requested-with", "XMLHttpRequest")
        .form(&form)
        .send()
        .await
        .expect("present");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    // From an origin the client did not register: refused.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header(header::ORIGIN, "http://evil.example")
        .header("x-requested-with", "XMLHttpRequest")
        .form(&form)
        .send()
        .await
        .expect("present");
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        code_row(&app, &code).await.used_at.is_none(),
        "refusals do not use the code"
    );

    let response = browser(&app, "/oauth/token")
        .form(&form)
        .send()
        .await
        .expect("present");
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookie_header(response.headers(), &cookie_name).expect("refresh cookie");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/oauth/token",
        "Max-Age=",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    let first = cookie_value(response.headers(), &cookie_name).expect("present");
    assert!(first.starts_with("tokend_rt_"));
    let body = json(response).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    let access = body["access_token"].as_str().expect("present").to_owned();
    let (generation, session) = app.refresh_session(&first).await;
    assert_eq!((generation, session.refresh_generation), (0, 0));

    // The refresh grant reads the cookie and sets the successor.
    let refresh = |cookie: String| {
        browser(&app, "/oauth/token")
            .header(header::COOKIE, format!("{cookie_name}={cookie}"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client.as_str()),
            ])
            .send()
    };
    let response = refresh(first.clone()).await.expect("present");
    assert_eq!(response.status(), StatusCode::OK);
    let second = cookie_value(response.headers(), &cookie_name).expect("rotated cookie");
    assert_ne!(second, first);
    assert!(json(response).await.get("refresh_token").is_none());

    // Without any cookie: invalid_request.
    let response = browser(&app, "/oauth/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .expect("present");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    // The rotated cookie replayed: the session ends and the browser is told to drop the cookie.
    let response = refresh(first).await.expect("present");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let cleared = set_cookie_header(response.headers(), &cookie_name).expect("cleared cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        app.session(&session.id).await.revoked_reason.as_deref(),
        Some("refresh_reuse")
    );
    assert_eq!(app.me(&access).await.status(), StatusCode::UNAUTHORIZED);
    let response = refresh(second).await.expect("present");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_and_logging_out_clear_the_refresh_cookie() {
    let app = spawn_app().await;
    app.create_user("alice", PASSWORD, false).await;
    let client = spa_client(&app, true).await;
    let cookie_name = format!("tokend_rt_{client}");
    let sign_in = || async {
        let code = code_for(&app, &client, "alice", &[]).await;
        let response = browser(&app, "/oauth/token")
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("present");
        let cookie = cookie_value(response.headers(), &cookie_name).expect("present");
        let access = json(response).await["access_token"]
            .as_str()
            .expect("present")
            .to_owned();
        (access, cookie)
    };

    // Revocation needs the browser headers for this client, then clears the cookie.
    let (access, cookie) = sign_in().await;
    let response = app
        .revoke(&[("token", access.as_str()), ("client_id", client.as_str())])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = browser(&app, "/oauth/revoke")
        .form(&[("token", access.as_str()), ("client_id", client.as_str())])
        .send()
        .await
        .expect("present");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookie_header(response.headers(), &cookie_name)
        .expect("present")
        .contains("Max-Age=0"));
    let (_, session) = app.refresh_session(&cookie).await;
    assert!(session.revoked_at.is_some());
    assert_eq!(
        session.revoked_reason.as_deref(),
        Some("access_token_revoked")
    );

    // /api/logout ends the session and clears the cookie too.
    let (access, cookie) = sign_in().await;
    let response = app.post("/api/logout", &access).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie_header(response.headers(), &cookie_name)
        .expect("present")
        .contains("Max-Age=0"));
    assert!(app.refresh_session(&cookie).await.1.revoked_at.is_some());
}

#[tokio::test]
async fn clients_choose_cookie_delivery_by_admin_api_and_cli() {
    let app = spawn_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let response = app
        .post_json(
            "/admin/clients",
            &admin.access,
            json!({"name": "spa", "public": true, "grant_types": ["authorization_code", "refresh_token"],
                   "redirect_uris": [REDIRECT], "allowed_origins": [SPA_ORIGIN], "scopes": ["account"],
                   "refresh_token_cookie": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(json(response).await["refresh_token_cookie"], true);
    // Cookie delivery without the refresh grant or without an origin makes no sense: refused.
    for body in [
        json!({"name": "x", "public": true, "grant_types": ["authorization_code"], "redirect_uris": [REDIRECT],
               "allowed_origins": [SPA_ORIGIN], "refresh_token_cookie": true}),
        json!({"name": "x", "public": true, "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "refresh_token_cookie": true}),
    ] {
        let response = app.post_json("/admin/clients", &admin.access, body).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    let (code, out, err) = app
        .cli(
            &[
                "client",
                "create",
                "spa-cli",
                "--public",
                "--grant",
                "authorization_code",
                "--grant",
                "refresh_token",
                "--redirect-uri",
                REDIRECT,
                "--origin",
                SPA_ORIGIN,
                "--scope",
                "account",
                "--refresh-cookie",
                "--json",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).expect("present")["client_id"]
        .as_str()
        .expect("present")
        .to_owned();
    let row = app
        .db(move |c| store::clients::find(c, &id))
        .await
        .expect("client row");
    assert!(row.refresh_token_cookie);
}
