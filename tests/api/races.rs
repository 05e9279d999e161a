//! Issuance racing user-wide revocation (SECURITY.md 30): sign-ins with a password that is being
//! changed or a user being disabled, released together with the change and repeated
//! (`TOKEND_RACE_TRIALS`). Whatever the interleaving, no token obtained through the old state
//! works afterwards, and the database holds no live session for it. The password-change case is
//! `security::sec_30_…`; the code-exchange case lives with the code grant.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::*;

pub const OLD_PASSWORD: &str = "old-password-1";
const SIGN_INS: usize = 6;

/// A server whose sign-in throttle never engages: every trial's refused sign-ins come from
/// 127.0.0.1, and a throttled request would take no part in the race.
pub async fn racing_app() -> TestApp {
    spawn_app_with(|c| {
        c.signin_user_free = 1_000_000;
        c.signin_ip_free = 1_000_000;
    })
    .await
}

/// `SIGN_INS` password grants for `username` with [`OLD_PASSWORD`] and `revoke`, released at once,
/// one side held back by `offset` (positive: `revoke` waits; negative: the sign-ins do) so that
/// across trials the revocation lands anywhere in the sign-ins' Argon2 verification and commit.
/// Returns the sign-ins that succeeded and `revoke`'s response.
pub async fn sign_ins_racing<F>(
    app: &TestApp,
    username: &str,
    offset: Offset,
    revoke: F,
) -> (Vec<Tokens>, Response)
where
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let start = Arc::new(Barrier::new(SIGN_INS + 1));
    let mut sign_ins = Vec::new();
    for _ in 0..SIGN_INS {
        let (http, url, start, username) = (
            app.http.clone(),
            app.url("/oauth/token"),
            start.clone(),
            username.to_owned(),
        );
        let wait = offset.sign_ins;
        sign_ins.push(tokio::spawn(async move {
            start.wait().await;
            tokio::time::sleep(wait).await;
            http.post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", CLI),
                    ("username", username.as_str()),
                    ("password", OLD_PASSWORD),
                ])
                .send()
                .await
                .expect("request")
        }));
    }
    let revoking = {
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            tokio::time::sleep(offset.revoke).await;
            revoke.await
        })
    };
    let mut issued = Vec::new();
    for sign_in in sign_ins {
        let response = sign_in.await.expect("task");
        match response.status() {
            StatusCode::OK => issued.push(tokens(response).await),
            // Verified after the change (wrong password now) or after the disable.
            _ => {
                assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
            }
        }
    }
    (issued, revoking.await.expect("task"))
}

