//! Schema invariants: every migration's down.sql really reverts it.

use crate::helpers::*;

#[tokio::test]
async fn migrations_revert_and_reapply() {
    let app = spawn_app().await;
    let pool = app.ctx.pool.clone();
    tokio::task::spawn_blocking(move || {
        pool.revert_all().expect("revert every migration");
        let applied = pool.migrate().expect("apply again");
        assert!(!applied.is_empty());
    })
    .await
    .expect("task");
}
