//! Purge: what goes, what stays, and that reuse detection survives it (Passport #1818).

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;
use tokend::db;
use tokend::store::schema::sessions;

use crate::helpers::*;

fn days_ago(days: i64) -> chrono::NaiveDateTime {
    tokend::store::now() - chrono::TimeDelta::days(days)
}

async fn set_session(
    app: &TestApp,
    sid: &str,
    revoked: Option<chrono::NaiveDateTime>,
    expires: Option<chrono::NaiveDateTime>,
) {
    let sid = sid.to_owned();
    app.db(move |conn| {
        if let Some(at) = revoked {
            db!(conn, c => diesel::update(sessions::table.find(&sid))
                .set((sessions::revoked_at.eq(at), sessions::revoked_reason.eq("logout")))
                .execute(c))?;
        }
        if let Some(at) = expires {
            db!(conn, c => diesel::update(sessions::table.find(&sid)).set(sessions::expires_at.eq(at)).execute(c))?;
        }
        Ok(())
    })
    .await;
}

/// Whether the session's row is still there (the row is all a session has).
async fn exists(app: &TestApp, sid: &str) -> bool {
    let sid = sid.to_owned();
    app.db(move |c| tokend::store::sessions::find(c, &sid))
        .await
        .is_some()
}

/// Moves a session's refresh and access expiry into the past: idle, nothing usable left.
async fn idle_since(app: &TestApp, sid: &str, at: chrono::NaiveDateTime) {
    let sid = sid.to_owned();
    app.db(move |conn| {
        Ok(db!(conn, c => diesel::update(sessions::table.find(&sid))
            .set((sessions::refresh_expires_at.eq(at), sessions::access_expires_at.eq(at)))
            .execute(c))?)
    })
    .await;
}

#[tokio::test]
async fn purge_deletes_the_dead_and_keeps_what_reuse_detection_needs() {
    let app = spawn_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;

    // A live session with a rotation chain: t0 → t1 → t2; the first two access tokens expired.
    let t0 = app.login("admin", ADMIN_PASSWORD).await;
    let t1 = tokens(app.refresh(t0.refresh()).await).await;
    let t2 = tokens(app.refresh(t1.refresh()).await).await;
    let live = claims(&t0.access)["sid"].as_str().expect("sid").to_owned();

    // Ended long ago (revoked 8 days ago, expired 8 days ago), ended recently (1 day ago).
    let revoked_long_ago = app.login("admin", ADMIN_PASSWORD).await;
    let expired_long_ago = app.login("admin", ADMIN_PASSWORD).await;
    let pat = app.create_pat(&admin, "old", &["account"]).await;
    let revoked_recently = app.login("admin", ADMIN_PASSWORD).await;
    let idle_long_ago = app.login("admin", ADMIN_PASSWORD).await;
    let idle_recently = app.login("admin", ADMIN_PASSWORD).await;
    let sid = |t: &Tokens| claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    let (old_revoked, old_expired, recent) = (
        sid(&revoked_long_ago),
        sid(&expired_long_ago),
        sid(&revoked_recently),
    );
    let pat_secret = pat["token"].as_str().expect("token").to_owned();
    let pat_sid = {
        let id = pat["id"].as_str().expect("id").to_owned();
        app.db(move |c| tokend::store::personal_tokens::find(c, &id))
            .await
            .expect("pat")
            .1
            .id
    };
    set_session(&app, &old_revoked, Some(days_ago(8)), None).await;
    set_session(&app, &old_expired, None, Some(days_ago(8))).await;
    set_session(&app, &pat_sid, Some(days_ago(30)), None).await;
    set_session(&app, &recent, Some(days_ago(1)), None).await;
    let (old_idle, recent_idle) = (sid(&idle_long_ago), sid(&idle_recently));
    idle_since(&app, &old_idle, days_ago(8)).await;
    idle_since(&app, &recent_idle, days_ago(1)).await;

    // A dry run counts and deletes nothing.
    let dry = app
        .post_json("/admin/purge", &admin, json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status(), StatusCode::OK);
    let dry = json(dry).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["deleted"],
        json!({"sessions": 3, "personal_access_tokens": 1, "auth_codes": 0})
    );
    assert!(exists(&app, &old_revoked).await);

    // The real purge, from the command line.
    let (code, stdout, stderr) = app.cli(&["--json", "token", "purge"], None).await;
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(
        report["deleted"], dry["deleted"],
        "the dry run predicted the purge"
    );

    for gone in [&old_revoked, &old_expired, &pat_sid] {
        assert!(!exists(&app, gone).await, "{gone} purged");
    }
    assert!(
        exists(&app, &recent).await,
        "ended recently: kept for the retention"
    );
    // A session whose refresh token idled out is one row; it goes at its absolute limit.
    for idle in [&old_idle, &recent_idle] {
        assert!(
            exists(&app, idle).await,
            "{idle} idle: kept until it expires"
        );
    }
    let session = app.session(&live).await;
    assert_eq!(
        session.refresh_generation, 2,
        "live: the row and its chain kept"
    );
    assert_eq!(app.me(&pat_secret).await.status(), StatusCode::UNAUTHORIZED);

    // The live session still works…
    assert_eq!(app.me(&t2.access).await.status(), StatusCode::OK);
    // …and a replay of its oldest rotated token is still recognised as reuse after the purge.
    assert_error(
        app.refresh(t0.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.session(&live).await.revoked_reason.as_deref(),
        Some("refresh_reuse")
    );
    assert_eq!(app.me(&t2.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.audit("purge").await.len(), 1);

    // Nothing left to do.
    let again = json(app.post("/admin/purge", &admin).await).await;
    assert_eq!(
        again["deleted"],
        json!({"sessions": 0, "personal_access_tokens": 0, "auth_codes": 0})
    );
}

#[tokio::test]
async fn purge_works_in_batches_larger_than_one() {
    let app = spawn_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    // 2,500 ended sessions, written directly: more than two batches.
    app.db(|conn| {
        let now = tokend::store::now();
        let old = now - chrono::TimeDelta::days(10);
        let client = "tokend-cli".to_owned();
        conn.write(|conn| {
            for i in 0..2_500 {
                let session = tokend::store::models::Session {
                    id: format!("bulk-{i}"),
                    user_id: None,
                    client_id: client.clone(),
                    kind: "client_credentials".into(),
                    scope: String::new(),
                    device_name: None,
                    user_agent: None,
                    ip: None,
                    created_at: old,
                    last_used_at: old,
                    expires_at: old,
                    revoked_at: None,
                    revoked_reason: None,
                    refresh_generation: 0,
                    refresh_secret: None,
                    rotated_at: None,
                    refresh_expires_at: None,
                    access_expires_at: Some(old),
                    parent_session_id: None,
                    status_list: None,
                    status_idx: None,
                };
                tokend::store::sessions::insert(conn, &session)?;
            }
            Ok(())
        })
    })
    .await;
    let report = json(app.post("/admin/purge", &admin).await).await;
    assert_eq!(report["deleted"]["sessions"], 2_500);
    assert!(report["batches"].as_u64().expect("batches") >= 3);
    assert_eq!(app.me(&admin).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn serve_purges_by_itself_when_given_an_interval() {
    let app = spawn_app_with(|c| c.purge_interval = std::time::Duration::from_millis(200)).await;
    let ended = app.login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&ended.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    set_session(&app, &sid, Some(days_ago(8)), None).await;
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if !exists(&app, &sid).await {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the ended session was purged by the server's own schedule"
    );
    assert!(!app.audit("purge").await.is_empty());
}
