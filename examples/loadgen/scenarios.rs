//! The scenarios: what each worker sends, what it seeds first, and what the row says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokend::service::revocation::Reason;
use tokend::service::{users, RequestMeta};

use crate::ceiling::Ceiling;
use crate::load::{self, Stats};
use crate::seed::{self, Tokens};
use crate::server::{cpu_of, Backend, Database, Server};
use crate::Opts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Login,
    Refresh,
    Introspect,
    Bearer,
    LogoutAll,
    Mixed,
    /// `GET` of a status list of 1,048,576 entries (1 % revoked), as resource servers fetch it.
    StatusList,
}

impl Scenario {
    pub fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "login" => Scenario::Login,
            "refresh" => Scenario::Refresh,
            "introspect" => Scenario::Introspect,
            "bearer" => Scenario::Bearer,
            "logout-all" => Scenario::LogoutAll,
            "mixed" => Scenario::Mixed,
            "statuslist" => Scenario::StatusList,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Login => "login",
            Scenario::Refresh => "refresh",
            Scenario::Introspect => "introspect",
            Scenario::Bearer => "bearer",
            Scenario::LogoutAll => "logout-all",
            Scenario::Mixed => "mixed",
            Scenario::StatusList => "statuslist",
        }
    }

    pub fn default_concurrency(self) -> usize {
        match self {
            Scenario::Login => 8,
            Scenario::Refresh | Scenario::Mixed => 16,
            Scenario::Introspect | Scenario::Bearer | Scenario::StatusList => 32,
            Scenario::LogoutAll => 1,
        }
    }
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: Scenario,
    pub backend: Backend,
    pub concurrency: usize,
    pub stats: Stats,
    pub peak_rss_mib: Option<f64>,
    pub server_cores: Option<f64>,
    pub loadgen_cores: Option<f64>,
    pub ceiling: Ceiling,
    /// The in-process figure this row is compared with (per second, or ms for logout-all).
    pub ceiling_value: f64,
    pub ratio: f64,
    pub target: String,
    pub met: bool,
    pub note: String,
}

#[derive(Deserialize)]
struct TokenOut {
    refresh_token: Option<String>,
}

/// One request of a worker whose state is `S`: the state back, and the outcome.
type Step<S> = std::pin::Pin<Box<dyn std::future::Future<Output = (S, Result<(), String>)> + Send>>;

struct Shared {
    http: reqwest::Client,
    base: String,
    client: Option<(String, String)>,
    username: String,
}

fn refresh_op(shared: Arc<Shared>) -> impl Fn(String) -> Step<String> + Send + Sync + 'static {
    move |token: String| {
        let shared = shared.clone();
        Box::pin(async move {
            let r = shared
                .http
                .post(format!("{}/oauth/token", shared.base))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "tokend-cli"),
                    ("refresh_token", token.as_str()),
                ])
                .send()
                .await;
            match load::expect(r, 200).await {
                Ok(body) => match serde_json::from_slice::<TokenOut>(body.as_ref()) {
                    Ok(TokenOut {
                        refresh_token: Some(next),
                    }) => (next, Ok(())),
                    _ => (token, Err("no refresh_token in the answer".to_owned())),
                },
                Err(e) => (token, Err(e)),
            }
        })
    }
}

fn login_op(shared: Arc<Shared>) -> impl Fn(()) -> Step<()> + Send + Sync + 'static {
    move |()| {
        let shared = shared.clone();
        Box::pin(async move {
            let r = shared
                .http
                .post(format!("{}/oauth/token", shared.base))
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", "tokend-cli"),
                    ("username", shared.username.as_str()),
                    ("password", seed::USER_PASSWORD),
                ])
                .send()
                .await;
            ((), load::expect(r, 200).await.map(|_| ()))
        })
    }
}

