//! Discovery metadata, JWKS, health and readiness, and the first-start bootstrap.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn metadata_names_the_endpoints() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let m = json(response).await;
    assert_eq!(m["issuer"], app.address);
    assert_eq!(m["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(m["revocation_endpoint"], app.url("/oauth/revoke"));
    assert_eq!(m["introspection_endpoint"], app.url("/oauth/introspect"));
    assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json"));
    let grants = m["grant_types_supported"].as_array().expect("grants");
    assert_eq!(m["authorization_endpoint"], app.url("/oauth/authorize"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    for g in [
        "authorization_code",
        "password",
        "refresh_token",
        "client_credentials",
    ] {
        assert!(grants.contains(&serde_json::json!(g)), "{g}");
    }
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(m["scopes_supported"]
        .as_array()
        .expect("scopes")
        .contains(&serde_json::json!("account")));
}

#[tokio::test]
async fn jwks_publishes_the_signing_key_without_its_private_part() {
    let app = spawn_app().await;
    let jwks = json(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none());
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.access.split('.').next().expect("header"),
        )
        .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["kid"], key["kid"]);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_first_start_bootstraps_once() {
    let app = spawn_app().await;
    let admin = app
        .db(|c| tokend::store::users::find_by_username(c, "admin"))
        .await
        .expect("admin user");
    assert!(admin.is_admin);
    assert!(
        admin.password_hash.starts_with("$argon2id$"),
        "only an Argon2id hash is stored"
    );
    let cli = app
        .db(|c| tokend::store::clients::find(c, "tokend-cli"))
        .await
        .expect("tokend-cli client");
    assert!(cli.is_public);
    assert_eq!(cli.scopes, "account admin");
    let keys = app.db(tokend::store::keys::all).await;
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].private_key.contains("PRIVATE KEY"),
        "no key-encryption key configured: PEM at rest"
    );

    // A second node on the same database creates nothing new.
    let node2 = spawn_on(app.db.clone(), |c| {
        c.bootstrap_admin_password =
            Some(tokend::config::SecretString::new("other-password".into()))
    })
    .await;
    assert_eq!(node2.db(tokend::store::users::list).await.len(), 1);
    assert_eq!(node2.db(tokend::store::keys::all).await.len(), 1);
    node2.login("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn signing_keys_are_encrypted_at_rest_with_a_key_encryption_key() {
    use base64::Engine as _;
    let kek = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let parsed = tokend::crypto::keys::KeyEncryptionKey::parse(&kek).expect("kek");
    let app = spawn_app_with(|c| c.key_encryption_key = Some(parsed.clone())).await;
    let keys = app.db(tokend::store::keys::all).await;
    assert!(keys[0].private_key.starts_with("enc:v1:"));
    // The keys refresh tokens and sign-in forms are tagged with are sealed too: a backup alone
    // does not hold them.
    for name in ["refresh_key", "csrf_key"] {
        let stored = app
            .db(move |conn| {
                tokend::store::keys::secret_get_or_insert(
                    conn,
                    name,
                    "unused",
                    tokend::store::now(),
                )
            })
            .await;
        assert!(stored.starts_with("enc:v1:"), "{name} sealed at rest");
    }
    assert!(!keys[0].private_key.contains("PRIVATE KEY"));
    let t = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);

    // Without the key, or with another one, start-up stops with a clear message.
    let db = app.db.url.clone();
    let missing = tokend::startup::Application::build(test_config(&db)).await;
    let err = format!("{:#}", missing.err().expect("must refuse to start"));
    assert!(err.contains("TOKEND_KEY_ENCRYPTION_KEY"), "{err}");
    let mut wrong = test_config(&db);
    wrong.key_encryption_key = Some(
        tokend::crypto::keys::KeyEncryptionKey::parse(
            &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .expect("kek"),
    );
    let err = format!(
        "{:#}",
        tokend::startup::Application::build(wrong)
            .await
            .err()
            .expect("must refuse")
    );
    assert!(err.contains("does not decrypt"), "{err}");

    // Rotation refuses to add a key the cluster could not open: without the key-encryption key,
    // or with another one.
    let wrong_kek = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    for kek in [None, Some(wrong_kek)] {
        let (code, _, stderr) = match &kek {
            Some(k) => {
                app.cli_env(
                    &["keys", "rotate"],
                    None,
                    &[("TOKEND_KEY_ENCRYPTION_KEY", k)],
                )
                .await
            }
            None => app.cli(&["keys", "rotate"], None).await,
        };
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("TOKEND_KEY_ENCRYPTION_KEY"), "{stderr}");
    }
    assert_eq!(
        app.db(tokend::store::keys::all).await.len(),
        1,
        "no key was added"
    );
}

#[tokio::test]
async fn a_wrong_key_encryption_key_seals_nothing() {
    // After the upgrade to storage v2 the server secrets are new: a node started with a mistyped
    // key-encryption key must refuse before it creates them, not seal them under the wrong key.
    use base64::Engine as _;
    let kek = |byte: u8| {
        tokend::crypto::keys::KeyEncryptionKey::parse(
            &base64::engine::general_purpose::STANDARD.encode([byte; 32]),
        )
        .expect("kek")
    };
    let app = spawn_app_with(|c| c.key_encryption_key = Some(kek(42))).await;
    app.db(|conn| {
        use diesel::prelude::*;
        use tokend::store::schema::server_secrets;
        Ok(tokend::db!(conn, c => diesel::delete(
            server_secrets::table.filter(server_secrets::name.eq_any(["refresh_key", "csrf_key"]))
        )
        .execute(c))?)
    })
    .await;
    let mut wrong = test_config(&app.db.url);
    wrong.key_encryption_key = Some(kek(7));
    let err = format!(
        "{:#}",
        tokend::startup::Application::build(wrong)
            .await
            .err()
            .expect("must refuse")
    );
    assert!(err.contains("does not decrypt"), "{err}");
    let left = app
        .db(|conn| {
            use diesel::prelude::*;
            use tokend::store::schema::server_secrets;
            Ok(tokend::db!(conn, c => server_secrets::table
                .filter(server_secrets::name.eq_any(["refresh_key", "csrf_key"]))
                .count()
                .get_result::<i64>(c))?)
        })
        .await;
    assert_eq!(left, 0, "nothing was sealed under the wrong key");
    // The right key still starts, and makes them.
    let mut right = test_config(&app.db.url);
    right.key_encryption_key = Some(kek(42));
    tokend::startup::Application::build(right)
        .await
        .expect("the right key starts");
}
