//! Argon2id password hashing on a bounded pool, so a flood of sign-ins slows sign-ins only.
//!
//! The pool's threads run at a lower CPU priority (nice 10). On an idle machine that changes
//! nothing: they get every core. When refreshes and validations want the CPU too, the scheduler
//! hands it to them first, so 200 sign-ins in flight cannot push a refresh's tail past a few ms
//! (before: refresh p99 115 ms during a login flood; docs/benchmarks.md).

use std::sync::Arc;

use argon2::password_hash::PasswordHasher as _;
use argon2::Argon2;
use tokio::sync::Semaphore;

/// The parameters every new hash gets (OWASP: m=19456 KiB, t=2, p=1; argon2's defaults).
const MIN_M_COST: u32 = 19_456;
const MIN_T_COST: u32 = 2;

/// The niceness of the hashing threads (0 is normal; 19 is the lowest priority).
const HASHING_NICE: i32 = 10;

/// Hashes and verifies passwords off the async workers, at most `permits` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    pool: Arc<HashPool>,
    dummy_hash: Arc<str>,
    /// Argon2's working memory (19 MiB each), reused: at most one per permit ever exists.
    memory: Arc<parking_lot::Mutex<Vec<Vec<argon2::Block>>>>,
}

/// A turn on the hashing pool (see [`PasswordHasher::turn`]). Never take a second one while
/// holding one: with every turn held that way, nobody would ever get another.
pub struct Turn(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes { needs_rehash: bool },
}

impl PasswordHasher {
    /// `concurrency` bounds the hashes running at once (the machine's cores is right).
    pub fn new(concurrency: usize) -> anyhow::Result<PasswordHasher> {
        let dummy = hash_blocking(&crate::crypto::b64url(&crate::crypto::random_bytes::<24>()))?;
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            pool: Arc::new(HashPool::new(concurrency.max(1))?),
            dummy_hash: dummy.into(),
            memory: Arc::default(),
        })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        self.pool.run(move || hash_blocking(&password)).await?
    }

    /// Verifies `password` against `stored`; with `None` (unknown user) it verifies against a
    /// dummy hash and says no, so both cases take the same time.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> anyhow::Result<Verified> {
        let turn = self.turn().await?;
        self.verify_in_turn(&turn, password, stored).await
    }

    /// Waits for a turn on the bounded pool; the turn lasts until the value is dropped. A caller
    /// that must decide something when its turn comes (sign-in throttling) takes it explicitly.
    pub async fn turn(&self) -> anyhow::Result<Turn> {
        Ok(Turn(self.permits.clone().acquire_owned().await?))
    }

    /// [`verify`](Self::verify) during a turn already taken.
    pub async fn verify_in_turn(
        &self,
        _turn: &Turn,
        password: String,
        stored: Option<String>,
    ) -> anyhow::Result<Verified> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let span = tracing::Span::current();
        let memory = self.memory.clone();
        self.pool
            .run(move || {
                let _entered = span.enter();
                let mut blocks = memory.lock().pop().unwrap_or_default();
                let ok = verify_with_memory(password.as_bytes(), &stored, &mut blocks);
                memory.lock().push(blocks);
                Ok(if ok && known {
                    Verified::Yes {
                        needs_rehash: needs_rehash(&stored),
                    }
                } else {
                    Verified::No
                })
            })
            .await?
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads Argon2 runs on: as many as there are permits, at [`HASHING_NICE`]. They end when
/// the last clone of the hasher is dropped.
struct HashPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashPool {
    fn new(threads: usize) -> anyhow::Result<HashPool> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    // Linux: PRIO_PROCESS with a thread id sets that thread's niceness only.
                    let tid = rustix::thread::gettid();
                    if let Err(err) = rustix::process::setpriority_process(Some(tid), HASHING_NICE)
                    {
                        tracing::debug!(error = %err, "hashing threads keep the normal priority");
                    }
                    loop {
                        let next = queue.lock().recv();
                        let Ok(job) = next else { return };
                        // A panicking job fails its own caller (its answer channel is dropped).
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(HashPool { jobs })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(f());
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the hashing pool has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow::anyhow!("a password hash failed"))
    }
}

