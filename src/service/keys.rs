//! The signing keys a node holds in memory, loaded from the database every node shares.
//! A node reloads them periodically and when a token names a `kid` it does not know yet.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{chrono_duration, Result, ServiceError};
use crate::crypto::jwt::LEEWAY_SECONDS;
use crate::crypto::keys::{self, KeyEncryptionKey, KeySet, SigningAlg, SigningKey, VerifyingKey};
use crate::store::models::SigningKeyRow;
use crate::store::{self, Conn, Pool};

/// One `kid` forces a reload at most this often.
const PER_KID_INTERVAL: Duration = Duration::from_secs(1);
/// Forced reloads, whatever their `kid`s, start at least this far apart (at most 50 a second):
/// a stream of random `kid`s costs the database that much and no more.
const RELOAD_GAP: Duration = Duration::from_millis(20);
/// How many `kid`s the per-kid budget remembers; past that, the stalest are forgotten.
const KIDS_REMEMBERED: usize = 1024;

pub struct KeyManager {
    current: RwLock<Arc<KeySet>>,
    kek: Option<KeyEncryptionKey>,
    /// How long a retired key keeps verifying (and stays in the JWKS): the longest anything it
    /// signed can be used (an access token, a status list), plus leeway.
    verify_window: Duration,
    /// When each recently seen unknown `kid` last forced a reload.
    unknown_kids: Mutex<std::collections::HashMap<String, Instant>>,
    /// When the latest forced reload started; held across the reload, so reloads never overlap
    /// and a request that waited for one started after it arrived needs none of its own.
    last_forced_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyManager {
    /// `longest_use`: the longest a token signed by a key can be used.
    pub fn new(kek: Option<KeyEncryptionKey>, longest_use: Duration) -> KeyManager {
        KeyManager {
            current: RwLock::new(Arc::new(KeySet::default())),
            kek,
            verify_window: longest_use + Duration::from_secs(LEEWAY_SECONDS + 60),
            unknown_kids: Mutex::default(),
            last_forced_reload: tokio::sync::Mutex::new(None),
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
        match &self.kek {
            // Prove the key-encryption key opens what is already sealed: a new key sealed with
            // the wrong one would be unusable by every node that has the right one.
            Some(kek) => check_key_encryption_key(conn, kek)?,
            // Once anything is sealed, the deployment uses a key-encryption key: a new signing
            // key in plain text would quietly undo that.
            None => match sealed_sample(conn)? {
                Some(Sealed::SigningKey(..)) => {
                    return Err(anyhow::anyhow!(
                        "the signing keys are encrypted at rest: set TOKEND_KEY_ENCRYPTION_KEY before making a new one"
                    )
                    .into())
                }
                Some(Sealed::ServerSecret(name, _)) => {
                    return Err(anyhow::anyhow!(
                        "the server secret {name} is encrypted at rest: set TOKEND_KEY_ENCRYPTION_KEY before making a new signing key"
                    )
                    .into())
                }
                None => {}
            },
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

    /// Makes sure the key set was read after this call began, for a token naming `kid`, which
    /// this node does not know. `false` (nothing read) when `kid` already forced a reload within
    /// the last second. Otherwise it waits for a reload that starts after it arrived: its own,
    /// at least [`RELOAD_GAP`] after the previous one, or one a concurrent request started
    /// meanwhile. So random `kid`s cost at most 50 reads a second, and cannot delay a real
    /// `kid` (right after another node rotated) by more than one gap and one read.
    pub async fn reload_for_unknown_kid(self: &Arc<Self>, pool: &Pool, kid: &str) -> Result<bool> {
        let arrived = Instant::now();
        if !self.kid_may_reload(kid, arrived) {
            return Ok(false);
        }
        let mut last = self.last_forced_reload.lock().await;
        if last.is_some_and(|started| started >= arrived) {
            return Ok(true);
        }
        if let Some(previous) = *last {
            tokio::time::sleep((previous + RELOAD_GAP).saturating_duration_since(Instant::now()))
                .await;
        }
        *last = Some(Instant::now());
        self.reload(pool).await?;
        Ok(true)
    }

    /// The per-`kid` budget: once a second for each, over a bounded memory of `kid`s.
    fn kid_may_reload(&self, kid: &str, now: Instant) -> bool {
        let mut kids = match self.unknown_kids.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if kids
            .get(kid)
            .is_some_and(|at| now.duration_since(*at) < PER_KID_INTERVAL)
        {
            return false;
        }
        if kids.len() >= KIDS_REMEMBERED {
            kids.retain(|_, at| now.duration_since(*at) < PER_KID_INTERVAL);
            if kids.len() >= KIDS_REMEMBERED {
                kids.clear();
            }
        }
        kids.insert(kid.chars().take(128).collect(), now);
        true
    }

    pub fn signing_key(&self) -> Result<Arc<SigningKey>> {
        self.current()
            .signing
            .clone()
            .ok_or_else(|| ServiceError::Unexpected(anyhow::anyhow!("no signing key loaded")))
    }
}

/// Something sealed with the key-encryption key, with the name it is bound to and its stored form.
pub(crate) enum Sealed {
    SigningKey(String, String),
    ServerSecret(String, String),
}

/// A sealed signing key, or else a sealed server secret; `None` when nothing is sealed.
pub(crate) fn sealed_sample(conn: &mut Conn) -> store::Result<Option<Sealed>> {
    if let Some(key) = store::keys::all(conn)?
        .into_iter()
        .find(|k| keys::is_sealed(&k.private_key))
    {
        return Ok(Some(Sealed::SigningKey(key.kid, key.private_key)));
    }
    // The refresh key first: it is the secret that matters, and the one messages should name.
    Ok(store::keys::secrets(conn)?
        .into_iter()
        .filter(|(_, value)| keys::is_sealed(value))
        .min_by_key(|(name, _)| name != super::bootstrap::REFRESH_KEY)
        .map(|(name, value)| Sealed::ServerSecret(name, value)))
}

/// Proves a configured key-encryption key opens what is already sealed, before anything is
/// sealed with it or anything sealed is trusted to it: a key sealed under a mistyped one would be
/// unreadable by every node that has the right one. Nothing sealed yet: any key will do.
pub(crate) fn check_key_encryption_key(
    conn: &mut Conn,
    kek: &KeyEncryptionKey,
) -> anyhow::Result<()> {
    match sealed_sample(conn).context("reading the sealed keys")? {
        Some(Sealed::SigningKey(name, stored) | Sealed::ServerSecret(name, stored)) => {
            keys::unseal(Some(kek), &name, &stored).map(drop)
        }
        None => Ok(()),
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
