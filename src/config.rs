//! Settings, from `TOKEND_*` environment variables and an optional `tokend.toml`.
//!
//! Variables read (the file uses the same names in lower case without the prefix; the environment
//! wins over the file):
//!
//! | variable | default |
//! |---|---|
//! | `TOKEND_DATABASE_URL` | `sqlite://tokend.db` |
//! | `TOKEND_BIND` | `127.0.0.1:8080` |
//! | `TOKEND_ISSUER` | `http://` + bind |
//! | `TOKEND_ACCESS_TOKEN_TTL` | `5m` |
//! | `TOKEND_REFRESH_TOKEN_TTL` | `30d` |
//! | `TOKEND_SESSION_MAX_AGE` | `90d` |
//! | `TOKEND_REFRESH_REUSE_GRACE` | `0s` |
//! | `TOKEND_SIGNING_ALG` | `EdDSA` |
//! | `TOKEND_KEY_ENCRYPTION_KEY` | unset |
//! | `TOKEND_BOOTSTRAP_ADMIN_PASSWORD` | generated |
//! | `TOKEND_LOG`, `TOKEND_LOG_FORMAT` | `info`, `text` |
//! | `TOKEND_DB_POOL_SIZE` | `16` |
//! | `TOKEND_DB_TIMEOUT` | `5s` |
//! | `TOKEND_PURGE_RETENTION` | `7d` |
//! | `TOKEND_PURGE_INTERVAL` | `0s` (off) |
//! | `TOKEND_SIGNIN_USER_FREE`, `TOKEND_SIGNIN_USER_WINDOW` | `5`, `1h` |
//! | `TOKEND_SIGNIN_IP_FREE`, `TOKEND_SIGNIN_IP_WINDOW` | `20`, `10m` |
//! | `TOKEND_SIGNIN_MAX_DELAY` | `60s` |
//! | `TOKEND_TRUSTED_PROXIES` | none (addresses or blocks, comma-separated) |

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::keys::{KeyEncryptionKey, SigningAlg};
use crate::store::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A password given in configuration; never printed.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> SecretString {
        SecretString(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    pub issuer: String,
    /// The issuer was not configured and follows the address actually bound (port 0 included).
    pub issuer_from_bind: bool,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_max_age: Duration,
    pub refresh_reuse_grace: Duration,
    pub signing_alg: SigningAlg,
    pub key_encryption_key: Option<KeyEncryptionKey>,
    pub bootstrap_admin_password: Option<SecretString>,
    pub log: String,
    pub log_format: LogFormat,
    pub db_pool_size: u32,
    pub db_timeout: Duration,
    /// Where `GET /metrics` is served instead of the main listener (`host:port`); none: there.
    pub metrics_bind: Option<String>,
    /// SQLite's `synchronous`: `normal` (default) or `full` (docs/operations.md, durability).
    pub sqlite_synchronous: crate::store::SqliteSynchronous,
    /// How long ended sessions (revoked or expired) are kept before purge deletes them.
    pub purge_retention: Duration,
    /// How often `serve` purges by itself; zero is never (run `tokend token purge` from cron).
    pub purge_interval: Duration,
    /// How often a node re-reads the signing keys.
    pub key_reload_interval: Duration,
    /// `ttl` of the status lists, and the longest a node serves a list it built earlier.
    pub status_list_ttl: Duration,
    /// Failed sign-ins per username that are free within `signin_user_window`.
    pub signin_user_free: i64,
    pub signin_user_window: Duration,
    /// Failed sign-ins per client address that are free within `signin_ip_window`.
    pub signin_ip_free: i64,
    pub signin_ip_window: Duration,
    /// The longest a throttled name or address waits.
    pub signin_max_delay: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (empty: the TCP peer is the client).
    pub trusted_proxies: Vec<IpNet>,
}

/// An address block, `10.0.0.0/8` or a single address (`127.0.0.1`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(value: &str) -> Option<IpNet> {
        let (addr, prefix) = match value.split_once('/') {
            Some((addr, prefix)) => (addr.parse().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (value.parse().ok()?, None),
        };
        let max = match addr {
            std::net::IpAddr::V4(_) => 32,
            std::net::IpAddr::V6(_) => 128,
        };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        fn bits(ip: std::net::IpAddr) -> (u128, u32) {
            match ip {
                std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u128::from(u32::from(v4)), 32),
                    None => (u128::from(v6), 128),
                },
            }
        }
        let ((net, width), (ip, ip_width)) = (bits(self.addr), bits(ip));
        if width != ip_width {
            return false;
        }
        let host_bits = width - u32::from(self.prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            (!0u128) << host_bits
        };
        net & mask == ip & mask
    }
}

