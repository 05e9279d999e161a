//! CORS per client (`allowed_origins`) and the security headers every response carries.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

const SPA: &str = "https://spa.example";

async fn spa_client(app: &TestApp) -> String {
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    let response = app
        .post_json(
            "/admin/clients",
            &admin,
            json!({"name": "spa", "public": true, "grant_types": ["password", "refresh_token"], "scopes": ["account"], "allowed_origins": [SPA]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    json(response).await["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned()
}

fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::RequestBuilder {
    app.http
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
}

#[tokio::test]
async fn registered_origins_get_cors_and_others_do_not() {
    let app = spawn_app().await;
    let spa = spa_client(&app).await;

    // A client registered through this node: its origin is allowed at once.
    let ok = preflight(&app, "/oauth/token", SPA)
        .send()
        .await
        .expect("preflight");
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(ok.headers()["access-control-allow-origin"], SPA);
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");

    let evil = preflight(&app, "/oauth/token", "https://evil.example")
        .send()
        .await
        .expect("preflight");
    assert!(
        evil.headers().get("access-control-allow-origin").is_none(),
        "never a wildcard, never a stranger"
    );

    // A real request from the SPA, with its own client: answered with CORS headers.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("origin", SPA)
        .form(&[
            ("grant_type", "password"),
            ("client_id", spa.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["access-control-allow-origin"], SPA);
    let t = tokens(response).await;
    let me = app
        .http
        .get(app.url("/api/me"))
        .header("origin", SPA)
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.headers()["access-control-allow-origin"], SPA);
    let www = me
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().expect("ascii").to_lowercase());
    assert!(www.is_some_and(|v| v.contains("www-authenticate")));
}

#[tokio::test]
async fn a_client_only_accepts_its_own_origins() {
    let app = spawn_app().await;
    let spa = spa_client(&app).await;
    for (client, origin) in [
        (spa.as_str(), "https://evil.example"),
        (CLI, SPA),
        (CLI, "null"),
    ] {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .header("origin", origin)
            .form(&[
                ("grant_type", "password"),
                ("client_id", client),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .expect("request");
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        let revoke = app
            .http
            .post(app.url("/oauth/revoke"))
            .header("origin", origin)
            .form(&[("client_id", client), ("token", "x")])
            .send()
            .await
            .expect("request");
        assert_error(revoke, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    assert!(app
        .audit("signin_success")
        .await
        .iter()
        .all(|e| e.client_id.as_deref() != Some(spa.as_str())));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let responses = [
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz"),
        app.http.get(app.url("/nope")).send().await.expect("404"),
        app.token(&[("grant_type", "magic")]).await,
        app.http.get(app.url("/api/me")).send().await.expect("401"),
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks"),
    ];
    for response in responses {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", response.url());
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "plain-http issuer: no HSTS"
        );
    }
    let https = spawn_app_with(|c| c.set_issuer("https://auth.example.test")).await;
    let response = https
        .http
        .get(https.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}
