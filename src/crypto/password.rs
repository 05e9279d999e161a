//! Argon2id password hashing on a bounded pool, so a flood of sign-ins slows sign-ins only.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// The parameters every new hash gets (OWASP: m=19456 KiB, t=2, p=1; argon2's defaults).
const MIN_M_COST: u32 = 19_456;
const MIN_T_COST: u32 = 2;

/// Hashes and verifies passwords off the async workers, at most `permits` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
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
            dummy_hash: dummy.into(),
        })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
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
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), stored.as_str())
                .is_ok();
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
}
