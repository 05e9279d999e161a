//! Several tokend processes on one database: no node trusts a cache for "not revoked".

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_revocation_through_one_node_is_refused_by_the_other_at_once() {
    let a = spawn_app().await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    // Both nodes share an issuer in production; here each follows its own port, so sign in on A
    // and use the token where its issuer is valid, A, after revoking through B's database state.
    let t = a.login("admin", ADMIN_PASSWORD).await;
    let other = b.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(a.me(&t.access).await.status(), StatusCode::OK);

    // Revoke through B (the refresh token is opaque, so any node can take it).
    let response = b
        .revoke(&[("token", t.refresh()), ("client_id", CLI)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        a.me(&t.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "A sees B's revocation at once"
    );
    assert_eq!(b.me(&other.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn nodes_sharing_an_issuer_accept_each_others_tokens_and_revocations() {
    let a = spawn_app_with(|c| c.set_issuer("https://auth.example.test")).await;
    let b = spawn_on(a.db.clone(), |c| c.set_issuer("https://auth.example.test")).await;
    let t = a.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        b.me(&t.access).await.status(),
        StatusCode::OK,
        "B verifies A's token with the shared key"
    );
    let refreshed = tokens(b.refresh(t.refresh()).await).await;
    assert_error(
        a.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // That was reuse, detected across nodes: the whole session is gone on both.
    assert_eq!(
        a.me(&refreshed.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.me(&refreshed.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_key_rotated_elsewhere_is_picked_up_on_first_sight_of_its_kid() {
    let a = spawn_app_with(|c| c.set_issuer("https://auth.example.test")).await;
    let b = spawn_on(a.db.clone(), |c| c.set_issuer("https://auth.example.test")).await;
    let before = a.login("admin", ADMIN_PASSWORD).await;
    // Rotate through B: A has not reloaded yet.
    let keys = b.ctx.keys.clone();
    let alg = b.ctx.config.signing_alg;
    b.ctx
        .pool
        .run(move |conn| {
            keys.rotate(conn, alg)
                .map_err(tokend::service::ServiceError::Unexpected)
        })
        .await
        .expect("rotate");
    let after = b.login("admin", ADMIN_PASSWORD).await;
    assert_ne!(claims(&after.access)["jti"], claims(&before.access)["jti"]);
    assert_eq!(
        a.me(&after.access).await.status(),
        StatusCode::OK,
        "A reloads keys for an unknown kid"
    );
    assert_eq!(
        a.me(&before.access).await.status(),
        StatusCode::OK,
        "tokens of the retired key still verify"
    );
}
