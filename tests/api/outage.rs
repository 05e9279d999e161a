//! When the database cannot be had, every endpoint that needs it answers 503
//! `temporarily_unavailable` (never 500), nothing is half written, and everything works again as
//! soon as it comes back — the refresh token presented during the outage included.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

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
    let pool = app.ctx.pool.clone();
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let holder = std::thread::spawn(move || {
        let a = pool.get().expect("first connection");
        let b = pool.get().expect("second connection");
        ready_tx.send(()).expect("signal");
        hold_rx.recv().ok();
        drop((a, b));
    });
    ready_rx.await.expect("connections held");

    let refresh = app.refresh(t.refresh()).await;
    assert_eq!(refresh.headers()["retry-after"], "1");
    assert_error(
        refresh,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert_error(
        app.me(&t.access).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert_error(
        app.password_grant("admin", ADMIN_PASSWORD).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert_error(
        app.introspect(&rs, &secret, &t.access).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert_error(
        app.revoke(&[("token", t.access.as_str()), ("client_id", CLI)])
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
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
    hold_tx.send(()).expect("release");
    holder.join().expect("holder");
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
    let rows = app.refresh_rows(&sid).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].used_at.is_none() && rows[0].revoked_at.is_none());
    let next = tokens(app.refresh(t.refresh()).await).await;
    assert_eq!(app.me(&next.access).await.status(), StatusCode::OK);
}
