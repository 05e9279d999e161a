//! Refresh rotation, reuse detection, the grace window, and concurrent refreshes.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use tokend::service::clients::NewClient;

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_the_pair_and_links_parent_to_child() {
    let app = spawn_app().await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let second = tokens(app.refresh(first.refresh()).await).await;
    assert_ne!(second.refresh(), first.refresh());
    assert_ne!(second.access, first.access);
    assert_eq!(second.body["scope"], "account admin");
    assert_eq!(
        claims(&second.access)["sid"],
        claims(&first.access)["sid"],
        "same session"
    );
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);

    let (old, session) = app.refresh_row(first.refresh()).await;
    let (new, _) = app.refresh_row(second.refresh()).await;
    assert!(old.used_at.is_some(), "the presented token is used up");
    assert!(old.revoked_at.is_none());
    assert_eq!(new.parent_id.as_deref(), Some(old.id.as_str()));
    assert_eq!(
        new.access_token_jti.as_deref(),
        claims(&second.access)["jti"].as_str()
    );
    assert!(new.used_at.is_none());
    assert!(session.last_used_at >= session.created_at);
}

#[tokio::test]
async fn reuse_of_a_rotated_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let other_device = app.login("admin", ADMIN_PASSWORD).await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let second = tokens(app.refresh(first.refresh()).await).await;

    // The thief replays the old token, in the same second as its rotation: refused.
    let replay = app.refresh(first.refresh()).await;
    assert_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // …and the legitimate holder's new pair is dead too: the session ended.
    assert_error(
        app.refresh(second.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.me(&second.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me(&first.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Another device of the same user is untouched.
    assert_eq!(app.me(&other_device.access).await.status(), StatusCode::OK);
    tokens(app.refresh(other_device.refresh()).await).await;

    let sid = claims(&first.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let session = app.session(&sid).await;
    assert_eq!(session.revoked_reason.as_deref(), Some("refresh_reuse"));
    for row in app.access_rows(&sid).await {
        assert_eq!(
            row.revoked_reason.as_deref(),
            Some("refresh_reuse"),
            "access token {}",
            row.jti
        );
    }
    let live: Vec<_> = app
        .refresh_rows(&sid)
        .await
        .into_iter()
        .filter(|r| r.used_at.is_none())
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].revoked_reason.as_deref(), Some("refresh_reuse"));
    let events = app.audit("refresh_reuse").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(events[0].reason.as_deref(), Some("refresh_reuse"));
}

#[tokio::test]
async fn refresh_may_narrow_scope_but_never_widen_it() {
    let app = spawn_app().await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let narrowed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", first.refresh()),
            ("scope", "account"),
        ])
        .await;
    let narrowed = tokens(narrowed).await;
    assert_eq!(narrowed.body["scope"], "account");
    assert_eq!(claims(&narrowed.access)["scope"], "account");
    // The new refresh token keeps the session's full scope.
    let full = tokens(app.refresh(narrowed.refresh()).await).await;
    assert_eq!(full.body["scope"], "account admin");

    let user_only = app.login("admin", ADMIN_PASSWORD).await;
    let narrow_session = tokens(
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
    let widened = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", narrow_session.refresh()),
            ("scope", "account admin"),
        ])
        .await;
    assert_error(widened, StatusCode::BAD_REQUEST, "invalid_scope").await;
    // A refused widening does not use the token up.
    tokens(app.refresh(narrow_session.refresh()).await).await;
    tokens(app.refresh(user_only.refresh()).await).await;
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client() {
    let app = spawn_app().await;
    let (other, _) = app
        .create_client(NewClient {
            name: "other first-party app".into(),
            public: true,
            grant_types: vec!["password".into(), "refresh_token".into()],
            scopes: vec!["account".into()],
            ..Default::default()
        })
        .await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let stolen = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &other),
            ("refresh_token", t.refresh()),
        ])
        .await;
    assert_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // The real client can still use it.
    tokens(app.refresh(t.refresh()).await).await;
}

#[tokio::test]
async fn garbage_and_access_tokens_are_not_refresh_tokens() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    for bogus in [
        t.access.as_str(),
        "tokend_rt_doesnotexist",
        "tokend_pat_x",
        "x",
    ] {
        assert_error(
            app.refresh(bogus).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
}

#[tokio::test]
async fn idle_refresh_tokens_expire() {
    let app = spawn_app_with(|c| c.refresh_token_ttl = Duration::from_secs(1)).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn sessions_have_an_absolute_lifetime() {
    let app = spawn_app_with(|c| c.session_max_age = Duration::from_secs(2)).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let t = tokens(app.refresh(t.refresh()).await).await;
    assert!(
        t.body["expires_in"].as_i64().expect("expires_in") <= 2,
        "access tokens never outlive the session"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.me(&t.access).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn inside_the_grace_window_a_replay_gets_the_same_successor() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::from_secs(30)).await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let a = tokens(app.refresh(first.refresh()).await).await;
    let b = tokens(app.refresh(first.refresh()).await).await;
    assert_eq!(a.refresh(), b.refresh(), "the chain never forks");
    assert_ne!(a.access, b.access, "each replay gets a fresh access token");
    assert_eq!(app.me(&b.access).await.status(), StatusCode::OK);

    let sid = claims(&first.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(
        app.refresh_rows(&sid).await.len(),
        2,
        "one rotation happened"
    );

    // Once the successor itself has been used, replaying the grandparent is reuse.
    let c = tokens(app.refresh(b.refresh()).await).await;
    assert_error(
        app.refresh(first.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("refresh_reuse")
    );
    assert_eq!(app.me(&c.access).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn after_the_grace_window_a_replay_is_reuse() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::from_secs(1)).await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let second = tokens(app.refresh(first.refresh()).await).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_error(
        app.refresh(first.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_error(
        app.refresh(second.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn twenty_concurrent_refreshes_rotate_exactly_once_and_the_rest_are_reuse() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    let results = refresh_concurrently(&[&app], t.refresh(), 20).await;

    let ok: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert!(ok.len() <= 1, "at most one winner: {results:?}");
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::BAD_REQUEST && body["error"] == "invalid_grant"),
            "{status} {body}"
        );
    }
    let rows = app.refresh_rows(&sid).await;
    assert_eq!(
        rows.len(),
        2,
        "exactly one rotation: the original and one successor"
    );
    assert_eq!(rows.iter().filter(|r| r.parent_id.is_some()).count(), 1);
    // Without a grace window the losers are reuse: the session is gone.
    assert_eq!(
        app.session(&sid).await.revoked_reason.as_deref(),
        Some("refresh_reuse")
    );
}

#[tokio::test]
async fn twenty_concurrent_refreshes_inside_the_grace_window_all_get_the_same_successor() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::from_secs(30)).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    let results = refresh_concurrently(&[&app], t.refresh(), 20).await;

    let successors: HashSet<_> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned()
        })
        .collect();
    assert_eq!(successors.len(), 1, "the chain never forks");
    assert_eq!(
        app.refresh_rows(&sid).await.len(),
        2,
        "exactly one rotation"
    );
    assert!(app.session(&sid).await.revoked_at.is_none());
    let successor = successors.into_iter().next().expect("one");
    tokens(app.refresh(&successor).await).await;
}
