//! The reference resource server in `examples/resource_server.rs`: it verifies tokend's JWTs
//! with the JWKS and the status list only (no introspection), and still refuses a revoked
//! session's token within the list's `ttl` + 1 s.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

const TTL: Duration = Duration::from_secs(2);

/// The example's binary, built by `cargo test` next to the test binaries.
fn example_binary() -> std::path::PathBuf {
    let test_binary = std::env::current_exe().expect("test binary");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir.join("examples").join("resource_server")
}

struct ResourceServer {
    child: Child,
    url: String,
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_resource_server(issuer: &str) -> ResourceServer {
    let binary = example_binary();
    let mut child = Command::new(&binary)
        .arg("127.0.0.1:0")
        .env("TOKEND_ISSUER", issuer)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let url = line
        .trim()
        .strip_prefix("resource server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    ResourceServer { child, url }
}

async fn hello(app: &TestApp, rs: &ResourceServer, token: &str) -> StatusCode {
    app.http
        .get(format!("{}/hello", rs.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request to the resource server")
        .status()
}

#[tokio::test]
async fn the_reference_resource_server_refuses_a_revoked_token_within_ttl_plus_one_second() {
    let app = spawn_app_with(|c| c.status_list_ttl = TTL).await;
    let rs = start_resource_server(&app.address);
    let revoked = app.login("admin", ADMIN_PASSWORD).await;
    let kept = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(hello(&app, &rs, &revoked.access).await, StatusCode::OK);
    assert_eq!(hello(&app, &rs, &kept.access).await, StatusCode::OK);
    assert_eq!(
        hello(&app, &rs, "not-a-token").await,
        StatusCode::UNAUTHORIZED
    );

    // The resource server now holds a copy of the list in which both entries are VALID.
    assert_eq!(
        app.post("/api/logout", &revoked.access).await.status(),
        StatusCode::NO_CONTENT
    );
    let ended = Instant::now();
    let refused_after = loop {
        if hello(&app, &rs, &revoked.access).await == StatusCode::UNAUTHORIZED {
            break ended.elapsed();
        }
        assert!(
            ended.elapsed() < TTL + Duration::from_secs(3),
            "still accepted long after ttl"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused_after <= TTL + Duration::from_secs(1),
        "refused after {refused_after:?}, ttl is {TTL:?}"
    );
    // The JWT itself is still unexpired: only the status list can have refused it.
    let exp = claims(&revoked.access)["exp"].as_i64().expect("exp");
    assert!(exp > chrono::Utc::now().timestamp());
    assert_eq!(hello(&app, &rs, &kept.access).await, StatusCode::OK);
}
