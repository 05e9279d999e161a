//! The Token Status List (draft-ietf-oauth-status-list): every access token names its session's
//! entry, and the signed list tokend serves turns that entry to 1 when the session is revoked.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json as j, Value};

use crate::helpers::*;

const TTL: Duration = Duration::from_secs(1);

async fn spawn_with_ttl() -> TestApp {
    spawn_app_with(|c| c.status_list_ttl = TTL).await
}

/// The session of a personal access token.
async fn pat_session(app: &TestApp, pat: &Value) -> String {
    use diesel::prelude::*;
    use tokend::store::schema::personal_access_tokens as pats;
    let id = pat["id"].as_str().expect("id").to_owned();
    app.db(move |conn| {
        Ok(tokend::db!(conn, c => pats::table
            .find(&id)
            .select(pats::session_id)
            .get_result::<String>(c))?)
    })
    .await
}

/// A token's status entry: its list's uri and its index.
fn entry(access_token: &str) -> (String, u64) {
    let claims = claims(access_token);
    let reference = &claims["status"]["status_list"];
    (
        reference["uri"].as_str().expect("status uri").to_owned(),
        reference["idx"].as_u64().expect("status idx"),
    )
}

/// A fetched status list: its claims (signature checked with the JWKS) and its bits.
struct List {
    jwt: String,
    claims: Value,
    kid: String,
    bits: Vec<u8>,
}

impl List {
    fn bit(&self, idx: u64) -> u8 {
        (self.bits[(idx / 8) as usize] >> (idx % 8)) & 1
    }
}

/// Verifies a status list token the way a resource server would: with the key its `kid` names in
/// the JWKS, and `typ: statuslist+jwt`.
async fn verify(app: &TestApp, jwt: &str) -> List {
    let header = jsonwebtoken::decode_header(jwt).expect("a JWT header");
    assert_eq!(header.typ.as_deref(), Some("statuslist+jwt"));
    let kid = header.kid.expect("kid");
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let jwk = jwks.find(&kid).expect("the list's key is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the list verifies with the JWKS")
        .claims;
    assert_eq!(claims["status_list"]["bits"], 1);
    let packed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims["status_list"]["lst"].as_str().expect("lst"))
        .expect("lst is base64url");
    let mut bits = Vec::new();
    flate2::read::ZlibDecoder::new(&packed[..])
        .read_to_end(&mut bits)
        .expect("lst is zlib");
    List {
        jwt: jwt.to_owned(),
        claims,
        kid,
        bits,
    }
}

async fn fetch(app: &TestApp, uri: &str) -> List {
    let response = app
        .http
        .get(uri)
        .header("accept", "application/statuslist+jwt")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/statuslist+jwt"
    );
    let jwt = response.text().await.expect("body");
    verify(app, &jwt).await
}

