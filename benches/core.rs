//! Microbenchmarks of the hot paths, in-process (no HTTP): signing and verifying access tokens for
//! each algorithm, Argon2id, the opaque-token hash, the refresh-token mint and check, the bearer validation (signature
//! + one indexed lookup) and the refresh transaction on SQLite.
//!
//! cargo bench --bench core
//! cargo bench --bench core -- refresh        # one group

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tokend::config::{Config, SecretString};
use tokend::crypto::jwt::{self, AccessClaims};
use tokend::crypto::keys::{generate, KeySet, SigningAlg, SigningKey, VerifyingKey};
use tokend::crypto::refresh::{self as refresh_token, RefreshSecret};
use tokend::crypto::token::{OpaqueToken, TokenKind};
use tokend::crypto::HmacKey;
use tokend::service::{
    bootstrap, clients::ClientCredentials, refresh, signin, validation, RequestMeta,
};

fn jwt(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp();
    let claims = AccessClaims {
        iss: "https://issuer".into(),
        sub: "user".into(),
        aud: vec!["https://issuer".into()],
        exp: now + 300,
        iat: now,
        nbf: now,
        jti: "jti".into(),
        client_id: "client".into(),
        scope: "account".into(),
        sid: "sid".into(),
        status: Some(tokend::service::status_list::claim(
            "https://issuer",
            tokend::service::status_list::Entry {
                list: 1,
                idx: 123_456,
            },
        )),
    };
    let mut group = c.benchmark_group("jwt");
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
        let g = generate(alg).expect("generate");
        let signing = Arc::new(SigningKey::from_pem(&g.kid, alg, &g.private_pem).expect("load"));
        let verifying = VerifyingKey::from_jwk_json(&g.kid, alg, &g.public_jwk).expect("jwk");
        let mut keys = KeySet {
            signing: Some(signing.clone()),
            ..Default::default()
        };
        keys.verifying.insert(g.kid.clone(), Arc::new(verifying));
        let token = jwt::sign(&signing, &claims).expect("sign");
        group.bench_function(format!("sign {}", alg.as_str()), |b| {
            b.iter(|| jwt::sign(&signing, &claims).expect("sign"))
        });
        group.bench_function(format!("verify {}", alg.as_str()), |b| {
            b.iter(|| {
                jwt::verify(&token, &keys, "https://issuer", "https://issuer", true).expect("valid")
            })
        });
    }
    group.finish();
}

fn opaque(c: &mut Criterion) {
    let token = OpaqueToken::generate(TokenKind::Refresh);
    let mut group = c.benchmark_group("opaque token");
    group.bench_function("generate", |b| {
        b.iter(|| OpaqueToken::generate(TokenKind::Refresh))
    });
    group.bench_function("sha256", |b| b.iter(|| token.hash()));
    group.finish();

    let (key, secret) = (HmacKey::generate(), RefreshSecret::generate());
    let sid = uuid::Uuid::now_v7().to_string();
    let minted = refresh_token::mint(&key, &sid, 42, &secret).expect("mint");
    let mut group = c.benchmark_group("refresh token (HMAC-SHA256)");
    group.bench_function("mint", |b| {
        b.iter(|| refresh_token::mint(&key, &sid, 42, &secret))
    });
    group.bench_function("parse + verify", |b| {
        b.iter(|| {
            refresh_token::parse(&minted)
                .expect("parse")
                .verify(&key, &secret)
        })
    });
    group.finish();
}

fn argon2(c: &mut Criterion) {
    let hash =
        tokend::crypto::password::hash_blocking("correct horse battery staple").expect("hash");
    let mut group = c.benchmark_group("argon2id m=19456 t=2 p=1");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("hash", |b| {
        b.iter(|| tokend::crypto::password::hash_blocking("correct horse battery staple"))
    });
    group.bench_function("verify", |b| {
        use argon2::password_hash::PasswordVerifier as _;
        b.iter(|| {
            argon2::Argon2::default()
                .verify_password(b"correct horse battery staple", hash.as_str())
                .is_ok()
        })
    });
    group.finish();
}

/// A server context on a fresh SQLite database, with a signed-in session.
fn database(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("tokend-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut config =
        Config::with_database(&format!("sqlite://{}", dir.join("tokend.db").display()))
            .expect("config");
    config.bootstrap_admin_password = Some(SecretString::new("bench-admin-password".into()));
    let ctx = bootstrap::open(config, bootstrap::Purpose::Serve).expect("open");
    bootstrap::seed(&ctx).expect("seed");
    let client = rt
        .block_on(tokend::service::clients::authenticate(
            &ctx,
            ClientCredentials {
                client_id: bootstrap::CLI_CLIENT_ID.into(),
                secret: None,
            },
        ))
        .expect("client");
    let first = rt
        .block_on(signin::password(
            &ctx,
            client.clone(),
            "admin".into(),
            "bench-admin-password".into(),
            None,
            None,
            RequestMeta::default(),
        ))
        .expect("sign in");
    let access = first.access_token.clone();
    let mut refresh = first.refresh_token.clone().expect("refresh token");

    let mut group = c.benchmark_group("database (SQLite)");
    group.bench_function("bearer validation (signature + one lookup)", |b| {
        b.iter(|| {
            rt.block_on(validation::authenticate(&ctx, &access))
                .expect("valid")
        })
    });
    group.bench_function("refresh (one conditional UPDATE + one signature)", |b| {
        b.iter(|| {
            let next = rt
                .block_on(refresh::refresh(
                    &ctx,
                    client.clone(),
                    refresh.clone(),
                    None,
                    RequestMeta::default(),
                ))
                .expect("refresh");
            refresh = next.refresh_token.expect("rotated");
        })
    });
    group.finish();
    drop(ctx);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, jwt, opaque, argon2, database);
criterion_main!(benches);
