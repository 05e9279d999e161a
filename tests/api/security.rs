//! One test per line of SECURITY.md, named after it (`sec_NN_…`). Broader tests of the same
//! behaviour live beside the feature they belong to; docs/security.md maps each line to both.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokend::service::clients::NewClient;

use crate::helpers::*;

fn sid(t: &Tokens) -> String {
    claims(&t.access)["sid"].as_str().expect("sid").to_owned()
}

async fn public_client(app: &TestApp, grants: &[&str]) -> String {
    app.create_client(NewClient {
        name: "app".into(),
        public: true,
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        scopes: vec!["account".into()],
        ..Default::default()
    })
    .await
    .0
}

#[tokio::test]
async fn sec_01_password_grant_only_for_clients_that_list_it() {
    let app = spawn_app().await;
    let other = public_client(&app, &["refresh_token"]).await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("client_id", &other),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    app.login("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn sec_02_confidential_clients_authenticate_at_token_revoke_and_introspect() {
    let app = spawn_app().await;
    let (id, _) = app.confidential_client(&["read"]).await;
    for (path, form) in [
        (
            "/oauth/token",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
            ],
        ),
        (
            "/oauth/revoke",
            vec![("token", "x"), ("client_id", id.as_str())],
        ),
        (
            "/oauth/introspect",
            vec![("token", "x"), ("client_id", id.as_str())],
        ),
    ] {
        let response = app
            .http
            .post(app.url(path))
            .form(&form)
            .send()
            .await
            .expect("request");
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

#[tokio::test]
async fn sec_03_two_client_auth_methods_or_a_repeated_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let (id, secret) = app.confidential_client(&["read"]).await;
    let both = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_error(both, StatusCode::BAD_REQUEST, "invalid_request").await;
    let repeated = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=read&scope=read"))
        .send()
        .await
        .expect("request");
    assert_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn sec_04_client_credentials_confidential_only_and_never_a_refresh_token() {
    let app = spawn_app().await;
    let public = app
        .token(&[("grant_type", "client_credentials"), ("client_id", CLI)])
        .await;
    assert_error(public, StatusCode::BAD_REQUEST, "unauthorized_client").await;
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
    assert!(t.body.get("refresh_token").is_none());
}

#[tokio::test]
async fn sec_05_credentials_and_tokens_in_the_query_string_are_never_accepted() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let (id, secret) = app.confidential_client(&["read"]).await;
    let cases = [
        app.http
            .post(app.url(&format!("/oauth/token?password={ADMIN_PASSWORD}")))
            .form(&[
                ("grant_type", "password"),
                ("client_id", CLI),
                ("username", "admin"),
            ]),
        app.http
            .post(app.url(&format!("/oauth/token?refresh_token={}", t.refresh())))
            .form(&[("grant_type", "refresh_token"), ("client_id", CLI)]),
        app.http
            .post(app.url(&format!(
                "/oauth/token?client_id={id}&client_secret={secret}"
            )))
            .form(&[("grant_type", "client_credentials")]),
        app.http
            .post(app.url(&format!("/oauth/revoke?token={}", t.access)))
            .form(&[("client_id", CLI)]),
        app.http
            .post(app.url(&format!("/oauth/introspect?token={}", t.access)))
            .basic_auth(&id, Some(&secret)),
    ];
    for request in cases {
        assert_error(
            request.send().await.expect("request"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    let query_bearer = app
        .http
        .get(app.url(&format!("/api/me?access_token={}", t.access)))
        .send()
        .await
        .expect("request");
    assert_eq!(
        query_bearer.status(),
        StatusCode::UNAUTHORIZED,
        "a token in the query is not read"
    );
    assert_eq!(
        app.me(&t.access).await.status(),
        StatusCode::OK,
        "nothing was revoked"
    );
}

#[tokio::test]
async fn sec_06_refresh_tokens_are_bound_to_their_client() {
    let app = spawn_app().await;
    let other = public_client(&app, &["refresh_token"]).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let stolen = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &other),
            ("refresh_token", t.refresh()),
        ])
        .await;
    assert_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn sec_07_refresh_narrows_scope_never_widens_and_keeps_the_session_scope() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let wider = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", t.refresh()),
            ("scope", "account admin write"),
        ])
        .await;
    assert_error(wider, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let narrow = tokens(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", t.refresh()),
            ("scope", "account"),
        ])
        .await,
    )
    .await;
    assert_eq!(narrow.body["scope"], "account");
    assert_eq!(
        tokens(app.refresh(narrow.refresh()).await).await.body["scope"],
        "account admin"
    );
}

