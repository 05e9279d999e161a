//! Start-up: connect, migrate, make sure the server secrets and a signing key exist, and on an
//! empty database create the first admin and the `tokend-cli` client.

use std::sync::Arc;

use anyhow::Context as _;

use super::clients::{self, NewClient};
use super::keys::KeyManager;
use super::{users, Ctx, ServiceError};
use crate::config::Config;
use crate::crypto::password::{self, PasswordHasher};
use crate::crypto::{b64url, random_bytes};
use crate::store::{self, Pool, PoolOptions};

const SUCCESSOR_KEY: &str = "refresh_successor_key";
const BOOTSTRAP_MARKER: &str = "bootstrapped";
pub const CLI_CLIENT_ID: &str = "tokend-cli";
pub const ADMIN_USERNAME: &str = "admin";

/// What the first start on an empty database created.
pub struct Bootstrapped {
    /// The admin password when tokend generated it (shown once); `None` when it was configured.
    pub generated_admin_password: Option<String>,
}

impl std::fmt::Debug for Bootstrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bootstrapped")
    }
}

/// What a process opens the database for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A server: makes sure an active signing key of the configured algorithm exists, and loads it.
    Serve,
    /// An admin command: never creates or rotates a key implicitly (an operator's shell may be
    /// configured with another `TOKEND_SIGNING_ALG` than the servers), and does not sign.
    Admin,
}

/// Opens the database and migrates it; loads the server secrets, and for `serve` the signing keys.
pub fn open(config: Config, purpose: Purpose) -> anyhow::Result<Ctx> {
    let pool = Pool::new(
        &config.database_url,
        &PoolOptions {
            max_size: config.db_pool_size,
            connect_timeout: config.db_timeout,
        },
    )?;
    let applied = pool.migrate()?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied database migrations");
    }
    let mut conn = pool.get().context("connecting to the database")?;
    // The key refresh-token successors are derived with. Sealed like the signing keys when a
    // key-encryption key is configured: with it, a database backup and an old refresh token would
    // give the current one.
    let kek = config.key_encryption_key.as_ref();
    let fresh = b64url(&random_bytes::<32>());
    let initial = match kek {
        Some(kek) => kek.seal(SUCCESSOR_KEY, &fresh)?,
        None => fresh,
    };
    let stored = conn
        .write(|conn| {
            store::keys::secret_get_or_insert(conn, SUCCESSOR_KEY, &initial, store::now())
        })
        .context("loading the server secrets")?;
    let successor_key = crate::crypto::keys::unseal(kek, SUCCESSOR_KEY, &stored)?;
    if let (Some(kek), false) = (kek, stored.starts_with("enc:")) {
        let sealed = kek.seal(SUCCESSOR_KEY, &successor_key)?;
        conn.write(|conn| store::keys::secret_set(conn, SUCCESSOR_KEY, &sealed))
            .context("sealing the server secrets")?;
    }
    let keys = KeyManager::new(config.key_encryption_key.clone(), config.access_token_ttl);
    if purpose == Purpose::Serve {
        keys.ensure_active(&mut conn, config.signing_alg)
            .context("loading the signing keys")?;
    }
    drop(conn);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(Ctx {
        pool,
        config: Arc::new(config),
        keys: Arc::new(keys),
        hasher: PasswordHasher::new(cores)?,
        successor_key: Arc::from(successor_key.into_bytes()),
        origins: Arc::default(),
    })
}

/// On the first start of a database, creates the admin user and the public `tokend-cli` client.
/// A marker row makes this happen once per database, whichever node or command gets there first.
pub fn seed(ctx: &Ctx) -> anyhow::Result<Option<Bootstrapped>> {
    let mut conn = ctx.pool.get()?;
    let (admin_password, generated) = match &ctx.config.bootstrap_admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (b64url(&random_bytes::<18>()), true),
    };
    let created = conn.write(|conn| {
        if !store::keys::secret_insert_if_absent(conn, BOOTSTRAP_MARKER, "done", store::now())? {
            return Ok(false);
        }
        if store::users::find_by_username(conn, ADMIN_USERNAME)?.is_none() {
            let hash = password::hash_blocking(&admin_password)?;
            users::insert(conn, ADMIN_USERNAME, hash, true).map_err(to_store)?;
        }
        if store::clients::find(conn, CLI_CLIENT_ID)?.is_none() {
            clients::create(
                conn,
                NewClient {
                    client_id: Some(CLI_CLIENT_ID.to_owned()),
                    name: "tokend command line and first-party apps".to_owned(),
                    public: true,
                    grant_types: vec!["password".to_owned(), "refresh_token".to_owned()],
                    scopes: vec!["account".to_owned(), "admin".to_owned()],
                    ..Default::default()
                },
            )
            .map_err(to_store)?;
        }
        Ok(true)
    })?;
    Ok(created.then(|| Bootstrapped {
        generated_admin_password: generated.then_some(admin_password),
    }))
}

fn to_store(err: ServiceError) -> store::StoreError {
    match err {
        ServiceError::Unavailable(e) => store::StoreError::Unavailable(e),
        other => store::StoreError::Unexpected(anyhow::anyhow!("{other}")),
    }
}
