//! Refresh rotation, reuse detection, the grace window, and concurrent refreshes.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use tokend::service::clients::NewClient;

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_the_pair_by_moving_the_session_generation_on() {
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

    // Both tokens name the one session row; rotating moved its generation on, nothing else.
    let (old, session) = app.refresh_session(first.refresh()).await;
    let (new, same) = app.refresh_session(second.refresh()).await;
    assert_eq!((old, new), (0, 1));
    assert_eq!(same.id, session.id);
    assert_eq!(session.refresh_generation, 1);
    assert!(session.rotated_at.is_some());
    assert_eq!(
        session.access_expires_at.map(|e| e.and_utc().timestamp()),
        claims(&second.access)["exp"].as_i64()
    );
    assert!(session.revoked_at.is_none());
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
    // The chain stays where the thief found it: the row records the end, nothing else moved.
    assert_eq!(session.refresh_generation, 1);
    assert!(session.revoked_at.is_some());
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
        app.session(&sid).await.refresh_generation,
        1,
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
    assert_eq!(
        app.session(&sid).await.refresh_generation,
        1,
        "exactly one rotation"
    );
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
        app.session(&sid).await.refresh_generation,
        1,
        "exactly one rotation"
    );
    assert!(app.session(&sid).await.revoked_at.is_none());
    let successor = successors.into_iter().next().expect("one");
    tokens(app.refresh(&successor).await).await;
}

#[tokio::test]
async fn every_older_generation_is_reuse_and_ends_the_session() {
    // No grace window (the default): g-1 is reuse as soon as the chain moved on.
    let app = spawn_app().await;
    for back in [1usize, 5] {
        let mut chain = vec![app.login("admin", ADMIN_PASSWORD).await];
        for _ in 0..6 {
            let next = tokens(app.refresh(chain.last().expect("one").refresh()).await).await;
            chain.push(next);
        }
        let current = chain.last().expect("current").clone();
        let old = &chain[chain.len() - 1 - back];
        assert_eq!(
            app.refresh_session(old.refresh()).await.0,
            6 - back as i64,
            "g-{back}"
        );
        assert_error(
            app.refresh(old.refresh()).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
        let session = app.session(&current.sid()).await;
        assert_eq!(
            session.revoked_reason.as_deref(),
            Some("refresh_reuse"),
            "g-{back}"
        );
        assert_error(
            app.refresh(current.refresh()).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
        assert_eq!(
            app.me(&current.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.audit("refresh_reuse").await.len(), 2);
}

#[tokio::test]
async fn outside_the_grace_window_the_previous_generation_is_reuse() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::from_secs(1)).await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let second = tokens(app.refresh(first.refresh()).await).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_error(
        app.refresh(first.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.session(&second.sid()).await.revoked_reason.as_deref(),
        Some("refresh_reuse")
    );
}

#[tokio::test]
async fn a_forged_tag_on_a_real_session_ends_nothing() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let next = tokens(app.refresh(t.refresh()).await).await;
    let rows = app.row_counts().await;
    // The current generation and an older one, each with one bit of the tag flipped; and the
    // current generation's number with the old token's tag.
    let forgeries = [
        tampered(next.refresh(), |b| b[55] ^= 1),
        tampered(t.refresh(), |b| b[40] ^= 0x80),
        tampered(t.refresh(), |b| b[23] = 1),
    ];
    for forged in &forgeries {
        assert_ne!(forged, next.refresh());
        assert_error(
            app.refresh(forged).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // A guessed future generation of the real session too.
    let ahead = tampered(next.refresh(), |b| b[23] = 9);
    assert_error(
        app.refresh(&ahead).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let session = app.session(&t.sid()).await;
    assert!(session.revoked_at.is_none(), "a forgery ends nothing");
    assert_eq!(session.refresh_generation, 1);
    assert!(app.audit("refresh_reuse").await.is_empty());
    assert_eq!(app.row_counts().await, rows);
    tokens(app.refresh(next.refresh()).await).await;
}

#[tokio::test]
async fn a_token_with_another_sessions_id_fails_and_ends_neither() {
    let app = spawn_app().await;
    let a = app.login("admin", ADMIN_PASSWORD).await;
    let b = app.login("admin", ADMIN_PASSWORD).await;
    let b_id = uuid::Uuid::parse_str(&b.sid()).expect("uuid");
    let moved = tampered(a.refresh(), |body| {
        body[..16].copy_from_slice(b_id.as_bytes())
    });
    assert_eq!(app.refresh_session(&moved).await.1.id, b.sid());
    assert_error(
        app.refresh(&moved).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    for t in [&a, &b] {
        assert!(app.session(&t.sid()).await.revoked_at.is_none());
        tokens(app.refresh(t.refresh()).await).await;
    }
}

#[tokio::test]
async fn a_grace_replay_honours_a_narrower_scope_and_refuses_a_wider_one() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::from_secs(30)).await;
    // A session with the user-only scope of an admin.
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
    let rotated = tokens(app.refresh(narrow.refresh()).await).await;
    let wider = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", narrow.refresh()),
            ("scope", "account admin"),
        ])
        .await;
    assert_error(wider, StatusCode::BAD_REQUEST, "invalid_scope").await;

    let full = tokens(
        app.token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .await,
    )
    .await;
    let first = tokens(app.refresh(full.refresh()).await).await;
    let replay = tokens(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", full.refresh()),
            ("scope", "account"),
        ])
        .await,
    )
    .await;
    assert_eq!(replay.refresh(), first.refresh(), "the identical successor");
    assert_eq!(replay.body["scope"], "account");
    assert_eq!(claims(&replay.access)["scope"], "account");
    for (t, generation) in [(&rotated, 1), (&first, 1)] {
        let session = app.session(&t.sid()).await;
        assert!(session.revoked_at.is_none());
        assert_eq!(session.refresh_generation, generation);
    }
    tokens(app.refresh(rotated.refresh()).await).await;
    tokens(app.refresh(first.refresh()).await).await;
}

#[tokio::test]
async fn a_thousand_refreshes_leave_one_session_row_and_grow_nothing() {
    let app = spawn_app().await;
    let mut t = app.login("admin", ADMIN_PASSWORD).await;
    let before = app.row_counts().await;
    for _ in 0..1_000 {
        t = tokens(app.refresh(t.refresh()).await).await;
    }
    assert_eq!(app.row_counts().await, before, "no table grew");
    let session = app.session(&t.sid()).await;
    assert_eq!(session.refresh_generation, 1_000);
    assert!(session.revoked_at.is_none());
    assert_eq!(app.me(&t.access).await.status(), StatusCode::OK);
}
