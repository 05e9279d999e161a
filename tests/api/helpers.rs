//! The test harness: every test gets its own database (a fresh SQLite file, or a fresh PostgreSQL
//! database when `TOKEND_TEST_DATABASE_URL` is set) and its own server on a random port.

use std::path::PathBuf;
use std::sync::Once;

use diesel::connection::SimpleConnection as _;
use diesel::Connection as _;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokend::config::{Config, SecretString};
use tokend::service::clients::{self, NewClient};
use tokend::service::{users, Ctx, RequestMeta};
use tokend::startup::Application;
use tokend::store::{self, models};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const CLI: &str = "tokend-cli";

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// A database someone else owns (and removes).
    None,
    Sqlite(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDb {
    /// A database at `url` that this harness neither creates nor drops.
    pub fn external(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            cleanup: Cleanup::None,
        }
    }

    pub fn new() -> TestDb {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match std::env::var("TOKEND_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                assert!(
                    admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://"),
                    "TOKEND_TEST_DATABASE_URL must be a postgres:// URL"
                );
                let name = format!("tokend_test_{id}");
                let mut conn = diesel::PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot reach TOKEND_TEST_DATABASE_URL: {e}"));
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let base = match admin_url.rfind('/') {
                    Some(i) if i > "postgres://".len() => &admin_url[..i],
                    _ => admin_url.as_str(),
                };
                TestDb {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Postgres {
                        admin_url: admin_url.clone(),
                        name,
                    },
                }
            }
            _ => {
                // A directory per test: once it is removed, a pooled connection that reconnects
                // cannot re-create the file (SQLite does not create directories).
                let dir = std::env::temp_dir().join(format!("tokend-test-{id}"));
                std::fs::create_dir_all(&dir).expect("test directory");
                let path = dir.join("tokend.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::Sqlite(dir),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut conn) = diesel::PgConnection::establish(admin_url) {
                    let _ =
                        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

/// A test configuration: port 0, a known admin password, quiet logs.
pub fn test_config(db_url: &str) -> Config {
    let mut config = Config::with_database(db_url).expect("config");
    config.bind = "127.0.0.1:0".to_owned();
    config.bootstrap_admin_password = Some(SecretString::new(ADMIN_PASSWORD.to_owned()));
    config.db_pool_size = 8;
    config
}

static LOGS: Once = Once::new();

fn init_logs() {
    LOGS.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            tokend::telemetry::init(&filter, tokend::config::LogFormat::Text);
        }
    });
}

pub struct TestApp {
    pub address: String,
    /// The separate metrics listener's port, when `metrics_bind` is set.
    pub metrics_port: Option<u16>,
    pub http: reqwest::Client,
    pub ctx: Ctx,
    pub db: std::sync::Arc<TestDb>,
}

/// A token pair from a successful grant.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub body: Value,
}

impl Tokens {
    pub fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh token")
    }

    /// The session the access token belongs to (its `sid` claim).
    pub fn sid(&self) -> String {
        claims(&self.access)["sid"]
            .as_str()
            .expect("sid")
            .to_owned()
    }
}

