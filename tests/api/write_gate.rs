//! Writers that run at once: on SQLite they share group transactions (one `COMMIT` for several
//! writers, each in a savepoint); on PostgreSQL each has its own. Either way a writer's failure or
//! panic undoes only its own work, and a writer answers only once its work is committed.

use std::sync::{Arc, Barrier};

use diesel::prelude::*;
use tokend::db;
use tokend::store::schema::server_secrets;
use tokend::store::{self, StoreError};

use crate::helpers::*;

const WRITERS: usize = 24;

/// What writer `i` does: 0..WRITERS; every fifth fails after writing, one panics after writing.
fn fails(i: usize) -> bool {
    i % 5 == 3
}
const PANICS: usize = 7;

fn name(i: usize) -> String {
    format!("write-gate-test-{i:02}")
}

fn insert(conn: &mut store::Conn, i: usize) -> store::Result<()> {
    let row = (
        server_secrets::name.eq(name(i)),
        server_secrets::value.eq("v"),
        server_secrets::created_at.eq(store::now()),
    );
    db!(conn, c => diesel::insert_into(server_secrets::table).values(row).execute(c))?;
    Ok(())
}

fn written(conn: &mut store::Conn) -> store::Result<Vec<String>> {
    Ok(db!(conn, c => server_secrets::table
        .select(server_secrets::name)
        .filter(server_secrets::name.like("write-gate-test-%"))
        .order(server_secrets::name.asc())
        .load::<String>(c))?)
}

#[tokio::test]
async fn concurrent_writers_keep_their_own_outcome_and_answer_only_once_committed() {
    let app = spawn_app().await;
    let pool = app.ctx.pool.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let start = Arc::new(Barrier::new(WRITERS));
        let threads: Vec<_> = (0..WRITERS)
            .map(|i| {
                let pool = pool.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let mut conn = pool.get().expect("connection");
                    let wrote = conn.write(|c| {
                        insert(c, i)?;
                        // Long enough that the others queue behind this writer.
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        if i == PANICS {
                            panic!("writer {i} panics after writing");
                        }
                        if fails(i) {
                            return Err(StoreError::Conflict);
                        }
                        Ok(i)
                    });
                    drop(conn);
                    // Whoever answered Ok must already be visible to any other connection.
                    let visible = pool
                        .get()
                        .and_then(|mut other| written(&mut other))
                        .expect("read back")
                        .contains(&name(i));
                    (wrote.map_err(|e| e.to_string()), visible)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| ()))
            .collect::<Vec<_>>()
    })
    .await
    .expect("writers");

    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Err(()) => assert_eq!(i, PANICS, "only writer {PANICS} panics"),
            Ok((Ok(value), visible)) => {
                assert!(!fails(i) && i != PANICS, "writer {i} should not succeed");
                assert_eq!(*value, i);
                assert!(
                    visible,
                    "writer {i} answered before its write was committed"
                );
            }
            Ok((Err(err), visible)) => {
                assert!(fails(i), "writer {i} failed: {err}");
                assert!(!visible, "the failed writer {i}'s row was kept");
            }
        }
    }
    let expected: Vec<String> = (0..WRITERS)
        .filter(|&i| !fails(i) && i != PANICS)
        .map(name)
        .collect();
    assert_eq!(app.db(written).await, expected);

    // The gate still works after a panic and failures.
    app.db(|conn| conn.write(|c| insert(c, 99))).await;
    assert!(app.db(written).await.contains(&name(99)));
}
