//! Load benchmark for tokend over HTTP on loopback, with bounded duration and concurrency.
//!
//! ```sh
//! cargo run --release --example loadgen -- refresh                # one scenario, SQLite
//! cargo run --release --example loadgen -- refresh --backend postgres --duration 10s --concurrency 16
//! cargo run --release --example loadgen -- all                    # every scenario, the docs table
//! cargo run --release --example loadgen -- plot                   # docs/bench/{refresh,bearer}.svg
//! cargo run --release --example loadgen -- bearer --target http://127.0.0.1:8080 \
//!     --database-url sqlite://tokend.db [--server-pid PID]        # a server already running
//! ```
//!
//! Scenarios: `login` (password grant), `refresh` (each worker rotates its own session's chain,
//! always with the newest token), `introspect`, `bearer` (`GET /api/me`), `logout-all` (one user
//! with 10,000 live sessions, one request, then every session must be refused), `mixed` (refreshes
//! while `--logins` concurrent sign-ins run), `statuslist` (`GET` of a status list of 1,048,576
//! entries with 1 % revoked, as resource servers fetch it).
//!
//! Each scenario gets a fresh database (SQLite in a temp dir; PostgreSQL: a database created on
//! `--pg-admin` and dropped afterwards) and a fresh server: this program re-executed with the
//! hidden `serve` argument, so the server's peak RSS (`VmHWM`) and CPU time are its own. The
//! in-process ceiling (sign, verify, lookup, refresh transaction, Argon2) is measured in the same
//! run, before the load, and every figure is printed as a ratio to it.

mod ceiling;
mod load;
mod plot;
mod scenarios;
mod seed;
mod server;

use std::time::Duration;

use clap::Parser;
use scenarios::{Row, Scenario};
use server::Backend;

#[derive(Parser, Debug, Clone)]
#[command(about = "Load benchmark for tokend (loopback only)")]
pub struct Opts {
    /// login, refresh, introspect, bearer, logout-all, mixed, all, or plot
    pub scenario: String,
    /// How long each scenario is measured (after a warm-up)
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Not counted: connections open, caches warm
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub warmup: Duration,
    /// Workers (each one request at a time); default per scenario
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// sqlite or postgres
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    /// Where fresh PostgreSQL databases are created (and dropped)
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_admin: String,
    /// Concurrent sign-ins in `mixed`
    #[arg(long, default_value_t = 200)]
    pub logins: usize,
    /// Sessions of the user in `logout-all`
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// In `logout-all`: each session is seeded as it stands after this many refreshes (storage
    /// v2: the same one row, at that generation)
    #[arg(long, default_value_t = 0)]
    pub refreshed: usize,
    /// A setting for the server, `TOKEND_NAME=value` (repeatable), e.g.
    /// `--server-env TOKEND_SQLITE_SYNCHRONOUS=normal`
    #[arg(long = "server-env", value_parser = server_setting)]
    pub server_env: Vec<(String, String)>,
    /// The server's log filter (`info` writes a line per request)
    #[arg(long, default_value = "warn")]
    pub log: String,
    /// A running server to load instead of starting one (loopback only)
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: its database, to seed users and sessions
    #[arg(long)]
    pub database_url: Option<String>,
    /// With --target: its pid, to read its RSS and CPU time
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Where `plot` writes its SVGs
    #[arg(long, default_value = "docs/bench")]
    pub out: String,
}

fn server_setting(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, value)) if k.starts_with("TOKEND_") => Ok((k.to_owned(), value.to_owned())),
        _ => Err(format!("{v:?}: expected TOKEND_NAME=value")),
    }
}

fn duration(v: &str) -> Result<Duration, String> {
    if let Some(ms) = v.strip_suffix("ms") {
        return ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{v:?} is not a duration"));
    }
    tokend::config::parse_duration(v).ok_or_else(|| format!("{v:?} is not a duration (10s, 1m)"))
}

