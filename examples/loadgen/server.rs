//! The server under load: a fresh database (a SQLite file in a temp dir, or a PostgreSQL database
//! created for the run and dropped after it), and tokend itself in a child process (this program
//! re-executed with the hidden `serve` argument), so its peak RSS and CPU time are its own.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::Connection as _;

pub const ADMIN_PASSWORD: &str = "loadgen-admin-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database that lives as long as this value.
pub struct Database {
    pub url: String,
    dir: Option<PathBuf>,
    pg: Option<(String, String)>,
}

impl Database {
    pub fn create(backend: Backend, pg_admin: &str) -> anyhow::Result<Database> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir()
                    .join(format!("tokend-loadgen-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)?;
                Ok(Database {
                    url: format!("sqlite://{}", dir.join("tokend.db").display()),
                    dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let name = format!("tokend_loadgen_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(pg_admin)
                    .map_err(|e| anyhow::anyhow!("reaching PostgreSQL at {pg_admin}: {e}"))?;
                conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
                let base = &pg_admin[..pg_admin
                    .rfind('/')
                    .ok_or_else(|| anyhow::anyhow!("the PostgreSQL URL names no database"))?];
                Ok(Database {
                    url: format!("{base}/{name}"),
                    dir: None,
                    pg: Some((pg_admin.to_owned(), name)),
                })
            }
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// tokend running in a child process on a loopback port.
pub struct Server {
    child: Option<Child>,
    pub pid: Option<u32>,
    pub base: String,
}

impl Server {
    /// Starts `current_exe() serve` on `url`, with `log` as its log filter (its log goes to a file
    /// beside the database, as a production log would go to a file or journald).
    /// `settings`: extra `TOKEND_*` variables for the server (`--server-env`).
    pub fn spawn(
        url: &str,
        log: &str,
        log_file: PathBuf,
        settings: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let exe = std::env::current_exe()?;
        let log_out = std::fs::File::create(&log_file)?;
        let mut command = Command::new(exe);
        command.arg("serve");
        // Only what this run sets: no TOKEND_* of the caller's shell leaks in.
        for (key, _) in std::env::vars() {
            if key.starts_with("TOKEND_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .env("TOKEND_DATABASE_URL", url)
            .env("TOKEND_BIND", "127.0.0.1:0")
            .env("TOKEND_LOG", log)
            .env("TOKEND_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_out))
            .spawn()?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(port) = line.trim().strip_prefix("LISTENING ") else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            anyhow::bail!("the server did not start: {line:?}\n{log}");
        };
        Ok(Server {
            base: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            pid: Some(pid),
        })
    }

    /// A server someone else runs (`--target`); its RSS and CPU are read only with its pid.
    pub fn external(base: &str, pid: Option<u32>) -> Server {
        Server {
            child: None,
            pid,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Forgets the peak RSS so far (seeding may have run Argon2): `VmHWM` restarts from now.
    pub fn reset_peak(&self) {
        if let Some(pid) = self.pid {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    }

    /// Peak RSS since the last reset, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        status_kib(self.pid?, "VmHWM:").map(|k| k as f64 / 1024.0)
    }

    /// CPU time (user + system) the server used so far.
    pub fn cpu(&self) -> Option<Duration> {
        self.pid
            .and_then(|pid| cpu_of(&format!("/proc/{pid}/stat")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a `/proc/…/stat` file (clock ticks of 10 ms, Linux's USER_HZ).
pub fn cpu_of(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The hidden `serve` command: tokend's own start-up (src/main.rs) on the configuration the
/// parent put in the environment, announcing its port on stdout.
pub fn serve() -> anyhow::Result<()> {
    let config = tokend::config::Config::load(None)?;
    tokend::telemetry::init(&config.log, config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = tokend::startup::Application::build(config).await?;
        println!("LISTENING {}", app.port());
        app.run_until_stopped().await?;
        Ok(())
    })
}

/// `--target` must be a loopback URL: this program floods what it is pointed at.
pub fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--target must be an http:// URL"))?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        anyhow::bail!(
            "--target {url}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed"
        );
    }
    Ok(())
}