/// Starts a server on a fresh database (or uses `--target`), seeds, measures the ceiling, runs
/// the scenario and reads the server's peak RSS and CPU.
pub async fn run(
    opts: &Opts,
    scenario: Scenario,
    backend: Backend,
    concurrency: usize,
) -> anyhow::Result<Row> {
    let concurrency = concurrency.max(1);
    let (db, server) = match &opts.target {
        Some(target) => {
            let url = opts
                .database_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--target needs --database-url (to seed)"))?;
            (None, (url, Server::external(target, opts.server_pid)))
        }
        None => {
            let db = Database::create(backend, &opts.pg_admin)?;
            let server = Server::spawn(
                &db.url,
                &opts.log,
                db.dir().join("server.log"),
                &opts.server_env,
            )?;
            let url = db.url.clone();
            (Some(db), (url, server))
        }
    };
    let (url, server) = server;
    let ctx = seed::open(&url, &server.base).await?;
    let username = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let user_id = seed::user(&ctx, &username).await?;
    // The workers' sessions, and as many again (plus one) for the in-process ceiling.
    let tokens = seed::sessions(&ctx, &user_id, 2 * concurrency + 1).await?;
    let workers: Vec<Tokens> = tokens[..concurrency].to_vec();
    let ceiling = crate::ceiling::measure(&ctx, &tokens[concurrency..], concurrency).await?;
    let http = load::client(concurrency.max(opts.logins));
    let shared = Arc::new(Shared {
        http: http.clone(),
        base: server.base.clone(),
        client: None,
        username: username.clone(),
    });
    let warmup = opts.warmup;
    let duration = opts.duration;

    if scenario == Scenario::LogoutAll {
        return logout_all(opts, &ctx, &server, backend, ceiling, &http).await;
    }

    let shared = if scenario == Scenario::Introspect {
        let client = seed::introspection_client(&ctx).await?;
        Arc::new(Shared {
            http: http.clone(),
            base: server.base.clone(),
            client: Some(client),
            username,
        })
    } else {
        shared
    };

    let rows_before = seed::table_rows(&ctx).await?;
    server.reset_peak();
    let cpu0 = server.cpu();
    let self0 = cpu_of("/proc/self/stat");
    let t0 = Instant::now();
    let mut note = String::new();
    let stats = match scenario {
        Scenario::Refresh => {
            let states = workers.iter().map(|t| t.refresh.clone()).collect();
            load::run(states, warmup, duration, refresh_op(shared.clone())).await
        }
        Scenario::Login => {
            load::run(
                vec![(); concurrency],
                warmup,
                duration,
                login_op(shared.clone()),
            )
            .await
        }
        Scenario::Bearer => {
            let states = workers.iter().map(|t| t.access.clone()).collect();
            let s = shared.clone();
            load::run(states, warmup, duration, move |access: String| {
                let s = s.clone();
                async move {
                    let r = s
                        .http
                        .get(format!("{}/api/me", s.base))
                        .bearer_auth(&access)
                        .send()
                        .await;
                    let outcome = load::expect(r, 200).await.map(|_| ());
                    (access, outcome)
                }
            })
            .await
        }
        Scenario::StatusList => {
            // A list of 1,048,576 entries with 1 % revoked at random, as resource servers fetch
            // it: the node builds it once per ttl and serves that copy.
            let revoked = seed::revoke_share_of_list(&ctx, 1).await?;
            let uri = format!("{}/oauth/statuslists/1", shared.base);
            let first = shared.http.get(&uri).send().await?.bytes().await?;
            note = format!(
                "list of 1,048,576 entries, {revoked} revoked: {} bytes",
                first.len()
            );
            let s = shared.clone();
            load::run(vec![(); concurrency], warmup, duration, move |()| {
                let s = s.clone();
                let uri = uri.clone();
                async move {
                    let r = s
                        .http
                        .get(&uri)
                        .header("accept", "application/statuslist+jwt")
                        .send()
                        .await;
                    let outcome = match load::expect(r, 200).await {
                        Ok(body) if body.as_ref().len() > 1000 => Ok(()),
                        Ok(_) => Err("a status list shorter than expected".to_owned()),
                        Err(e) => Err(e),
                    };
                    ((), outcome)
                }
            })
            .await
        }
        Scenario::Introspect => {
            let states = workers.iter().map(|t| t.access.clone()).collect();
            let s = shared.clone();
            load::run(states, warmup, duration, move |access: String| {
                let s = s.clone();
                async move {
                    let (id, secret) = s.client.clone().unwrap_or_default();
                    let r = s
                        .http
                        .post(format!("{}/oauth/introspect", s.base))
                        .form(&[
                            ("client_id", id.as_str()),
                            ("client_secret", secret.as_str()),
                            ("token", access.as_str()),
                        ])
                        .send()
                        .await;
                    let outcome = match load::expect(r, 200).await {
                        Ok(body) if body.as_ref().windows(13).any(|w| w == b"\"active\":true") => {
                            Ok(())
                        }
                        Ok(_) => Err("introspection said inactive".to_owned()),
                        Err(e) => Err(e),
                    };
                    (access, outcome)
                }
            })
            .await
        }
        Scenario::Mixed => {
            let states: Vec<String> = workers.iter().map(|t| t.refresh.clone()).collect();
            let refreshes = load::run(states, warmup, duration, refresh_op(shared.clone()));
            let logins = load::run(
                vec![(); opts.logins],
                Duration::ZERO,
                warmup + duration,
                login_op(shared.clone()),
            );
            let (refreshes, logins) = tokio::join!(refreshes, logins);
            note = format!(
                "{} concurrent logins alongside: {:.0} logins/s, p50 {:.0} ms, {} errors{}",
                opts.logins,
                logins.rate(),
                logins.pct_ms(0.5),
                logins.errors,
                logins
                    .first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
            refreshes
        }
        Scenario::LogoutAll => unreachable!("handled above"),
    };
    let wall = t0.elapsed().as_secs_f64();
    let server_cores = match (cpu0, server.cpu()) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() / wall),
        _ => None,
    };
    let loadgen_cores = match (self0, cpu_of("/proc/self/stat")) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() / wall),
        _ => None,
    };
    let peak = server.peak_rss_mib();
    if let Some(e) = &stats.first_error {
        if note.is_empty() {
            note = format!("first error: {e}");
        } else {
            note.push_str(&format!("; first refresh error: {e}"));
        }
    }
    if scenario == Scenario::Refresh {
        // Storage v2: rotation rewrites the session row; no table grows with refreshes.
        let rows_after = seed::table_rows(&ctx).await?;
        let grown: Vec<String> = rows_after
            .iter()
            .filter(|(table, n)| rows_before.get(*table) != Some(n))
            .map(|(table, n)| {
                format!(
                    "{table} {} → {n}",
                    rows_before.get(table).copied().unwrap_or(0)
                )
            })
            .collect();
        let rows = format!(
            "after {} refreshes: {} session rows; {}",
            stats.ok,
            rows_after.get("sessions").copied().unwrap_or(0),
            if grown.is_empty() {
                "no table grew".to_owned()
            } else {
                format!("grown: {}", grown.join(", "))
            }
        );
        note = if note.is_empty() {
            rows
        } else {
            format!("{note}; {rows}")
        };
    }
    let rate = stats.rate();
    let p99 = stats.pct_ms(0.99);
    let (ceiling_value, target, met) = match (scenario, backend) {
        (Scenario::Login, _) => {
            let c = ceiling.per_sec(ceiling.argon2);
            (
                c,
                "≥ 90 % of the Argon2 ceiling".to_owned(),
                rate >= 0.9 * c,
            )
        }
        (Scenario::Refresh, Backend::Sqlite) => (
            ceiling.refresh_rate,
            "≥ 10,000/s, p99 < 10 ms, RSS ≤ 64 MiB".to_owned(),
            rate >= 10_000.0 && p99 < 10.0 && peak.is_none_or(|m| m <= 64.0),
        ),
        (Scenario::Refresh, Backend::Postgres) => (
            ceiling.refresh_rate,
            "≥ 3,000/s, RSS ≤ 64 MiB".to_owned(),
            rate >= 3000.0 && peak.is_none_or(|m| m <= 64.0),
        ),
        (Scenario::StatusList, _) => (
            ceiling.validation_rate,
            "≥ 10,000/s".to_owned(),
            rate >= 10_000.0,
        ),
        (Scenario::Introspect | Scenario::Bearer, _) => (
            ceiling.validation_rate,
            "≥ 12,000/s".to_owned(),
            rate >= 12_000.0,
        ),
        (Scenario::Mixed, _) => (
            ceiling.refresh_rate,
            format!(
                "refresh p99 < 30 ms with ≥ 200 logins running ({} here)",
                opts.logins
            ),
            p99 < 30.0 && opts.logins >= 200,
        ),
        (Scenario::LogoutAll, _) => unreachable!("handled above"),
    };
    let met = met && stats.errors == 0;
    drop(ctx);
    drop(server);
    drop(db);
    Ok(Row {
        scenario,
        backend,
        concurrency,
        ratio: rate / ceiling_value.max(1e-9),
        stats,
        peak_rss_mib: peak,
        server_cores,
        loadgen_cores,
        ceiling,
        ceiling_value,
        target,
        met,
        note,
    })
}