fn backend(name: &str) -> anyhow::Result<Backend> {
    match name {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        other => anyhow::bail!("--backend {other}: sqlite or postgres"),
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return server::serve();
    }
    let opts = Opts::parse();
    if let Some(target) = &opts.target {
        server::check_loopback(target)?;
    }
    anyhow::ensure!(
        opts.duration <= Duration::from_secs(600) && opts.concurrency.unwrap_or(1) <= 1024,
        "bounded runs only: --duration ≤ 10m, --concurrency ≤ 1024"
    );
    anyhow::ensure!(
        opts.logins <= 1024 && opts.sessions <= 1_000_000,
        "bounded runs only"
    );
    // One thread for the load: the generator takes at most one of the cores it shares.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(opts))
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let chosen = backend(&opts.backend)?;
    match opts.scenario.as_str() {
        "all" => {
            let mut plan: Vec<(Scenario, Backend)> = [
                Scenario::Login,
                Scenario::Refresh,
                Scenario::Introspect,
                Scenario::Bearer,
                Scenario::LogoutAll,
                Scenario::Mixed,
                Scenario::StatusList,
            ]
            .into_iter()
            .map(|s| (s, chosen))
            .collect();
            if chosen == Backend::Sqlite && opts.target.is_none() {
                plan.push((Scenario::Refresh, Backend::Postgres));
                plan.push((Scenario::LogoutAll, Backend::Postgres));
            }
            let mut rows = Vec::new();
            for (scenario, backend) in plan {
                let c = opts
                    .concurrency
                    .unwrap_or_else(|| scenario.default_concurrency());
                eprintln!(
                    "{} on {} (concurrency {c}) …",
                    scenario.name(),
                    backend.name()
                );
                match scenarios::run(&opts, scenario, backend, c).await {
                    Ok(row) => {
                        print_row(&row);
                        rows.push(row);
                    }
                    Err(e) => eprintln!("  {}: {e:#}", scenario.name()),
                }
            }
            println!();
            print_table(&rows);
        }
        "plot" => plot::run(&opts, chosen).await?,
        name => {
            let scenario = Scenario::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown scenario {name:?}: login, refresh, introspect, bearer, logout-all, mixed, statuslist, all, plot"
                )
            })?;
            let c = opts
                .concurrency
                .unwrap_or_else(|| scenario.default_concurrency());
            let row = scenarios::run(&opts, scenario, chosen, c).await?;
            print_row(&row);
            println!();
            print_table(&[row]);
        }
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

/// Thousands with a comma, as the docs write them.
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn print_row(row: &Row) {
    let c = &row.ceiling;
    eprintln!(
        "  in-process: sign {:.1} µs, verify {:.1} µs, lookup {:.1} µs, refresh {:.1} µs one at a time, {:.0} refresh/s and {:.0} validations/s at the same concurrency, Argon2 {:.1} ms ({} cores)",
        c.sign.as_secs_f64() * 1e6,
        c.verify.as_secs_f64() * 1e6,
        c.lookup.as_secs_f64() * 1e6,
        c.refresh.as_secs_f64() * 1e6,
        c.refresh_rate,
        c.validation_rate,
        c.argon2.as_secs_f64() * 1e3,
        c.cores
    );
    if row.scenario == Scenario::LogoutAll {
        eprintln!(
            "  {} {}: one request {:.1} ms (in-process {:.1} ms, ratio {:.2}); {}; {}",
            row.scenario.name(),
            row.backend.name(),
            row.stats.pct_ms(0.5),
            row.ceiling_value,
            row.ratio,
            if row.met { "MET" } else { "MISSED" },
            row.note
        );
        return;
    }
    eprintln!(
        "  {} {} c={}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors; server peak RSS {} MiB, server {} cores, loadgen {} cores; ceiling {:.0}/s, ratio {:.2}; {}{}",
        row.scenario.name(),
        row.backend.name(),
        row.concurrency,
        row.stats.rate(),
        row.stats.pct_ms(0.5),
        row.stats.pct_ms(0.99),
        row.stats.pct_ms(1.0),
        row.stats.errors,
        opt(row.peak_rss_mib, 1),
        opt(row.server_cores, 2),
        opt(row.loadgen_cores, 2),
        row.ceiling_value,
        row.ratio,
        if row.met { "MET" } else { "MISSED" },
        if row.note.is_empty() { String::new() } else { format!(" — {}", row.note) }
    );
}

/// The markdown table for docs/benchmarks.md.
pub fn print_table(rows: &[Row]) {
    println!("| scenario | backend | workers | req/s | p50 ms | p99 ms | errors | server peak RSS MiB | server CPU (cores) | loadgen CPU (cores) | in-process ceiling | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        if row.scenario == Scenario::LogoutAll {
            println!(
                "| logout-all ({} sessions) | {} | 1 request | – | {:.1} (the request) | – | {} | {} | – | – | {:.1} ms in-process | {:.2} | {} | {} |",
                thousands(row.concurrency as f64),
                row.backend.name(),
                row.stats.pct_ms(0.5),
                row.stats.errors,
                opt(row.peak_rss_mib, 1),
                row.ceiling_value,
                row.ratio,
                row.target,
                if row.met { "yes" } else { "no" }
            );
            continue;
        }
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {}/s | {:.2} | {} | {} |",
            row.scenario.name(),
            row.backend.name(),
            row.concurrency,
            thousands(row.stats.rate()),
            row.stats.pct_ms(0.5),
            row.stats.pct_ms(0.99),
            row.stats.errors,
            opt(row.peak_rss_mib, 1),
            opt(row.server_cores, 2),
            opt(row.loadgen_cores, 2),
            thousands(row.ceiling_value),
            row.ratio,
            row.target,
            if row.met { "yes" } else { "no" }
        );
    }
    for row in rows.iter().filter(|r| !r.note.is_empty()) {
        println!(
            "\n- {} ({}): {}",
            row.scenario.name(),
            row.backend.name(),
            row.note
        );
    }
}
