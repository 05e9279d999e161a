//! More than forty bad requests across `/oauth/token`, `/oauth/revoke`, `/oauth/introspect` and the
//! bearer endpoints: each gets its expected 4xx and error code, none a 5xx, and nothing changes.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: StatusCode,
    error: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &str,
    status: StatusCode,
    error: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
        error,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn form(self, body: impl Into<String>) -> Case {
        self.header("content-type", "application/x-www-form-urlencoded")
            .raw(body.into().into_bytes())
    }
    fn raw(mut self, body: Vec<u8>) -> Case {
        self.body = Some(body);
        self
    }
}

#[tokio::test]
async fn forty_bad_requests_each_get_a_clear_4xx_and_change_nothing() {
    use base64::Engine as _;
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{rs}:{secret}"))
    );
    let refresh = t.refresh().to_owned();
    let cc = tokens(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &rs),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;
    let (post, get, delete) = (Method::POST, Method::GET, Method::DELETE);
    let (bad, unauthorized, forbidden) = (
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
    );
    let huge_token = "x".repeat(10_000);
    let cases = vec![
        // The token endpoint.
        case("token: GET", get.clone(), "/oauth/token", StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
        case("token: PUT", Method::PUT, "/oauth/token", StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
        case("token: no body", post.clone(), "/oauth/token", bad, "invalid_request"),
        case("token: XML", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("content-type", "application/xml")
            .raw(b"<grant_type>password</grant_type>".to_vec()),
        case("token: multipart", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("content-type", "multipart/form-data; boundary=x")
            .raw(b"--x--".to_vec()),
        case("token: JSON array", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("content-type", "application/json")
            .raw(b"[1,2]".to_vec()),
        case("token: truncated JSON", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("content-type", "application/json")
            .raw(br#"{"grant_type":"pass"#.to_vec()),
        case("token: JSON number", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("content-type", "application/json")
            .raw(br#"{"grant_type":"password","client_id":7}"#.to_vec()),
        case("token: raw broken UTF-8", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("content-type", "application/x-www-form-urlencoded")
            .raw(b"grant_type=\xc3\x28".to_vec()),
        case("token: bad escape", post.clone(), "/oauth/token", bad, "invalid_request").form("grant_type=%E2%82"),
        case("token: 40 parameters", post.clone(), "/oauth/token", bad, "invalid_request")
            .form((0..40).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&")),
        case("token: 20 KiB body", post.clone(), "/oauth/token", StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")
            .form(format!("grant_type=password&pad={}", "a".repeat(20_000))),
        case("token: repeated grant_type", post.clone(), "/oauth/token", bad, "invalid_request")
            .form("grant_type=password&grant_type=password&client_id=tokend-cli"),
        case("token: empty grant_type", post.clone(), "/oauth/token", bad, "invalid_request").form("grant_type=&client_id=tokend-cli"),
        case("token: grant_type implicit", post.clone(), "/oauth/token", bad, "unsupported_grant_type")
            .form("grant_type=implicit&client_id=tokend-cli"),
        case("token: refresh token in the query", post.clone(), &format!("/oauth/token?refresh_token={refresh}"), bad, "invalid_request")
            .form("grant_type=refresh_token&client_id=tokend-cli"),
        case("token: Basic with no colon", post.clone(), "/oauth/token", unauthorized, "invalid_client")
            .header("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("nocolon")))
            .form("grant_type=client_credentials"),
        case("token: Basic, broken UTF-8", post.clone(), "/oauth/token", unauthorized, "invalid_client")
            .header("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])))
            .form("grant_type=client_credentials"),
        case("token: Basic and body secret", post.clone(), "/oauth/token", bad, "invalid_request")
            .header("authorization", basic.clone())
            .form(format!("grant_type=client_credentials&client_secret={secret}")),
        case("token: unknown client", post.clone(), "/oauth/token", unauthorized, "invalid_client").form("grant_type=password&client_id=ghost"),
        case("token: scope with a quote", post.clone(), "/oauth/token", bad, "invalid_scope")
            .form(format!("grant_type=password&client_id={CLI}&username=admin&password={ADMIN_PASSWORD}&scope=a%22b")),
        case("token: access token as refresh token", post.clone(), "/oauth/token", bad, "invalid_grant")
            .form(format!("grant_type=refresh_token&client_id={CLI}&refresh_token={}", t.access)),
        case("token: huge refresh token", post.clone(), "/oauth/token", bad, "invalid_grant")
            .form(format!("grant_type=refresh_token&client_id={CLI}&refresh_token=tokend_rt_{}", "a".repeat(5_000))),
        case("token: client secret as refresh token", post.clone(), "/oauth/token", bad, "invalid_grant")
            .form(format!("grant_type=refresh_token&client_id={CLI}&refresh_token={secret}")),
        // Revocation.
        case("revoke: GET", get.clone(), "/oauth/revoke", StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
        case("revoke: no token", post.clone(), "/oauth/revoke", bad, "invalid_request").form(format!("client_id={CLI}")),
        case("revoke: no client", post.clone(), "/oauth/revoke", unauthorized, "invalid_client").form("token=x"),
        case("revoke: token in the query", post.clone(), &format!("/oauth/revoke?token={}", t.access), bad, "invalid_request")
            .form(format!("client_id={CLI}")),
        case("revoke: repeated token", post.clone(), "/oauth/revoke", bad, "invalid_request").form(format!("client_id={CLI}&token=a&token=b")),
        case("revoke: confidential client without secret", post.clone(), "/oauth/revoke", unauthorized, "invalid_client")
            .form(format!("client_id={rs}&token=x")),
        case("revoke: another client's token", post.clone(), "/oauth/revoke", bad, "unauthorized_client")
            .header("authorization", basic.clone())
            .form(format!("token={refresh}")),
        // Introspection.
        case("introspect: GET", get.clone(), "/oauth/introspect", StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
        case("introspect: anonymous", post.clone(), "/oauth/introspect", unauthorized, "invalid_client").form("token=x"),
        case("introspect: public client", post.clone(), "/oauth/introspect", unauthorized, "invalid_client").form(format!("client_id={CLI}&token=x")),
        case("introspect: no token", post.clone(), "/oauth/introspect", bad, "invalid_request").header("authorization", basic.clone()).form(""),
        case("introspect: wrong secret", post.clone(), "/oauth/introspect", unauthorized, "invalid_client")
            .header("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{rs}:nope"))))
            .form("token=x"),
        // Bearer endpoints.
        case("me: two Authorization headers", get.clone(), "/api/me", bad, "invalid_request")
            .header("authorization", format!("Bearer {}", t.access))
            .header("authorization", format!("Bearer {}", t.access)),
        case("me: lower-case scheme, no token", get.clone(), "/api/me", bad, "invalid_request").header("authorization", "bearer"),
        case("me: Digest scheme", get.clone(), "/api/me", bad, "invalid_request").header("authorization", "Digest username=admin"),
        case("me: token with a comma", get.clone(), "/api/me", bad, "invalid_request").header("authorization", "Bearer a,b"),
        case("me: huge token", get.clone(), "/api/me", unauthorized, "invalid_token").header("authorization", format!("Bearer {huge_token}")),
        case("me: refresh token as bearer", get.clone(), "/api/me", unauthorized, "invalid_token").header("authorization", format!("Bearer {refresh}")),
        case("me: client secret as bearer", get.clone(), "/api/me", unauthorized, "invalid_token").header("authorization", format!("Bearer {secret}")),
        case("me: JWT with a broken signature", get.clone(), "/api/me", unauthorized, "invalid_token")
            .header("authorization", format!("Bearer {}x", t.access)),
        case("sessions: DELETE on the collection", delete.clone(), "/api/sessions", StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
        case("tokens: a client token has no account scope", post.clone(), "/api/tokens", forbidden, "insufficient_scope")
            .header("authorization", format!("Bearer {}", cc.access)),
        case("admin: SQL in a path", get.clone(), "/admin/users/'%20OR%20'1'='1", unauthorized, "unauthorized"),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());

    for c in cases {
        let mut request = app.http.request(c.method.clone(), app.url(&c.path));
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = c.body.clone() {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(!status.is_server_error(), "{}: {status} {text}", c.name);
        assert_eq!(status, c.status, "{}: {text}", c.name);
        let body: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {text}", c.name));
        assert_eq!(body["error"], c.error, "{}: {body}", c.name);
    }

    // Nothing changed: the session is live, its refresh token unused, no session was added.
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
    let (generation, session) = app.refresh_session(&refresh).await;
    assert_eq!(generation, session.refresh_generation, "not rotated");
    assert!(session.revoked_at.is_none());
    let admin = app
        .db(|c| tokend::store::users::find_by_username(c, "admin"))
        .await
        .expect("admin");
    let sessions = app
        .db(move |c| tokend::store::sessions::list_active(c, &admin.id, tokend::store::now()))
        .await;
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn request_heads_are_bounded_before_any_work() {
    let app = spawn_app().await;
    // More than 96 headers (actix-http's bound): 431, not a 5xx.
    let mut many = app.http.get(app.url("/healthz"));
    for i in 0..120 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    let response = many.send().await.expect("request");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    // A head over 128 KiB: refused (431) or the connection closed, never served.
    let huge = "a".repeat(200 * 1024);
    match app
        .http
        .get(app.url("/healthz"))
        .header("x-huge", &huge)
        .send()
        .await
    {
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        Err(err) => assert!(!err.is_timeout(), "refused at once: {err}"),
    }

    // A large bearer token is refused before any parsing or database work.
    let response = app.me(&"a".repeat(100 * 1024)).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_client_that_stalls_mid_request_is_cut_off() {
    use std::io::{Read as _, Write as _};
    let app = spawn_app().await;
    let port = app
        .address
        .rsplit(':')
        .next()
        .expect("port")
        .parse::<u16>()
        .expect("port");
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .expect("timeout");
        // Half a request head, then nothing (slowloris).
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .expect("write");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    })
    .await
    .expect("task");
    let (waited, text) = answer;
    assert!(
        waited < std::time::Duration::from_secs(10),
        "cut off after the 5 s head timeout, not held: {waited:?}"
    );
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn control_characters_in_any_text_input_are_400_naming_the_field_and_change_nothing() {
    // NUL, other C0/C1 codes and DEL are never part of a username, name, scope, URI, id or token;
    // PostgreSQL's text type cannot even hold a NUL. Every endpoint that takes text refuses them
    // with 400 invalid_request naming the field, before the database sees them, on both backends.
    use serde_json::json;
    let app = spawn_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let a = admin.access.clone();
    let refresh = admin.refresh().to_owned();
    let form = |body: String| {
        let (http, url) = (app.http.clone(), app.url("/oauth/token"));
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("request")
        }
    };
    let before = app.row_counts().await;

    let mut answers: Vec<(&str, &str, reqwest::Response)> = vec![
        (
            "token: NUL in username",
            "username",
            form(format!("grant_type=password&client_id={CLI}&username=ad%00min&password={ADMIN_PASSWORD}")).await,
        ),
        (
            "token: a tab in device_name",
            "device_name",
            form(format!("grant_type=password&client_id={CLI}&username=admin&password={ADMIN_PASSWORD}&device_name=a%09b")).await,
        ),
        (
            "token: DEL in scope",
            "scope",
            form(format!("grant_type=password&client_id={CLI}&username=admin&password={ADMIN_PASSWORD}&scope=account%7F")).await,
        ),
        (
            "token: NUL in client_id",
            "client_id",
            form("grant_type=client_credentials&client_id=a%00b".to_owned()).await,
        ),
        (
            "token: C1 code in refresh_token",
            "refresh_token",
            form(format!("grant_type=refresh_token&client_id={CLI}&refresh_token={refresh}%C2%85")).await,
        ),
        (
            "token: NUL in code",
            "code",
            form("grant_type=authorization_code&client_id=tokend-cli&code=a%00&redirect_uri=x".to_owned()).await,
        ),
        (
            "token: NUL in a parameter name",
            "grantx",
            form("grant%00x=password".to_owned()).await,
        ),
        (
            "token: NUL in the Basic client id",
            "client_id",
            {
                use base64::Engine as _;
                app.http
                    .post(app.url("/oauth/token"))
                    .header(
                        "authorization",
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode("rs%00x:secret")
                        ),
                    )
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .expect("request")
            },
        ),
        (
            "revoke: NUL in token",
            "token",
            app.revoke(&[("token", "a\u{0}b"), ("client_id", CLI)]).await,
        ),
        (
            "admin: NUL in username",
            "username",
            app.post_json("/admin/users", &a, json!({"username": "eve\u{0}", "password": "long-enough-pw"})).await,
        ),
        (
            "admin: NUL in a redirect URI",
            "redirect_uris[0]",
            app.post_json("/admin/clients", &a, json!({"name": "x", "redirect_uris": ["http://127.0.0.1/\u{0}"], "grant_types": ["authorization_code"]})).await,
        ),
        (
            "admin: a newline in a client name",
            "name",
            app.post_json("/admin/clients", &a, json!({"name": "evil\napp"})).await,
        ),
        (
            "account: NUL in a personal token name",
            "name",
            app.post_json("/api/tokens", &a, json!({"name": "ci\u{0}", "scopes": ["account"]})).await,
        ),
        (
            "admin: NUL in the audit query",
            "kind",
            app.get("/admin/audit?kind=login%00", &a).await,
        ),
        (
            "account: NUL in DELETE /api/tokens?name=",
            "name",
            app.delete("/api/tokens?name=ci%00", &a).await,
        ),
        (
            "admin: NUL in a path id",
            "path",
            app.get("/admin/users/a%00b", &a).await,
        ),
        (
            "account: NUL in a session id",
            "path",
            app.delete("/api/sessions/x%00", &a).await,
        ),
        (
            "admin: NUL in a client id path",
            "path",
            app.delete("/admin/clients/x%01", &a).await,
        ),
    ];
    let (rs, secret) = app.confidential_client(&["read"]).await;
    answers.push((
        "introspect: NUL in token",
        "token",
        app.introspect(&rs, &secret, "tokend_rt_\u{0}").await,
    ));
    let before = {
        let mut b = before;
        // The confidential client above is the one row this test adds on purpose.
        *b.get_mut("clients").expect("clients") += 1;
        b
    };
    for (name, field, response) in answers {
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {text}");
        let body: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: not JSON: {text}"));
        assert_eq!(body["error"], "invalid_request", "{name}: {body}");
        assert!(
            body.to_string().contains(field),
            "{name}: the answer names {field}: {body}"
        );
    }
    let mut after = app.row_counts().await;
    // Sign-in throttling counts nothing here (no sign-in reached a password check), and the
    // admin's bearer requests only touch `last_used_at`.
    after.remove("audit_events");
    let mut expected = before;
    expected.remove("audit_events");
    assert_eq!(after, expected, "nothing changed");
    assert_eq!(app.me(&admin.access).await.status(), StatusCode::OK);
}