/// Verifies `password` against a PHC string in `blocks` (grown to the hash's memory cost on first
/// use). What `Argon2::verify_password` does, without a fresh 19 MiB allocation per call: with one
/// per sign-in, glibc kept a 19 MiB heap per blocking thread and the server's RSS grew past 500 MiB
/// under a login flood (docs/benchmarks.md), and every hash first page-faulted its memory in.
fn verify_with_memory(password: &[u8], stored: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    use argon2::{Algorithm, Params, PasswordHash, Version};
    use subtle::ConstantTimeEq as _;
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, argon2::Block::default());
    }
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        &mut blocks[..needed],
    );
    computed.is_ok() && bool::from(out.as_slice().ct_eq(expected))
}

/// Hashes on the current thread (start-up and the CLI).
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Whether a stored PHC string uses weaker parameters (or another algorithm) than new hashes do.
pub fn needs_rehash(stored: &str) -> bool {
    let mut parts = stored.split('$').skip(1);
    if parts.next() != Some("argon2id") {
        return true;
    }
    let params = parts.find(|p| p.starts_with("m=")).unwrap_or_default();
    let mut m = 0u32;
    let mut t = 0u32;
    for kv in params.split(',') {
        match kv.split_once('=') {
            Some(("m", v)) => m = v.parse().unwrap_or(0),
            Some(("t", v)) => t = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    m < MIN_M_COST || t < MIN_T_COST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_are_argon2id_with_owasp_parameters() {
        let hash = hash_blocking("correct horse").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!needs_rehash(&hash));
    }

    #[test]
    fn weaker_parameters_need_a_rehash() {
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
        assert!(needs_rehash(
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
        assert!(needs_rehash("garbage"));
    }

    #[tokio::test]
    async fn verify_accepts_the_password_and_refuses_others_and_unknown_users() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        let hash = hasher.hash("s3cret-pass".into()).await.expect("hash");
        assert_eq!(
            hasher
                .verify("s3cret-pass".into(), Some(hash.clone()))
                .await
                .expect("verify"),
            Verified::Yes {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify("wrong".into(), Some(hash))
                .await
                .expect("verify"),
            Verified::No
        );
        assert_eq!(
            hasher
                .verify("anything".into(), None)
                .await
                .expect("verify"),
            Verified::No
        );
    }

    /// The reused-memory verification agrees with argon2's own, for every parameter set a stored
    /// hash may carry (weaker, older hashes included) and with one buffer shared across them.
    #[test]
    fn verifying_in_reused_memory_agrees_with_argon2() {
        use argon2::password_hash::PasswordVerifier as _;
        use argon2::{Algorithm, Params, Version};
        let mut blocks = Vec::new();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 3, 1, None).expect("params"),
        )
        .hash_password(b"older password")
        .expect("hash")
        .to_string();
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(8192, 2, 1, None).expect("params"),
        )
        .hash_password(b"older password")
        .expect("hash")
        .to_string();
        let current = hash_blocking("correct horse").expect("hash");
        for (stored, password) in [
            (&current, "correct horse"),
            (&weak, "older password"),
            (&argon2i, "older password"),
            (&current, "correct horse"),
        ] {
            for attempt in [password, "wrong", ""] {
                let theirs = Argon2::default()
                    .verify_password(attempt.as_bytes(), stored.as_str())
                    .is_ok();
                let ours = verify_with_memory(attempt.as_bytes(), stored, &mut blocks);
                assert_eq!(ours, theirs, "{stored} with {attempt:?}");
                assert_eq!(ours, attempt == password);
            }
        }
        assert!(!verify_with_memory(b"x", "garbage", &mut blocks));
        assert!(!verify_with_memory(
            b"x",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            &mut blocks
        ));
    }
}
