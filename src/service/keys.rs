//! The signing keys a node holds in memory, loaded from the database every node shares.
//! A node reloads them periodically and when a token names a `kid` it does not know yet.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{chrono_duration, Result, ServiceError};
use crate::crypto::jwt::LEEWAY_SECONDS;
use crate::crypto::keys::{self, KeyEncryptionKey, KeySet, SigningAlg, SigningKey, VerifyingKey};
use crate::store::models::SigningKeyRow;
use crate::store::{self, Conn, Pool};

/// Unknown-`kid` reloads happen at most this often, so random `kid`s cannot hammer the database.
const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

pub struct KeyManager {
    current: RwLock<Arc<KeySet>>,
    kek: Option<KeyEncryptionKey>,
    /// How long a retired key keeps verifying: the longest an access token it signed can live.
    verify_window: Duration,
    last_forced_reload: Mutex<Option<Instant>>,
}

impl KeyManager {
    pub fn new(kek: Option<KeyEncryptionKey>, access_token_ttl: Duration) -> KeyManager {
        KeyManager {
            current: RwLock::new(Arc::new(KeySet::default())),
            kek,
            verify_window: access_token_ttl + Duration::from_secs(LEEWAY_SECONDS + 60),
            last_forced_reload: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// Makes sure an active key of `alg` exists (generating one, and retiring the others, if not),
    /// then loads the key set. Used at start-up and by rotation.
    pub fn ensure_active(&self, conn: &mut Conn, alg: SigningAlg) -> anyhow::Result<()> {
        conn.write(|conn| {
            let rows = store::keys::usable(conn, store::now())?;
            let active = rows.iter().find(|r| r.retired_at.is_none());
            if active.is_none_or(|r| r.alg != alg.as_str()) {
                self.insert_new(conn, alg)?;
            }
            Ok(())
        })?;
        self.load(conn)
    }

    /// Generates a new key, makes it the active one and retires the others (which keep verifying
    /// for the access-token lifetime). Returns the new `kid`.
    pub fn rotate(&self, conn: &mut Conn, alg: SigningAlg) -> anyhow::Result<String> {
        self.rotate_recorded(conn, alg, |_| Ok(()))
    }

    /// Rotates, running `record` (the audit event) in the same transaction as the new key.
    pub fn rotate_recorded(
        &self,
        conn: &mut Conn,
        alg: SigningAlg,
        record: impl FnOnce(&mut Conn) -> store::Result<()>,
    ) -> anyhow::Result<String> {
        let kid = conn.write(|conn| {
            let kid = self.insert_new(conn, alg)?;
            record(conn)?;
            Ok(kid)
        })?;
        self.load(conn)?;
        Ok(kid)
    }

    fn insert_new(&self, conn: &mut Conn, alg: SigningAlg) -> store::Result<String> {
        let existing = store::keys::all(conn)?;
        let encrypted: Vec<_> = existing
            .iter()
            .filter(|k| k.private_key.starts_with("enc:"))
            .collect();
        // With a key-encryption key, prove it opens the keys already there: a new key sealed with
        // the wrong one would be unusable by every node that has the right one.
        if let (Some(kek), Some(sample)) = (&self.kek, encrypted.first()) {
            keys::unseal(Some(kek), &sample.kid, &sample.private_key)?;
        }
        if self.kek.is_none() && !encrypted.is_empty() {
            return Err(anyhow::anyhow!(
                "the signing keys are encrypted at rest: set TOKEND_KEY_ENCRYPTION_KEY before making a new one"
            )
            .into());
        }
        let generated = keys::generate(alg)?;
        let private_key = match &self.kek {
            Some(kek) => kek.seal(&generated.kid, &generated.private_pem)?,
            None => generated.private_pem.clone(),
        };
        let now = store::now();
        store::keys::insert(
            conn,
            &SigningKeyRow {
                kid: generated.kid.clone(),
                alg: alg.as_str().to_owned(),
                private_key,
                public_jwk: generated.public_jwk,
                created_at: now,
                retired_at: None,
            },
        )?;
        store::keys::retire_others(conn, &generated.kid, now)?;
        Ok(generated.kid)
    }

    /// Reads the key set from the database and swaps it in. Fails (keeping the old set) if the
    /// active private key cannot be opened.
    pub fn load(&self, conn: &mut Conn) -> anyhow::Result<()> {
        let cutoff = store::now() - chrono_duration(self.verify_window);
        let rows = store::keys::usable(conn, cutoff)?;
        let mut set = KeySet::default();
        for row in &rows {
            let Some(alg) = SigningAlg::parse(&row.alg) else {
                tracing::warn!(kid = %row.kid, alg = %row.alg, "skipping a signing key of unknown algorithm");
                continue;
            };
            if set.signing.is_none() && row.retired_at.is_none() {
                let pem = keys::unseal(self.kek.as_ref(), &row.kid, &row.private_key)?;
                set.signing = Some(Arc::new(SigningKey::from_pem(&row.kid, alg, &pem)?));
            }
            set.verifying.insert(
                row.kid.clone(),
                Arc::new(VerifyingKey::from_jwk_json(&row.kid, alg, &row.public_jwk)?),
            );
        }
        if set.signing.is_none() {
            anyhow::bail!("no active signing key in the database");
        }
        self.replace(set);
        Ok(())
    }

    /// Reloads on the blocking pool.
    pub async fn reload(self: &Arc<Self>, pool: &Pool) -> Result<()> {
        let this = self.clone();
        pool.run(move |conn| this.load(conn).map_err(ServiceError::Unexpected))
            .await
    }

    /// Reloads for a token naming an unknown `kid`, unless a forced reload ran within the last second.
    pub async fn reload_for_unknown_kid(self: &Arc<Self>, pool: &Pool) -> Result<bool> {
        {
            let mut last = match self.last_forced_reload.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if last.is_some_and(|t| t.elapsed() < FORCED_RELOAD_INTERVAL) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.reload(pool).await?;
        Ok(true)
    }

    pub fn signing_key(&self) -> Result<Arc<SigningKey>> {
        self.current()
            .signing
            .clone()
            .ok_or_else(|| ServiceError::Unexpected(anyhow::anyhow!("no signing key loaded")))
    }
}

/// Rotates the signing key (of the configured algorithm) and records who did it.
pub async fn rotate(
    ctx: &super::Ctx,
    actor_id: Option<String>,
    meta: super::RequestMeta,
) -> Result<String> {
    let keys = ctx.keys.clone();
    let alg = ctx.config.signing_alg;
    ctx.pool
        .run(move |conn| {
            // The audit event commits with the key, or neither does.
            keys.rotate_recorded(conn, alg, |conn| {
                let event = super::audit::Event {
                    kind: "key_rotated",
                    reason: Some(alg.as_str()),
                    actor_id: actor_id.as_deref(),
                    ..Default::default()
                };
                super::audit::record(conn, event, &meta)
            })
            .map_err(ServiceError::Unexpected)
        })
        .await
}