/// How many times a race test releases its requests together: `TOKEND_RACE_TRIALS`, 5 unless
/// set (CI keeps the default; run with 100 locally to hunt for a rare interleaving).
pub fn race_trials() -> usize {
    std::env::var("TOKEND_RACE_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// A refresh token's body (session id ‖ generation ‖ tag) changed by `edit`, re-encoded.
pub fn tampered(token: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut body = engine
        .decode(token.strip_prefix("tokend_rt_").expect("a refresh token"))
        .expect("base64url");
    edit(&mut body);
    format!("tokend_rt_{}", engine.encode(body))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns a server with a configuration changed by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let db = std::sync::Arc::new(TestDb::new());
    spawn_on(db, tweak).await
}

/// Spawns another server (another "node") on an existing test database.
pub async fn spawn_on(db: std::sync::Arc<TestDb>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let mut config = test_config(&db.url);
    tweak(&mut config);
    let app = Application::build(config)
        .await
        .expect("build the application");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let ctx = app.ctx().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_port,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        ctx,
        db,
    }
}

pub async fn json(response: Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
}

/// Asserts an OAuth/JSON error: status, `error` code, and a human description.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    let got = response.status();
    let body = json(response).await;
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "error_description in {body}"
    );
    body
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs form parameters to the token endpoint.
    pub async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub async fn password_grant(&self, username: &str, password: &str) -> Response {
        self.token(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    /// Signs in and returns the token pair (panics unless it worked).
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let response = self.password_grant(username, password).await;
        tokens(response).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    pub async fn revoke(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/oauth/revoke"))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub async fn introspect(&self, client_id: &str, secret: &str, token: &str) -> Response {
        self.http
            .post(self.url("/oauth/introspect"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("request")
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.http
            .get(self.url("/api/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// POST with no body (the account and admin actions that take none).
    pub async fn post(&self, path: &str, token: &str) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Signs in with a device name and a user agent, as an app on a device would.
    pub async fn login_on(&self, username: &str, password: &str, device: &str) -> Tokens {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .header("user-agent", format!("{device} agent/1.0"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", CLI),
                ("username", username),
                ("password", password),
                ("device_name", device),
            ])
            .send()
            .await
            .expect("request");
        tokens(response).await
    }

    /// Creates a personal access token; returns the 201 body.
    pub async fn create_pat(&self, token: &str, name: &str, scopes: &[&str]) -> Value {
        let response = self
            .post_json(
                "/api/tokens",
                token,
                serde_json::json!({ "name": name, "scopes": scopes }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        json(response).await
    }

    pub async fn create_user(&self, username: &str, password: &str, admin: bool) -> String {
        users::create(
            &self.ctx,
            username.into(),
            password.into(),
            admin,
            None,
            RequestMeta::default(),
        )
        .await
        .expect("create user")
        .id
    }

    /// Registers a client directly; returns (client_id, secret).
    pub async fn create_client(&self, new: NewClient) -> (String, Option<String>) {
        let created = self
            .ctx
            .pool
            .run(move |conn| {
                conn.write(|conn| Ok(clients::create(conn, new)))
                    .map_err(tokend::service::ServiceError::from)
            })
            .await
            .expect("database")
            .expect("create client");
        (created.client.client_id, created.client_secret)
    }

    /// A confidential client with the client_credentials grant; returns (client_id, secret).
    pub async fn confidential_client(&self, scopes: &[&str]) -> (String, String) {
        let (id, secret) = self
            .create_client(NewClient {
                name: "resource server".into(),
                grant_types: vec!["client_credentials".into()],
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await;
        (id, secret.expect("secret"))
    }

    /// Runs a closure on a database connection (to assert what the database holds).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut store::Conn) -> store::Result<T> + Send + 'static,
    ) -> T {
        self.ctx.pool.run(f).await.expect("database query")
    }

    pub async fn session(&self, id: &str) -> models::Session {
        let id = id.to_owned();
        self.db(move |c| store::sessions::find(c, &id))
            .await
            .expect("session row")
    }

    /// The generation a refresh token names and the session row that holds its chain (the token
    /// itself is stored nowhere).
    pub async fn refresh_session(&self, token: &str) -> (i64, models::Session) {
        let presented = tokend::crypto::refresh::parse(token).expect("a v2 refresh token");
        (
            presented.generation,
            self.session(&presented.session_id).await,
        )
    }

    /// Rows in every table of the schema, by table name (to show what an operation grew).
    pub async fn row_counts(&self) -> std::collections::BTreeMap<String, i64> {
        self.row_counts_of(&tokend::store::TABLES).await
    }

    /// Rows in these tables, by table name.
    pub async fn row_counts_of(
        &self,
        tables: &[&'static str],
    ) -> std::collections::BTreeMap<String, i64> {
        let tables = tables.to_vec();
        self.db(move |c| {
            let mut counts = std::collections::BTreeMap::new();
            for table in tables {
                #[derive(diesel::QueryableByName)]
                struct N {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                use diesel::RunQueryDsl as _;
                let n: N = tokend::db!(c, c => diesel::sql_query(format!(
                    "SELECT COUNT(*) AS n FROM {table}"
                ))
                .get_result(c))?;
                counts.insert(table.to_owned(), n.n);
            }
            Ok(counts)
        })
        .await
    }

    pub async fn audit(&self, kind: &str) -> Vec<models::AuditEvent> {
        let filter = store::audit::Filter {
            kind: Some(kind.into()),
            limit: 1000,
            ..Default::default()
        };
        self.db(move |c| store::audit::list(c, &filter)).await
    }
}

/// The claims of a JWT, unverified (for tests to read `sid`, `jti`, …).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Reads a successful token response.
pub async fn tokens(response: Response) -> Tokens {
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::OK, "token response {body}");
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
        body,
    }
}

/// Runs the tokend binary against a test database with extra environment variables; returns
/// (exit code, stdout, stderr). Tests call it through [`TestApp::cli`].
pub fn run_cli_env(
    db_url: &str,
    args: &[&str],
    stdin: Option<&str>,
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOKEND_DATABASE_URL", db_url)
        .env("TOKEND_LOG", "warn")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tokend");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for tokend");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl TestApp {
    /// Runs the tokend binary against this app's database, off the async runtime; returns
    /// (exit code, stdout, stderr).
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        self.cli_env(args, stdin, &[]).await
    }

    /// [`cli`](Self::cli) with extra environment variables.
    pub async fn cli_env(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        envs: &[(&str, &str)],
    ) -> (i32, String, String) {
        let db = self.db.url.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.map(str::to_owned);
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let envs: Vec<(&str, &str)> =
                envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run_cli_env(&db, &args, stdin.as_deref(), &envs)
        })
        .await
        .expect("the CLI ran")
    }
}

/// Every connection of an app's pool, held until dropped: to tokend the database is then
/// unreachable (no connection within `TOKEND_DB_TIMEOUT`), which is how an outage looks to it.
pub struct PoolHold {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PoolHold {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }
}

impl TestApp {
    pub async fn hold_all_connections(&self) -> PoolHold {
        let pool = self.ctx.pool.clone();
        let size = self.ctx.config.db_pool_size;
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        let holder = std::thread::spawn(move || {
            let held: Vec<_> = (0..size)
                .map(|_| pool.get().expect("a connection"))
                .collect();
            let _ = ready.send(());
            let _ = released.recv();
            drop(held);
        });
        is_ready.await.expect("every connection held");
        PoolHold {
            release: Some(release),
            holder: Some(holder),
        }
    }
}

/// Sends the same refresh token `n` times at once, spread over `nodes`; (status, body) of each.
pub async fn refresh_concurrently(
    nodes: &[&TestApp],
    token: &str,
    n: usize,
) -> Vec<(StatusCode, Value)> {
    let mut handles = Vec::new();
    for i in 0..n {
        let node = nodes[i % nodes.len()];
        let (http, url, token) = (
            node.http.clone(),
            node.url("/oauth/token"),
            token.to_owned(),
        );
        handles.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", CLI),
                    ("refresh_token", &token),
                ])
                .send()
                .await
                .expect("request");
            let status = response.status();
            (status, json(response).await)
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}
