//! Forged and tampered JWTs: every one is refused at the API (401 invalid_token) and is inactive
//! at introspection (SECURITY.md 13–14).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokend::crypto::keys::{generate, SigningAlg, SigningKey};

use crate::helpers::*;

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!("{}.{}.", b64(&header), b64(claims))
}

fn sign_with(key: &EncodingKey, header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused() {
    let app = spawn_app().await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let real = app.login("admin", ADMIN_PASSWORD).await;
    let good = claims(&real.access);
    let key = app.ctx.keys.signing_key().expect("signing key");
    let kid = key.kid.clone();
    let jwks = json(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    let public_x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("x bytes");

    let real_header = |typ: Option<&str>| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.clone());
        h.typ = typ.map(str::to_owned);
        h
    };
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let without = |field: &str| {
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove(field);
        c
    };
    let now = chrono::Utc::now().timestamp();
    let attacker = generate(SigningAlg::EdDsa).expect("attacker key");
    let attacker_key =
        SigningKey::from_pem(&attacker.kid, SigningAlg::EdDsa, &attacker.private_pem)
            .expect("load");
    let attacker_jwk: Value = serde_json::from_str(&attacker.public_jwk).expect("jwk");

    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(kid.clone());
    hs256.typ = Some("at+jwt".into());

    let tampered = {
        let parts: Vec<&str> = real.access.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&with("scope", json!("account admin superuser"))),
            parts[2]
        )
    };

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            unsigned(json!({"alg": "none", "typ": "at+jwt", "kid": kid}), &good),
        ),
        (
            "alg None",
            unsigned(json!({"alg": "None", "typ": "at+jwt", "kid": kid}), &good),
        ),
        (
            "alg NONE",
            unsigned(json!({"alg": "NONE", "typ": "at+jwt", "kid": kid}), &good),
        ),
        (
            "HS256 with the public key bytes",
            sign_with(&EncodingKey::from_secret(&public_x), hs256.clone(), &good),
        ),
        (
            "HS256 with the JWK text",
            sign_with(
                &EncodingKey::from_secret(jwks["keys"][0].to_string().as_bytes()),
                hs256.clone(),
                &good,
            ),
        ),
        ("edited payload", tampered),
        (
            "typ JWT",
            sign_with(&key.key, real_header(Some("JWT")), &good),
        ),
        ("no typ", sign_with(&key.key, real_header(None), &good)),
        (
            "wrong iss",
            sign_with(
                &key.key,
                real_header(Some("at+jwt")),
                &with("iss", json!("https://evil.example")),
            ),
        ),
        (
            "wrong aud",
            sign_with(
                &key.key,
                real_header(Some("at+jwt")),
                &with("aud", json!(["https://other.example"])),
            ),
        ),
        (
            "no aud",
            sign_with(&key.key, real_header(Some("at+jwt")), &without("aud")),
        ),
        (
            "no exp",
            sign_with(&key.key, real_header(Some("at+jwt")), &without("exp")),
        ),
        (
            "expired",
            sign_with(
                &key.key,
                real_header(Some("at+jwt")),
                &with("exp", json!(now - 3600)),
            ),
        ),
        (
            "nbf in the future",
            sign_with(
                &key.key,
                real_header(Some("at+jwt")),
                &with("nbf", json!(now + 3600)),
            ),
        ),
        (
            "a session that never existed",
            sign_with(
                &key.key,
                real_header(Some("at+jwt")),
                &with("sid", json!(uuid::Uuid::now_v7().to_string())),
            ),
        ),
        (
            "another session's sid",
            sign_with(
                &key.key,
                real_header(Some("at+jwt")),
                &with("sid", json!("someone-else")),
            ),
        ),
        (
            "no kid",
            sign_with(
                &key.key,
                {
                    let mut h = real_header(Some("at+jwt"));
                    h.kid = None;
                    h
                },
                &good,
            ),
        ),
        (
            "unknown kid, attacker's key",
            sign_with(
                &attacker_key.key,
                {
                    let mut h = real_header(Some("at+jwt"));
                    h.kid = Some(attacker.kid.clone());
                    h
                },
                &good,
            ),
        ),
        (
            "real kid, attacker's key",
            sign_with(&attacker_key.key, real_header(Some("at+jwt")), &good),
        ),
        (
            "hostile kid",
            sign_with(
                &attacker_key.key,
                {
                    let mut h = real_header(Some("at+jwt"));
                    h.kid = Some("../../etc/passwd' OR '1'='1".into());
                    h
                },
                &good,
            ),
        ),
        (
            "embedded jwk header",
            unsigned_then_sign(
                &attacker_key,
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": attacker.kid, "jwk": attacker_jwk}),
                &good,
            ),
        ),
        (
            "jku header",
            unsigned_then_sign(
                &attacker_key,
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": attacker.kid, "jku": "https://evil.example/jwks.json"}),
                &good,
            ),
        ),
        (
            "x5u header",
            unsigned_then_sign(
                &attacker_key,
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": attacker.kid, "x5u": "https://evil.example/cert.pem"}),
                &good,
            ),
        ),
    ];
    for (name, token) in cases {
        let response = app.me(&token).await;
        let status = response.status();
        let body = json(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["error"], "invalid_token", "{name}");
        let introspected = json(app.introspect(&rs, &secret, &token).await).await;
        assert_eq!(introspected, json!({"active": false}), "{name}");
    }
    // The real token still works: nothing above disturbed it.
    assert_eq!(app.me(&real.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_signed_with_the_real_key_gets_no_more_than_its_session_holds() {
    // Access tokens are not stored: a JWT that verifies is checked against its session only. A
    // leaked signing key must not turn a user-only session into an admin one.
    let app = spawn_app().await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let narrow = tokens(
        app.token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("scope", "account"),
        ])
        .await,
    )
    .await;
    let key = app.ctx.keys.signing_key().expect("signing key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".to_owned());
    let mut widened = claims(&narrow.access);
    widened["scope"] = json!("account admin");
    let forged = sign_with(&key.key, header, &widened);
    assert_eq!(app.me(&forged).await.status(), StatusCode::OK);
    assert_error(
        app.get("/admin/users", &forged).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    let introspected = json(app.introspect(&rs, &secret, &forged).await).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["scope"], "account");
}

/// Signs an arbitrary header JSON (with `jwk`/`jku`/`x5u`) with the attacker's Ed25519 key.
fn unsigned_then_sign(key: &SigningKey, header: Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64(&header), b64(claims));
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.key, Algorithm::EdDSA)
            .expect("sign");
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn tokens_signed_with_es256_and_rs256_keys_validate_when_configured() {
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let app = spawn_app_with(|c| c.signing_alg = alg).await;
        let t = app.login("admin", ADMIN_PASSWORD).await;
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.access.split('.').next().expect("header"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
        let jwks = json(
            app.http
                .get(app.url("/.well-known/jwks.json"))
                .send()
                .await
                .expect("jwks"),
        )
        .await;
        assert_eq!(jwks["keys"][0]["alg"], alg.as_str());
    }
}
