//! When the database cannot be had, every endpoint that needs it answers 503
//! `temporarily_unavailable` (never 500), nothing is half written, and everything works again as
//! soon as it comes back — the refresh token presented during the outage included.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

/// Without its database, every endpoint that needs it answers 503 `temporarily_unavailable`
/// with `Retry-After` (never 500), and `/readyz` says so too.
async fn assert_everything_unavailable(app: &TestApp, t: &Tokens, rs: &str, secret: &str) {
    let answers = [
        ("refresh", app.refresh(t.refresh()).await),
        ("bearer", app.me(&t.access).await),
        ("sign-in", app.password_grant("admin", ADMIN_PASSWORD).await),
        ("introspection", app.introspect(rs, secret, &t.access).await),
        (
            "revocation",
            app.revoke(&[("token", t.access.as_str()), ("client_id", CLI)])
                .await,
        ),
    ];
    for (what, response) in answers {
        assert_eq!(response.headers()["retry-after"], "1", "{what}");
        assert_error(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
    }
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn an_unavailable_database_gives_503_and_recovery_needs_no_restart() {
    let app = spawn_app_with(|c| {
        c.db_pool_size = 2;
        c.db_timeout = Duration::from_millis(500);
    })
    .await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();

    // Take every connection: to tokend this is what an unreachable database looks like (the pool
    // cannot hand out a connection within its timeout).
    let hold = app.hold_all_connections().await;

    assert_everything_unavailable(&app, &t, &rs, &secret).await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );

    // The database comes back.
    drop(hold);
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
    // Nothing was half written: the refresh token presented during the outage was not used up.
    let session = app.session(&sid).await;
    assert_eq!(session.refresh_generation, 0);
    assert!(session.revoked_at.is_none());
    let next = tokens(app.refresh(t.refresh()).await).await;
    assert_eq!(app.me(&next.access).await.status(), StatusCode::OK);
}

/// Makes files unwritable (immutable even for root, where `chattr` works; read-only otherwise) and
/// writable again when dropped.
struct Unwritable(Vec<std::path::PathBuf>);

impl Unwritable {
    fn new(paths: Vec<std::path::PathBuf>) -> Unwritable {
        for p in &paths {
            let immutable = std::process::Command::new("chattr")
                .arg("+i")
                .arg(p)
                .status()
                .is_ok_and(|s| s.success());
            if !immutable {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).expect("chmod");
            }
        }
        Unwritable(paths)
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(p)
                .status();
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
        }
    }
}

#[tokio::test]
async fn an_unwritable_sqlite_file_gives_503_and_nothing_half_written() {
    let app = spawn_app().await;
    let Some(path) = app
        .db
        .url
        .strip_prefix("sqlite://")
        .map(std::path::PathBuf::from)
    else {
        return; // The PostgreSQL run has its own outage test below.
    };
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();
    // Not the -shm file: SQLite maps it into memory, and a mapping it cannot grow is a SIGBUS.
    let files: Vec<_> = ["", "-wal"]
        .iter()
        .map(|s| std::path::PathBuf::from(format!("{}{s}", path.display())))
        .filter(|p| p.exists())
        .collect();
    {
        let _guard = Unwritable::new(files);
        let refresh = app.refresh(t.refresh()).await;
        assert_error(
            refresh,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
        let login = app.password_grant("admin", ADMIN_PASSWORD).await;
        assert_error(
            login,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
        let revoke = app
            .revoke(&[("token", t.refresh()), ("client_id", CLI)])
            .await;
        assert_error(
            revoke,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
    }
    // Writable again: no restart, and the token presented during the outage was not used up.
    let session = app.session(&sid).await;
    assert_eq!(session.refresh_generation, 0);
    assert!(session.revoked_at.is_none());
    let next = tokens(app.refresh(t.refresh()).await).await;
    assert_eq!(app.me(&next.access).await.status(), StatusCode::OK);
}

/// A PostgreSQL server this test owns, so it can stop and start it.
struct OwnedPostgres {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl OwnedPostgres {
    fn new() -> OwnedPostgres {
        let versions = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql");
        let bin = versions
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_ctl").exists())
            .expect("pg_ctl");
        let dir = std::env::temp_dir().join(format!("tokend-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        // initdb refuses to run as root: run the server as the postgres user then.
        let as_postgres_user = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_postgres_user {
            let ok = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(ok.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let pg = OwnedPostgres {
            dir,
            bin,
            port,
            as_postgres_user,
        };
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf8"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.start();
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let status = if self.as_postgres_user {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            std::process::Command::new(&program).args(args).output()
        }
        .expect("run a PostgreSQL tool");
        assert!(
            status.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    fn start(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf8"),
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf8"),
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnedPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let program = self.bin.join("pg_ctl");
        let args = [
            "-D",
            data.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "stop",
        ];
        let _ = if self.as_postgres_user {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            std::process::Command::new(&program).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_postgresql_outage_gives_503_and_tokend_recovers_when_it_returns() {
    // This test runs its own PostgreSQL server; it belongs to the PostgreSQL run of the suite.
    if std::env::var("TOKEND_TEST_DATABASE_URL").map_or(true, |v| v.is_empty()) {
        return;
    }
    let pg = tokio::task::spawn_blocking(OwnedPostgres::new)
        .await
        .expect("start PostgreSQL");
    let app = spawn_on(
        std::sync::Arc::new(crate::helpers::TestDb::external(&pg.url())),
        |c| {
            c.db_pool_size = 4;
            c.db_timeout = Duration::from_secs(1);
        },
    )
    .await;
    let (rs, secret) = app.confidential_client(&["read"]).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let sid = claims(&t.access)["sid"].as_str().expect("sid").to_owned();

    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .expect("stop");
    assert_everything_unavailable(&app, &t, &rs, &secret).await;

    let pg = tokio::task::spawn_blocking(move || {
        pg.start();
        pg
    })
    .await
    .expect("start");
    let mut ready = false;
    for _ in 0..60 {
        if app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            == StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "tokend recovers by itself when the database returns");
    assert_eq!(
        app.session(&sid).await.refresh_generation,
        0,
        "nothing was half written during the outage"
    );
    let next = tokens(app.refresh(t.refresh()).await).await;
    assert_eq!(app.me(&next.access).await.status(), StatusCode::OK);
    drop(app);
    drop(pg);
}
