//! The real binary with JSON logs: one JSON object per line, a request id on every request line,
//! no secret in any line, and a graceful stop on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

/// The real binary, `serve` on a free port with JSON logs at `level` on a piped stderr.
fn start_serve(db: &TestDb, level: &str) -> std::process::Child {
    start_serve_with(db, level, &[])
}

fn start_serve_with(db: &TestDb, level: &str, envs: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOKEND_DATABASE_URL", &db.url)
        .env("TOKEND_BIND", "127.0.0.1:0")
        .env("TOKEND_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("TOKEND_LOG", level)
        .env("TOKEND_LOG_FORMAT", "json")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tokend")
}

#[tokio::test]
async fn json_logs_carry_request_ids_and_never_a_secret() {
    let db = TestDb::new();
    // debug, not info: stricter than any production setting.
    let mut child = start_serve(&db, "debug");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("tokend starts and logs");
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        lines.push(line);
        if let Some(port) = event["port"].as_u64() {
            break port;
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    let t = tokens(login).await;
    let refreshed = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI),
            ("refresh_token", t.refresh()),
        ])
        .send()
        .await
        .expect("refresh");
    let t2 = tokens(refreshed).await;
    // A client that wrongly puts a token in the query string: tokend logs the path only.
    let me = http
        .get(format!("{base}/api/me?access_token={}", t2.access))
        .bearer_auth(&t2.access)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);

    // A personal token and a confidential client's secret, each created and used.
    let pat: serde_json::Value = http
        .post(format!("{base}/api/tokens"))
        .bearer_auth(&t2.access)
        .json(&serde_json::json!({"name": "ci", "scopes": ["account"]}))
        .send()
        .await
        .expect("pat")
        .json()
        .await
        .expect("json");
    let pat = pat["token"].as_str().expect("token").to_owned();
    let me = http
        .get(format!("{base}/api/me"))
        .bearer_auth(&pat)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    let client: serde_json::Value = http
        .post(format!("{base}/admin/clients"))
        .bearer_auth(&t2.access)
        .json(&serde_json::json!({"name": "rs", "grant_types": ["client_credentials"], "scopes": ["read"]}))
        .send()
        .await
        .expect("client")
        .json()
        .await
        .expect("json");
    let client_id = client["client_id"].as_str().expect("id").to_owned();
    let client_secret = client["client_secret"].as_str().expect("secret").to_owned();
    let cc = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("client credentials");
    let cc = tokens(cc).await;
    let introspected = http
        .post(format!("{base}/oauth/introspect"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("token", pat.as_str())])
        .send()
        .await
        .expect("introspect");
    assert_eq!(introspected.status(), StatusCode::OK);
    // A failed sign-in: the wrong password must not reach the log either.
    let wrong = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLI),
            ("username", "admin"),
            ("password", "not-the-right-one-1"),
        ])
        .send()
        .await
        .expect("wrong");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(
        status.success(),
        "a graceful stop on SIGTERM exits 0: {status}"
    );
    reader.join().expect("reader");
    lines.extend(rx.try_iter());

    let mut request_lines = 0;
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if event["status"].is_number() {
            request_lines += 1;
            assert!(
                event["span"]["request_id"].is_string(),
                "request id in {line}"
            );
            assert!(event["span"]["path"].is_string());
        }
        for secret in [
            ADMIN_PASSWORD,
            "not-the-right-one-1",
            &pat,
            &client_secret,
            &cc.access,
            t.refresh(),
            t2.refresh(),
            &t.access,
            &t2.access,
        ] {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }
    assert!(request_lines >= 3, "one line per request: {lines:#?}");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    use std::io::{Read as _, Write as _};
    let db = TestDb::new();
    let mut child = start_serve(&db, "info");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = stderr.lines().map_while(Result::ok);
    let port = lines
        .find_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok()?["port"].as_u64())
        .expect("tokend logs its port");
    let drain = std::thread::spawn(move || lines.count());

    // Half a sign-in request is on the wire when SIGTERM arrives…
    let body =
        format!("grant_type=password&client_id={CLI}&username=admin&password={ADMIN_PASSWORD}");
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).expect("connect");
    write!(
        stream,
        "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .expect("write");
    stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    std::thread::sleep(Duration::from_millis(300));

    // …and the rest after it: the request still completes, then the server exits cleanly.
    stream.write_all(rest.as_bytes()).expect("write the rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("refresh_token"));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status}");
    drain.join().expect("drain");
    // No new connection is accepted once stopping.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_err());
}

/// Lines of `child`'s stderr until one contains `until` (or 30 s pass); the child is killed.
fn lines_until(mut child: std::process::Child, until: &str) -> Vec<String> {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains(until);
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[tokio::test]
async fn logs_to_a_pipe_have_no_colour_and_the_purge_line_has_json_fields() {
    // Text logs written to a pipe (journald, a file, `2>&1 | less`): no ANSI escape codes.
    let db = TestDb::new();
    let text = lines_until(
        start_serve_with(
            &db,
            "info",
            &[
                ("TOKEND_LOG_FORMAT", "text"),
                ("TOKEND_PURGE_INTERVAL", "1s"),
            ],
        ),
        "purge done",
    );
    assert!(text.iter().any(|l| l.contains("purge done")), "{text:?}");
    assert!(
        text.iter().all(|l| !l.contains('\u{1b}')),
        "escape codes in {text:?}"
    );

    // JSON logs: the purge report as numbers, not a Rust debug string.
    let json_lines = lines_until(
        start_serve_with(&db, "info", &[("TOKEND_PURGE_INTERVAL", "1s")]),
        "purge done",
    );
    let purge: serde_json::Value = json_lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["message"] == "purge done")
        .unwrap_or_else(|| panic!("no purge line in {json_lines:?}"));
    for field in ["sessions", "personal_access_tokens", "auth_codes", "ms"] {
        assert!(purge[field].is_u64(), "{field} in {purge}");
    }
}
