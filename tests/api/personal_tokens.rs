//! Personal access tokens and the Sanctum story.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_sanctum_story() {
    let app = spawn_app().await;
    app.create_user("nina", "nina-password", false).await;
    let web = app.login("nina", "nina-password").await;
    let ci1 = app.create_pat(&web.access, "ci", &["account"]).await;
    let ci2 = app.create_pat(&web.access, "ci", &["account"]).await;
    let deploy = app.create_pat(&web.access, "deploy", &["account"]).await;
    let token = |v: &serde_json::Value| v["token"].as_str().expect("token").to_owned();
    for t in [&ci1, &ci2, &deploy] {
        assert_eq!(app.me(&token(t)).await.status(), StatusCode::OK);
    }

    let response = app.delete("/api/tokens?name=ci", &web.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({"revoked": 2}));
    assert_eq!(
        app.me(&token(&ci1)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me(&token(&ci2)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me(&token(&deploy)).await.status(),
        StatusCode::OK,
        "deploy still works"
    );
    assert_eq!(app.me(&web.access).await.status(), StatusCode::OK);

    let listed = json(app.get("/api/tokens", &web.access).await).await;
    let names: Vec<_> = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("deploy")]);
    let again = app.delete("/api/tokens?name=ci", &web.access).await;
    assert_eq!(json(again).await, json!({"revoked": 0}));
    // Without a name: every personal token (Sanctum's `tokens()->delete()`); the sign-in stays.
    let extra = app.create_pat(&web.access, "extra", &["account"]).await;
    let all = app.delete("/api/tokens", &web.access).await;
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(json(all).await, json!({"revoked": 2}));
    for t in [&deploy, &extra] {
        assert_eq!(app.me(&token(t)).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.me(&web.access).await.status(), StatusCode::OK);
    tokens(app.refresh(web.refresh()).await).await;
    let listed = json(app.get("/api/tokens", &web.access).await).await;
    assert_eq!(listed["tokens"], json!([]));
    let empty_name = app.delete("/api/tokens?name=", &web.access).await;
    assert_error(empty_name, StatusCode::BAD_REQUEST, "invalid_request").await;

    let deleted = app.audit("personal_token_revoked").await;
    assert!(deleted
        .iter()
        .all(|e| e.reason.as_deref() == Some("personal_token_deleted")));
    assert_eq!(app.audit("personal_token_created").await.len(), 4);
}

