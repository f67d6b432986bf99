//! `engram verify` on Engramia's PostgreSQL + pgvector database, read-only (every statement
//! runs in a READ ONLY transaction), as Engramia 0.6.6 reads it (`providers/postgres.py`).
//!
//! - The ledger is `engram_records`; patterns are `memory_data` rows of the scope, embeddings
//!   `memory_embeddings` rows of the scope; skills the scope's `skills/_registry` row.
//! - Search is Engramia's own statement: `ORDER BY embedding <=> $1` over the scope's
//!   `patterns/` keys with a LIMIT, through the HNSW index when the planner takes it (as it does
//!   for Engramia). HNSW filters by scope after its graph walk (`hnsw.ef_search` candidates),
//!   so an index that misses a scope's records shows up as recall misses; a missing index is a
//!   fault of its own (every search then reads the whole table).
//! - `metadata/embedding_config` is written by Engramia on its first start (engram's
//!   PostgreSQL sink does not write it): absent, it is a note; another model, a fault.

use super::pattern::invalid_reason;
use super::report::Fault;
use super::{Found, Inspected, Ranked};
use crate::record::{RecordKind, Scope, content_hash};
use crate::app::RunError;
use crate::sink::postgres::catalog::{self, KeyLayout, REGISTRY_KEY};
use crate::sink::postgres::index;
use serde_json::Value;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

pub struct PgStore {
    conn: PgConnection,
    place: String,
    catalog: catalog::Catalog,
    /// Said once in the report: what verify could not hold against the store.
    pub notes: Vec<String>,
}