/// One user with `--sessions` live sessions; one `POST /api/logout-all`; then every session's
/// refresh token and access token must be refused, and the database must hold none live.
async fn logout_all(
    opts: &Opts,
    ctx: &tokend::service::Ctx,
    server: &Server,
    backend: Backend,
    ceiling: Ceiling,
    http: &reqwest::Client,
) -> anyhow::Result<Row> {
    let n = opts.sessions;
    let victim = seed::user(
        ctx,
        &format!("victim-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    )
    .await?;
    let t = Instant::now();
    let tokens = seed::sessions_at(ctx, &victim, n, opts.refreshed as i64).await?;
    eprintln!(
        "  seeded {n} sessions in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The in-process figure: the same revocation for another user with as many sessions,
    // through the service, without HTTP.
    let other = seed::user(
        ctx,
        &format!("other-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    )
    .await?;
    seed::sessions_at(ctx, &other, n, opts.refreshed as i64).await?;
    // Seeding wrote tens of thousands of rows: let SQLite's checkpointer copy them back before
    // the clock starts, as it has long since done on a server whose sessions arrived over days.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let counts = users::logout_all(
        ctx,
        other.clone(),
        None,
        None,
        Reason::LogoutAll,
        Some(other),
        RequestMeta::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("in-process logout-all: {e}"))?;
    let in_process = t.elapsed();
    anyhow::ensure!(
        counts.sessions_revoked == n as u64,
        "in-process logout-all revoked {counts:?}"
    );

    // Live before: a sample of the access tokens is accepted.
    for t in tokens.iter().step_by((n / 100).max(1)) {
        let r = http
            .get(format!("{}/api/me", server.base))
            .bearer_auth(&t.access)
            .send()
            .await;
        load::expect(r, 200)
            .await
            .map_err(|e| anyhow::anyhow!("a seeded session is not live: {e}"))?;
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    server.reset_peak();
    let t = Instant::now();
    let r = http
        .post(format!("{}/api/logout-all", server.base))
        .bearer_auth(&tokens[0].access)
        .send()
        .await;
    let body = load::expect(r, 200)
        .await
        .map_err(|e| anyhow::anyhow!("logout-all: {e}"))?;
    let took = t.elapsed();
    let answer: serde_json::Value = serde_json::from_slice(body.as_ref())?;
    let revoked = answer["sessions_revoked"].as_u64().unwrap_or(0);

    // After: every refresh token and every access token is refused, over HTTP.
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tokens = Arc::new(tokens);
    let stripes = 16;
    let mut handles = Vec::new();
    for stripe in 0..stripes {
        let (http, base, tokens, refused, accepted) = (
            http.clone(),
            server.base.clone(),
            tokens.clone(),
            refused.clone(),
            accepted.clone(),
        );
        handles.push(tokio::spawn(async move {
            for t in tokens.iter().skip(stripe).step_by(stripes) {
                let r = http
                    .post(format!("{base}/oauth/token"))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", "tokend-cli"),
                        ("refresh_token", t.refresh.as_str()),
                    ])
                    .send()
                    .await;
                let ok = load::expect(r, 400)
                    .await
                    .is_ok_and(|b| b.as_ref().windows(13).any(|w| w == b"invalid_grant"));
                let r = http
                    .get(format!("{base}/api/me"))
                    .bearer_auth(&t.access)
                    .send()
                    .await;
                let ok = ok && load::expect(r, 401).await.is_ok();
                if ok { &refused } else { &accepted }
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    let accepted = accepted.load(std::sync::atomic::Ordering::Relaxed);
    let (live_s, live_a, live_r) = seed::live_counts(ctx, &victim).await?;
    let ms = took.as_secs_f64() * 1000.0;
    let limit = match backend {
        Backend::Sqlite => 20.0,
        Backend::Postgres => 150.0,
    };
    let all_refused = refused == n as u64 && accepted == 0 && (live_s, live_a, live_r) == (0, 0, 0);
    let note = format!(
        "{revoked} sessions revoked by one request; afterwards {refused}/{n} sessions refused at both /oauth/token (refresh) and /api/me (access), {accepted} accepted; live in the database: {live_s} sessions, {live_a} access tokens, {live_r} refresh tokens; in-process (no HTTP) {:.1} ms",
        in_process.as_secs_f64() * 1000.0
    );
    Ok(Row {
        scenario: Scenario::LogoutAll,
        backend,
        // For this row: the number of sessions the one request revoked.
        concurrency: n,
        stats: Stats {
            ok: 1,
            errors: u64::from(revoked != n as u64),
            first_error: None,
            micros: vec![took.as_micros() as u32],
            window: took,
        },
        peak_rss_mib: server.peak_rss_mib(),
        server_cores: None,
        loadgen_cores: None,
        ceiling,
        ceiling_value: in_process.as_secs_f64() * 1000.0,
        ratio: in_process.as_secs_f64() * 1000.0 / ms.max(1e-9),
        target: format!("≤ {limit:.0} ms, one request, every session refused after"),
        met: ms <= limit && all_refused && revoked == n as u64,
        note,
    })
}
