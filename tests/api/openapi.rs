//! The OpenAPI document: served as generated, committed without drift, and covering every route.

use reqwest::StatusCode;

use crate::helpers::*;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let generated = tokend::http::openapi::document();
    if std::env::var("TOKEND_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, format!("{generated}\n")).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        generated,
        "docs/openapi.json is out of date: run `TOKEND_UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );

    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let served: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        served,
        serde_json::from_str::<serde_json::Value>(&generated).expect("json")
    );
    assert!(served["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));
}

#[test]
fn every_route_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&tokend::http::openapi::document()).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in [
        ("post", "/oauth/token"),
        ("post", "/oauth/revoke"),
        ("post", "/oauth/introspect"),
        ("get", "/.well-known/oauth-authorization-server"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/api/me"),
        ("get", "/api/sessions"),
        ("delete", "/api/sessions/{id}"),
        ("post", "/api/logout"),
        ("post", "/api/logout-all"),
        ("post", "/api/password"),
        ("post", "/api/tokens"),
        ("get", "/api/tokens"),
        ("delete", "/api/tokens"),
        ("delete", "/api/tokens/{id}"),
        ("post", "/admin/users"),
        ("get", "/admin/users"),
        ("get", "/admin/users/{id}"),
        ("post", "/admin/users/{id}/password"),
        ("post", "/admin/users/{id}/logout-all"),
        ("post", "/admin/users/{id}/disable"),
        ("post", "/admin/users/{id}/enable"),
        ("get", "/admin/users/{id}/sessions"),
        ("delete", "/admin/sessions/{id}"),
        ("post", "/admin/clients"),
        ("get", "/admin/clients"),
        ("delete", "/admin/clients/{id}"),
        ("get", "/admin/audit"),
        ("post", "/admin/keys/rotate"),
        ("post", "/admin/purge"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "TokenResponse",
        "Introspection",
        "RevocationCounts",
        "PurgeCounts",
        "ErrorBody",
        "SessionView",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
}

/// The docs name the binary one way, the one the README's set-up builds
/// (`cargo run --release -- serve` leaves `./target/release/tokend`).
#[test]
fn the_docs_name_the_binary_the_readme_builds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("read");
        assert!(
            !text.contains("target/debug/tokend"),
            "{} points at a debug build the README never makes",
            page.display()
        );
    }
}

/// The references list what the code writes: every audit event kind has a row in admin.md's
/// table, and account.md's session `kind` row names every kind a user's session can have.
#[test]
fn the_docs_list_every_audit_kind_and_session_kind() {
    use tokend::service::issuing::SessionKind;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let admin = std::fs::read_to_string(root.join("docs/admin.md")).expect("admin.md");
    for kind in tokend::service::audit::KINDS {
        assert!(
            admin.contains(&format!("\n| `{kind}` |")),
            "docs/admin.md's audit table has no row for {kind}"
        );
    }
    let account = std::fs::read_to_string(root.join("docs/account.md")).expect("account.md");
    let row = account
        .lines()
        .find(|l| l.starts_with("| `kind` |"))
        .expect("account.md's session fields have a kind row");
    for kind in SessionKind::ALL {
        if kind != SessionKind::ClientCredentials {
            assert!(
                row.contains(&format!("`{}`", kind.as_str())),
                "account.md's kind row lacks {}",
                kind.as_str()
            );
        }
    }
}
