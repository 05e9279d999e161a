//! The closed-loop driver: N workers, each sending its next request when the previous answer has
//! been read, for a bounded time. Latency is recorded per request (µs); the first second is a
//! warm-up that is not counted.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latencies of the successful requests, in µs, sorted.
    pub micros: Vec<u32>,
    pub window: Duration,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }

    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[i.min(self.micros.len() - 1)] as f64 / 1000.0
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.micros.extend(other.micros);
    }
}

/// Runs one worker per state for `warmup + duration`; `op` takes the worker's state and gives it
/// back with the outcome of one request.
pub async fn run<S, F, Fut>(states: Vec<S>, warmup: Duration, duration: Duration, op: F) -> Stats
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Result<(), String>)> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut handles = Vec::with_capacity(states.len());
    for state in states {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut state = state;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let (next, outcome) = op(state).await;
                state = next;
                if sent < measure_from {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        stats.ok += 1;
                        stats
                            .micros
                            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Err(e) => {
                        stats.errors += 1;
                        if stats.first_error.is_none() {
                            stats.first_error = Some(e);
                        }
                        // A refused request must not become a busy loop against the server.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            stats
        }));
    }
    let mut all = Stats::default();
    for h in handles {
        match h.await {
            Ok(stats) => all.merge(stats),
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    all.window = duration;
    all.micros.sort_unstable();
    all
}

/// A keep-alive HTTP client with room for `concurrency` idle connections.
pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// The body of an answer whose status must be `want`; anything else is an error with its status.
pub async fn expect(
    response: Result<reqwest::Response, reqwest::Error>,
    want: u16,
) -> Result<impl AsRef<[u8]>, String> {
    let response = response.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if status != want {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(body)
}
