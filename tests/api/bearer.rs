//! RFC 6750 at `GET /api/me`: how missing, malformed, bad and under-scoped tokens are answered.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn me_describes_the_caller() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let response = app.me(&t.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["username"], "admin");
    assert_eq!(body["is_admin"], true);
    assert_eq!(body["client_id"], CLI);
    assert_eq!(body["session_id"], claims(&t.access)["sid"]);
    assert_eq!(body["scopes"], serde_json::json!(["account", "admin"]));
    assert!(body["id"].is_string());
}

#[tokio::test]
async fn no_credentials_get_a_bare_challenge() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    for request in [
        app.http.get(app.url("/api/me")),
        // A token in the query string is never read.
        app.http
            .get(app.url(&format!("/api/me?access_token={}", t.access))),
    ] {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"tokend\""
        );
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_invalid_request() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    for header in [
        "Basic YWRtaW46eA==".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {} {}", t.access, t.access),
        "Bearer a,b".to_owned(),
        "Token abc".to_owned(),
    ] {
        let response = app
            .http
            .get(app.url("/api/me"))
            .header("authorization", &header)
            .send()
            .await
            .expect("request");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{header}: {challenge}"
        );
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn bad_tokens_are_invalid_token() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    for token in [
        "garbage",
        t.refresh(),
        "tokend_pat_abc",
        "a.b.c",
        &"x".repeat(5000),
    ] {
        let response = app.me(token).await;
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"tokend\", error=\"invalid_token\""),
            "{challenge}"
        );
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
}

#[tokio::test]
async fn a_token_without_the_account_scope_is_insufficient_scope() {
    let app = spawn_app().await;
    let admin_only = tokens(
        app.token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("scope", "admin"),
        ])
        .await,
    )
    .await;
    let response = app.me(&admin_only.access).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"account\""),
        "{challenge}"
    );
    assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;

    // A client credentials token carries no user and no account scope either.
    let (id, secret) = app.confidential_client(&["read"]).await;
    let cc = tokens(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;
    assert_error(
        app.me(&cc.access).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
}