/// Every setting tokend knows, by its file name (the variable is `TOKEND_` + upper case).
const KEYS: &[&str] = &[
    "database_url",
    "bind",
    "issuer",
    "access_token_ttl",
    "refresh_token_ttl",
    "session_max_age",
    "refresh_reuse_grace",
    "signing_alg",
    "key_encryption_key",
    "bootstrap_admin_password",
    "log",
    "log_format",
    "db_pool_size",
    "db_timeout",
    "sqlite_synchronous",
    "purge_retention",
    "purge_interval",
    "signin_user_free",
    "signin_user_window",
    "signin_ip_free",
    "signin_ip_window",
    "signin_max_delay",
    "trusted_proxies",
    "metrics_bind",
    "status_list_ttl",
];

/// A configuration error: always names the variable and the value's problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Parses `30s`, `5m`, `12h`, `30d` (a bare number is seconds).
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).map(Duration::from_secs)
}

impl Config {
    /// Reads the environment and the configuration file: `path` if given (it must exist), else
    /// `tokend.toml` in the current directory if there is one.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("tokend.toml")).filter(|p| p.exists()),
        };
        let file_values = match &file {
            Some(p) => read_file(p)?,
            None => HashMap::new(),
        };
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TOKEND_"))
            .collect();
        let file_name = file.map_or_else(|| "tokend.toml".to_owned(), |p| p.display().to_string());
        Config::from_named_sources(&env, &file_values, &file_name)
    }

    /// Builds a configuration from environment-style and file-style values (environment wins).
    pub fn from_sources(
        env: &HashMap<String, String>,
        file: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        Config::from_named_sources(env, file, "tokend.toml")
    }

    /// As [`Config::from_sources`], with the file's name for error messages: every error names
    /// the variable or the file setting its value came from.
    pub fn from_named_sources(
        env: &HashMap<String, String>,
        file: &HashMap<String, String>,
        file_name: &str,
    ) -> Result<Config, ConfigError> {
        let get = |key: &str| -> Option<(String, String)> {
            let var = format!("TOKEND_{}", key.to_ascii_uppercase());
            if let Some(v) = env.get(&var) {
                return Some((var, v.clone()));
            }
            file.get(key)
                .map(|v| (format!("{key} (in {file_name})"), v.clone()))
        };
        // Where a setting's value came from, for an error about it.
        let source = |key: &str| {
            get(key).map_or_else(
                || format!("TOKEND_{}", key.to_ascii_uppercase()),
                |(n, _)| n,
            )
        };
        let duration = |key: &str, default: &str| -> Result<Duration, ConfigError> {
            match get(key) {
                None => Ok(parse_duration(default).unwrap_or_default()),
                Some((name, v)) => parse_duration(&v).ok_or_else(|| {
                    ConfigError(format!(
                        "{name}: invalid duration {v:?} (use e.g. 30s, 5m, 12h or 30d)"
                    ))
                }),
            }
        };

        let database_url = get("database_url")
            .map(|(_, v)| v)
            .unwrap_or_else(|| "sqlite://tokend.db".into());
        if Backend::of_url(&database_url).is_none() {
            return Err(ConfigError(format!(
                "{}: must start with sqlite:// or postgres://",
                source("database_url")
            )));
        }
        let bind = get("bind")
            .map(|(_, v)| v)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "{}: {bind:?} is not an address like 127.0.0.1:8080",
                source("bind")
            )));
        }
        let issuer_from_bind = get("issuer").is_none();
        let issuer = match get("issuer") {
            Some((name, v)) => {
                let v = v.trim_end_matches('/').to_owned();
                if !(v.starts_with("http://") || v.starts_with("https://"))
                    || v.contains(['?', '#'])
                {
                    return Err(ConfigError(format!(
                        "{name}: {v:?} must be an http(s) URL without query or fragment"
                    )));
                }
                v
            }
            None => format!("http://{bind}"),
        };
        let access_token_ttl = duration("access_token_ttl", "5m")?;
        let refresh_token_ttl = duration("refresh_token_ttl", "30d")?;
        let session_max_age = duration("session_max_age", "90d")?;
        let refresh_reuse_grace = duration("refresh_reuse_grace", "0s")?;
        for (key, value) in [
            ("access_token_ttl", access_token_ttl),
            ("refresh_token_ttl", refresh_token_ttl),
            ("session_max_age", session_max_age),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!(
                    "{}: must be longer than 0s",
                    source(key)
                )));
            }
        }
        let signing_alg = match get("signing_alg") {
            None => SigningAlg::EdDsa,
            Some((name, v)) => SigningAlg::parse(&v).ok_or_else(|| {
                ConfigError(format!("{name}: {v:?} is not one of EdDSA, ES256, RS256"))
            })?,
        };
        let key_encryption_key = match get("key_encryption_key") {
            None => None,
            Some((name, v)) => Some(
                KeyEncryptionKey::parse(&v).map_err(|why| ConfigError(format!("{name}: {why}")))?,
            ),
        };
        let bootstrap_admin_password = match get("bootstrap_admin_password") {
            None => None,
            Some((name, v)) => {
                let n = v.chars().count();
                if !(8..=1024).contains(&n) {
                    return Err(ConfigError(format!("{name}: must be 8 to 1024 characters")));
                }
                Some(SecretString(v))
            }
        };
        let log = get("log").map(|(_, v)| v).unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
            return Err(ConfigError(format!(
                "{}: {log:?} is not a valid tracing filter",
                source("log")
            )));
        }
        let log_format = match get("log_format") {
            None => LogFormat::Text,
            Some((_, v)) if v == "text" => LogFormat::Text,
            Some((_, v)) if v == "json" => LogFormat::Json,
            Some((name, v)) => {
                return Err(ConfigError(format!("{name}: {v:?} is not text or json")))
            }
        };
        let db_pool_size = match get("db_pool_size") {
            None => 16,
            Some((name, v)) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ConfigError(format!("{name}: {v:?} is not a number from 1 to 1000"))
                })?,
        };
        let metrics_bind = match get("metrics_bind") {
            None => None,
            Some((name, v)) => {
                if v.parse::<std::net::SocketAddr>().is_err() {
                    return Err(ConfigError(format!(
                        "{name}: {v:?} must be an IP address and port, e.g. 127.0.0.1:9090"
                    )));
                }
                Some(v)
            }
        };
        let sqlite_synchronous = match get("sqlite_synchronous") {
            None => crate::store::SqliteSynchronous::default(),
            Some((name, v)) => crate::store::SqliteSynchronous::parse(&v)
                .ok_or_else(|| ConfigError(format!("{name}: {v:?} is not one of full, normal")))?,
        };
        let db_timeout = duration("db_timeout", "5s")?;
        if db_timeout.is_zero() {
            return Err(ConfigError(format!(
                "{}: must be longer than 0s",
                source("db_timeout")
            )));
        }
        let purge_retention = duration("purge_retention", "7d")?;
        let status_list_ttl = duration("status_list_ttl", "60s")?;
        if status_list_ttl.is_zero() {
            return Err(ConfigError(format!(
                "{}: must be longer than 0s",
                source("status_list_ttl")
            )));
        }
        let purge_interval = duration("purge_interval", "0s")?;
        let count = |key: &str, default: i64| -> Result<i64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some((name, v)) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (0..=1_000_000).contains(n))
                    .ok_or_else(|| {
                        ConfigError(format!("{name}: {v:?} is not a number from 0 to 1000000"))
                    }),
            }
        };
        let signin_user_free = count("signin_user_free", 5)?;
        let signin_ip_free = count("signin_ip_free", 20)?;
        let signin_user_window = duration("signin_user_window", "1h")?;
        let signin_ip_window = duration("signin_ip_window", "10m")?;
        let signin_max_delay = duration("signin_max_delay", "60s")?;
        if signin_max_delay.is_zero() {
            return Err(ConfigError(format!(
                "{}: must be longer than 0s",
                source("signin_max_delay")
            )));
        }
        let trusted_proxies = match get("trusted_proxies") {
            None => Vec::new(),
            Some((name, v)) => v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|item| !item.is_empty())
                .map(|item| {
                    IpNet::parse(item).ok_or_else(|| {
                        ConfigError(format!(
                            "{name}: {item:?} is not an address or a block like 10.0.0.0/8"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Config {
            database_url,
            bind,
            issuer,
            issuer_from_bind,
            access_token_ttl,
            refresh_token_ttl,
            session_max_age,
            refresh_reuse_grace,
            signing_alg,
            key_encryption_key,
            bootstrap_admin_password,
            log,
            log_format,
            db_pool_size,
            db_timeout,
            sqlite_synchronous,
            metrics_bind,
            purge_retention,
            purge_interval,
            key_reload_interval: Duration::from_secs(10),
            status_list_ttl,
            signin_user_free,
            signin_user_window,
            signin_ip_free,
            signin_ip_window,
            signin_max_delay,
            trusted_proxies,
        })
    }

    /// Sets a fixed issuer (several nodes that share a database share one issuer).
    pub fn set_issuer(&mut self, issuer: &str) {
        self.issuer = issuer.trim_end_matches('/').to_owned();
        self.issuer_from_bind = false;
    }

    /// Defaults for `database_url`, as a test or an embedding program would start from.
    pub fn with_database(database_url: &str) -> Result<Config, ConfigError> {
        let env = HashMap::from([("TOKEND_DATABASE_URL".to_owned(), database_url.to_owned())]);
        Config::from_sources(&env, &HashMap::new())
    }
}

fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read ({e})", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: invalid TOML ({e})", path.display())))?;
    let mut out = HashMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            return Err(ConfigError(format!(
                "{}: unknown setting {key:?}",
                path.display()
            )));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            _ => {
                return Err(ConfigError(format!(
                    "{key} (in {}): must be a string or a number",
                    path.display()
                )))
            }
        };
        out.insert(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxy_blocks() {
        let net = IpNet::parse("10.0.0.0/8").expect("block");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.9.9.9".parse().expect("ip")));
        let one = IpNet::parse("::1").expect("address");
        assert!(one.contains("::1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.1".parse().expect("ip")));
        assert!(IpNet::parse("0.0.0.0/0")
            .expect("all")
            .contains("8.8.8.8".parse().expect("ip")));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("proxy.local").is_none());
        let env = HashMap::from([
            ("TOKEND_DATABASE_URL".to_owned(), "sqlite://x.db".to_owned()),
            (
                "TOKEND_TRUSTED_PROXIES".to_owned(),
                "10.0.0.0/8, 127.0.0.1".to_owned(),
            ),
        ]);
        assert_eq!(
            Config::from_sources(&env, &HashMap::new())
                .expect("config")
                .trusted_proxies
                .len(),
            2
        );
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_sources(&HashMap::new(), &HashMap::new()).expect("defaults");
        assert_eq!(c.database_url, "sqlite://tokend.db");
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.access_token_ttl, Duration::from_secs(300));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(c.session_max_age, Duration::from_secs(90 * 86_400));
        assert_eq!(c.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(
            c.sqlite_synchronous,
            crate::store::SqliteSynchronous::Normal
        );
        assert_eq!(c.signing_alg, SigningAlg::EdDsa);
        assert!(c.key_encryption_key.is_none());
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn durations_accept_the_documented_units() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
        for bad in ["", "5x", "m", "-5s", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases = [
            ("TOKEND_ACCESS_TOKEN_TTL", "5x"),
            ("TOKEND_REFRESH_TOKEN_TTL", "0s"),
            ("TOKEND_SESSION_MAX_AGE", "forever"),
            ("TOKEND_REFRESH_REUSE_GRACE", "1w"),
            ("TOKEND_SIGNING_ALG", "HS256"),
            ("TOKEND_KEY_ENCRYPTION_KEY", "c2hvcnQ="),
            ("TOKEND_DATABASE_URL", "mysql://x"),
            ("TOKEND_BIND", "localhost"),
            ("TOKEND_ISSUER", "ftp://x"),
            ("TOKEND_LOG_FORMAT", "xml"),
            ("TOKEND_BOOTSTRAP_ADMIN_PASSWORD", "short"),
            ("TOKEND_DB_POOL_SIZE", "0"),
            ("TOKEND_SQLITE_SYNCHRONOUS", "off"),
            ("TOKEND_METRICS_BIND", "localhost"),
        ];
        for (var, value) in cases {
            let err = Config::from_sources(&env(&[(var, value)]), &HashMap::new()).expect_err(var);
            assert!(err.to_string().starts_with(var), "{var}: {err}");
        }
    }

    #[test]
    fn a_bad_value_in_a_file_names_the_file_and_its_setting() {
        let file = env(&[("access_token_ttl", "0s"), ("bind", "nowhere")]);
        let file: HashMap<String, String> = file
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let err = Config::from_named_sources(&HashMap::new(), &file, "/etc/tokend/bad2.toml")
            .expect_err("0s");
        let err = err.to_string();
        assert!(
            err.starts_with("access_token_ttl (in /etc/tokend/bad2.toml)")
                || err.starts_with("bind (in /etc/tokend/bad2.toml)"),
            "{err}"
        );
        assert!(!err.contains("TOKEND_"), "{err}");
        let only_ttl: HashMap<String, String> =
            [("access_token_ttl".to_owned(), "0s".to_owned())].into();
        let err = Config::from_named_sources(&HashMap::new(), &only_ttl, "bad2.toml")
            .expect_err("0s")
            .to_string();
        assert_eq!(
            err,
            "access_token_ttl (in bad2.toml): must be longer than 0s"
        );
    }

    #[test]
    fn environment_wins_over_the_file() {
        let file = env(&[("access_token_ttl", "10m"), ("refresh_reuse_grace", "5s")]);
        let c = Config::from_sources(&env(&[("TOKEND_ACCESS_TOKEN_TTL", "1m")]), &file)
            .expect("config");
        assert_eq!(c.access_token_ttl, Duration::from_secs(60));
        assert_eq!(c.refresh_reuse_grace, Duration::from_secs(5));
    }

    #[test]
    fn issuer_follows_bind_unless_set() {
        let c = Config::from_sources(&env(&[("TOKEND_BIND", "0.0.0.0:9000")]), &HashMap::new())
            .expect("config");
        assert_eq!(c.issuer, "http://0.0.0.0:9000");
        let c = Config::from_sources(
            &env(&[("TOKEND_ISSUER", "https://auth.example.com/")]),
            &HashMap::new(),
        )
        .expect("config");
        assert_eq!(c.issuer, "https://auth.example.com");
    }
}
