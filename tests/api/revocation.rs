//! RFC 7009 revocation and the cascade: revoking either kind of token ends its session.

use reqwest::StatusCode;
use tokend::service::clients::NewClient;

use crate::helpers::*;

#[tokio::test]
async fn revoking_an_access_token_cascades_to_its_refresh_tokens_and_session() {
    let app = spawn_app().await;
    let laptop = app.login("admin", ADMIN_PASSWORD).await;
    let phone_first = app.login("admin", ADMIN_PASSWORD).await;
    // Two access tokens in the phone's session: the first, and one from a refresh.
    let phone = tokens(app.refresh(phone_first.refresh()).await).await;
    assert_eq!(app.me(&phone_first.access).await.status(), StatusCode::OK);

    let response = app
        .revoke(&[("token", phone.access.as_str()), ("client_id", CLI)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.text().await.expect("body").is_empty());

    // Its refresh token is refused, the session's other access token too…
    assert_error(
        app.refresh(phone.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.me(&phone.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me(&phone_first.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // …and the laptop keeps working.
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);
    tokens(app.refresh(laptop.refresh()).await).await;

    // What the database holds: every row of the session revoked with the reason.
    let sid = claims(&phone.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let session = app.session(&sid).await;
    assert!(session.revoked_at.is_some());
    assert_eq!(
        session.revoked_reason.as_deref(),
        Some("access_token_revoked")
    );
    // One row held the whole chain: ending it ended every token, by construction.
    let (generation, chain) = app.refresh_session(phone.refresh()).await;
    assert_eq!(chain.id, sid);
    assert_eq!(generation, chain.refresh_generation);
    assert_eq!(app.row_counts().await["sessions"], 2);
    let events = app.audit("token_revoked").await;
    assert!(events
        .iter()
        .any(|e| e.session_id.as_deref() == Some(sid.as_str())
            && e.reason.as_deref() == Some("access_token_revoked")));
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    // The hint is wrong on purpose: the token is still found.
    let response = app
        .revoke(&[
            ("token", t.refresh()),
            ("token_type_hint", "access_token"),
            ("client_id", CLI),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("refresh_token_revoked")
    );
}

#[tokio::test]
async fn unknown_malformed_and_already_revoked_tokens_answer_200() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        app.revoke(&[("token", t.access.as_str()), ("client_id", CLI)])
            .await
            .status(),
        StatusCode::OK
    );
    for token in [
        t.access.as_str(),
        t.refresh(),
        "tokend_rt_unknown",
        "not-a-token",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
    ] {
        for hint in ["access_token", "refresh_token", "something_else"] {
            let response = app
                .revoke(&[
                    ("token", token),
                    ("token_type_hint", hint),
                    ("client_id", CLI),
                ])
                .await;
            assert_eq!(response.status(), StatusCode::OK, "{token} {hint}");
        }
    }
    assert_error(
        app.revoke(&[("client_id", CLI)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn a_token_of_another_client_is_refused_and_nothing_is_revoked() {
    let app = spawn_app().await;
    let (other, _) = app
        .create_client(NewClient {
            name: "other app".into(),
            public: true,
            grant_types: vec!["refresh_token".into()],
            scopes: vec!["account".into()],
            ..Default::default()
        })
        .await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    for token in [t.access.as_str(), t.refresh()] {
        let response = app
            .revoke(&[("token", token), ("client_id", other.as_str())])
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    }
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    assert!(app.session(&sid).await.revoked_at.is_none());
    tokens(app.refresh(t.refresh()).await).await;
}

#[tokio::test]
async fn confidential_clients_must_authenticate_to_revoke() {
    let app = spawn_app().await;
    let (id, secret) = app.confidential_client(&["read"]).await;
    let t = tokens(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;
    let unauthenticated = app
        .revoke(&[("token", t.access.as_str()), ("client_id", id.as_str())])
        .await;
    assert_error(unauthenticated, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let active = json(app.introspect(&id, &secret, &t.access).await).await;
    assert_eq!(active["active"], true);

    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", t.access.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(app.introspect(&id, &secret, &t.access).await).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn an_expired_but_genuine_access_token_still_ends_its_session() {
    // A client revokes the access token it holds after it expired: the JWT's signature still
    // proves which session it belongs to, so the session and its refresh chain end. (The token is
    // the session's own, re-signed with the server's key an hour in the past, past any leeway.)
    use jsonwebtoken::{Algorithm, Header};
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let key = app.ctx.keys.signing_key().expect("signing key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".to_owned());
    let mut old = claims(&t.access);
    let now = chrono::Utc::now().timestamp();
    old["iat"] = (now - 3_900).into();
    old["nbf"] = (now - 3_900).into();
    old["exp"] = (now - 3_600).into();
    let expired = jsonwebtoken::encode(&header, &old, &key.key).expect("sign");
    assert_eq!(app.me(&expired).await.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .revoke(&[("token", expired.as_str()), ("client_id", CLI)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.session(&t.sid()).await.revoked_reason.as_deref(),
        Some("access_token_revoked")
    );
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
}
