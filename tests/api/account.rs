//! The account API, row by row (API.md), and the Sanctum story.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sessions_lists_every_kind_of_live_session_with_its_device() {
    let app = spawn_app().await;
    app.create_user("ivy", "ivy-password", false).await;
    let laptop = app.login_on("ivy", "ivy-password", "laptop").await;
    let phone = app.login_on("ivy", "ivy-password", "phone").await;
    let pat = app
        .create_pat(&laptop.access, "backup script", &["account"])
        .await;
    let ended = app.login_on("ivy", "ivy-password", "old tablet").await;
    assert_eq!(
        app.post("/api/logout", &ended.access).await.status(),
        StatusCode::NO_CONTENT
    );

    let response = app.get("/api/sessions", &laptop.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    let sessions = body["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 3, "active ones only: {body}");
    let by_device = |name: &str| {
        sessions
            .iter()
            .find(|s| s["device_name"] == name)
            .cloned()
            .expect(name)
    };
    let l = by_device("laptop");
    assert_eq!(l["id"], claims(&laptop.access)["sid"]);
    assert_eq!(l["kind"], "password");
    assert_eq!(l["current"], true);
    assert_eq!(l["client_id"], CLI);
    assert_eq!(l["user_agent"], "laptop agent/1.0");
    assert_eq!(l["ip"], "127.0.0.1");
    for field in ["created_at", "last_used_at", "expires_at"] {
        let t = l[field].as_str().expect(field);
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|_| panic!("{field} is RFC 3339: {t}"));
    }
    assert_eq!(by_device("phone")["current"], false);
    assert_eq!(by_device("phone")["id"], claims(&phone.access)["sid"]);
    assert_eq!(by_device("backup script")["kind"], "personal_access_token");
    assert!(pat["token"]
        .as_str()
        .expect("token")
        .starts_with("tokend_pat_"));
}

