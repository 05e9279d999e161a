//! RFC 7662 introspection.

use reqwest::StatusCode;
use serde_json::json;

use tokend::service::clients::NewClient;

use crate::helpers::*;

#[tokio::test]
async fn an_active_access_token_is_described() {
    let app = spawn_app().await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let response = app.introspect(&rs, &secret, &t.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body = json(response).await;
    let c = claims(&t.access);
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["token_use"], "access_token");
    assert_eq!(body["username"], "admin");
    assert_eq!(body["client_id"], CLI);
    assert_eq!(body["scope"], "account admin");
    for field in ["sub", "exp", "iat", "nbf", "aud", "iss", "jti", "sid"] {
        assert_eq!(body[field], c[field], "{field}");
    }
}

#[tokio::test]
async fn a_refresh_token_is_introspected_by_its_own_client_only() {
    let app = spawn_app().await;
    let (rs, rs_secret) = app.confidential_client(&["read"]).await;
    let (owner, secret) = app
        .create_client(NewClient {
            name: "confidential first-party app".into(),
            grant_types: vec!["password".into(), "refresh_token".into()],
            scopes: vec!["account".into(), "admin".into()],
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let sign_in = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", owner.as_str()),
            ("client_secret", secret.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await;
    let t = tokens(sign_in).await;
    let body = json(app.introspect(&owner, &secret, t.refresh()).await).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_use"], "refresh_token");
    assert_eq!(body["sid"], claims(&t.access)["sid"]);
    assert_eq!(body["client_id"], owner.as_str());
    assert_eq!(body["username"], "admin");

    // Another client learns nothing: no oracle for stolen refresh tokens, no reuse tripped.
    assert_eq!(
        json(app.introspect(&rs, &rs_secret, t.refresh()).await).await,
        json!({"active": false})
    );

    // Once rotated it is inactive: exactly {"active": false}.
    let next = tokens(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", owner.as_str()),
            ("client_secret", secret.as_str()),
            ("refresh_token", t.refresh()),
        ])
        .await,
    )
    .await;
    assert_eq!(
        json(app.introspect(&owner, &secret, t.refresh()).await).await,
        json!({"active": false})
    );
    let body = json(app.introspect(&owner, &secret, next.refresh()).await).await;
    assert_eq!(body["active"], true, "{body}");
    assert!(app.session(&t.sid()).await.revoked_at.is_none());
}

#[tokio::test]
async fn anything_not_usable_is_exactly_inactive() {
    let app = spawn_app().await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    app.revoke(&[("token", t.access.as_str()), ("client_id", CLI)])
        .await;
    for token in [
        t.access.as_str(),
        t.refresh(),
        "garbage",
        "tokend_rt_x",
        "tokend_pat_x",
        "a.b.c",
    ] {
        let body = json(app.introspect(&rs, &secret, token).await).await;
        assert_eq!(body, json!({"active": false}), "{token}");
    }
}

#[tokio::test]
async fn introspection_needs_an_authenticated_confidential_client() {
    let app = spawn_app().await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;

    let anonymous = app
        .http
        .post(app.url("/oauth/introspect"))
        .form(&[("token", t.access.as_str())])
        .send()
        .await;
    assert_error(
        anonymous.expect("request"),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let public = app
        .http
        .post(app.url("/oauth/introspect"))
        .form(&[("token", t.access.as_str()), ("client_id", CLI)])
        .send()
        .await
        .expect("request");
    assert_error(public, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let wrong_secret = app.introspect(&rs, "tokend_cs_wrong", &t.access).await;
    assert_error(wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let missing = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&rs, Some(&secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .expect("request");
    assert_error(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
}
