//! `GET /metrics`: Prometheus text, bounded labels, and counters that move with what they count.
//! The recorder is one per process and tests run in parallel, so counters are compared before
//! and after (they only grow), never to absolute values.

use reqwest::StatusCode;

use crate::helpers::*;

/// The sum of the samples of `name` whose labels contain every one of `labels`
/// (`route="/api/me"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    response.text().await.expect("body")
}

#[tokio::test]
async fn a_refresh_a_reuse_and_a_throttled_sign_in_move_their_counters() {
    let app = spawn_app_with(|c| c.signin_user_free = 2).await;
    app.create_user("mia", "mia-password", false).await;
    // Everything below happens at least once before the first scrape too, so that every series
    // already exists and a delta is meaningful.
    let warm = app.login("mia", "mia-password").await;
    tokens(app.refresh(warm.refresh()).await).await;
    let before = scrape(&app).await;

    let t = app.login("mia", "mia-password").await;
    tokens(app.refresh(t.refresh()).await).await;
    assert_error(
        app.refresh(t.refresh()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    for _ in 0..3 {
        app.password_grant("mia", "wrong-password").await;
    }
    let throttled = app.password_grant("mia", "wrong-password").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let after = scrape(&app).await;

    let grew =
        |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    assert!(
        grew("tokend_refreshes_total", &[r#"outcome="rotated""#]) >= 1.0,
        "{after}"
    );
    assert!(
        grew("tokend_refresh_reuse_detected_total", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        grew(
            "tokend_sessions_revoked_total",
            &[r#"reason="refresh_reuse""#]
        ) >= 1.0,
        "{after}"
    );
    assert!(grew("tokend_signin_throttled_total", &[]) >= 1.0, "{after}");
    assert!(
        grew("tokend_audit_events_total", &[r#"kind="signin_failure""#]) >= 2.0,
        "{after}"
    );
    assert!(
        grew("tokend_tokens_issued_total", &[r#"grant="password""#]) >= 1.0,
        "{after}"
    );
    assert!(
        grew(
            "tokend_http_requests_total",
            &[r#"route="/oauth/token""#, r#"status="429""#]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            "tokend_http_request_duration_seconds_count",
            &[r#"route="/oauth/token""#]
        ) >= 1.0,
        "{after}"
    );
    assert!(after.contains("tokend_db_pool_connections{"), "{after}");
    assert!(after.contains("tokend_db_pool_waiting"), "{after}");
}

#[tokio::test]
async fn labels_are_route_templates_never_ids_or_names() {
    let app = spawn_app().await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        app.get(&format!("/admin/users/{id}"), &admin.access)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let junk = format!("/no/such/{}", uuid::Uuid::new_v4().simple());
    app.http.get(app.url(&junk)).send().await.expect("request");
    let text = scrape(&app).await;
    assert!(
        text.contains(r#"route="/admin/users/{id}""#),
        "the template is the label"
    );
    assert!(!text.contains(&id), "no id in a label");
    assert!(!text.contains(&junk), "no raw path in a label");
    assert!(text.contains(r#"route="unmatched""#));
    assert!(!text.contains("admin-password"), "never a secret");
}

#[tokio::test]
async fn tokend_metrics_bind_moves_metrics_off_the_main_listener() {
    let app = spawn_app_with(|c| c.metrics_bind = Some("127.0.0.1:0".to_owned())).await;
    let main = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_error(main, StatusCode::NOT_FOUND, "not_found").await;
    let port = app.metrics_port.expect("a metrics listener");
    let own = app
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(own.status(), StatusCode::OK);
    assert!(own.text().await.expect("body").contains("tokend_"));
}

#[tokio::test]
async fn a_status_list_build_and_a_block_claim_are_counted() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let t = app.login("admin", ADMIN_PASSWORD).await;
    let uri = claims(&t.access)["status"]["status_list"]["uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    for _ in 0..3 {
        let response = app.http.get(&uri).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let after = scrape(&app).await;
    let grew =
        |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    // The recorder is process-wide and other tests run alongside: at least this test's own.
    assert!(
        grew("tokend_status_list_blocks_claimed_total", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        grew("tokend_status_list_build_seconds_count", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        grew(
            "tokend_http_requests_total",
            &[r#"route="/oauth/statuslists/{list}""#, r#"status="200""#]
        ) >= 3.0,
        "{after}"
    );
}
