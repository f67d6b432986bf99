//! engram's migrations (`migrations/*.sql`, embedded), run with sqlx's runtime `Migrator` and
//! tracked in `engram_migrations` (not sqlx's default `_sqlx_migrations`, so that everything
//! engram adds to Engramia's database is recognisably engram's).
//!
//! 0001 creates Engramia's tables and is only ever applied to a database that has none of them;
//! 0002 creates engram's ledger and 0003 its note of dropped indexes; both are applied everywhere. On a database with Engramia's own
//! schema the migrator is built without 0001, so it can never run there.

use super::catalog::MIGRATIONS_TABLE;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

const ENGRAMIA_TABLES_SQL: &str = include_str!("../../../migrations/0001_engramia_tables.sql");
const LEDGER_SQL: &str = include_str!("../../../migrations/0002_engram_ledger.sql");
const DROPPED_INDEXES_SQL: &str = include_str!("../../../migrations/0003_engram_dropped_indexes.sql");

/// The migrator for this database; `with_engramia_tables` adds 0001.
pub fn migrator(with_engramia_tables: bool) -> Migrator {
    let mut list = Vec::new();
    if with_engramia_tables {
        list.push(Migration::new(
            1,
            "engramia_tables".into(),
            MigrationType::Simple,
            ENGRAMIA_TABLES_SQL.into_sql_str(),
            false,
        ));
    }
    list.push(Migration::new(2, "engram_ledger".into(), MigrationType::Simple, LEDGER_SQL.into_sql_str(), false));
    list.push(Migration::new(
        3,
        "engram_dropped_indexes".into(),
        MigrationType::Simple,
        DROPPED_INDEXES_SQL.into_sql_str(),
        false,
    ));
    let mut m = Migrator::with_migrations(list);
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}
