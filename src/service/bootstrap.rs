//! Start-up: connect, migrate, make sure the server secrets (the refresh key, the CSRF key) and a
//! signing key exist, and on an empty database create the first admin and the `tokend-cli` client.

use std::sync::Arc;

use anyhow::Context as _;

use super::clients::{self, NewClient};
use super::grant_type::GrantType;
use super::keys::KeyManager;
use super::{users, Ctx, ServerSecrets, ServiceError};
use crate::config::Config;
use crate::crypto::keys::KeyEncryptionKey;
use crate::crypto::password::{self, PasswordHasher};
use crate::crypto::{b64url, random_bytes, HmacKey};
use crate::store::{self, Conn, Pool, PoolOptions};

/// The `server_secrets` rows of the HMAC keys, one per purpose.
pub const REFRESH_KEY: &str = "refresh_key";
pub const CSRF_KEY: &str = "csrf_key";
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
    /// configured with another `TOKEND_SIGNING_ALG` than the servers), does not sign, and does
    /// not load the server secrets (it tags and checks no refresh token or form), so it runs
    /// without the key-encryption key that seals them.
    Admin,
}

/// Opens the database and migrates it. With a key-encryption key, proves it opens what is sealed.
/// For `serve`, loads (making them on first use) the server secrets and the signing keys; an admin
/// command loads neither, so only `keys rotate` needs the key-encryption key once they are sealed.
pub fn open(config: Config, purpose: Purpose) -> anyhow::Result<Ctx> {
    crate::store::check_database(&config.database_url, purpose == Purpose::Serve)?;
    let pool = Pool::new(
        &config.database_url,
        &PoolOptions {
            max_size: config.db_pool_size,
            connect_timeout: config.db_timeout,
            sqlite_synchronous: config.sqlite_synchronous,
        },
    )?;
    let applied = pool.migrate()?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied database migrations");
    }
    let mut conn = pool.get().context("connecting to the database")?;
    let kek = config.key_encryption_key.as_ref();
    if let Some(kek) = kek {
        super::keys::check_key_encryption_key(&mut conn, kek)?;
    }
    // A retired key verifies for as long as a token it signed can live: an access token, or a
    // status list (which stays usable for two `ttl`s).
    let keys = KeyManager::new(
        config.key_encryption_key.clone(),
        config.access_token_ttl.max(2 * config.status_list_ttl),
    );
    let secrets = match purpose {
        Purpose::Serve => {
            // The signing keys first: a start that cannot open them (sealed, and no key given)
            // stops before it makes any server secret, which it would have made in plain.
            keys.ensure_active(&mut conn, config.signing_alg)
                .context("loading the signing keys")?;
            let secrets = ServerSecrets {
                refresh_key: server_key(&mut conn, kek, REFRESH_KEY)?,
                csrf_key: server_key(&mut conn, kek, CSRF_KEY)?,
            };
            Some(Arc::new(secrets))
        }
        Purpose::Admin => None,
    };
    drop(conn);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(Ctx {
        pool,
        config: Arc::new(config),
        keys: Arc::new(keys),
        hasher: PasswordHasher::new(cores)?,
        secrets,
        origins: Arc::default(),
        status: Arc::default(),
    })
}

/// The HMAC key stored as `name`, made on first use. Sealed with the key-encryption key when one
/// is set (a key stored in the clear is sealed the first time a node starts with one): with the
/// refresh key, a database backup would let anyone mint refresh tokens of every live session.
fn server_key(
    conn: &mut Conn,
    kek: Option<&KeyEncryptionKey>,
    name: &str,
) -> anyhow::Result<HmacKey> {
    let fresh = HmacKey::generate().to_b64url();
    let initial = match kek {
        Some(kek) => kek.seal(name, &fresh)?,
        None => fresh,
    };
    // Every node that races here ends up with the one value that was inserted first.
    let stored = conn
        .write(|conn| store::keys::secret_get_or_insert(conn, name, &initial, store::now()))
        .with_context(|| format!("loading the server secret {name}"))?;
    let plain = crate::crypto::keys::unseal(kek, name, &stored)?;
    let key = HmacKey::from_b64url(&plain)
        .ok_or_else(|| anyhow::anyhow!("the server secret {name} is not a 256-bit key"))?;
    if let (Some(kek), false) = (kek, stored.starts_with("enc:")) {
        let sealed = kek.seal(name, &plain)?;
        conn.write(|conn| store::keys::secret_set(conn, name, &sealed))
            .with_context(|| format!("sealing the server secret {name}"))?;
    }
    Ok(key)
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
                    grant_types: vec![
                        GrantType::Password.as_str().to_owned(),
                        GrantType::RefreshToken.as_str().to_owned(),
                    ],
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
