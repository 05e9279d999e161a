//! Sign-in throttling (SECURITY.md 22): per username and per address, in the database (so across
//! nodes), capped exponential back-off, 429 with Retry-After, nothing else slowed.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn failures_for_one_name_back_off_and_a_success_resets() {
    let app = spawn_app_with(|c| {
        c.signin_user_free = 3;
        c.signin_max_delay = Duration::from_secs(2);
    })
    .await;
    let node2 = spawn_on(app.db.clone(), |c| c.signin_user_free = 3).await;
    app.create_user("amy", "amy-password", false).await;
    let session = app.login("amy", "amy-password").await;

    for _ in 0..4 {
        assert_error(
            app.password_grant("amy", "wrong-password").await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // The fourth failure blocked the name for a second: even the right password waits, on every node.
    for node in [&app, &node2] {
        let response = node.password_grant("amy", "amy-password").await;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_error(
            response,
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
        )
        .await;
    }
    // What is already issued is not slowed: refresh and bearer calls go on.
    let refreshed = tokens(app.refresh(session.refresh()).await).await;
    assert_eq!(app.me(&refreshed.access).await.status(), StatusCode::OK);
    // Another name is not blocked by amy's failures.
    app.login("admin", ADMIN_PASSWORD).await;

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.login("amy", "amy-password").await;
    let rows = app
        .db(|c| tokend::store::throttle::find(c, &["user:amy".to_owned()]))
        .await;
    assert!(rows.is_empty(), "a success clears the name's count");
    // The four real failures are audited; the refused attempts write nothing.
    let reasons: Vec<_> = app
        .audit("signin_failure")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(reasons, vec!["bad_password"; 4], "{reasons:?}");
}

#[tokio::test]
async fn failures_from_one_address_throttle_every_name_from_it() {
    let app = spawn_app_with(|c| {
        c.signin_ip_free = 3;
        c.signin_max_delay = Duration::from_secs(1);
    })
    .await;
    for name in ["u1", "u2", "u3", "u4"] {
        assert_error(
            app.password_grant(name, "guess-password").await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    let response = app.password_grant("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=1).contains(&retry),
        "capped at TOKEND_SIGNIN_MAX_DELAY: {retry}"
    );
    let rows = app
        .db(|c| tokend::store::throttle::find(c, &["ip:127.0.0.1".to_owned()]))
        .await;
    assert_eq!(rows[0].failures, 4);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.login("admin", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn guesses_sent_all_at_once_are_throttled_too() {
    let app = spawn_app_with(|c| {
        c.signin_user_free = 2;
        c.signin_max_delay = Duration::from_secs(30);
    })
    .await;
    app.create_user("vera", "vera-password", false).await;
    let mut handles = Vec::new();
    for i in 0..12 {
        let (http, url) = (app.http.clone(), app.url("/oauth/token"));
        handles.push(tokio::spawn(async move {
            http.post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", CLI),
                    ("username", "vera"),
                    ("password", &format!("guess-{i}")),
                ])
                .send()
                .await
                .expect("request")
                .status()
        }));
    }
    let mut verified = 0;
    let mut throttled = 0;
    for h in handles {
        match h.await.expect("task") {
            StatusCode::BAD_REQUEST => verified += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Each guess re-checks when its Argon2 turn comes: past the free failures, at most one guess
    // per turn (one per core) can still be in flight.
    let turns = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    assert!(
        verified <= 2 + turns,
        "{verified} guesses were checked against the password"
    );
    assert_eq!(verified + throttled, 12);
}

/// Behind a trusted proxy the client's address comes from `X-Forwarded-For` (its last hop that is
/// not a trusted proxy): sessions show it and address throttling counts each client apart.
/// Without the setting, the header is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_counts_apart() {
    let app = spawn_app_with(|c| {
        c.signin_ip_free = 1;
        c.signin_user_free = 1000;
        c.trusted_proxies = vec![tokend::config::IpNet::parse("127.0.0.0/8").expect("block")];
    })
    .await;
    app.create_user("pia", "pia-password", false).await;
    let sign_in = |forwarded: &'static str, password: &'static str| {
        app.http
            .post(app.url("/oauth/token"))
            .header("x-forwarded-for", forwarded)
            .form(&[
                ("grant_type", "password"),
                ("client_id", CLI),
                ("username", "pia"),
                ("password", password),
            ])
            .send()
    };
    // The client wrote the left part itself; only the hop the proxy added is believed.
    let response = sign_in("6.6.6.6, 203.0.113.7", "pia-password")
        .await
        .expect("request");
    let pair = tokens(response).await;
    let sid = claims(&pair.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(app.session(&sid).await.ip.as_deref(), Some("203.0.113.7"));

    // Two failures from 198.51.100.1 block that address, not 203.0.113.7.
    for _ in 0..2 {
        let r = sign_in("198.51.100.1", "wrong-password")
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let blocked = sign_in("198.51.100.1", "pia-password")
        .await
        .expect("request");
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = sign_in("203.0.113.7", "pia-password")
        .await
        .expect("request");
    assert_eq!(other.status(), StatusCode::OK);

    // Without trusted proxies the header means nothing: the TCP peer is the address.
    let plain = spawn_on(app.db.clone(), |_| {}).await;
    let response = plain
        .http
        .post(plain.url("/oauth/token"))
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "pia"),
            ("password", "pia-password"),
        ])
        .send()
        .await
        .expect("request");
    let pair = tokens(response).await;
    let sid = claims(&pair.access)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(plain.session(&sid).await.ip.as_deref(), Some("127.0.0.1"));
}
