//! Engramia's HNSW index on `memory_embeddings` during a bulk load (`[target] index_strategy`).
//!
//! Each insert into an HNSW index walks its graph: measured here, a binary COPY of 10,000
//! 1536-d rows takes about 4 s into an unindexed table and about 320 s into an indexed one,
//! while building the index afterwards takes about 37 s. So, as pgloader does, a load that adds
//! many rows relative to what the table holds drops the index, loads, and rebuilds it from its
//! own definition (same name, same parameters). The drop is recorded in
//! `engram_dropped_indexes` in the same transaction, and the rebuild deletes that row in its
//! own: whatever kills a run, the next one finds the note and rebuilds the index first.

use crate::sink::LoadPlan as IndexChoice;
use sqlx::{PgConnection, Row};
use std::time::{Duration, Instant};

type Sql = sqlx::Error;

/// Below this many new rows a load never drops the index: inserting them takes a second or two
/// (about 9 ms a row on the bench machine) and Engramia's own searches keep their index.
pub const MIN_ROWS_FOR_REBUILD: u64 = 200;

/// Rebuild when the new rows are at least this share of the table after the load. scripts/bench
/// measured (BENCHMARKS.md) 8.5-12 ms per row inserted into the index of a 100,000-row table
/// and 0.7 ms per row of the whole table for a build, so the rebuild wins once the new rows
/// pass about 1/12 of the total (the figures, 32 ms and 3.7 ms, give 1/9).
pub const REBUILD_SHARE: f64 = 1.0 / 12.0;

/// An HNSW index as `pg_indexes` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HnswIndex {
    pub name: String,
    pub definition: String,
}

/// `[target] index_strategy`: what a PostgreSQL load does with the HNSW index on
/// `memory_embeddings` (each insert into an HNSW index walks its graph, so a bulk load is far
/// cheaper into an unindexed table followed by one index build).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexStrategy {
    /// Rebuild when the run adds many rows relative to what the table holds, else keep.
    #[default]
    Auto,
    /// Always insert into the index as it stands.
    Keep,
    /// Always drop the index before the first write and rebuild it at the end.
    Rebuild,
}

/// The decision, from the strategy and the sizes. `droppable` is false when the connected
/// role may not drop the index or engram cannot record that it did.
pub fn choose(strategy: IndexStrategy, held: u64, adding: u64, droppable: Result<(), String>, names: &[String]) -> IndexChoice {
    let keep = |reason: String| IndexChoice { action: "keep", reason };
    if names.is_empty() {
        return keep("memory_embeddings has no HNSW index".into());
    }
    let names = names.join(", ");
    match strategy {
        IndexStrategy::Keep => keep(format!("[target] index_strategy = \"keep\": {adding} new embeddings go into {names} as it stands")),
        IndexStrategy::Rebuild | IndexStrategy::Auto if adding == 0 => keep("nothing to load".into()),
        IndexStrategy::Rebuild => match droppable {
            Ok(()) => IndexChoice {
                action: "rebuild",
                reason: format!("[target] index_strategy = \"rebuild\": drop {names}, load {adding} rows, rebuild it"),
            },
            Err(why) => keep(format!("[target] index_strategy = \"rebuild\" is not possible here ({why}); inserting into {names}")),
        },
        IndexStrategy::Auto => {
            let share = adding as f64 / (held + adding) as f64;
            if adding < MIN_ROWS_FOR_REBUILD {
                keep(format!("{adding} new embeddings (under {MIN_ROWS_FOR_REBUILD}): inserting into {names} is cheap enough"))
            } else if share < REBUILD_SHARE {
                keep(format!(
                    "{adding} new embeddings against {held} held ({:.0}% of the result): inserting into {names} costs less than rebuilding it over every row",
                    share * 100.0
                ))
            } else if let Err(why) = droppable {
                keep(format!("{adding} new embeddings against {held} held would be loaded faster without {names}, but {why}"))
            } else {
                IndexChoice {
                    action: "rebuild",
                    reason: format!(
                        "{adding} new embeddings against {held} held ({:.0}% of the result): dropping {names}, loading, and rebuilding it is cheaper than inserting into it (each insert walks the graph)",
                        share * 100.0
                    ),
                }
            }
        }
    }
}