#[tokio::test]
async fn deleting_a_session_logs_that_device_out_and_another_users_session_is_404() {
    let app = spawn_app().await;
    app.create_user("jack", "jack-password", false).await;
    app.create_user("kate", "kate-password", false).await;
    let laptop = app.login_on("jack", "jack-password", "laptop").await;
    let phone = app.login_on("jack", "jack-password", "phone").await;
    let kate = app.login("kate", "kate-password").await;
    let phone_sid = claims(&phone.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();

    let not_yours = app
        .delete(&format!("/api/sessions/{phone_sid}"), &kate.access)
        .await;
    assert_error(not_yours, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.me(&phone.access).await.status(),
        StatusCode::OK,
        "kate could not touch it"
    );
    let unknown = app
        .delete("/api/sessions/no-such-session", &laptop.access)
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;

    let response = app
        .delete(&format!("/api/sessions/{phone_sid}"), &laptop.access)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(&phone.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        app.refresh(phone.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);
    assert_eq!(
        app.session(&phone_sid).await.revoked_reason.as_deref(),
        Some("device_logout")
    );
    // Once ended, it is gone from the list and a second delete is 404.
    let again = app
        .delete(&format!("/api/sessions/{phone_sid}"), &laptop.access)
        .await;
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn logout_ends_only_the_current_session() {
    let app = spawn_app().await;
    let a = app.login_on("admin", ADMIN_PASSWORD, "a").await;
    let b = app.login_on("admin", ADMIN_PASSWORD, "b").await;
    let response = app.post("/api/logout", &a.access).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&a.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        app.refresh(a.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.me(&b.access).await.status(), StatusCode::OK);
    let sid = claims(&a.access)["sid"].as_str().expect("sid").to_owned();
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("logout")
    );
    assert!(app
        .audit("logout")
        .await
        .iter()
        .any(|e| e.session_id.as_deref() == Some(sid.as_str())));
}

#[tokio::test]
async fn logout_all_ends_every_session_and_reports_counts() {
    let app = spawn_app().await;
    app.create_user("liam", "liam-password", false).await;
    let a = app.login("liam", "liam-password").await;
    let b = app.login("liam", "liam-password").await;
    let b2 = tokens(app.refresh(b.refresh()).await).await;
    let pat = app.create_pat(&a.access, "script", &["account"]).await;
    let pat = pat["token"].as_str().expect("token").to_owned();
    let bystander = app.login("admin", ADMIN_PASSWORD).await;

    // except_current keeps the caller's session. Ended: b's session (one unexpired access token,
    // one usable refresh token) and the personal token's (neither: the token is the session).
    let response = app
        .post_json(
            "/api/logout-all",
            &a.access,
            json!({"except_current": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let counts = json(response).await;
    assert_eq!(
        counts,
        json!({"sessions_revoked": 2, "access_tokens_revoked": 1, "refresh_tokens_revoked": 1})
    );
    assert_eq!(app.me(&a.access).await.status(), StatusCode::OK);
    assert_eq!(app.me(&b2.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me(&pat).await.status(),
        StatusCode::UNAUTHORIZED,
        "personal tokens end too"
    );

    // Without a body: everything, the current session included.
    let response = app.post("/api/logout-all", &a.access).await;
    assert_eq!(json(response).await["sessions_revoked"], 1);
    assert_eq!(app.me(&a.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&bystander.access).await.status(), StatusCode::OK);
    assert!(app
        .audit("logout_all")
        .await
        .iter()
        .all(|e| e.reason.as_deref() == Some("logout_all")));

    let other = app.login("liam", "liam-password").await;
    let unknown_field = app
        .post_json(
            "/api/logout-all",
            &other.access,
            json!({"everything": true}),
        )
        .await;
    assert_error(unknown_field, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(
        app.me(&other.access).await.status(),
        StatusCode::OK,
        "a refused request changes nothing"
    );
}

#[tokio::test]
async fn changing_the_password_logs_other_sessions_out() {
    let app = spawn_app().await;
    app.create_user("mia", "mia-password-1", false).await;
    let here = app.login("mia", "mia-password-1").await;
    let there = app.login("mia", "mia-password-1").await;

    let wrong = app
        .post_json(
            "/api/password",
            &here.access,
            json!({"current_password": "nope-nope", "new_password": "mia-password-2"}),
        )
        .await;
    assert_error(wrong, StatusCode::FORBIDDEN, "forbidden").await;
    let short = app
        .post_json(
            "/api/password",
            &here.access,
            json!({"current_password": "mia-password-1", "new_password": "short"}),
        )
        .await;
    assert_error(short, StatusCode::BAD_REQUEST, "invalid_request").await;
    let unknown = app
        .post_json(
            "/api/password",
            &here.access,
            json!({"current_password": "mia-password-1", "new_password": "mia-password-2", "force": true}),
        )
        .await;
    assert_error(unknown, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(
        app.me(&there.access).await.status(),
        StatusCode::OK,
        "refused changes change nothing"
    );
    app.login("mia", "mia-password-1").await;

    let response = app
        .post_json(
            "/api/password",
            &here.access,
            json!({"current_password": "mia-password-1", "new_password": "mia-password-2"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let counts = json(response).await;
    assert_eq!(
        counts["sessions_revoked"], 2,
        "the other device and the probe sign-in: {counts}"
    );
    assert_eq!(
        app.me(&here.access).await.status(),
        StatusCode::OK,
        "the current session stays"
    );
    assert_eq!(
        app.me(&there.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        app.password_grant("mia", "mia-password-1").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    app.login("mia", "mia-password-2").await;

    let sid = claims(&there.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("password_changed")
    );
    let reasons: Vec<_> = app
        .audit("password_change_failure")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(reasons, vec!["bad_current_password".to_owned()]);

    // logout_other_sessions: false keeps them.
    let other = app.login("mia", "mia-password-2").await;
    let response = app
        .post_json(
            "/api/password",
            &here.access,
            json!({"current_password": "mia-password-2", "new_password": "mia-password-3", "logout_other_sessions": false}),
        )
        .await;
    assert_eq!(json(response).await["sessions_revoked"], 0);
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_a_sign_in() {
    let app = spawn_app_with(|c| c.signin_user_free = 2).await;
    app.create_user("ned", "ned-password-1", false).await;
    let stolen = app.login("ned", "ned-password-1").await;
    let guess = |current: &'static str| {
        app.post_json(
            "/api/password",
            &stolen.access,
            json!({"current_password": current, "new_password": "attacker-password"}),
        )
    };
    for _ in 0..3 {
        assert_error(
            guess("guess-guess").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    // Blocked now: even the right password is refused before Argon2, and nothing changes.
    let response = guess("ned-password-1").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(app.audit("password_change_failure").await.len(), 3);
    // The same counter guards sign-in for that name.
    assert_eq!(
        app.password_grant("ned", "ned-password-1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.login("ned", "ned-password-1").await;
}

#[tokio::test]
async fn account_endpoints_need_a_token_with_the_account_scope() {
    let app = spawn_app().await;
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
    let requests = [
        ("GET", "/api/me"),
        ("GET", "/api/sessions"),
        ("DELETE", "/api/sessions/x"),
        ("POST", "/api/logout"),
        ("POST", "/api/logout-all"),
        ("POST", "/api/password"),
        ("POST", "/api/tokens"),
        ("GET", "/api/tokens"),
        ("DELETE", "/api/tokens/x"),
        ("DELETE", "/api/tokens?name=x"),
    ];
    for (method, path) in requests {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
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
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            "Bearer realm=\"tokend\""
        );
        let scoped = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&admin_only.access)
            .send()
            .await;
        assert_error(
            scoped.expect("request"),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        )
        .await;
    }
}
