//! The in-process ceiling, measured in the same run on the same database before the load starts:
//! what one request of each kind costs without HTTP, so every HTTP figure reads as a share of what
//! the hardware allows.

use std::time::{Duration, Instant};

use tokend::crypto::jwt;
use tokend::service::bootstrap::CLI_CLIENT_ID;
use tokend::service::clients::{self, ClientCredentials};
use tokend::service::{refresh, Ctx, RequestMeta};

#[derive(Debug, Clone, Copy, Default)]
pub struct Ceiling {
    pub cores: usize,
    pub sign: Duration,
    pub verify: Duration,
    /// The access-token lookup (session and user by the `sid` claim, one primary-key query) on a
    /// held connection.
    pub lookup: Duration,
    /// A whole refresh through the service (blocking-pool hop, one conditional UPDATE, signature).
    pub refresh: Duration,
    /// One Argon2id verification (m=19456 KiB, t=2, p=1) while every core runs one.
    pub argon2: Duration,
    /// Refreshes per second through the service, no HTTP, at the scenario's concurrency.
    pub refresh_rate: f64,
    /// Bearer validations per second through the service (signature, lookup, session use), no
    /// HTTP, at the scenario's concurrency.
    pub validation_rate: f64,
}

impl Ceiling {
    /// Requests per second if every core did nothing but this.
    pub fn per_sec(&self, one: Duration) -> f64 {
        self.cores as f64 / one.as_secs_f64().max(1e-9)
    }

    pub fn validation(&self) -> Duration {
        self.verify + self.lookup
    }
}

fn mean(total: Duration, n: u32) -> Duration {
    total / n.max(1)
}

/// `tokens`: sessions of its own (they are rotated); `concurrency`: as many run at once.
pub async fn measure(
    ctx: &Ctx,
    tokens: &[crate::seed::Tokens],
    concurrency: usize,
) -> anyhow::Result<Ceiling> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let key = ctx.keys.signing_key()?;
    let keys = ctx.keys.current();
    let issuer = ctx.config.issuer.clone();
    let access = tokens
        .first()
        .ok_or_else(|| anyhow::anyhow!("no session to measure with"))?
        .access
        .clone();
    let claims = jwt::verify(&access, &keys, &issuer, &issuer, true)
        .map_err(|e| anyhow::anyhow!("verifying a seeded token: {e}"))?;

    // Signing and verifying, on a blocking thread (they are CPU work; keep the runtime free).
    let (sign, verify) = {
        let (key, keys, issuer, access, claims) = (
            key.clone(),
            keys.clone(),
            issuer.clone(),
            access.clone(),
            claims.clone(),
        );
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Duration, Duration)> {
            let n = 2000;
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(jwt::sign(&key, &claims)?);
            }
            let sign = mean(t.elapsed(), n);
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(jwt::verify(&access, &keys, &issuer, &issuer, true).is_ok());
            }
            Ok((sign, mean(t.elapsed(), n)))
        })
        .await??
    };

    let sid = claims.sid.clone();
    let lookup = ctx
        .pool
        .run(move |conn| {
            let n = 2000;
            for _ in 0..200 {
                tokend::store::sessions::find_with_user(conn, &sid)?;
            }
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(tokend::store::sessions::find_with_user(conn, &sid)?);
            }
            Ok::<_, tokend::store::StoreError>(mean(t.elapsed(), n))
        })
        .await?;

    // A refresh chain of its own (the last seeded session), through the service, one at a time.
    let client = clients::authenticate(
        ctx,
        ClientCredentials {
            client_id: CLI_CLIENT_ID.into(),
            secret: None,
        },
    )
    .await?;
    let mut refresh_token = tokens
        .last()
        .ok_or_else(|| anyhow::anyhow!("no session"))?
        .refresh
        .clone();
    // The best of five batches: the figure is what the machine allows, not what a noisy moment gave.
    let mut refresh = Duration::MAX;
    for batch in 0..6 {
        let n = 200;
        let t = Instant::now();
        for _ in 0..n {
            let next = refresh::refresh(
                ctx,
                client.clone(),
                refresh_token,
                None,
                RequestMeta::default(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("in-process refresh: {e}"))?;
            refresh_token = next
                .refresh_token
                .ok_or_else(|| anyhow::anyhow!("no refresh token"))?;
        }
        if batch > 0 {
            refresh = refresh.min(mean(t.elapsed(), n));
        }
    }

    // Argon2 on every core at once, as the server's hashing pool runs it: one hash alone is
    // faster than two side by side (they share the memory bandwidth), so the ceiling is what all
    // cores together finish per second, given here as the time per hash per core.
    let per_core = 12u32;
    let started = std::sync::Arc::new(std::sync::Barrier::new(cores + 1));
    let mut threads = Vec::new();
    for _ in 0..cores {
        let started = started.clone();
        threads.push(tokio::task::spawn_blocking(move || {
            // As the server verifies: in memory allocated once (src/crypto/password.rs).
            let params = argon2::Params::default();
            let mut blocks = vec![argon2::Block::default(); params.block_count()];
            let mut out = [0u8; 32];
            let argon = argon2::Argon2::default();
            // The first one faults the memory in; the server's buffers are long warm.
            for i in 0..=per_core {
                if i == 1 {
                    started.wait();
                }
                std::hint::black_box(
                    argon
                        .hash_password_into_with_memory(
                            crate::seed::USER_PASSWORD.as_bytes(),
                            b"0123456789abcdef",
                            &mut out,
                            &mut blocks,
                        )
                        .is_ok(),
                );
            }
        }));
    }
    let t = {
        let started = started.clone();
        tokio::task::spawn_blocking(move || {
            started.wait();
            Instant::now()
        })
        .await?
    };
    for t in threads {
        t.await?;
    }
    let argon2 = mean(t.elapsed(), per_core);

    let (owned_ctx, owned_client) = (ctx.clone(), client.clone());
    let refresh_rate = concurrent(
        // Not the last session: the one-at-a-time figure above rotated its chain.
        tokens
            .iter()
            .take(concurrency)
            .map(|t| t.refresh.clone())
            .collect(),
        move |refresh_token: String| {
            let (ctx, client) = (owned_ctx.clone(), owned_client.clone());
            async move {
                match refresh::refresh(
                    &ctx,
                    client,
                    refresh_token.clone(),
                    None,
                    RequestMeta::default(),
                )
                .await
                {
                    Ok(next) => match next.refresh_token {
                        Some(next) => (next, true),
                        None => (refresh_token, false),
                    },
                    Err(_) => (refresh_token, false),
                }
            }
        },
    )
    .await;
    let owned_ctx = ctx.clone();
    let validation_rate = concurrent(
        tokens
            .iter()
            .take(concurrency)
            .map(|t| t.access.clone())
            .collect(),
        move |access: String| {
            let ctx = owned_ctx.clone();
            async move {
                let ok = tokend::service::validation::authenticate(&ctx, &access)
                    .await
                    .is_ok();
                (access, ok)
            }
        },
    )
    .await;

    Ok(Ceiling {
        refresh_rate,
        validation_rate,
        cores,
        sign,
        verify,
        lookup,
        refresh,
        argon2,
    })
}

/// Successful operations per second with one task per state, each doing `op` back to back, for
/// one second.
async fn concurrent<S, F, Fut>(states: Vec<S>, op: F) -> f64
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (S, bool)> + Send + 'static,
{
    let window = Duration::from_secs(1);
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for state in states {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut state, mut n) = (state, 0u64);
            while Instant::now() < end {
                let (next, ok) = op(state).await;
                state = next;
                n += u64::from(ok);
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / window.as_secs_f64()
}