#[tokio::test]
async fn a_token_is_shown_once_listed_without_secrets_and_deleted_by_id() {
    let app = spawn_app().await;
    app.create_user("omar", "omar-password", false).await;
    app.create_user("pia", "pia-password", false).await;
    let omar = app.login("omar", "omar-password").await;
    let pia = app.login("pia", "pia-password").await;
    let response = app
        .post_json(
            "/api/tokens",
            &omar.access,
            json!({"name": "backup", "scopes": ["account"], "expires_in": 3600}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created = json(response).await;
    let secret = created["token"].as_str().expect("token").to_owned();
    assert_eq!(created["name"], "backup");
    assert_eq!(created["scopes"], json!(["account"]));
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().expect("expires_at"))
            .expect("rfc3339");
    let in_an_hour = chrono::Utc::now() + chrono::TimeDelta::seconds(3600);
    assert!((expires.timestamp() - in_an_hour.timestamp()).abs() < 10);

    // Only a hash is stored.
    let id = created["id"].as_str().expect("id").to_owned();
    let hash = tokend::crypto::token::OpaqueToken::from_presented(&secret).hash();
    let row = app
        .db(move |c| tokend::store::personal_tokens::find_by_hash(c, &hash.0))
        .await
        .expect("row");
    assert_eq!(row.0.id, id);
    assert_ne!(row.0.token_hash, secret);

    let listed = app.get("/api/tokens", &omar.access).await;
    let text = listed.text().await.expect("body");
    assert!(!text.contains(&secret), "the list never shows the token");
    let listed: serde_json::Value = serde_json::from_str(&text).expect("json");
    let entry = &listed["tokens"][0];
    assert_eq!(entry["id"], id.as_str());
    assert!(entry["last_used_at"].is_null(), "never used yet");
    assert!(entry.get("token").is_none());

    // The token is a bearer token and introspects as a personal token.
    let me = json(app.me(&secret).await).await;
    assert_eq!(me["username"], "omar");
    let (rs, rs_secret) = app.confidential_client(&["x"]).await;
    let info = json(app.introspect(&rs, &rs_secret, &secret).await).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_use"], "personal_access_token");
    assert_eq!(info["scope"], "account");

    // Someone else's token is 404 and stays alive; the owner deletes it.
    assert_error(
        app.delete(&format!("/api/tokens/{id}"), &pia.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.me(&secret).await.status(), StatusCode::OK);
    assert_eq!(
        app.delete(&format!("/api/tokens/{id}"), &omar.access)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me(&secret).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json(app.introspect(&rs, &rs_secret, &secret).await).await,
        json!({"active": false})
    );
    assert_error(
        app.delete(&format!("/api/tokens/{id}"), &omar.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn token_requests_are_validated() {
    let app = spawn_app().await;
    app.create_user("quinn", "quinn-password", false).await;
    let user = app.login("quinn", "quinn-password").await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let cases = [
        (
            json!({"name": "x", "scopes": ["admin"]}),
            "insufficient_scope",
            "a user without admin",
        ),
        (
            json!({"name": "x", "scopes": ["account", "billing:write"]}),
            "insufficient_scope",
            "more than the creating token holds",
        ),
        (
            json!({"name": "", "scopes": ["account"]}),
            "invalid_request",
            "empty name",
        ),
        (
            json!({"name": "x".repeat(101)}),
            "invalid_request",
            "long name",
        ),
        (
            json!({"name": "x", "scopes": ["a\"b"]}),
            "invalid_request",
            "bad scope",
        ),
        (
            json!({"name": "x", "scopes": [""]}),
            "invalid_request",
            "an empty scope",
        ),
        (
            json!({"name": "x", "scopes": ["account admin"]}),
            "invalid_request",
            "two scopes in one element",
        ),
        (
            json!({"name": "x", "expires_in": 5}),
            "invalid_request",
            "too short",
        ),
        (
            json!({"name": "x", "expires_in": -1}),
            "invalid_request",
            "negative",
        ),
        (
            json!({"name": "x", "abilities": ["*"]}),
            "invalid_request",
            "unknown field",
        ),
        (json!({"scopes": ["account"]}), "invalid_request", "no name"),
        (json!(["x"]), "invalid_request", "not an object"),
    ];
    for (body, code, why) in cases {
        let response = app.post_json("/api/tokens", &user.access, body).await;
        // A scope the caller does not hold is a matter of authority (403); the rest is syntax (400).
        let status = if code == "insufficient_scope" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = assert_error(response, status, code).await;
        assert!(!body.to_string().is_empty(), "{why}");
    }
    let wrong_type = app
        .http
        .post(app.url("/api/tokens"))
        .bearer_auth(&user.access)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .expect("request");
    assert_error(wrong_type, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        json(app.get("/api/tokens", &user.access).await).await["tokens"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    // An admin may give a token the admin scope; it then works on the admin API.
    let pat = app.create_pat(&admin.access, "ops", &["admin"]).await;
    let ops = pat["token"].as_str().expect("token");
    assert_eq!(app.get("/admin/users", ops).await.status(), StatusCode::OK);
    assert_error(
        app.me(ops).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
}

#[tokio::test]
async fn last_used_is_written_at_most_once_a_minute() {
    use diesel::prelude::*;
    let app = spawn_app().await;
    let web = app.login("admin", ADMIN_PASSWORD).await;
    let pat = app.create_pat(&web.access, "script", &["account"]).await;
    let (secret, id) = (
        pat["token"].as_str().expect("token").to_owned(),
        pat["id"].as_str().expect("id").to_owned(),
    );
    let session_id = app
        .db({
            let id = id.clone();
            move |c| tokend::store::personal_tokens::find(c, &id)
        })
        .await
        .expect("row")
        .1
        .id;

    // The first use is recorded; further uses inside the minute write nothing.
    let created = app.session(&session_id).await.last_used_at;
    assert_eq!(app.me(&secret).await.status(), StatusCode::OK);
    let before = app.session(&session_id).await.last_used_at;
    assert!(before > created, "first use recorded");
    for _ in 0..3 {
        assert_eq!(app.me(&secret).await.status(), StatusCode::OK);
    }
    assert_eq!(app.session(&session_id).await.last_used_at, before);

    // Age the mark by two minutes: the next use writes it once, the one after does not.
    let aged = before - chrono::TimeDelta::minutes(2);
    let sid = session_id.clone();
    app.db(move |conn| {
        use tokend::store::schema::sessions;
        Ok(tokend::db!(conn, c => diesel::update(sessions::table.find(&sid)).set(sessions::last_used_at.eq(aged)).execute(c))?)
    })
    .await;
    assert_eq!(app.me(&secret).await.status(), StatusCode::OK);
    let written = app.session(&session_id).await.last_used_at;
    assert!(written > aged);
    assert_eq!(app.me(&secret).await.status(), StatusCode::OK);
    assert_eq!(
        app.session(&session_id).await.last_used_at,
        written,
        "no second write within the minute"
    );
    let listed = json(app.get("/api/tokens", &web.access).await).await;
    assert!(listed["tokens"][0]["last_used_at"].is_string());
}

#[tokio::test]
async fn an_expired_personal_token_is_refused() {
    use diesel::prelude::*;
    let app = spawn_app().await;
    let web = app.login("admin", ADMIN_PASSWORD).await;
    let response = app
        .post_json(
            "/api/tokens",
            &web.access,
            json!({"name": "short", "expires_in": 60}),
        )
        .await;
    let created = json(response).await;
    let secret = created["token"].as_str().expect("token").to_owned();
    let hash = tokend::crypto::token::OpaqueToken::from_presented(&secret).hash();
    let sid = app
        .db(move |c| tokend::store::personal_tokens::find_by_hash(c, &hash.0))
        .await
        .expect("row")
        .1
        .id;
    let past = tokend::store::now() - chrono::TimeDelta::seconds(1);
    app.db(move |conn| {
        use tokend::store::schema::sessions;
        Ok(tokend::db!(conn, c => diesel::update(sessions::table.find(&sid)).set(sessions::expires_at.eq(past)).execute(c))?)
    })
    .await;
    assert_error(
        app.me(&secret).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_personal_token_can_be_revoked_at_the_revocation_endpoint() {
    let app = spawn_app().await;
    let web = app.login("admin", ADMIN_PASSWORD).await;
    let pat = app.create_pat(&web.access, "script", &["account"]).await;
    let secret = pat["token"].as_str().expect("token").to_owned();
    let (other, other_secret) = app.confidential_client(&["x"]).await;

    let foreign = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&other, Some(&other_secret))
        .form(&[("token", secret.as_str())])
        .send()
        .await
        .expect("request");
    assert_error(foreign, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_eq!(app.me(&secret).await.status(), StatusCode::OK);

    let response = app
        .revoke(&[
            ("token", secret.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLI),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.me(&secret).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me(&web.access).await.status(),
        StatusCode::OK,
        "only the token's own session ended"
    );
    let listed = json(app.get("/api/tokens", &web.access).await).await;
    assert!(listed["tokens"].as_array().expect("tokens").is_empty());
}

/// Moves a session's sign-in `minutes` into the past.
async fn signed_in_ago(app: &TestApp, sid: &str, minutes: i64) {
    use diesel::prelude::*;
    use tokend::store::schema::sessions;
    let (sid, at) = (
        sid.to_owned(),
        tokend::store::now() - chrono::TimeDelta::minutes(minutes),
    );
    app.db(move |conn| {
        Ok(
            tokend::db!(conn, c => diesel::update(sessions::table.find(&sid))
            .set(sessions::created_at.eq(at))
            .execute(c))?,
        )
    })
    .await;
}

#[tokio::test]
async fn creating_a_personal_token_needs_a_recent_sign_in_or_the_current_password() {
    // SECURITY.md 31: a stolen access token of an old session cannot mint a long-lived token.
    let app = spawn_app().await;
    app.create_user("olga", "olga-password", false).await;
    let t = app.login("olga", "olga-password").await;
    // Signed in just now: enough.
    app.create_pat(&t.access, "fresh", &["account"]).await;

    signed_in_ago(&app, &t.sid(), 11).await;
    let rows = app.row_counts().await;
    let stale = app
        .post_json(
            "/api/tokens",
            &t.access,
            json!({"name": "ci", "scopes": ["account"]}),
        )
        .await;
    assert_error(stale, StatusCode::FORBIDDEN, "reauthentication_required").await;
    let wrong = app
        .post_json(
            "/api/tokens",
            &t.access,
            json!({"name": "ci", "scopes": ["account"], "current_password": "guess"}),
        )
        .await;
    assert_error(wrong, StatusCode::FORBIDDEN, "reauthentication_required").await;
    let mut after = app.row_counts().await;
    // The wrong guess is audited and counted for throttling, nothing else.
    assert_eq!(
        after.remove("audit_events"),
        rows.get("audit_events").map(|n| n + 1)
    );
    after.remove("login_attempts");
    let mut expected = rows.clone();
    expected.remove("audit_events");
    expected.remove("login_attempts");
    assert_eq!(after, expected, "no token was made");
    assert_eq!(app.audit("personal_token_failure").await.len(), 1);

    let created = app
        .post_json(
            "/api/tokens",
            &t.access,
            json!({"name": "ci", "scopes": ["account"], "expires_in": 3600, "current_password": "olga-password"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json(created).await;
    assert!(created["expires_at"].is_string(), "{created}");
    let pat = created["token"].as_str().expect("token");
    assert_eq!(app.me(pat).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn personal_tokens_end_with_a_session_that_ends_for_theft_and_survive_a_logout() {
    let app = spawn_app().await;
    app.create_user("pia", "pia-password", false).await;

    // Theft: the session that made the token is caught replaying a rotated refresh token.
    let stolen = app.login("pia", "pia-password").await;
    let made = app
        .create_pat(&stolen.access, "by-thief", &["account"])
        .await;
    let pat = made["token"].as_str().expect("token").to_owned();
    let pat_sid = {
        let id = made["id"].as_str().expect("id").to_owned();
        app.db(move |c| tokend::store::personal_tokens::find(c, &id))
            .await
            .expect("row")
            .1
    };
    assert_eq!(
        pat_sid.parent_session_id.as_deref(),
        Some(stolen.sid().as_str())
    );
    // …and a token made by that token, one generation further.
    let grandchild = app.create_pat(&pat, "by-token", &["account"]).await;
    let grandchild = grandchild["token"].as_str().expect("token").to_owned();
    tokens(app.refresh(stolen.refresh()).await).await;
    assert_error(
        app.refresh(stolen.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    for token in [&pat, &grandchild] {
        assert_eq!(app.me(token).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.session(&pat_sid.id).await.revoked_reason.as_deref(),
        Some("parent_compromised")
    );
    let events = app.audit("session_ended").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("parent_compromised"))
            .count(),
        2,
        "{events:?}"
    );

    // An ordinary logout of the session that made a token does not end the token.
    let web = app.login("pia", "pia-password").await;
    let kept = app.create_pat(&web.access, "kept", &["account"]).await;
    let kept = kept["token"].as_str().expect("token").to_owned();
    assert_eq!(
        app.post("/api/logout", &web.access).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me(&kept).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_all_of_one_kind_ends_only_those_sessions() {
    // Sanctum's "log out tokens of one type": `kind` on POST /api/logout-all and on the CLI.
    let app = spawn_app().await;
    app.create_user("quinn", "quinn-password", false).await;
    let laptop = app.login("quinn", "quinn-password").await;
    let phone = app.login("quinn", "quinn-password").await;
    let pat = app.create_pat(&laptop.access, "ci", &["account"]).await;
    let pat = pat["token"].as_str().expect("token").to_owned();

    let response = app
        .post_json(
            "/api/logout-all",
            &laptop.access,
            json!({"kind": "personal_access_token"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await,
        json!({"sessions_revoked": 1, "access_tokens_revoked": 0, "refresh_tokens_revoked": 0})
    );
    assert_eq!(app.me(&pat).await.status(), StatusCode::UNAUTHORIZED);
    for t in [&laptop, &phone] {
        assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
    }

    // Password sign-ins except this one.
    let response = app
        .post_json(
            "/api/logout-all",
            &laptop.access,
            json!({"kind": "password", "except_current": true}),
        )
        .await;
    assert_eq!(json(response).await["sessions_revoked"], 1);
    assert_eq!(
        app.me(&phone.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);

    for (body, what) in [
        (json!({"kind": "client_credentials"}), "a client's kind"),
        (json!({"kind": "nonsense"}), "an unknown kind"),
    ] {
        let response = app.post_json("/api/logout-all", &laptop.access, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);

    // The CLI: `tokend user logout-all NAME --kind KIND`.
    let again = app.create_pat(&laptop.access, "again", &["account"]).await;
    let again = again["token"].as_str().expect("token").to_owned();
    let (code, stdout, stderr) = app
        .cli(
            &[
                "--json",
                "user",
                "logout-all",
                "quinn",
                "--kind",
                "personal_access_token",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{stderr}");
    let counts: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(counts["sessions_revoked"], 1);
    assert_eq!(app.me(&again).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);
    let (code, _, stderr) = app
        .cli(
            &[
                "user",
                "logout-all",
                "quinn",
                "--kind",
                "client_credentials",
            ],
            None,
        )
        .await;
    assert_eq!(code, 2, "a usage error: {stderr}");
    assert!(stderr.contains("personal_access_token"), "{stderr}");
}
