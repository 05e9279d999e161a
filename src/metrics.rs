//! Prometheus metrics (`GET /metrics`, API.md "Operations"). One process-wide recorder; every
//! label takes a bounded set of values: route templates (never raw paths), methods, statuses,
//! grant types, reasons, outcomes. Never an id, a username or a token.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: 0.5 ms to 5 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The recorder's handle, installed on first use. Should another recorder already be installed
/// in this process, tokend keeps its own unregistered one: `/metrics` then shows nothing it did
/// not record itself, and nothing fails.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        };
        builder()
            .install_recorder()
            .unwrap_or_else(|_| builder().build_recorder().handle())
    })
}

/// The text exposition, after the recorder's upkeep (which drains histogram samples).
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// One HTTP request answered: `route` is the matched template (`/admin/users/{id}`) or
/// `unmatched`.
pub fn request(route: &str, method: &str, status: u16, took: Duration) {
    handle();
    let (route, method) = (route.to_owned(), method.to_owned());
    metrics::counter!(
        "tokend_http_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("tokend_http_request_duration_seconds", "route" => route)
        .record(took.as_secs_f64());
}

/// A grant issued tokens (`grant`: a grant type, or `personal_access_token`).
pub fn token_issued(grant: &'static str) {
    handle();
    metrics::counter!("tokend_tokens_issued_total", "grant" => grant).increment(1);
}

/// A refresh grant's outcome: `rotated`, `grace` (the current token again), `refused`, `reuse`.
pub fn refresh(outcome: &'static str) {
    handle();
    metrics::counter!("tokend_refreshes_total", "outcome" => outcome).increment(1);
    if outcome == "reuse" {
        metrics::counter!("tokend_refresh_reuse_detected_total").increment(1);
    }
}

/// Sessions a revocation ended, by its reason.
pub fn sessions_revoked(reason: &'static str, n: u64) {
    if n > 0 {
        handle();
        metrics::counter!("tokend_sessions_revoked_total", "reason" => reason).increment(n);
    }
}

/// An audit event written, by kind and reason (both fixed sets in the code, `audit::KINDS`):
/// sign-in failures are `kind="signin_failure"`, with the reason that refused them.
pub fn audit_event(kind: &str, reason: Option<&str>) {
    handle();
    metrics::counter!(
        "tokend_audit_events_total",
        "kind" => kind.to_owned(),
        "reason" => reason.unwrap_or("").to_owned()
    )
    .increment(1);
}

/// A sign-in (or current-password check) refused by the throttle, before any password check.
pub fn signin_throttled() {
    handle();
    metrics::counter!("tokend_signin_throttled_total").increment(1);
}

/// Checkouts of a database connection waiting right now, in this process.
static WAITING: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Counts one checkout as waiting while it lives.
pub struct Waiting(());

impl Waiting {
    pub fn start() -> Waiting {
        WAITING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The database pool as a scrape finds it: connections in use and idle, checkouts waiting.
pub fn pool(in_use: u32, idle: u32) {
    handle();
    metrics::gauge!("tokend_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("tokend_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("tokend_db_pool_waiting")
        .set(WAITING.load(std::sync::atomic::Ordering::Relaxed) as f64);
}

/// How long a write waited for SQLite's write lock (the write gate).
pub fn sqlite_write_lock_wait(waited: Duration) {
    handle();
    metrics::histogram!("tokend_sqlite_write_lock_wait_seconds").record(waited.as_secs_f64());
}

/// A status list built (once per list per `ttl` on a node): how long the query, zlib and the
/// signature took together.
pub fn status_list_built(took: Duration) {
    handle();
    metrics::histogram!("tokend_status_list_build_seconds").record(took.as_secs_f64());
}

/// A block of status-list entries claimed by this node.
pub fn status_list_block_claimed() {
    handle();
    metrics::counter!("tokend_status_list_blocks_claimed_total").increment(1);
}
