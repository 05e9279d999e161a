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

const ISSUER: &str = "https://auth.example.test";

async fn three_nodes() -> [TestApp; 3] {
    let a = spawn_app_with(|c| c.set_issuer(ISSUER)).await;
    let b = spawn_on(a.db.clone(), |c| c.set_issuer(ISSUER)).await;
    let c = spawn_on(a.db.clone(), |c| c.set_issuer(ISSUER)).await;
    [a, b, c]
}

/// How many of the nodes accept the token right now.
async fn accepted_by(nodes: &[TestApp], access: &str) -> usize {
    let mut n = 0;
    for node in nodes {
        if node.me(access).await.status() == StatusCode::OK {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn three_nodes_one_truth() {
    let nodes = three_nodes().await;
    let [a, b, c] = &nodes;
    a.create_user("zoe", "zoe-password-1", false).await;

    // A revocation through one node: refused by the other two on the very next request.
    let t = b.login("zoe", "zoe-password-1").await;
    assert_eq!(accepted_by(&nodes, &t.access).await, 3);
    assert_eq!(
        a.revoke(&[("token", t.access.as_str()), ("client_id", CLI)])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(accepted_by(&nodes, &t.access).await, 0);
    for node in &nodes {
        assert_error(
            node.refresh(t.refresh()).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }

    // Logout-all through one node.
    let devices = [
        a.login("zoe", "zoe-password-1").await,
        b.login("zoe", "zoe-password-1").await,
    ];
    let response = c.post("/api/logout-all", &devices[0].access).await;
    assert_eq!(response.status(), StatusCode::OK);
    for d in &devices {
        assert_eq!(accepted_by(&nodes, &d.access).await, 0);
    }

    // A password change through one node.
    let devices = [
        a.login("zoe", "zoe-password-1").await,
        c.login("zoe", "zoe-password-1").await,
    ];
    let response = b
        .post_json(
            "/api/password",
            &devices[0].access,
            serde_json::json!({"current_password": "zoe-password-1", "new_password": "zoe-password-2"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        accepted_by(&nodes, &devices[0].access).await,
        3,
        "the current session stays"
    );
    assert_eq!(
        accepted_by(&nodes, &devices[1].access).await,
        0,
        "the other one is out everywhere"
    );
    for node in &nodes {
        assert_error(
            node.password_grant("zoe", "zoe-password-1").await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
}

#[tokio::test]
async fn the_same_refresh_token_sent_to_three_nodes_at_once_rotates_once() {
    let nodes = three_nodes().await;
    let t = nodes[0].login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    let results = refresh_concurrently(&[&nodes[0], &nodes[1], &nodes[2]], t.refresh(), 6).await;
    let ok = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert!(ok <= 1, "{ok} rotations answered");
    assert_eq!(
        nodes[0].session(&sid).await.refresh_generation,
        1,
        "exactly one rotation across the nodes"
    );
    assert_eq!(
        nodes[1].session(&sid).await.revoked_reason.as_deref(),
        Some("refresh_reuse")
    );
}

#[tokio::test]
async fn running_nodes_start_signing_with_a_rotated_key_without_a_restart() {
    let a = spawn_app_with(|c| {
        c.set_issuer(ISSUER);
        c.key_reload_interval = std::time::Duration::from_millis(200);
    })
    .await;
    let b = spawn_on(a.db.clone(), |c| c.set_issuer(ISSUER)).await;
    let kid = |jwt: &str| {
        use base64::Engine as _;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().expect("h"))
            .expect("b64");
        serde_json::from_slice::<serde_json::Value>(&h).expect("json")["kid"]
            .as_str()
            .expect("kid")
            .to_owned()
    };
    let before = a.login("admin", ADMIN_PASSWORD).await;
    let admin = b.login("admin", ADMIN_PASSWORD).await;
    let rotated = json(b.post("/admin/keys/rotate", &admin.access).await).await;
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();

    // A picks the new key up by itself (here every 200 ms; 10 s by default).
    let mut signed_with = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        signed_with = kid(&a.login("admin", ADMIN_PASSWORD).await.access);
        if signed_with == new_kid {
            break;
        }
    }
    assert_eq!(signed_with, new_kid, "node A signs with the rotated key");
    let jwks = json(
        a.http
            .get(a.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert!(
        kids.contains(&new_kid) && kids.contains(&kid(&before.access)),
        "{kids:?}"
    );
    assert_eq!(
        a.me(&before.access).await.status(),
        StatusCode::OK,
        "tokens of the old key live on"
    );
    assert_eq!(b.me(&before.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn random_kids_cannot_delay_the_reload_a_rotated_key_needs() {
    // While a stream of JWTs with random `kid`s hits node A, node B rotates the signing key and
    // issues a token with it: A must accept that token on first sight, not after a global
    // reload budget the random kids used up.
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let a = spawn_app_with(|c| c.set_issuer(ISSUER)).await;
    let b = spawn_on(a.db.clone(), |c| c.set_issuer(ISSUER)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut spammers = Vec::new();
    for _ in 0..8 {
        let (http, url, stop) = (a.http.clone(), a.url("/api/me"), stop.clone());
        let payload = b64(serde_json::json!({"sub": "x"}));
        spammers.push(tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let header = b64(serde_json::json!({
                    "alg": "EdDSA", "typ": "at+jwt", "kid": uuid::Uuid::new_v4().to_string()
                }));
                let forged = format!("{header}.{payload}.c2ln");
                let status = http
                    .get(&url)
                    .bearer_auth(forged)
                    .send()
                    .await
                    .expect("request")
                    .status();
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                sent += 1;
            }
            sent
        }));
    }
    for round in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
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
        let fresh = b.login("admin", ADMIN_PASSWORD).await;
        assert_eq!(
            a.me(&fresh.access).await.status(),
            StatusCode::OK,
            "round {round}: A refused a token of a key rotated on B while random kids arrived"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    for s in spammers {
        sent += s.await.expect("spammer");
    }
    assert!(
        sent > 50,
        "the random kids really arrived meanwhile ({sent})"
    );
}
