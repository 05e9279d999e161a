//! Migrations: embedded in the binary, one folder per backend, applied on start and by
//! `tokend migrate`.

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{Conn, Pool};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

impl Pool {
    /// Applies pending migrations. On PostgreSQL an advisory lock keeps several nodes starting at
    /// once from racing each other.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.get().context("connecting to the database")?;
        let applied = match &mut conn {
            Conn::Sqlite(c, _) => {
                let c: &mut SqliteConnection = c;
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("applying SQLite migrations: {e}"))?
                    .iter()
                    .map(|v| v.to_string())
                    .collect()
            }
            Conn::Postgres(c) => {
                let c: &mut PgConnection = c;
                c.batch_execute("SELECT pg_advisory_lock(7418012026)")
                    .context("taking the migration lock")?;
                let result = c
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|v| v.iter().map(|v| v.to_string()).collect())
                    .map_err(|e| anyhow::anyhow!("applying PostgreSQL migrations: {e}"));
                c.batch_execute("SELECT pg_advisory_unlock(7418012026)")
                    .context("releasing the migration lock")?;
                result?
            }
        };
        Ok(applied)
    }

    /// Reverts every migration (used by the schema tests to prove each `down.sql` works).
    pub fn revert_all(&self) -> anyhow::Result<()> {
        let mut conn = self.get()?;
        match &mut conn {
            Conn::Sqlite(c, _) => {
                let c: &mut SqliteConnection = c;
                c.revert_all_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("reverting: {e}"))?;
            }
            Conn::Postgres(c) => {
                let c: &mut PgConnection = c;
                c.revert_all_migrations(PG_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("reverting: {e}"))?;
            }
        }
        Ok(())
    }

    /// Reverts the newest applied migration and names it (the upgrade tests use it to stand a
    /// database at the previous release's schema).
    pub fn revert_last(&self) -> anyhow::Result<String> {
        let mut conn = self.get()?;
        let reverted = match &mut conn {
            Conn::Sqlite(c, _) => {
                let c: &mut SqliteConnection = c;
                c.revert_last_migration(SQLITE_MIGRATIONS)
            }
            Conn::Postgres(c) => {
                let c: &mut PgConnection = c;
                c.revert_last_migration(PG_MIGRATIONS)
            }
        }
        .map_err(|e| anyhow::anyhow!("reverting: {e}"))?;
        Ok(reverted.to_string())
    }
}