fn failed(what: &str, e: sqlx::Error) -> RunError {
    RunError::Failed(format!("reading {what}: {e}"))
}

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, RunError> {
        let opts = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| RunError::Config(format!("target {}: not a PostgreSQL URL ({e})", crate::redact::redact_url(url))))?
            .application_name("engram verify")
            .log_statements(log::LevelFilter::Trace);
        let place = format!("{}:{}/{}", opts.get_host(), opts.get_port(), opts.get_database().unwrap_or(opts.get_username()));
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&opts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(RunError::Failed(format!("cannot connect to PostgreSQL at {place}: {e}"))),
            Err(_) => return Err(RunError::Failed(format!("cannot connect to PostgreSQL at {place}: no answer within 10 s"))),
        };
        // Belt and braces: nothing verify sends can write.
        sqlx::query("SET default_transaction_read_only = on").execute(&mut conn).await.map_err(|e| failed("the session", e))?;
        let catalog = catalog::inspect(&mut conn).await.map_err(|e| failed("the catalog", e))?;
        if !catalog.has("engram_records") {
            return Err(RunError::Config(format!(
                "PostgreSQL {place} has no engram ledger (engram_records): nothing says what was migrated there.\n  Run `engram migrate` into it first."
            )));
        }
        if !catalog.has("memory_data") || !catalog.has("memory_embeddings") {
            return Err(RunError::Config(format!("PostgreSQL {place} has no memory_data / memory_embeddings: it is not an Engramia database")));
        }
        Ok(PgStore { conn, place, catalog, notes: Vec::new() })
    }

    pub fn describe(&self) -> String {
        format!("PostgreSQL {}", self.place)
    }

    pub async fn model(&mut self) -> Result<Option<String>, RunError> {
        let data: Option<String> = sqlx::query_scalar(
            "SELECT data::text FROM memory_data WHERE key = 'metadata/embedding_config' ORDER BY (tenant_id = 'default' AND project_id = 'default') DESC LIMIT 1",
        )
        .fetch_optional(&mut self.conn)
        .await
        .map_err(|e| failed("metadata/embedding_config", e))?;
        Ok(data.map(|d| serde_json::from_str::<Value>(&d).ok().and_then(|v| v["model"].as_str().map(str::to_string)).unwrap_or_default()))
    }

    pub async fn scopes(&mut self) -> Result<Vec<Scope>, RunError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT DISTINCT tenant_id, project_id FROM engram_records ORDER BY 1, 2")
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| failed("engram_records", e))?;
        Ok(rows.into_iter().map(|(t, p)| Scope::new(t, p)).collect())
    }

    /// The HNSW index, and records stored under another scope than the one they were migrated into.
    pub async fn store_faults(&mut self) -> Result<Vec<Fault>, RunError> {
        let mut faults = Vec::new();
        let indexes = index::hnsw_indexes(&mut self.conn).await.map_err(|e| failed("pg_indexes", e))?;
        if indexes.is_empty() {
            let dropped = match self.catalog.has("engram_dropped_indexes") {
                true => index::dropped(&mut self.conn).await.map_err(|e| failed("engram_dropped_indexes", e))?,
                false => Vec::new(),
            };
            let why = match dropped.first() {
                Some(d) => format!("engram dropped {} for a load and has not rebuilt it yet: rerun engram migrate, which rebuilds it first", d.name),
                None => "create it as Engramia's migrations do: CREATE INDEX ON memory_embeddings USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)".into(),
            };
            faults.push(Fault::store("missing_index", format!("memory_embeddings has no HNSW index: every Engramia search reads the whole table; {why}")));
        }
        if !indexes.is_empty() && !indexes.iter().any(|i| i.definition.contains("vector_cosine_ops")) {
            let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
            faults.push(Fault::store(
                "index_not_cosine",
                format!(
                    "memory_embeddings' HNSW index ({}) is not built with vector_cosine_ops: Engramia searches by cosine distance (<=>), which that index cannot serve, so every search reads the whole table; recreate it USING hnsw (embedding vector_cosine_ops)",
                    names.join(", ")
                ),
            ));
        }
        // An index left invalid (a failed concurrent build) is never used by the planner.
        let invalid: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
             WHERE i.indrelid = to_regclass('memory_embeddings') AND a.amname = 'hnsw' AND NOT i.indisvalid ORDER BY 1",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| failed("pg_index", e))?;
        for name in invalid {
            faults.push(Fault::store(
                "invalid_index",
                format!("the HNSW index {name} is marked invalid (a build that failed or was interrupted): PostgreSQL never uses it; REINDEX INDEX {name}"),
            ));
        }
        let rows = sqlx::query(
            "SELECT r.tenant_id, r.project_id, r.key, x.tenant_id, x.project_id, x.place FROM engram_records r \
             JOIN (SELECT key, tenant_id, project_id, 'memory_data' AS place FROM memory_data \
                   UNION ALL SELECT key, tenant_id, project_id, 'memory_embeddings' FROM memory_embeddings) x \
               ON x.key = r.key AND (x.tenant_id, x.project_id) <> (r.tenant_id, r.project_id) \
             ORDER BY r.key, x.place",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| failed("scopes of migrated keys", e))?;
        for r in rows {
            let get = |i: usize| r.try_get::<String, _>(i).unwrap_or_default();
            let (home, key, other, place) = (Scope::new(get(0), get(1)), get(2), Scope::new(get(3), get(4)), get(5));
            faults.push(Fault::record(
                "misplaced",
                &home,
                &key,
                format!("{key} was migrated into {home}, but {place} has it in scope {other}: recall in that scope returns another scope's record"),
            ));
        }
        Ok(faults)
    }

    pub async fn inspect(&mut self, scope: &Scope, dims: Option<usize>) -> Result<Inspected, RunError> {
        let ledger = sqlx::query("SELECT key, content_hash, skills::text, origin FROM engram_records WHERE tenant_id = $1 AND project_id = $2 ORDER BY key")
            .bind(&scope.tenant)
            .bind(&scope.project)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| failed("engram_records", e))?;
        let patterns: HashMap<String, String> = sqlx::query_as(
            "SELECT key, data::text FROM memory_data WHERE tenant_id = $1 AND project_id = $2 AND key LIKE 'patterns/%'",
        )
        .bind(&scope.tenant)
        .bind(&scope.project)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| failed("memory_data", e))?
        .into_iter()
        .collect();
        let lens: HashMap<String, i32> = sqlx::query_as(
            "SELECT key, vector_dims(embedding) FROM memory_embeddings WHERE tenant_id = $1 AND project_id = $2",
        )
        .bind(&scope.tenant)
        .bind(&scope.project)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| failed("memory_embeddings", e))?
        .into_iter()
        .collect();
        let registry: Option<String> = sqlx::query_scalar("SELECT data::text FROM memory_data WHERE tenant_id = $1 AND project_id = $2 AND key = $3")
            .bind(&scope.tenant)
            .bind(&scope.project)
            .bind(REGISTRY_KEY)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(|e| failed("the skills registry", e))?;
        let registry: serde_json::Map<String, Value> = registry.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default();
        // Engramia 0.6.x keeps one registry per database: another scope's owning it is the
        // sink's documented limit (skills in engram_records only), not a fault of this run.
        let registry_elsewhere = self.catalog.layout == Some(KeyLayout::BareKey)
            && self.catalog.registry_owner.as_ref().is_some_and(|o| o != scope);
        let dims = dims.or(self.catalog.dims);

        let mut tasks = HashMap::new();
        let mut parsed: HashMap<&str, Value> = HashMap::new();
        for (key, data) in &patterns {
            let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
            if invalid_reason(&v).is_none() {
                tasks.insert(key.clone(), v["task"].as_str().unwrap_or_default().to_string());
            }
            parsed.insert(key.as_str(), v);
        }
        let mut faults = Vec::new();
        let mut found = Vec::with_capacity(ledger.len());
        let mut unregistered = 0usize;
        for row in &ledger {
            let key: String = row.try_get(0).map_err(|e| failed("engram_records", e))?;
            let hash: String = row.try_get(1).map_err(|e| failed("engram_records", e))?;
            let ledger_skills: Vec<String> = row.try_get::<Option<String>, _>(2).ok().flatten().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
            let origin: Option<String> = row.try_get(3).unwrap_or(None);
            let fault = |kind: &str, msg: String| Fault::record(kind, scope, &key, format!("{scope} {key}: {msg}"));
            let pattern = parsed.get(key.as_str());
            let kind = pattern.and_then(kind_of).or_else(|| origin.as_deref().map(kind_of_origin)).unwrap_or(RecordKind::MessagePair);
            let mut f = Found { key: key.clone(), kind, pattern: None, searchable: false, changed: false };
            match pattern {
                None => faults.push(fault("missing_pattern", "no memory_data row in this scope".into())),
                Some(p) => match invalid_reason(p) {
                    Some(why) => faults.push(fault("invalid_pattern", format!("{why}; Engramia's recall skips it as a corrupted pattern"))),
                    None => {
                        let registered: Option<Vec<String>> = registry.get(&key).and_then(|v| serde_json::from_value(v.clone()).ok());
                        let skills = registered.clone().unwrap_or_else(|| if registry_elsewhere { ledger_skills.clone() } else { Vec::new() });
                        f.changed = content_hash(p, &skills) != hash;
                        if let Some(missing) = ledger_skills.iter().find(|s| !registered.as_ref().is_some_and(|r| r.contains(s))) {
                            if registry_elsewhere {
                                unregistered += 1;
                            } else {
                                faults.push(fault("missing_skills", format!("skill {missing:?} is not in the scope's skills/_registry; find_by_skills will not return it")));
                            }
                        }
                        f.pattern = Some(p.clone());
                    }
                },
            }
            match (lens.get(&key), dims) {
                (None, _) => faults.push(fault("missing_embedding", "no memory_embeddings row in this scope: invisible to Engramia's vector search".into())),
                (Some(&l), Some(d)) if l as usize != d => {
                    faults.push(fault("wrong_dimension", format!("its embedding has {l} dimensions, the model gives {d}")))
                }
                _ => f.searchable = f.pattern.is_some(),
            }
            found.push(f);
        }
        if unregistered > 0 {
            self.notes.push(format!(
                "scope {scope}: the skills of {unregistered} record(s) are in engram_records only (Engramia 0.6.x holds one skills registry per database, and another scope has it)"
            ));
        }
        Ok(Inspected { found, faults, tasks })
    }

    /// Engramia's statement for each query. The LIMIT leaves room for the rows the matcher
    /// drops (patterns that do not load), as its over-fetch does.
    pub async fn search(&mut self, scope: &Scope, queries: &[Vec<f32>], k: usize, loadable: &HashSet<&str>) -> Result<Result<Vec<Ranked>, String>, RunError> {
        let unloadable: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_embeddings WHERE tenant_id = $1 AND project_id = $2 AND key LIKE 'patterns/%' AND NOT (key = ANY($3))")
            .bind(&scope.tenant)
            .bind(&scope.project)
            .bind(loadable.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| failed("memory_embeddings", e))?;
        let limit = (k as i64 + unloadable).min(k as i64 * 3).max(k as i64);
        let sql = "SELECT key FROM memory_embeddings \
                   WHERE key LIKE 'patterns/%' ESCAPE '\\' AND tenant_id = $2 AND project_id = $3 \
                   ORDER BY embedding <=> $1::vector LIMIT $4";
        let hnsw: Vec<String> = index::hnsw_indexes(&mut self.conn).await.map_err(|e| failed("pg_indexes", e))?.into_iter().map(|i| i.name).collect();
        let mut out = Vec::with_capacity(queries.len());
        let mut tx = self.conn.begin().await.map_err(|e| failed("a transaction", e))?;
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.map_err(|e| failed("a transaction", e))?;
        for (i, q) in queries.iter().enumerate() {
            let vector = vector_text(q);
            if i == 0 {
                let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                    .bind(&vector)
                    .bind(&scope.tenant)
                    .bind(&scope.project)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| failed("the search plan", e))?;
                let uses_hnsw = plan.iter().any(|l| hnsw.iter().any(|name| l.contains(&format!("Index Scan using {name} "))));
                if !hnsw.is_empty() && !uses_hnsw {
                    self.notes.push(format!(
                        "scope {scope}: PostgreSQL's plan for Engramia's search statement does not use the HNSW index ({}; the planner's choice for a table this small), so the search is exact here, as Engramia's own is",
                        plan.iter().find(|l| l.contains("Scan")).map(|l| l.trim().trim_start_matches("-> ").trim()).unwrap_or("")
                    ));
                }
            }
            let keys: Vec<String> = match sqlx::query_scalar(sql).bind(&vector).bind(&scope.tenant).bind(&scope.project).bind(limit).fetch_all(&mut *tx).await {
                Ok(k) => k,
                Err(e) => return Ok(Err(format!("Engramia's search statement fails in this scope: {e}"))),
            };
            out.push(Ranked { keys: keys.into_iter().filter(|key| loadable.contains(key.as_str())).take(k).collect() });
        }
        tx.rollback().await.map_err(|e| failed("a transaction", e))?;
        Ok(Ok(out))
    }
}

/// pgvector's text form, `[0.1,0.2]`, as Engramia's `_vec_to_pg` sends it.
fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

fn kind_of(pattern: &Value) -> Option<RecordKind> {
    serde_json::from_value(pattern.pointer("/design/openai/kind")?.clone()).ok()
}

fn kind_of_origin(origin: &str) -> RecordKind {
    if origin.contains("file") {
        RecordKind::FileChunk
    } else if origin.contains("assistant") || origin.contains("tool") {
        RecordKind::Tool
    } else {
        RecordKind::MessagePair
    }
}