#[tokio::test]
async fn each_revocation_kind_sets_its_entry_and_no_other() {
    let app = spawn_with_ttl().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let mut users = BTreeMap::new();
    for name in [
        "keep", "logout", "all", "reuse", "pw", "disabled", "ended", "revoked",
    ] {
        let id = app.create_user(name, "password-of-a-user", false).await;
        users.insert(name, (id, app.login(name, "password-of-a-user").await));
    }
    let (client_id, secret) = app.confidential_client(&["read"]).await;
    let machine = tokens(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;

    // One list, one entry each, all distinct and VALID while the sessions live.
    let (uri, _) = entry(&admin.access);
    let mut entries = BTreeMap::new();
    for (name, (_, t)) in &users {
        let (their_uri, idx) = entry(&t.access);
        assert_eq!(their_uri, uri);
        entries.insert(*name, idx);
    }
    entries.insert("client", entry(&machine.access).1);
    let distinct: std::collections::BTreeSet<_> = entries.values().collect();
    assert_eq!(distinct.len(), entries.len(), "entries are never shared");
    let list = fetch(&app, &uri).await;
    assert_eq!(list.claims["sub"], uri.as_str());
    assert_eq!(list.claims["ttl"], TTL.as_secs());
    assert!(list.claims["exp"].as_i64() > list.claims["iat"].as_i64());
    for (name, idx) in &entries {
        assert_eq!(list.bit(*idx), 0, "{name} is VALID while it lives");
    }
    // The row holds the entry the token names.
    let row = app.session(&users["keep"].1.sid()).await;
    assert_eq!(row.status_idx, Some(entries["keep"] as i64));

    // Every way a session ends.
    let token = |name: &str| users[name].1.clone();
    let id = |name: &str| users[name].0.clone();
    assert_eq!(
        app.post("/api/logout", &token("logout").access)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let response = app
        .post_json("/api/logout-all", &token("all").access, j!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(token("reuse").refresh()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(token("reuse").refresh()).await.status(),
        StatusCode::BAD_REQUEST,
        "the replay is reuse: the session ends"
    );
    let response = app
        .post_json(
            &format!("/admin/users/{}/password", id("pw")),
            &admin.access,
            j!({"new_password": "a-brand-new-password"}),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    let response = app
        .post(
            &format!("/admin/users/{}/disable", id("disabled")),
            &admin.access,
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    let response = app
        .delete(
            &format!("/admin/sessions/{}", token("ended").sid()),
            &admin.access,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.revoke(&[("token", &token("revoked").access), ("client_id", CLI)])
            .await
            .status(),
        StatusCode::OK
    );
    let response = app
        .delete(&format!("/admin/clients/{client_id}"), &admin.access)
        .await;
    assert!(response.status().is_success(), "{}", response.status());

    // Within one ttl every list a node serves shows them all, and nothing else.
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let list = fetch(&app, &uri).await;
    for (name, idx) in &entries {
        let expected = u8::from(*name != "keep");
        assert_eq!(list.bit(*idx), expected, "entry of {name}");
    }
    assert_eq!(
        list.bit(entry(&admin.access).1),
        0,
        "the admin's session lives"
    );
    let set: u32 = list.bits.iter().map(|b| b.count_ones()).sum();
    assert_eq!(set as usize, entries.len() - 1, "no other entry is set");
}

#[tokio::test]
async fn a_refresh_keeps_the_entry_and_personal_tokens_have_none() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let next = tokens(app.refresh(t.refresh()).await).await;
    assert_eq!(entry(&next.access), entry(&t.access));
    let pat = app.create_pat(&t.access, "ci", &["account"]).await;
    let row = app.session(&pat_session(&app, &pat).await).await;
    assert_eq!((row.status_list, row.status_idx), (None, None));
}

#[tokio::test]
async fn the_list_has_cache_headers_an_etag_and_unknown_lists_are_404() {
    let app = spawn_app().await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let (uri, _) = entry(&t.access);
    assert_eq!(uri, app.url("/oauth/statuslists/1"));
    let response = app.http.get(&uri).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let cache = response.headers()["cache-control"].to_str().expect("ascii");
    let max_age: u64 = cache
        .split("max-age=")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .expect("max-age");
    assert!(max_age <= 60, "max-age {max_age} is at most the ttl");
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let jwt = response.text().await.expect("body");
    let response = app
        .http
        .get(&uri)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"], etag.as_str());
    // The node serves the copy it built until it is ttl old.
    let again = app.http.get(&uri).send().await.expect("request");
    assert_eq!(again.text().await.expect("body"), jwt);

    for path in ["2", "0", "01", "-1", "x", "1.0", "99999999999999999999"] {
        let response = app
            .http
            .get(app.url(&format!("/oauth/statuslists/{path}")))
            .send()
            .await
            .expect("request");
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }

    // Discovery names the aggregation endpoint, which names every list.
    let metadata = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let aggregation = metadata["status_list_aggregation_endpoint"]
        .as_str()
        .expect("aggregation endpoint");
    let lists = json(app.http.get(aggregation).send().await.expect("request")).await;
    assert_eq!(lists, j!({"status_lists": [uri]}));
}

#[tokio::test]
async fn a_list_survives_a_signing_key_rotation() {
    let app = spawn_with_ttl().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let (uri, idx) = entry(&admin.access);
    let before = fetch(&app, &uri).await;
    let response = app.post("/admin/keys/rotate", &admin.access).await;
    assert!(response.status().is_success(), "{}", response.status());
    // The copy signed before the rotation still verifies: the JWKS keeps the retired key.
    let cached = fetch(&app, &uri).await;
    assert_eq!(cached.kid, before.kid);
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let rebuilt = fetch(&app, &uri).await;
    assert_ne!(rebuilt.kid, before.kid, "the next build uses the new key");
    assert_eq!(rebuilt.bit(idx), 0);
    // A resource server that fetched the old copy just before the rebuild can still verify it.
    let still = verify(&app, &before.jwt).await;
    assert_eq!(still.kid, before.kid);
}

#[tokio::test]
async fn two_nodes_hand_out_distinct_entries_and_serve_the_same_bits_after_ttl() {
    let a = spawn_app_with(|c| {
        c.set_issuer("https://auth.example.test");
        c.status_list_ttl = TTL;
    })
    .await;
    let b = spawn_on(a.db.clone(), |c| {
        c.set_issuer("https://auth.example.test");
        c.status_list_ttl = TTL;
    })
    .await;
    let (client_id, secret) = a.confidential_client(&["read"]).await;
    // Sign-ins on both nodes at once: each takes entries from its own block.
    let grant = |app: &TestApp| {
        let request = app.http.post(app.url("/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ]);
        async move { tokens(request.send().await.expect("request")).await }
    };
    let mut pending = Vec::new();
    for i in 0..40 {
        pending.push(grant(if i % 2 == 0 { &a } else { &b }));
    }
    let issued = futures_util::future::join_all(pending).await;
    let entries: Vec<(String, u64)> = issued.iter().map(|t| entry(&t.access)).collect();
    let distinct: std::collections::BTreeSet<_> = entries.iter().collect();
    assert_eq!(
        distinct.len(),
        entries.len(),
        "no entry is handed out twice"
    );
    let (uri, _) = entries[0].clone();
    assert!(entries.iter().all(|(u, _)| *u == uri));

    // Revoke every third token through either node.
    for (i, t) in issued.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let node = if i % 2 == 0 { &b } else { &a };
        let response = node
            .http
            .post(node.url("/oauth/revoke"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("token", t.access.as_str())])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
    }
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let path = uri.trim_start_matches("https://auth.example.test");
    let from_a = fetch(&a, &a.url(path)).await;
    let from_b = fetch(&b, &b.url(path)).await;
    assert_eq!(from_a.claims["sub"], uri.as_str());
    assert_eq!(from_a.bits, from_b.bits, "both nodes serve the same bits");
    for (i, (_, idx)) in entries.iter().enumerate() {
        assert_eq!(from_a.bit(*idx), u8::from(i % 3 == 0), "entry {idx}");
    }
}

#[tokio::test]
async fn upgrading_gives_live_sessions_entries_and_new_sign_ins_follow_them() {
    let app = spawn_app().await;
    let live: Vec<Tokens> =
        futures_util::future::join_all((0..3).map(|_| app.login("admin", ADMIN_PASSWORD))).await;
    let ended = app.login("admin", ADMIN_PASSWORD).await;
    app.post("/api/logout", &ended.access).await;
    let pat = app
        .create_pat(&live[0].access, "script", &["account"])
        .await;
    let pat_sid = pat_session(&app, &pat).await;

    // Back to the schema before status lists, then forward again, as an upgrade does.
    let pool = app.ctx.pool.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(pool.revert_last().expect("revert"), "20261206020000");
        pool.migrate().expect("upgrade");
    })
    .await
    .expect("task");

    let mut upgraded = Vec::new();
    for t in &live {
        let row = app.session(&t.sid()).await;
        assert_eq!(row.status_list, Some(1), "a live session gets an entry");
        upgraded.push(row.status_idx.expect("idx"));
    }
    upgraded.sort_unstable();
    assert_eq!(upgraded, vec![0, 1, 2], "dense, from 0, in sign-in order");
    assert_eq!(app.session(&ended.sid()).await.status_list, None);
    assert_eq!(app.session(&pat_sid).await.status_list, None);

    // A node started after the upgrade claims the block after the backfilled ones, and a refresh
    // of an upgraded session carries its entry.
    let node = spawn_on(app.db.clone(), |_| {}).await;
    let fresh = node.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(entry(&fresh.access).1, 1024, "the next block");
    let refreshed = tokens(node.refresh(live[0].refresh()).await).await;
    let (uri, idx) = entry(&refreshed.access);
    assert_eq!(uri, node.url("/oauth/statuslists/1"));
    assert!(upgraded.contains(&(idx as i64)));
}

#[tokio::test]
async fn blocks_claimed_at_the_same_moment_are_all_different() {
    let a = spawn_app().await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    for _ in 0..race_trials() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let claims = (0..8).map(|i| {
            let pool = if i % 2 == 0 { &a } else { &b }.ctx.pool.clone();
            let barrier = barrier.clone();
            async move {
                pool.run(move |conn| {
                    barrier.wait();
                    tokend::store::status_lists::claim_block(conn, tokend::store::now())
                })
                .await
            }
        });
        let claimed: Vec<_> = futures_util::future::join_all(claims)
            .await
            .into_iter()
            .map(|r| r.expect("a block"))
            .collect();
        let distinct: std::collections::BTreeSet<_> =
            claimed.iter().map(|b| (b.list, b.first)).collect();
        assert_eq!(distinct.len(), claimed.len(), "{claimed:?}");
    }
}
