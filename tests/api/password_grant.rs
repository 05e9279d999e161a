//! The password grant: sign-in, scopes, failures, and what it writes.

use reqwest::StatusCode;
use tokend::service::clients::NewClient;

use crate::helpers::*;

#[tokio::test]
async fn password_grant_issues_a_token_pair_and_opens_a_session() {
    let app = spawn_app().await;
    app.create_user("alice", "alice-password", false).await;

    let response = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "alice"),
            ("password", "alice-password"),
            ("device_name", "Alice's laptop"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let t = tokens(response).await;
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 300);
    assert_eq!(
        t.body["scope"], "account",
        "a non-admin never gets the admin scope"
    );
    assert!(t.refresh().starts_with("tokend_rt_") && t.refresh().len() >= 10 + 43);

    // The access token is an RFC 9068 JWT bound to the session.
    let c = claims(&t.access);
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
        "sid",
    ] {
        assert!(!c[claim].is_null(), "claim {claim} in {c}");
    }
    assert_eq!(c["iss"], app.address);
    assert_eq!(c["aud"][0], app.address);
    assert_eq!(c["client_id"], CLI);

    // The database holds the session and, on it, the refresh chain: generation 0, a secret that
    // is not the token, the access token's expiry. Neither token is stored anywhere.
    let (generation, session) = app.refresh_session(t.refresh()).await;
    assert_eq!(generation, 0);
    assert_eq!(session.id, c["sid"]);
    assert_eq!(session.kind, "password");
    assert_eq!(session.device_name.as_deref(), Some("Alice's laptop"));
    assert_eq!(session.scope, "account");
    assert!(session.revoked_at.is_none());
    assert_eq!(session.refresh_generation, 0);
    let secret = session.refresh_secret.clone().expect("a refresh secret");
    assert!(!t.refresh().contains(&secret) && !t.access.contains(&secret));
    assert_eq!(
        session.access_expires_at.map(|e| e.and_utc().timestamp()),
        c["exp"].as_i64()
    );
    assert!(session.refresh_expires_at.expect("refresh expiry") > session.created_at);
    let rows = app.row_counts().await;
    assert_eq!(rows["sessions"], 1, "{rows:?}");

    let events = app.audit("signin_success").await;
    assert!(events
        .iter()
        .any(|e| e.session_id.as_deref() == Some(&session.id)));
}

#[tokio::test]
async fn admin_gets_admin_scope_and_may_narrow_it() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(t.body["scope"], "account admin");

    let narrow = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("scope", "account"),
        ])
        .await;
    assert_eq!(tokens(narrow).await.body["scope"], "account");
}

#[tokio::test]
async fn scope_outside_what_the_user_may_hold_is_invalid_scope() {
    let app = spawn_app().await;
    app.create_user("bob", "bob-password", false).await;
    for scope in ["admin", "account admin", "write", "bad\"scope"] {
        let response = app
            .token(&[
                ("grant_type", "password"),
                ("client_id", CLI),
                ("username", "bob"),
                ("password", "bob-password"),
                ("scope", scope),
            ])
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same_and_are_audited() {
    let app = spawn_app().await;
    app.create_user("carol", "carol-password", false).await;

    let wrong = app.password_grant("carol", "not-her-password").await;
    let unknown = app.password_grant("nobody", "whatever-password").await;
    let wrong_status = wrong.status();
    let unknown_status = unknown.status();
    let wrong_body = wrong.text().await.expect("body");
    let unknown_body = unknown.text().await.expect("body");
    assert_eq!(wrong_status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_status, unknown_status);
    assert_eq!(wrong_body, unknown_body);
    assert!(wrong_body.contains("invalid_grant"));

    let failures = app.audit("signin_failure").await;
    let reasons: Vec<_> = failures.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(reasons.contains(&"bad_password".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"unknown_user".to_owned()), "{reasons:?}");
    for event in &failures {
        for field in [&event.reason, &event.user_agent, &event.ip] {
            assert!(
                !field.as_deref().unwrap_or_default().contains("password-"),
                "no secret in audit rows"
            );
        }
    }
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in() {
    let app = spawn_app().await;
    let id = app.create_user("dave", "dave-password", false).await;
    tokend::service::users::set_disabled(&app.ctx, id, true, None, Default::default())
        .await
        .expect("disable");
    let response = app.password_grant("dave", "dave-password").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_client_without_the_password_grant_is_unauthorized_client() {
    let app = spawn_app().await;
    let (client_id, _) = app
        .create_client(NewClient {
            name: "spa".into(),
            public: true,
            grant_types: vec!["refresh_token".into()],
            scopes: vec!["account".into()],
            ..Default::default()
        })
        .await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn a_password_over_1024_characters_is_refused_without_hashing() {
    let app = spawn_app().await;
    let long = "x".repeat(1025);
    let response = app.password_grant("admin", &long).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let failures = app.audit("signin_failure").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].reason.as_deref(), Some("credentials_too_long"));
}

#[tokio::test]
async fn json_bodies_are_accepted_too() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .json(&serde_json::json!({
            "grant_type": "password",
            "client_id": CLI,
            "username": "admin",
            "password": ADMIN_PASSWORD,
        }))
        .send()
        .await
        .expect("request");
    let t = tokens(response).await;
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_may_not_refresh_gets_a_session_as_long_as_its_access_token() {
    let app = spawn_app().await;
    let (client, _) = app
        .create_client(NewClient {
            name: "no refresh".into(),
            public: true,
            grant_types: vec!["password".into()],
            scopes: vec!["account".into()],
            ..Default::default()
        })
        .await;
    let t = tokens(
        app.token(&[
            ("grant_type", "password"),
            ("client_id", client.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await,
    )
    .await;
    assert!(t.refresh.is_none(), "{}", t.body);
    let session = app.session(&t.sid()).await;
    assert!(session.refresh_secret.is_none() && session.refresh_expires_at.is_none());
    assert_eq!(
        Some(session.expires_at),
        session.access_expires_at,
        "nothing can extend it: it ends with its one access token"
    );
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
}
