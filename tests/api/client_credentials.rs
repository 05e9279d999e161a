//! The client credentials grant.

use reqwest::StatusCode;
use tokend::service::clients::NewClient;

use crate::helpers::*;

#[tokio::test]
async fn a_confidential_client_gets_an_access_token_and_no_refresh_token() {
    let app = spawn_app().await;
    let (id, secret) = app.confidential_client(&["read", "write"]).await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let t = tokens(response).await;
    assert!(
        t.refresh.is_none(),
        "client_credentials never issues a refresh token: {}",
        t.body
    );
    assert_eq!(t.body["scope"], "read");
    let c = claims(&t.access);
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["client_id"], id.as_str());
    let session = app.session(c["sid"].as_str().expect("sid")).await;
    assert_eq!(session.kind, "client_credentials");
    assert!(session.user_id.is_none());
    assert!(session.refresh_secret.is_none() && session.refresh_expires_at.is_none());

    // client_secret_post works the same.
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(tokens(response).await.body["scope"], "read write");
}

#[tokio::test]
async fn user_scopes_are_never_granted_to_a_client_alone() {
    let app = spawn_app().await;
    let (id, secret) = app.confidential_client(&["read", "account", "admin"]).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    assert_eq!(tokens(app.token(&form).await).await.body["scope"], "read");
    for scope in ["account", "admin"] {
        let mut form = form.to_vec();
        form.push(("scope", scope));
        assert_error(
            app.token(&form).await,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        )
        .await;
    }
}

#[tokio::test]
async fn a_public_client_may_not_use_client_credentials() {
    let app = spawn_app().await;
    let response = app
        .token(&[("grant_type", "client_credentials"), ("client_id", CLI)])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn a_confidential_client_without_the_grant_is_unauthorized_client() {
    let app = spawn_app().await;
    let (id, secret) = app
        .create_client(NewClient {
            name: "web".into(),
            grant_types: vec!["password".into(), "refresh_token".into()],
            scopes: vec!["account".into()],
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}