#[tokio::test]
async fn sec_08_rotation_moves_the_generation_in_one_statement_and_answers_after_commit() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let rows = app.row_counts().await;
    let next = tokens(app.refresh(t.refresh()).await).await;
    // By the time the answer arrived, the rotation was committed: another connection sees it,
    // and the only change is the generation (and times) on the session row.
    let (generation, session) = app.refresh_session(next.refresh()).await;
    assert_eq!(generation, 1);
    assert_eq!(session.refresh_generation, 1);
    assert!(session.rotated_at.is_some());
    assert_eq!(app.row_counts().await, rows);
}

#[tokio::test]
async fn sec_09_reuse_revokes_the_session_with_an_audit_event_and_concurrent_refreshes_rotate_once()
{
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    refresh_concurrently(&[&app], t.refresh(), 8).await;
    let session = app.session(&sid(&t)).await;
    assert_eq!(session.refresh_generation, 1, "exactly one rotation");
    assert_eq!(session.revoked_reason.as_deref(), Some("refresh_reuse"));
    assert_eq!(app.audit("refresh_reuse").await.len(), 1);
}

#[tokio::test]
async fn sec_10_idle_expiry_and_an_absolute_session_limit() {
    let app = spawn_app_with(|c| {
        c.refresh_token_ttl = Duration::from_secs(1);
        c.session_max_age = Duration::from_secs(3);
    })
    .await;
    let idle = app.login("admin", ADMIN_PASSWORD).await;
    let mut active = app.login("admin", ADMIN_PASSWORD).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = app.refresh(active.refresh()).await;
        if r.status() != StatusCode::OK {
            // Kept alive by refreshing, yet ended by the absolute limit.
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
            assert_error(
                app.refresh(idle.refresh()).await,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            )
            .await;
            return;
        }
        active = tokens(r).await;
    }
    panic!("the session outlived TOKEND_SESSION_MAX_AGE");
}

