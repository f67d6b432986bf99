//! What engram creates in the target: Engramia's schema (only in a database that has none of
//! it: `migrations/engramia_<revision>_*.sql`, Engramia's own migrations as offline SQL, with
//! its `alembic_version` row) and engram's own tables (`migrations/0002_*` to `0004_*`, run with
//! sqlx's runtime `Migrator` and tracked in `engram_migrations`, not sqlx's default
//! `_sqlx_migrations`, so that everything engram adds is recognisably engram's).
//!
//! Engramia's schema is tracked by Engramia's `alembic_version`, never in `engram_migrations`:
//! after engram created it, Engramia's `alembic upgrade` owns it. (Releases before this one
//! recorded their look-alike of revision 015 as engram migration 1; such a database has no
//! `alembic_version` and is refused before anything runs, so 1 is ignored if it is recorded.)

use super::catalog::MIGRATIONS_TABLE;
use super::schema::Shipped;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{PgConnection, SqlSafeStr};

const LEDGER_SQL: &str = include_str!("../../../migrations/0002_engram_ledger.sql");
const DROPPED_INDEXES_SQL: &str = include_str!("../../../migrations/0003_engram_dropped_indexes.sql");
const CONCURRENT_RUNS_SQL: &str = include_str!("../../../migrations/0004_engram_concurrent_runs.sql");

/// The migrator of engram's own tables.
pub fn migrator() -> Migrator {
    let list = vec![
        Migration::new(2, "engram_ledger".into(), MigrationType::Simple, LEDGER_SQL.into_sql_str(), false),
        Migration::new(3, "engram_dropped_indexes".into(), MigrationType::Simple, DROPPED_INDEXES_SQL.into_sql_str(), false),
        Migration::new(4, "engram_concurrent_runs".into(), MigrationType::Simple, CONCURRENT_RUNS_SQL.into_sql_str(), false),
    ];
    let mut m = Migrator::with_migrations(list);
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m.set_ignore_missing(true);
    m
}

/// Runs a shipped schema as one script (its own BEGIN ... COMMIT makes it all or nothing; on
/// an error the aborted transaction is rolled back so the connection stays usable).
pub async fn create_engramia_schema(conn: &mut PgConnection, schema: &Shipped) -> Result<(), sqlx::Error> {
    let result = sqlx::raw_sql(schema.sql).execute(&mut *conn).await;
    if result.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    result.map(|_| ())
}
