//! What the benchmarks share: a fresh database of their own, removed when dropped.

use diesel::connection::SimpleConnection as _;
use diesel::Connection as _;

/// A new SQLite file in a temp directory, or a new PostgreSQL database on
/// `TOKEND_BENCH_DATABASE_URL` when it is set.
pub struct BenchDb {
    pub url: String,
    /// The server and the database to drop (PostgreSQL).
    postgres: Option<(String, String)>,
    /// The directory to remove (SQLite).
    dir: Option<std::path::PathBuf>,
}

impl BenchDb {
    pub fn create() -> BenchDb {
        match std::env::var("TOKEND_BENCH_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!("tokend_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&admin).expect("reach PostgreSQL");
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create database");
                let base = &admin[..admin.rfind('/').expect("a database in the URL")];
                BenchDb {
                    url: format!("{base}/{name}"),
                    postgres: Some((admin.clone(), name)),
                    dir: None,
                }
            }
            _ => {
                let dir = std::env::temp_dir()
                    .join(format!("tokend-bench-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).expect("dir");
                BenchDb {
                    url: format!("sqlite://{}", dir.join("tokend.db").display()),
                    postgres: None,
                    dir: Some(dir),
                }
            }
        }
    }

    pub fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
