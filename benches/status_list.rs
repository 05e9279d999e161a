//! Building a status list of 1,048,576 entries from the sessions table: the query of its revoked
//! entries, the bit array, zlib, the signature. Target: ≤ 200 ms (issue 14). Prints a markdown
//! table for docs/benchmarks.md: build time (median and worst of the runs) and the list's size at
//! several revoked shares.
//!
//! cargo bench --bench status_list                                  # SQLite
//! TOKEND_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench status_list

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use tokend::crypto::keys::{generate, SigningAlg, SigningKey};
use tokend::service::status_list;
use tokend::store::pool::{Pool, PoolOptions};
use tokend::store::status_lists::LIST_SIZE;
use tokend::store::Conn;

const RUNS: usize = 9;

/// One full list of live sessions (list 1, indices 0 … LIST_SIZE - 1), one set-based INSERT.
fn load(conn: &mut Conn) {
    let last = LIST_SIZE - 1;
    // Each session draws a number from 0 to 999 (kept in refresh_generation, unused here): the
    // revoked share is scattered at random, so the list compresses as a real one would.
    let (series, at, cat, draw) = match conn {
        Conn::Sqlite(..) => (
            format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) SELECT i FROM n"),
            "'2030-01-01 00:00:00'",
            "'s-' || i",
            "abs(random()) % 1000",
        ),
        Conn::Postgres(_) => (
            format!("SELECT i FROM generate_series(0, {last}) AS g(i)"),
            "TIMESTAMP '2030-01-01 00:00:00'",
            "'s-' || i::text",
            "floor(random() * 1000)::bigint",
        ),
    };
    let sql = format!(
        "INSERT INTO sessions (id, user_id, client_id, kind, scope, created_at, last_used_at, expires_at,
                               refresh_generation, status_list, status_idx)
         SELECT {cat}, NULL, 'bench', 'client_credentials', 'read', {at}, {at}, {at}, {draw}, 1, i FROM ({series}) s"
    );
    tokend::db!(conn, c => c.batch_execute(
        "INSERT INTO clients (id, name, secret_hash, is_public, grant_types, redirect_uris, scopes, allowed_origins, audiences, created_at)
         VALUES ('bench', 'bench', NULL, false, 'client_credentials', '', 'read', '', '', '2030-01-01 00:00:00')"
    ).and_then(|_| c.batch_execute(&sql)))
    .expect("bulk insert");
}

/// Revokes about `percent` of the sessions, at random (by their draw).
fn revoke_share(conn: &mut Conn, percent: i64) {
    let sql = format!(
        "UPDATE sessions SET revoked_at = '2030-01-01 00:00:00', revoked_reason = 'logout'
          WHERE revoked_at IS NULL AND refresh_generation < {}",
        percent * 10
    );
    tokend::db!(conn, c => c.batch_execute(&sql)).expect("revoke");
    if let Conn::Postgres(c) = conn {
        (**c)
            .batch_execute("VACUUM ANALYZE sessions")
            .expect("analyze");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; this one only runs under `cargo bench`.
    }
    let db = common::BenchDb::create();
    let pool = Pool::new(
        &db.url,
        &PoolOptions {
            max_size: 2,
            connect_timeout: Duration::from_secs(5),
            sqlite_synchronous: Default::default(),
        },
    )
    .expect("pool");
    pool.migrate().expect("migrate");
    let mut conn = pool.get().expect("connection");
    let started = Instant::now();
    load(&mut conn);
    eprintln!("loaded {LIST_SIZE} sessions in {:?}", started.elapsed());
    let generated = generate(SigningAlg::EdDsa).expect("key");
    let key = SigningKey::from_pem(&generated.kid, SigningAlg::EdDsa, &generated.private_pem)
        .expect("key");
    let backend = db.backend();
    println!(
        "| backend | revoked | build median | build worst | query | list claims (≈ lst) | JWT |"
    );
    println!("|---|---|---|---|---|---|---|");
    for percent in [0, 1, 10, 50] {
        revoke_share(&mut conn, percent);
        let mut builds = Vec::new();
        let mut queries = Vec::new();
        let mut sizes = (0, 0);
        for _ in 0..RUNS {
            let started = Instant::now();
            let revoked =
                tokend::store::status_lists::revoked_indices(&mut conn, 1).expect("query");
            queries.push(started.elapsed());
            let built =
                status_list::build(&key, "https://issuer", 1, &revoked, Duration::from_secs(60))
                    .expect("build");
            builds.push(started.elapsed());
            assert!(revoked.len() as i64 <= LIST_SIZE * (percent + 1) / 100);
            let claims = built.jwt.split('.').nth(1).expect("claims").len();
            sizes = (claims * 3 / 4, built.jwt.len());
        }
        builds.sort();
        queries.sort();
        println!(
            "| {backend} | {percent} % | {:.1} ms | {:.1} ms | {:.1} ms | {} bytes | {} bytes |",
            builds[RUNS / 2].as_secs_f64() * 1e3,
            builds[RUNS - 1].as_secs_f64() * 1e3,
            queries[RUNS / 2].as_secs_f64() * 1e3,
            sizes.0,
            sizes.1,
        );
    }
    drop(conn);
    drop(pool);
}