/// The HNSW indexes on `memory_embeddings` in the current schema.
pub async fn hnsw_indexes(conn: &mut PgConnection) -> Result<Vec<HnswIndex>, Sql> {
    let rows = sqlx::query(
        "SELECT indexname, indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename = 'memory_embeddings' AND indexdef ILIKE '% USING hnsw %' \
         ORDER BY indexname",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(|r| Ok(HnswIndex { name: r.try_get(0)?, definition: r.try_get(1)? })).collect()
}

/// Indexes an earlier run dropped and did not rebuild (the table must exist).
pub async fn dropped(conn: &mut PgConnection) -> Result<Vec<HnswIndex>, Sql> {
    let rows = sqlx::query("SELECT index_name, definition FROM engram_dropped_indexes ORDER BY index_name").fetch_all(conn).await?;
    rows.into_iter().map(|r| Ok(HnswIndex { name: r.try_get(0)?, definition: r.try_get(1)? })).collect()
}

/// Rows in `memory_embeddings` (exact: the decision compares it with the run's row count).
pub async fn row_count(conn: &mut PgConnection) -> Result<u64, Sql> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_embeddings").fetch_one(conn).await?;
    Ok(n.max(0) as u64)
}

/// Whether the connected role owns `memory_embeddings` (needed to drop its index).
pub async fn owns_table(conn: &mut PgConnection) -> Result<bool, Sql> {
    sqlx::query_scalar(
        "SELECT pg_has_role(c.relowner, 'MEMBER') FROM pg_class c WHERE c.oid = to_regclass('memory_embeddings')",
    )
    .fetch_optional(conn)
    .await
    .map(|v: Option<bool>| v.unwrap_or(false))
}

/// Drops the indexes and records them, in one transaction.
pub async fn drop_for_load(conn: &mut PgConnection, run_id: &str, indexes: &[HnswIndex]) -> Result<(), Sql> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for ix in indexes {
        sqlx::query(
            "INSERT INTO engram_dropped_indexes (index_name, table_name, definition, run_id) VALUES ($1, 'memory_embeddings', $2, $3) \
             ON CONFLICT (index_name) DO NOTHING",
        )
        .bind(&ix.name)
        .bind(&ix.definition)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {}", quote_ident(&ix.name)))).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Rebuilds every index an earlier drop recorded, each in its own transaction with its note;
/// returns the names and how long each build took.
pub async fn restore(conn: &mut PgConnection) -> Result<Vec<(String, Duration)>, Sql> {
    let mut built = Vec::new();
    for ix in dropped(conn).await? {
        let t0 = Instant::now();
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // An HNSW build is far faster when the graph fits in maintenance_work_mem; pgvector
        // 0.6+ builds in parallel. LOCAL: only this transaction.
        sqlx::query("SELECT set_config('maintenance_work_mem', '1GB', true) WHERE current_setting('maintenance_work_mem') <> '1GB'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT set_config('max_parallel_maintenance_workers', '4', true)").execute(&mut *tx).await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass(quote_ident($1)) IS NOT NULL").bind(&ix.name).fetch_one(&mut *tx).await?;
        if !exists {
            sqlx::query(sqlx::AssertSqlSafe(ix.definition.clone())).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM engram_dropped_indexes WHERE index_name = $1").bind(&ix.name).execute(&mut *tx).await?;
        tx.commit().await?;
        built.push((ix.name, t0.elapsed()));
    }
    Ok(built)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["idx_memory_embeddings_hnsw".into()]
    }

    #[test]
    fn auto_rebuilds_large_loads_and_keeps_small_ones() {
        let c = choose(IndexStrategy::Auto, 0, 100_000, Ok(()), &names());
        assert_eq!(c.action, "rebuild", "{c:?}");
        assert!(c.reason.contains("100000 new embeddings against 0 held"), "{c:?}");
        // 5,000 into 100,000: 5% of the result, under the 1/12 share; 10,000 is 9%, over it.
        assert_eq!(choose(IndexStrategy::Auto, 100_000, 5_000, Ok(()), &names()).action, "keep");
        assert_eq!(choose(IndexStrategy::Auto, 100_000, 10_000, Ok(()), &names()).action, "rebuild");
        assert_eq!(choose(IndexStrategy::Auto, 0, 199, Ok(()), &names()).action, "keep");
        assert_eq!(choose(IndexStrategy::Auto, 0, 1_000, Ok(()), &names()).action, "rebuild");
    }

    #[test]
    fn forced_strategies_and_what_prevents_a_drop() {
        assert_eq!(choose(IndexStrategy::Keep, 0, 1_000_000, Ok(()), &names()).action, "keep");
        assert_eq!(choose(IndexStrategy::Rebuild, 1_000_000, 10, Ok(()), &names()).action, "rebuild");
        let c = choose(IndexStrategy::Rebuild, 0, 10, Err("the role does not own memory_embeddings".into()), &names());
        assert!(c.action == "keep" && c.reason.contains("does not own"), "{c:?}");
        let c = choose(IndexStrategy::Auto, 0, 50_000, Err("no".into()), &names());
        assert_eq!(c.action, "keep");
        assert_eq!(choose(IndexStrategy::Rebuild, 0, 10, Ok(()), &[]).action, "keep");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("idx"), "\"idx\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