/// Nothing `issued` works any more, and `user_id` has no live session.
pub async fn assert_all_dead(app: &TestApp, user_id: &str, issued: &[Tokens], trial: usize) {
    for t in issued {
        assert_eq!(
            app.me(&t.access).await.status(),
            StatusCode::UNAUTHORIZED,
            "trial {trial}: an access token from before the revocation works"
        );
        assert_error(
            app.refresh(t.refresh()).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    let user_id = user_id.to_owned();
    let live = app
        .db(move |c| tokend::store::sessions::list_active(c, &user_id, tokend::store::now()))
        .await;
    assert!(live.is_empty(), "trial {trial}: live sessions {live:?}");
}

/// Which side of a race waits, and how long.
#[derive(Debug, Clone, Copy)]
pub struct Offset {
    sign_ins: Duration,
    revoke: Duration,
}

/// One sign-in's time on this server, measured: the scale the trials spread the offsets over.
pub async fn sign_in_time(app: &TestApp, username: &str) -> Duration {
    let started = std::time::Instant::now();
    app.login(username, OLD_PASSWORD).await;
    started.elapsed()
}

/// Trial `trial`'s offset: from the sign-ins waiting one sign-in time to the revocation waiting
/// one and a half, in 10 steps, so both orders and every overlap in between occur.
pub fn offset_of(trial: usize, sign_in: Duration) -> Offset {
    let step = sign_in / 4;
    let k = (trial % 11) as u32;
    if k < 4 {
        Offset {
            sign_ins: step * (4 - k),
            revoke: Duration::ZERO,
        }
    } else {
        Offset {
            sign_ins: Duration::ZERO,
            revoke: step * (k - 4),
        }
    }
}

#[tokio::test]
async fn disabling_a_user_racing_sign_ins_leaves_no_token_that_works() {
    let app = racing_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    app.create_user("timer", OLD_PASSWORD, false).await;
    let scale = sign_in_time(&app, "timer").await;
    let mut won = 0;
    for trial in 0..race_trials() {
        let username = format!("racer-{trial}");
        let id = app.create_user(&username, OLD_PASSWORD, false).await;
        let (http, url, admin) = (
            app.http.clone(),
            app.url(&format!("/admin/users/{id}/disable")),
            admin.clone(),
        );
        let offset = offset_of(trial, scale);
        let (issued, disabled) = sign_ins_racing(&app, &username, offset, async move {
            http.post(url)
                .bearer_auth(admin)
                .send()
                .await
                .expect("request")
        })
        .await;
        assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
        won += issued.len();
        assert_all_dead(&app, &id, &issued, trial).await;
    }
    eprintln!("disable race: {won} sign-ins answered 200, none works");
}

#[tokio::test]
async fn a_self_service_password_change_racing_sign_ins_leaves_no_old_password_token() {
    // POST /api/password with logout_other_sessions: the caller's own session stays; every
    // sign-in with the old password ends or is refused.
    let app = racing_app().await;
    app.create_user("timer", OLD_PASSWORD, false).await;
    let scale = sign_in_time(&app, "timer").await;
    for trial in 0..race_trials() {
        let username = format!("self-{trial}");
        let id = app.create_user(&username, OLD_PASSWORD, false).await;
        let me = app.login(&username, OLD_PASSWORD).await;
        let (http, url, access) = (
            app.http.clone(),
            app.url("/api/password"),
            me.access.clone(),
        );
        let offset = offset_of(trial, scale);
        let (issued, changed) = sign_ins_racing(&app, &username, offset, async move {
            http.post(url)
                .bearer_auth(access)
                .json(&json!({
                    "current_password": OLD_PASSWORD,
                    "new_password": "new-password-2",
                    "logout_other_sessions": true,
                }))
                .send()
                .await
                .expect("request")
        })
        .await;
        assert_eq!(changed.status(), StatusCode::OK);
        for t in &issued {
            assert_eq!(
                app.me(&t.access).await.status(),
                StatusCode::UNAUTHORIZED,
                "trial {trial}"
            );
        }
        let id2 = id.clone();
        let live = app
            .db(move |c| tokend::store::sessions::list_active(c, &id2, tokend::store::now()))
            .await;
        assert_eq!(
            live.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            [me.sid()],
            "trial {trial}: only the caller's session lives"
        );
    }
}

/// Sessions of `client_id` that are not revoked.
async fn live_sessions_of_client(app: &TestApp, client_id: &str) -> i64 {
    use diesel::prelude::*;
    use tokend::store::schema::sessions;
    let client_id = client_id.to_owned();
    app.db(move |conn| {
        Ok(tokend::db!(conn, c => sessions::table
            .filter(sessions::client_id.eq(&client_id))
            .filter(sessions::revoked_at.is_null())
            .count()
            .get_result::<i64>(c))?)
    })
    .await
}

#[tokio::test]
async fn deleting_a_client_racing_sign_ins_on_it_leaves_no_live_session() {
    // A sign-in authenticates its client before its transaction; a deletion committed in between
    // must not leave it a session that the deletion's revocation did not see.
    let app = racing_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    app.create_user("timer", OLD_PASSWORD, false).await;
    let scale = sign_in_time(&app, "timer").await;
    let mut won = 0;
    for trial in 0..race_trials() * 2 {
        let (machine, secret) = app.confidential_client(&["read"]).await;
        let (first_party, _) = app
            .create_client(tokend::service::clients::NewClient {
                name: format!("app-{trial}"),
                public: true,
                grant_types: vec!["password".into()],
                scopes: vec!["account".into()],
                ..Default::default()
            })
            .await;
        let start = Arc::new(Barrier::new(10));
        let mut grants = Vec::new();
        for i in 0..8 {
            let form: Vec<(&str, String)> = if i % 2 == 0 {
                vec![
                    ("grant_type", "client_credentials".into()),
                    ("client_id", machine.clone()),
                    ("client_secret", secret.clone()),
                ]
            } else {
                vec![
                    ("grant_type", "password".into()),
                    ("client_id", first_party.clone()),
                    ("username", "timer".into()),
                    ("password", OLD_PASSWORD.into()),
                ]
            };
            let (http, url, start) = (app.http.clone(), app.url("/oauth/token"), start.clone());
            grants.push(tokio::spawn(async move {
                start.wait().await;
                http.post(url).form(&form).send().await.expect("request")
            }));
        }
        let mut deletes = Vec::new();
        for (client, wait) in [(machine.clone(), 0), (first_party.clone(), 1)] {
            let (http, url, start, admin) = (
                app.http.clone(),
                app.url(&format!("/admin/clients/{client}")),
                start.clone(),
                admin.clone(),
            );
            // The password grants spend one Argon2 verification before their transaction.
            let delay = scale * wait * (trial as u32 % 3) / 2;
            deletes.push(tokio::spawn(async move {
                start.wait().await;
                tokio::time::sleep(delay).await;
                http.delete(url)
                    .bearer_auth(admin)
                    .send()
                    .await
                    .expect("request")
            }));
        }
        for grant in grants {
            let response = grant.await.expect("task");
            match response.status() {
                StatusCode::OK => won += 1,
                StatusCode::UNAUTHORIZED => {
                    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
                }
                other => panic!(
                    "trial {trial}: {other}: {}",
                    response.text().await.expect("body")
                ),
            }
        }
        for delete in deletes {
            assert!(delete.await.expect("task").status().is_success());
        }
        for client in [&machine, &first_party] {
            assert_eq!(
                live_sessions_of_client(&app, client).await,
                0,
                "trial {trial}: a deleted client holds a live session"
            );
        }
    }
    eprintln!("client delete race: {won} grants answered 200, no session outlived its client");
}

#[tokio::test]
async fn two_password_changes_with_the_same_current_password_one_wins() {
    // Both prove the same current password; only one may replace it: the other no longer knows
    // the current password when it comes to write.
    let app = racing_app().await;
    for trial in 0..race_trials() {
        let username = format!("twice-{trial}");
        app.create_user(&username, OLD_PASSWORD, false).await;
        let me = app.login(&username, OLD_PASSWORD).await;
        let start = Arc::new(Barrier::new(2));
        let mut changes = Vec::new();
        for new in ["first-new-password", "second-new-password"] {
            let (http, url, access, start) = (
                app.http.clone(),
                app.url("/api/password"),
                me.access.clone(),
                start.clone(),
            );
            changes.push(tokio::spawn(async move {
                start.wait().await;
                let response = http
                    .post(url)
                    .bearer_auth(access)
                    .json(&json!({
                        "current_password": OLD_PASSWORD,
                        "new_password": new,
                        "logout_other_sessions": false,
                    }))
                    .send()
                    .await
                    .expect("request");
                (new, response)
            }));
        }
        let mut winners = Vec::new();
        for change in changes {
            let (new, response) = change.await.expect("task");
            match response.status() {
                StatusCode::OK => winners.push(new),
                _ => {
                    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
                }
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "trial {trial}: {winners:?} both changed it"
        );
        let loser = if winners[0] == "first-new-password" {
            "second-new-password"
        } else {
            "first-new-password"
        };
        assert_eq!(
            app.password_grant(&username, winners[0]).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            app.password_grant(&username, loser).await.status(),
            StatusCode::BAD_REQUEST,
            "trial {trial}: the refused change's password works"
        );
    }
}

/// Four personal-token creations with `access`, released together when this returns: the caller
/// starts its racing request at once.
async fn personal_tokens_at_once(
    app: &TestApp,
    access: &str,
) -> Vec<tokio::task::JoinHandle<Response>> {
    let start = Arc::new(Barrier::new(5));
    let mut makes = Vec::new();
    for i in 0..4 {
        let (http, url, access, start) = (
            app.http.clone(),
            app.url("/api/tokens"),
            access.to_owned(),
            start.clone(),
        );
        makes.push(tokio::spawn(async move {
            start.wait().await;
            http.post(url)
                .bearer_auth(access)
                .json(&json!({"name": format!("t{i}"), "scopes": ["account"]}))
                .send()
                .await
                .expect("request")
        }));
    }
    start.wait().await;
    makes
}

#[tokio::test]
async fn deleting_a_client_racing_personal_token_creation_through_it_leaves_no_live_session() {
    let app = racing_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    app.create_user("maker", OLD_PASSWORD, false).await;
    let mut created = 0;
    for trial in 0..race_trials() * 2 {
        let (client, _) = app
            .create_client(tokend::service::clients::NewClient {
                name: format!("tool-{trial}"),
                public: true,
                grant_types: vec!["password".into()],
                scopes: vec!["account".into()],
                ..Default::default()
            })
            .await;
        let signed_in = tokens(
            app.token(&[
                ("grant_type", "password"),
                ("client_id", client.as_str()),
                ("username", "maker"),
                ("password", OLD_PASSWORD),
            ])
            .await,
        )
        .await;
        let makes = personal_tokens_at_once(&app, &signed_in.access).await;
        let deleted = app
            .delete(&format!("/admin/clients/{client}"), &admin)
            .await;
        assert!(deleted.status().is_success());
        for make in makes {
            let response = make.await.expect("task");
            match response.status() {
                StatusCode::CREATED => created += 1,
                _ => {
                    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
                }
            }
        }
        assert_eq!(
            live_sessions_of_client(&app, &client).await,
            0,
            "trial {trial}: a deleted client holds a live session"
        );
    }
    eprintln!("client delete vs personal tokens: {created} created, none outlived the client");
}

#[tokio::test]
async fn logout_all_racing_personal_token_creation_leaves_no_live_session() {
    // Creating a personal token takes the user's lock and re-checks the calling session, like a
    // sign-in: a logout-all either ends the new token too or makes its creation fail.
    let app = racing_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await.access;
    let mut created = 0;
    for trial in 0..race_trials() * 2 {
        let username = format!("pat-{trial}");
        let id = app.create_user(&username, OLD_PASSWORD, false).await;
        let me = app.login(&username, OLD_PASSWORD).await;
        let makes = personal_tokens_at_once(&app, &me.access).await;
        let ended = app
            .post(&format!("/admin/users/{id}/logout-all"), &admin)
            .await;
        assert_eq!(ended.status(), StatusCode::OK);
        for make in makes {
            let response = make.await.expect("task");
            match response.status() {
                StatusCode::CREATED => {
                    created += 1;
                    let token = json(response).await["token"]
                        .as_str()
                        .expect("token")
                        .to_owned();
                    assert_eq!(
                        app.me(&token).await.status(),
                        StatusCode::UNAUTHORIZED,
                        "trial {trial}: a personal token made before the logout-all works"
                    );
                }
                _ => {
                    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
                }
            }
        }
        let user_id = id.clone();
        let live = app
            .db(move |c| tokend::store::sessions::list_active(c, &user_id, tokend::store::now()))
            .await;
        assert!(live.is_empty(), "trial {trial}: live sessions {live:?}");
    }
    eprintln!("logout-all vs personal tokens: {created} created, none works");
}
