//! The admin API, row by row (API.md), the Passport story over HTTP, and the audit trail.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn admin_token(app: &TestApp) -> String {
    app.login("admin", ADMIN_PASSWORD).await.access
}

#[tokio::test]
async fn the_passport_story_through_the_admin_api() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let created = app
        .post_json(
            "/admin/users",
            &admin,
            json!({"username": "rose", "password": "rose-password-1"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let rose_id = json(created).await["id"].as_str().expect("id").to_owned();
    let devices = [
        app.login_on("rose", "rose-password-1", "laptop").await,
        app.login_on("rose", "rose-password-1", "phone").await,
        app.login_on("rose", "rose-password-1", "tablet").await,
    ];
    let pat = app
        .create_pat(&devices[0].access, "script", &["account"])
        .await;
    let pat = pat["token"].as_str().expect("token").to_owned();

    // "Change the password and log the user out of every device": logout_all defaults to true.
    let response = app
        .post_json(
            &format!("/admin/users/{rose_id}/password"),
            &admin,
            json!({"new_password": "rose-password-2"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await,
        json!({"sessions_revoked": 4, "access_tokens_revoked": 3, "refresh_tokens_revoked": 3})
    );
    for device in &devices {
        assert_eq!(
            app.me(&device.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_error(
            app.refresh(device.refresh()).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    assert_eq!(app.me(&pat).await.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        app.password_grant("rose", "rose-password-1").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    app.login("rose", "rose-password-2").await;
    assert_eq!(
        app.me(&admin).await.status(),
        StatusCode::OK,
        "the admin's own session is untouched"
    );

    let events = json(
        app.get(
            &format!("/admin/audit?user_id={rose_id}&kind=password_changed"),
            &admin,
        )
        .await,
    )
    .await;
    let event = &events["events"][0];
    assert_eq!(event["reason"], "sessions_revoked");
    assert_eq!(event["actor_id"], claims(&admin)["sub"]);

    // logout_all: false changes the password and keeps the sessions.
    let kept = app.login("rose", "rose-password-2").await;
    let response = app
        .post_json(
            &format!("/admin/users/{rose_id}/password"),
            &admin,
            json!({"new_password": "rose-password-3", "logout_all": false}),
        )
        .await;
    assert_eq!(json(response).await["sessions_revoked"], 0);
    assert_eq!(app.me(&kept.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn users_are_created_listed_and_read_without_hashes() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let response = app
        .post_json(
            "/admin/users",
            &admin,
            json!({"username": "sam", "password": "sam-password", "admin": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let sam = json(response).await;
    assert_eq!(sam["username"], "sam");
    assert_eq!(sam["is_admin"], true);
    let taken = app
        .post_json(
            "/admin/users",
            &admin,
            json!({"username": "sam", "password": "other-password"}),
        )
        .await;
    assert_error(taken, StatusCode::CONFLICT, "conflict").await;
    for (body, why) in [
        (
            json!({"username": "tom", "password": "short"}),
            "short password",
        ),
        (
            json!({"username": "t o m", "password": "long-enough"}),
            "bad username",
        ),
        (
            json!({"username": "tom", "password": "long-enough", "role": "root"}),
            "unknown field",
        ),
        (json!({"username": "tom"}), "no password"),
    ] {
        let response = app.post_json("/admin/users", &admin, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
    }

    let list = app.get("/admin/users", &admin).await;
    let text = list.text().await.expect("body");
    assert!(
        !text.contains("argon2") && !text.contains("password_hash"),
        "no hashes: {text}"
    );
    let list: serde_json::Value = serde_json::from_str(&text).expect("json");
    let names: Vec<_> = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, vec![json!("admin"), json!("sam")]);

    let id = sam["id"].as_str().expect("id");
    let one = json(app.get(&format!("/admin/users/{id}"), &admin).await).await;
    assert_eq!(one["username"], "sam");
    assert_eq!(one["disabled"], false);
    assert_error(
        app.get("/admin/users/nope", &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.login("sam", "sam-password").await;
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_scope_and_an_admin_user() {
    let app = spawn_app().await;
    app.create_user("uma", "uma-password", false).await;
    let user = app.login("uma", "uma-password").await;
    let admin_account_only = tokens(
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
    let paths = [
        ("POST", "/admin/users"),
        ("GET", "/admin/users"),
        ("GET", "/admin/users/x"),
        ("POST", "/admin/users/x/password"),
        ("POST", "/admin/users/x/logout-all"),
        ("POST", "/admin/users/x/disable"),
        ("POST", "/admin/users/x/enable"),
        ("GET", "/admin/users/x/sessions"),
        ("DELETE", "/admin/sessions/x"),
        ("POST", "/admin/clients"),
        ("GET", "/admin/clients"),
        ("DELETE", "/admin/clients/x"),
        ("GET", "/admin/audit"),
        ("POST", "/admin/keys/rotate"),
    ];
    for (method, path) in paths {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        for token in [&user.access, &admin_account_only.access] {
            let response = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
        }
        let anonymous = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(
            anonymous.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }

    // An admin demoted after sign-in keeps a token with the admin scope, but not the power.
    let sam_id = app.create_user("sam", "sam-password", true).await;
    let sam = app.login("sam", "sam-password").await;
    let sid = sam_id.clone();
    app.db(move |conn| {
        use diesel::prelude::*;
        use tokend::store::schema::users;
        Ok(tokend::db!(conn, c => diesel::update(users::table.find(&sid)).set(users::is_admin.eq(false)).execute(c))?)
    })
    .await;
    assert_error(
        app.get("/admin/users", &sam.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn logout_all_disable_and_enable() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let vic = app.create_user("vic", "vic-password", false).await;
    let a = app.login("vic", "vic-password").await;
    let b = app.login("vic", "vic-password").await;

    let response = app
        .post(&format!("/admin/users/{vic}/logout-all"), &admin)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["sessions_revoked"], 2);
    for t in [&a, &b] {
        assert_eq!(app.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
        let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
        assert_eq!(
            app.session(&sid).await.revoked_reason.as_deref(),
            Some("admin_logout_all")
        );
    }
    assert_error(
        app.post("/admin/users/nope/logout-all", &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let c = app.login("vic", "vic-password").await;
    let pat = app.create_pat(&c.access, "cron", &["account"]).await;
    let pat = pat["token"].as_str().expect("token").to_owned();
    assert_eq!(
        app.post(&format!("/admin/users/{vic}/disable"), &admin)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me(&c.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&pat).await.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        app.refresh(c.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_error(
        app.password_grant("vic", "vic-password").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        json(app.get(&format!("/admin/users/{vic}"), &admin).await).await["disabled"],
        true
    );
    let sid = claims(&c.access)["sid"].as_str().expect("sid").to_owned();
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("user_disabled")
    );

    assert_eq!(
        app.post(&format!("/admin/users/{vic}/enable"), &admin)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    app.login("vic", "vic-password").await;
    assert_eq!(
        app.me(&c.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "enabling brings nothing back"
    );
    assert_error(
        app.post("/admin/users/nope/disable", &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_admin_lists_and_ends_a_users_sessions() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let wes = app.create_user("wes", "wes-password", false).await;
    let laptop = app.login_on("wes", "wes-password", "laptop").await;
    let phone = app.login_on("wes", "wes-password", "phone").await;

    let listed = json(
        app.get(&format!("/admin/users/{wes}/sessions"), &admin)
            .await,
    )
    .await;
    let sessions = listed["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["current"] == false));
    assert_error(
        app.get("/admin/users/nope/sessions", &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let sid = claims(&phone.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(
        app.delete(&format!("/admin/sessions/{sid}"), &admin)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.me(&phone.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("admin_session_ended")
    );
    assert_error(
        app.delete(&format!("/admin/sessions/{sid}"), &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn clients_are_registered_listed_and_deleted_with_their_sessions() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let response = app
        .post_json(
            "/admin/clients",
            &admin,
            json!({
                "name": "reports",
                "public": false,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "scopes": ["reports:read"],
                "allowed_origins": [],
                "audiences": ["https://reports.example"]
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let client = json(response).await;
    let id = client["client_id"].as_str().expect("client_id").to_owned();
    let secret = client["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_owned();
    assert_eq!(client["scopes"], json!(["reports:read"]));
    let cc = tokens(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;

    for (body, why) in [
        (
            json!({"name": "bad", "public": true, "grant_types": ["client_credentials"]}),
            "public + client_credentials",
        ),
        (
            json!({"name": "bad", "grant_types": ["implicit"]}),
            "unknown grant",
        ),
        (
            json!({"name": "bad", "grant_types": ["authorization_code"]}),
            "code without redirect URI",
        ),
        (
            json!({"name": "bad", "grant_types": ["password"], "redirect_uris": ["not a uri"]}),
            "bad redirect URI",
        ),
        (
            json!({"name": "bad", "grant_types": ["password"], "allowed_origins": ["https://x.example/path"]}),
            "bad origin",
        ),
        (
            json!({"name": "", "grant_types": ["password"]}),
            "empty name",
        ),
        (
            json!({"name": "bad", "grant_types": ["password"], "scopes": [""]}),
            "an empty scope",
        ),
        (
            json!({"name": "bad", "grant_types": ["password"], "owner": "me"}),
            "unknown field",
        ),
    ] {
        let response = app.post_json("/admin/clients", &admin, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
    }
    // The description names the field and the value, and shows a valid one: the same sentence
    // as `tokend client create` (tests/api/cli.rs).
    for (body, description) in [
        (
            json!({"name": "bad", "grant_types": ["password"], "redirect_uris": ["not a uri"]}),
            "redirect_uris: \"not a uri\" is not an absolute URI without a fragment, e.g. https://app.example/callback",
        ),
        (
            json!({"name": "bad", "grant_types": ["password"], "allowed_origins": ["https://x.example/path"]}),
            "allowed_origins: \"https://x.example/path\" is not an origin (http or https, a host, an optional port, no path), e.g. https://app.example or http://127.0.0.1:5173",
        ),
        (
            json!({"name": "bad", "grant_types": ["password"], "scopes": [""]}),
            "scopes: \"\" is not one scope (one scope per value), e.g. read",
        ),
    ] {
        let body = assert_error(
            app.post_json("/admin/clients", &admin, body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert_eq!(body["error_description"], description);
    }

    let list = app
        .get("/admin/clients", &admin)
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains(&id) && !list.contains(&secret) && !list.contains("secret_hash"));

    let response = app.delete(&format!("/admin/clients/{id}"), &admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["sessions_revoked"], 1);
    let (rs, rs_secret) = app.confidential_client(&["x"]).await;
    assert_eq!(
        json(app.introspect(&rs, &rs_secret, &cc.access).await).await,
        json!({"active": false})
    );
    assert_error(
        app.delete(&format!("/admin/clients/{id}"), &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let sid = claims(&cc.access)["sid"].as_str().expect("sid").to_owned();
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("client_deleted")
    );
}

#[tokio::test]
async fn the_audit_trail_records_who_did_what_and_why() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let xena = app.create_user("xena", "xena-password", false).await;
    assert_error(
        app.password_grant("xena", "wrong-password").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let t = app.login("xena", "xena-password").await;
    let t2 = tokens(app.refresh(t.refresh()).await).await;
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let u = app.login("xena", "xena-password").await;
    let pat = app.create_pat(&u.access, "ci", &["account"]).await;
    app.delete("/api/tokens?name=ci", &u.access).await;
    app.post("/api/logout-all", &u.access).await;
    let _ = (t2, pat);
    app.post(&format!("/admin/users/{xena}/disable"), &admin)
        .await;

    let all = json(
        app.get(&format!("/admin/audit?user_id={xena}&limit=1000"), &admin)
            .await,
    )
    .await;
    let events = all["events"].as_array().expect("events");
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "user_disabled",
            "logout_all",
            "personal_token_revoked",
            "personal_token_created",
            "signin_success",
            "refresh_reuse",
            "signin_success",
            "signin_failure",
            "user_created",
        ],
        "newest first"
    );
    for e in events {
        assert!(e["reason"].is_string(), "every event has a reason: {e}");
        for field in [
            "id",
            "at",
            "kind",
            "reason",
            "actor_id",
            "user_id",
            "session_id",
            "client_id",
            "ip",
            "user_agent",
        ] {
            assert!(e.get(field).is_some(), "{field} in {e}");
        }
    }
    let text = all.to_string();
    for secret in [t.refresh(), &t.access, "xena-password"] {
        assert!(!text.contains(secret), "no secrets in the audit trail");
    }
    let disabled = &events[0];
    assert_eq!(disabled["actor_id"], claims(&admin)["sub"]);
    assert_eq!(disabled["reason"], "user_disabled");

    let filtered = json(app.get("/admin/audit?kind=refresh_reuse", &admin).await).await;
    assert_eq!(filtered["events"].as_array().expect("events").len(), 1);
    let limited = json(app.get("/admin/audit?limit=2", &admin).await).await;
    assert_eq!(limited["events"].as_array().expect("events").len(), 2);
    for bad in [
        "/admin/audit?limit=0",
        "/admin/audit?limit=5000",
        "/admin/audit?limit=x",
        "/admin/audit?colour=red",
    ] {
        assert_error(
            app.get(bad, &admin).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
}

#[tokio::test]
async fn rotating_the_signing_key_keeps_old_tokens_valid() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let before = app.login("admin", ADMIN_PASSWORD).await;
    let response = app.post("/admin/keys/rotate", &admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = json(response).await;
    assert_eq!(rotated["alg"], "EdDSA");
    let after = app.login("admin", ADMIN_PASSWORD).await;
    let kid = |jwt: &str| {
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().expect("h"))
            .expect("b64");
        serde_json::from_slice::<serde_json::Value>(&header).expect("json")["kid"].clone()
    };
    assert_eq!(kid(&after.access), rotated["kid"]);
    assert_ne!(kid(&before.access), rotated["kid"]);
    assert_eq!(app.me(&before.access).await.status(), StatusCode::OK);
    assert_eq!(app.me(&after.access).await.status(), StatusCode::OK);
    let jwks = json(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        2,
        "the retired key is still published"
    );
    assert_eq!(app.audit("key_rotated").await.len(), 1);
}
