//! Purge at scale: 1,000,000 ended sessions (each one row: the refresh chain lives on it), purged while clients keep
//! refreshing against the same server. Prints the purge time and the refresh latency before and
//! during the purge, as a markdown table for docs/benchmarks.md.
//!
//! cargo bench --bench purge                                  # SQLite
//! TOKEND_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench purge
//! PURGE_BENCH_SESSIONS=100000 cargo bench --bench purge      # a smaller run
//!
//! Loopback only; bounded: the refresh workers stop when the purge ends.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use tokend::config::{Config, SecretString};
use tokend::startup::Application;
use tokend::store::Conn;

const PASSWORD: &str = "bench-admin-password";
const WORKERS: usize = 4;

/// Ended sessions that each refreshed a few times (storage v2: the whole chain is the row),
/// written by one set-based INSERT.
fn load(conn: &mut Conn, sessions: u64) {
    let (series, old) = match conn {
        Conn::Sqlite(..) => (
            format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) SELECT i FROM n", sessions - 1),
            "'2020-01-01 00:00:00'",
        ),
        Conn::Postgres(_) => (
            format!("SELECT i FROM generate_series(0, {}) AS g(i)", sessions - 1),
            "TIMESTAMP '2020-01-01 00:00:00'",
        ),
    };
    let cat = |a: &str, b: &str| match conn {
        Conn::Sqlite(..) => format!("{a} || {b}"),
        Conn::Postgres(_) => format!("{a} || {b}::text"),
    };
    let sql = [format!(
        "INSERT INTO sessions (id, user_id, client_id, kind, scope, created_at, last_used_at, expires_at, revoked_at, revoked_reason,
                               refresh_generation, refresh_secret, rotated_at, refresh_expires_at, access_expires_at)
         SELECT {}, NULL, 'tokend-cli', 'password', 'account', {old}, {old}, {old}, {old}, 'logout',
                7, 'secret', {old}, {old}, {old} FROM ({series}) s",
        cat("'s-'", "i")
    )];
    for statement in sql {
        tokend::db!(conn, c => c.batch_execute(&statement)).expect("bulk insert");
    }
    if let Conn::Postgres(c) = conn {
        (**c).batch_execute("ANALYZE").expect("analyze");
    }
}

#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }
    fn ms(d: Duration) -> String {
        format!("{:.2}", d.as_secs_f64() * 1000.0)
    }
}

/// Each worker refreshes its own chain, always with the newest token, until `stop`.
async fn refresh_until(
    base: String,
    stop: Arc<AtomicBool>,
    min: Duration,
) -> (Latencies, u64, Duration) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..WORKERS {
        let (http, base, stop) = (http.clone(), base.to_owned(), stop.clone());
        handles.push(tokio::spawn(async move {
            let login: serde_json::Value = http
                .post(format!("{base}/oauth/token"))
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", "tokend-cli"),
                    ("username", "admin"),
                    ("password", PASSWORD),
                ])
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("json");
            let mut token = login["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) || t0.elapsed() < min {
                let s = Instant::now();
                let r = http
                    .post(format!("{base}/oauth/token"))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", "tokend-cli"),
                        ("refresh_token", &token),
                    ])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let body: serde_json::Value = r.json().await.expect("json");
                        token = body["refresh_token"]
                            .as_str()
                            .expect("refresh_token")
                            .to_owned();
                        lat.push(s.elapsed());
                    }
                    _ => errors += 1,
                }
                if t0.elapsed() > Duration::from_secs(900) {
                    break;
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Latencies::default(), 0);
    for h in handles {
        let (lat, e) = h.await.expect("worker");
        all.0.extend(lat);
        errors += e;
    }
    (all, errors, started.elapsed())
}

#[tokio::main]
async fn main() {
    let sessions: u64 = std::env::var("PURGE_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = common::BenchDb::create();
    let mut config = Config::with_database(&db.url).expect("config");
    config.bind = "127.0.0.1:0".into();
    config.bootstrap_admin_password = Some(SecretString::new(PASSWORD.into()));
    let app = Application::build(config).await.expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.ctx().clone();
    tokio::spawn(app.run_until_stopped());
    let backend = db.backend();

    let t = Instant::now();
    let pool = ctx.pool.clone();
    tokio::task::spawn_blocking(move || load(&mut pool.get().expect("connection"), sessions))
        .await
        .expect("load");
    let load_time = t.elapsed();
    eprintln!(
        "loaded {sessions} ended sessions in {:.1} s",
        load_time.as_secs_f64()
    );

    // Baseline: refreshes with nothing else running.
    let stop = Arc::new(AtomicBool::new(true));
    let (before, before_errors, before_time) =
        refresh_until(base.clone(), stop, Duration::from_secs(5)).await;

    // The purge, on its own connection, while the workers refresh.
    let stop = Arc::new(AtomicBool::new(false));
    let workers = tokio::spawn(refresh_until(base.clone(), stop.clone(), Duration::ZERO));
    let pool = ctx.pool.clone();
    let retention = ctx.config.purge_retention;
    let report = tokio::task::spawn_blocking(move || {
        tokend::service::purge::run_blocking(&mut pool.get().expect("connection"), retention, false)
            .expect("purge")
    })
    .await
    .expect("purge task");
    stop.store(true, Ordering::Relaxed);
    let (during, during_errors, during_time) = workers.await.expect("workers");

    let d = report.deleted;
    println!("## Purge: {sessions} ended sessions ({backend})\n");
    println!("| what | value |\n|---|---|");
    println!(
        "| bulk load (set-based SQL) | {:.1} s |",
        load_time.as_secs_f64()
    );
    println!(
        "| purge time | {:.1} s ({} batches of {}) |",
        report.elapsed_ms as f64 / 1000.0,
        report.batches,
        tokend::service::purge::BATCH
    );
    println!(
        "| deleted | {} sessions, {} personal-token rows, {} authorization codes |",
        d.sessions, d.personal_access_tokens, d.auth_codes
    );
    println!(
        "| rows deleted per second | {:.0} |",
        (d.sessions + d.personal_access_tokens + d.auth_codes) as f64
            / (report.elapsed_ms as f64 / 1000.0)
    );
    println!("\n| refresh ({WORKERS} clients, each its own chain) | requests | req/s | p50 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|");
    for (name, lat, errors, time) in [
        ("before the purge", &before, before_errors, before_time),
        ("during the purge", &during, during_errors, during_time),
    ] {
        println!(
            "| {name} | {} | {:.0} | {} | {} | {} | {errors} |",
            lat.0.len(),
            lat.0.len() as f64 / time.as_secs_f64(),
            Latencies::ms(lat.pct(0.50)),
            Latencies::ms(lat.pct(0.99)),
            Latencies::ms(lat.pct(1.0)),
        );
    }
    drop(ctx);
}