#[tokio::test]
async fn sec_11_purge_never_removes_a_rotated_token_of_a_live_session() {
    let app = spawn_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let next = tokens(app.refresh(t.refresh()).await).await;
    assert_eq!(
        app.post("/admin/purge", &admin).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.session(&sid(&t)).await.revoked_reason.as_deref(),
        Some("refresh_reuse"),
        "still recognised as reuse"
    );
    assert_eq!(
        app.me(&next.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sec_12_opaque_tokens_have_256_bits_only_hashes_are_stored_and_refresh_tags_need_key_and_secret(
) {
    use base64::Engine as _;
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let web = app.create_pat(&t.access, "x", &["account"]).await;
    let (id, secret) = app.confidential_client(&["read"]).await;
    for (token, prefix) in [
        (t.refresh(), "tokend_rt_"),
        (web["token"].as_str().expect("pat"), "tokend_pat_"),
        (&secret, "tokend_cs_"),
    ] {
        let body = token.strip_prefix(prefix).expect("prefix");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .expect("base64url");
        assert!(bytes.len() * 8 >= 256, "{prefix}: {} bits", bytes.len() * 8);
    }
    // A refresh token is (session id, generation, 256-bit tag); the tag is stored nowhere, and
    // neither the session's secret under another key nor the key over another secret makes it.
    use tokend::crypto::refresh::{mint, RefreshSecret};
    use tokend::crypto::HmacKey;
    let (generation, session) = app.refresh_session(t.refresh()).await;
    let stored = session.refresh_secret.clone().expect("secret");
    let chain_secret = RefreshSecret::from_stored(&stored).expect("a 256-bit secret");
    let key = &app
        .ctx
        .secrets()
        .expect("serve loads the server secrets")
        .refresh_key;
    assert_eq!(
        mint(key, &session.id, generation, &chain_secret).as_deref(),
        Some(t.refresh())
    );
    assert_ne!(
        mint(&HmacKey::generate(), &session.id, generation, &chain_secret).as_deref(),
        Some(t.refresh()),
        "the database alone"
    );
    assert_ne!(
        mint(key, &session.id, generation, &RefreshSecret::generate()).as_deref(),
        Some(t.refresh()),
        "the key alone"
    );
    let tag = &t.refresh()[t.refresh().len() - 43..];
    let dump = format!("{session:?} {stored}");
    assert!(!dump.contains(tag) && !dump.contains(t.refresh()));
    let client = app
        .db(move |c| tokend::store::clients::find(c, &id))
        .await
        .expect("client");
    assert_eq!(
        client.secret_hash.as_deref(),
        Some(tokend::crypto::sha256_hex(secret.as_bytes()).as_str())
    );
}

#[tokio::test]
async fn sec_13_jwt_validation_is_strict() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let key = app.ctx.keys.signing_key().expect("key");
    let good = claims(&t.access);
    let header = |alg: Algorithm, typ: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(key.kid.clone());
        h.typ = Some(typ.into());
        h
    };
    let with = |field: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let now = chrono::Utc::now().timestamp();
    let forged = [
        format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"alg":"none","typ":"at+jwt"}"#
            ),
            t.access.split('.').nth(1).expect("payload")
        ),
        jsonwebtoken::encode(
            &header(Algorithm::HS256, "at+jwt"),
            &good,
            &EncodingKey::from_secret(b"public"),
        )
        .expect("hs"),
        jsonwebtoken::encode(&header(Algorithm::EdDSA, "JWT"), &good, &key.key).expect("typ"),
        jsonwebtoken::encode(
            &header(Algorithm::EdDSA, "at+jwt"),
            &with("iss", json!("https://x")),
            &key.key,
        )
        .expect("iss"),
        jsonwebtoken::encode(
            &header(Algorithm::EdDSA, "at+jwt"),
            &with("aud", json!(["https://x"])),
            &key.key,
        )
        .expect("aud"),
        jsonwebtoken::encode(
            &header(Algorithm::EdDSA, "at+jwt"),
            &with("exp", json!(now - 60)),
            &key.key,
        )
        .expect("exp"),
        jsonwebtoken::encode(
            &header(Algorithm::EdDSA, "at+jwt"),
            &with("nbf", json!(now + 600)),
            &key.key,
        )
        .expect("nbf"),
    ];
    for token in forged {
        assert_error(
            app.me(&token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
    const { assert!(tokend::crypto::jwt::LEEWAY_SECONDS <= 30) };
}

#[tokio::test]
async fn sec_14_token_types_are_never_confused() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let pat = app.create_pat(&t.access, "x", &["account"]).await;
    let pat = pat["token"].as_str().expect("pat").to_owned();
    assert_error(
        app.me(t.refresh()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    for not_refresh in [t.access.as_str(), pat.as_str()] {
        assert_error(
            app.refresh(not_refresh).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    assert_eq!(
        app.me(&pat).await.status(),
        StatusCode::OK,
        "a personal token is a bearer token by design"
    );
}

#[tokio::test]
async fn sec_15_token_errors_are_json_400_and_invalid_client_is_401_with_a_challenge() {
    let app = spawn_app().await;
    let (id, _) = app.confidential_client(&["read"]).await;
    let bad_grant = app.password_grant("admin", "wrong-password").await;
    assert_eq!(bad_grant.headers()["content-type"], "application/json");
    assert_error(bad_grant, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let basic = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert!(basic.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Basic"));
    assert_error(basic, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Every invalid_client says how to authenticate, whatever was (not) tried.
    for form in [
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ],
    ] {
        let r = app
            .http
            .post(app.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .expect("request");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic"));
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

#[tokio::test]
async fn sec_16_bearer_errors_follow_rfc_6750() {
    let app = spawn_app().await;
    let none = app
        .http
        .get(app.url("/api/me"))
        .send()
        .await
        .expect("request");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"tokend\""
    );
    let malformed = app
        .http
        .get(app.url("/api/me"))
        .header("authorization", "Bearer a b")
        .send()
        .await
        .expect("request");
    assert_error(malformed, StatusCode::BAD_REQUEST, "invalid_request").await;
    let bad = app.me("not-a-token").await;
    assert!(bad.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("error=\"invalid_token\""));
    assert_error(bad, StatusCode::UNAUTHORIZED, "invalid_token").await;
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
    assert_error(
        app.me(&admin_only.access).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
}

#[tokio::test]
async fn sec_17_no_store_on_every_token_and_introspection_response() {
    let app = spawn_app().await;
    let (id, secret) = app.confidential_client(&["read"]).await;
    let responses = [
        app.password_grant("admin", ADMIN_PASSWORD).await,
        app.password_grant("admin", "wrong-password").await,
        app.introspect(&id, &secret, "x").await,
        app.http
            .post(app.url("/oauth/introspect"))
            .form(&[("token", "x")])
            .send()
            .await
            .expect("request"),
    ];
    for r in responses {
        assert_eq!(r.headers()["cache-control"], "no-store", "{}", r.status());
        assert_eq!(r.headers()["pragma"], "no-cache");
    }
}

#[tokio::test]
async fn sec_18_revocation_answers_200_for_anything_unknown_and_finds_a_token_with_the_wrong_hint()
{
    let app = spawn_app().await;
    for token in ["unknown", "tokend_rt_nope", "a.b.c"] {
        assert_eq!(
            app.revoke(&[("token", token), ("client_id", CLI)])
                .await
                .status(),
            StatusCode::OK
        );
    }
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let response = app
        .revoke(&[
            ("token", t.access.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLI),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.me(&t.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "found despite the hint"
    );
    let again = app
        .revoke(&[
            ("token", t.access.as_str()),
            ("token_type_hint", "bogus"),
            ("client_id", CLI),
        ])
        .await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn sec_19_introspection_unauthenticated_is_401_and_inactive_is_exactly_active_false() {
    let app = spawn_app().await;
    let (id, secret) = app.confidential_client(&["read"]).await;
    let anonymous = app
        .http
        .post(app.url("/oauth/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .expect("request");
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(
        json(app.introspect(&id, &secret, "x").await).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn sec_20_error_bodies_are_generic_and_fail_closed() {
    let app = spawn_app_with(|c| {
        c.db_pool_size = 1;
        c.db_timeout = Duration::from_millis(300);
    })
    .await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let hold = app.hold_all_connections().await;
    // Without its database tokend refuses (fails closed) and says nothing about why inside.
    let response = app.me(&t.access).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.text().await.expect("body").to_lowercase();
    for internal in [
        "r2d2",
        "diesel",
        "sqlite",
        "postgres",
        "timed out",
        "pool",
        "select",
    ] {
        assert!(!body.contains(internal), "{internal} in {body}");
    }
    drop(hold);
}

async fn session_count(app: &TestApp) -> i64 {
    app.db(|c| {
        use diesel::prelude::*;
        use tokend::store::schema::sessions;
        Ok(tokend::db!(c, c => sessions::table.count().get_result::<i64>(c))?)
    })
    .await
}

/// An internal failure (here: a table gone from under the server) is a generic 500 that names
/// nothing inside, and the grant it broke leaves nothing behind.
#[tokio::test]
async fn sec_20_an_internal_error_is_a_generic_500_and_writes_nothing() {
    let app = spawn_app().await;
    let sessions_before = session_count(&app).await;
    app.db(|c| {
        use diesel::connection::SimpleConnection as _;
        tokend::db!(c, c => c.batch_execute("DROP TABLE audit_events"))?;
        Ok(())
    })
    .await;
    // A sign-in writes its session, tokens and audit event in one transaction: the audit insert
    // fails, so none of it may stay.
    let response = app.password_grant("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.expect("body");
    let parsed: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
    assert!(parsed["error"].is_string(), "{body}");
    let lower = body.to_lowercase();
    for internal in [
        "audit_events",
        "diesel",
        "sqlite",
        "postgres",
        "relation",
        "no such table",
        "insert",
        "panicked",
    ] {
        assert!(!lower.contains(internal), "{internal} in {body}");
    }
    let sessions_after = session_count(&app).await;
    assert_eq!(
        sessions_after, sessions_before,
        "the failed grant left a session"
    );
}

#[tokio::test]
async fn sec_21_unknown_user_and_wrong_password_same_answer_similar_time() {
    let app = spawn_app().await;
    app.create_user("tess", "tess-password", false).await;
    let mut times = [Vec::new(), Vec::new()];
    let mut bodies = Vec::new();
    for round in 0..5 {
        for (i, name) in ["tess", "no-such-user"].iter().enumerate() {
            let started = Instant::now();
            let response = app
                .password_grant(name, &format!("wrong-password-{round}"))
                .await;
            times[i].push(started.elapsed());
            bodies.push((response.status(), response.text().await.expect("body")));
        }
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "same status and body: {bodies:?}"
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[2].as_secs_f64()
    };
    let (known, unknown) = (median(&mut times[0]), median(&mut times[1]));
    // Both verify an Argon2id hash (a dummy one for unknown users): within a factor of 3.
    assert!(
        known / unknown < 3.0 && unknown / known < 3.0,
        "known {known:.3}s, unknown {unknown:.3}s"
    );
}

#[tokio::test]
async fn sec_22_sign_in_is_throttled_per_name_and_address_with_a_capped_back_off() {
    let app = spawn_app_with(|c| {
        c.signin_user_free = 1;
        c.signin_max_delay = Duration::from_secs(1);
    })
    .await;
    for _ in 0..3 {
        let r = app.password_grant("admin", "wrong-password").await;
        assert!(
            r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::TOO_MANY_REQUESTS
        );
    }
    let blocked = app.password_grant("admin", ADMIN_PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.headers()["retry-after"], "1", "capped");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.login("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn sec_23_argon2id_owasp_parameters_unique_salts_and_rehash_on_sign_in() {
    use argon2::password_hash::PasswordHasher as _;
    let app = spawn_app().await;
    let a = app.create_user("ann", "same-password", false).await;
    let b = app.create_user("ben", "same-password", false).await;
    let hash_of = |id: String| app.db(move |c| tokend::store::users::find_by_id(c, &id));
    let (ha, hb) = (
        hash_of(a.clone()).await.expect("ann").password_hash,
        hash_of(b).await.expect("ben").password_hash,
    );
    assert!(ha.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ha}");
    assert_ne!(ha, hb, "a unique salt per hash");

    // A hash with weaker parameters is replaced at the next sign-in.
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).expect("params"),
    )
    .hash_password(b"same-password")
    .expect("hash")
    .to_string();
    let (id, current) = (a.clone(), ha.clone());
    app.db(move |c| tokend::store::users::rehash_password(c, &id, &current, &weak))
        .await;
    app.login("ann", "same-password").await;
    let upgraded = hash_of(a).await.expect("ann").password_hash;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "rehashed: {upgraded}"
    );
}

#[tokio::test]
async fn sec_24_password_length_is_bounded_before_any_hashing() {
    let app = spawn_app().await;
    let huge = "x".repeat(1_000_000);
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", &huge),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "a megabyte is refused before parsing"
    );
    assert_error(
        app.password_grant("admin", &"x".repeat(1025)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.audit("signin_failure").await[0].reason.as_deref(),
        Some("credentials_too_long")
    );
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let long = app
        .post_json(
            "/api/password",
            &t.access,
            json!({"current_password": ADMIN_PASSWORD, "new_password": "y".repeat(1025)}),
        )
        .await;
    assert_error(long, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn sec_25_security_events_are_audited_with_a_reason_and_never_a_token() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let _ = app.password_grant("admin", "wrong-password").await;
    let next = tokens(app.refresh(t.refresh()).await).await;
    let _ = app.refresh(t.refresh()).await;
    let u = app.login("admin", ADMIN_PASSWORD).await;
    app.post_json("/api/logout-all", &u.access, json!({})).await;
    let all = app
        .db(|c| {
            tokend::store::audit::list(
                c,
                &tokend::store::audit::Filter {
                    limit: 1000,
                    ..Default::default()
                },
            )
        })
        .await;
    let kinds: Vec<_> = all.iter().map(|e| e.kind.as_str()).collect();
    for kind in [
        "signin_success",
        "signin_failure",
        "refresh_reuse",
        "logout_all",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let text = format!("{all:?}");
    for secret in [
        t.refresh(),
        next.refresh(),
        &t.access,
        &next.access,
        ADMIN_PASSWORD,
    ] {
        assert!(
            !text.contains(secret),
            "no token or password in the audit trail"
        );
    }
    assert!(
        all.iter().all(|e| e.reason.is_some()),
        "every event has its reason"
    );
}

#[tokio::test]
async fn sec_26_an_unreachable_database_is_503_and_the_old_refresh_token_still_works() {
    let app = spawn_app_with(|c| {
        c.db_pool_size = 1;
        c.db_timeout = Duration::from_millis(300);
    })
    .await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let hold = app.hold_all_connections().await;
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    drop(hold);
    tokens(app.refresh(t.refresh()).await).await;
}

#[tokio::test]
async fn sec_27_revocation_is_immediate_across_processes() {
    let a = spawn_app_with(|c| c.set_issuer("https://auth.example.test")).await;
    let b = spawn_on(a.db.clone(), |c| c.set_issuer("https://auth.example.test")).await;
    let t = a.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(b.me(&t.access).await.status(), StatusCode::OK);
    assert_eq!(
        a.revoke(&[("token", t.access.as_str()), ("client_id", CLI)])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(b.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sec_28_race_tests_run_on_the_backend_the_suite_was_started_for() {
    // .ci/run runs this whole suite twice: on SQLite, then with TOKEND_TEST_DATABASE_URL on
    // PostgreSQL. This proves each run's race tests really ran where they say.
    let app = spawn_app().await;
    let expected = match std::env::var("TOKEND_TEST_DATABASE_URL") {
        Ok(v) if !v.is_empty() => tokend::store::Backend::Postgres,
        _ => tokend::store::Backend::Sqlite,
    };
    assert_eq!(app.ctx.pool.backend(), expected);
    let t = app.login("admin", ADMIN_PASSWORD).await;
    refresh_concurrently(&[&app], t.refresh(), 10).await;
    assert_eq!(app.session(&sid(&t)).await.refresh_generation, 1);
}

#[tokio::test]
async fn sec_29_a_replay_in_the_same_second_as_its_rotation_is_rejected() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let started = Instant::now();
    tokens(app.refresh(t.refresh()).await).await;
    let replay = app.refresh(t.refresh()).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "both inside one second"
    );
    assert_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn sec_30_a_password_change_with_logout_all_racing_sign_ins_leaves_no_old_password_token() {
    // The seed story: "change the password and log out of every device", while the user (or a
    // thief with the old password) is signing in on several devices at once.
    use crate::races::{
        assert_all_dead, offset_of, racing_app, sign_in_time, sign_ins_racing, OLD_PASSWORD,
    };
    let app = racing_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    app.create_user("timer", OLD_PASSWORD, false).await;
    let scale = sign_in_time(&app, "timer").await;
    let mut won = 0;
    for trial in 0..race_trials() {
        let username = format!("user-{trial}");
        let id = app.create_user(&username, OLD_PASSWORD, false).await;
        let (http, url, admin) = (
            app.http.clone(),
            app.url(&format!("/admin/users/{id}/password")),
            admin.clone(),
        );
        let offset = offset_of(trial, scale);
        let (issued, changed) = sign_ins_racing(&app, &username, offset, async move {
            http.post(url)
                .bearer_auth(admin)
                .json(&json!({"new_password": "new-password-2", "logout_all": true}))
                .send()
                .await
                .expect("request")
        })
        .await;
        assert_eq!(changed.status(), StatusCode::OK);
        won += issued.len();
        assert_all_dead(&app, &id, &issued, trial).await;
        // The new password works.
        app.login(&username, "new-password-2").await;
    }
    eprintln!(
        "password-change race: {won} of {} sign-ins answered 200, none works",
        6 * race_trials()
    );
}
