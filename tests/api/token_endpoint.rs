//! Bad requests at the token endpoint: each gets a clear 4xx, none changes anything.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let (cid, secret) = app.confidential_client(&["read"]).await;
    let good_login =
        format!("grant_type=password&client_id={CLI}&username=admin&password={ADMIN_PASSWORD}");
    let huge = format!("{good_login}&pad={}", "a".repeat(20_000));
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        ("missing grant_type", app.http.post(app.url("/oauth/token")).form(&[("client_id", CLI)]), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "unknown grant_type",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "magic"), ("client_id", CLI)]),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "authorization_code without a code",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "authorization_code"), ("client_id", CLI)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "repeated parameter",
            app.http
                .post(app.url("/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("{good_login}&username=admin")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "repeated JSON member",
            app.http
                .post(app.url("/oauth/token"))
                .header("content-type", "application/json")
                .body(format!(r#"{{"grant_type":"password","client_id":"{CLI}","username":"admin","username":"x","password":"{ADMIN_PASSWORD}"}}"#)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong content type",
            app.http.post(app.url("/oauth/token")).header("content-type", "text/plain").body(good_login.clone()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "broken UTF-8",
            app.http
                .post(app.url("/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(b"grant_type=password&client_id=tokend-cli&username=\xff\xfe&password=x".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "broken UTF-8 in an escape",
            app.http
                .post(app.url("/oauth/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=password&client_id=tokend-cli&username=%C3%28&password=x"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "JSON that is not an object of strings",
            app.http.post(app.url("/oauth/token")).header("content-type", "application/json").body(r#"{"grant_type":1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "huge body",
            app.http.post(app.url("/oauth/token")).header("content-type", "application/x-www-form-urlencoded").body(huge),
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
        ),
        (
            "password in the query string",
            app.http
                .post(app.url(&format!("/oauth/token?password={ADMIN_PASSWORD}")))
                .form(&[("grant_type", "password"), ("client_id", CLI), ("username", "admin")]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "client secret in the query string",
            app.http
                .post(app.url(&format!("/oauth/token?client_secret={secret}")))
                .form(&[("grant_type", "client_credentials"), ("client_id", &cid)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown client",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "password"), ("client_id", "nope")]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "no client at all",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "client_credentials")]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "confidential client without its secret",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "client_credentials"), ("client_id", &cid)]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "public client sending a secret",
            app.http
                .post(app.url("/oauth/token"))
                .form(&[("grant_type", "password"), ("client_id", CLI), ("client_secret", "x")]),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "two client authentication methods",
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth(&cid, Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("client_secret", secret.as_str())]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "Basic and a different body client_id",
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth(&cid, Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("client_id", CLI)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "Bearer instead of Basic",
            app.http
                .post(app.url("/oauth/token"))
                .bearer_auth("abc")
                .form(&[("grant_type", "client_credentials")]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "missing username",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "password"), ("client_id", CLI), ("password", "x")]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "missing refresh_token",
            app.http.post(app.url("/oauth/token")).form(&[("grant_type", "refresh_token"), ("client_id", CLI)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "SQL in a parameter",
            app.http
                .post(app.url("/oauth/token"))
                .form(&[("grant_type", "password"), ("client_id", CLI), ("username", "admin' OR '1'='1"), ("password", "' OR 1=1 --")]),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
    ];
    for (name, request, status, code) in cases {
        let response = request.send().await.expect(name);
        let got = response.status();
        let body = response.text().await.expect("body");
        assert_eq!(got, status, "{name}: {body}");
        let body: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{name}: not JSON: {body}"));
        assert_eq!(body["error"], code, "{name}: {body}");
    }

    // Nothing was issued by any of them.
    let admin = app
        .db(|c| tokend::store::users::find_by_username(c, "admin"))
        .await
        .expect("admin");
    let sessions = app
        .db(move |c| tokend::store::sessions::list_active(c, &admin.id, tokend::store::now()))
        .await;
    assert!(sessions.is_empty(), "no session opened by a bad request");
}

#[tokio::test]
async fn a_wrong_secret_by_basic_gets_401_with_a_basic_challenge() {
    let app = spawn_app().await;
    let (cid, _) = app.confidential_client(&["read"]).await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&cid, Some("tokend_cs_wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Basic"));
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let malformed = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_error(malformed, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn unknown_parameters_are_ignored_and_wrong_methods_get_405() {
    let app = spawn_app().await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("favourite_colour", "green"),
        ])
        .await;
    tokens(response).await;

    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let response = app.http.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.headers()["allow"], "POST");
        assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
    }
    for path in [
        "/healthz",
        "/readyz",
        "/api/me",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = app.http.post(app.url(path)).send().await.expect("request");
        assert_eq!(response.headers()["allow"], "GET");
        assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
    }
    let response = app
        .http
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .expect("request");
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}
