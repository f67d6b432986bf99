//! The SQL of one batch, each statement set-based (`UNNEST` arrays, never a row per round trip),
//! all run inside the caller's transaction; and the read of what a batch's keys hold.

use super::catalog::{KeyLayout, REGISTRY_KEY};
use super::{Embedded, Scope};
use indexmap::IndexMap;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, Row};

type Sql = sqlx::Error;

/// One stored pattern, as `existing` reads it.
pub struct StoredRow {
    pub scope: Scope,
    pub key: String,
    pub data: String,
    pub has_embedding: bool,
    pub registry_skills: Option<String>,
    pub ledger_skills: Option<String>,
}

/// Stored rows for `keys`: in `scope`, or with the bare-key layout under any scope (so that a
/// key held by another scope is seen before a write fails on it).
pub async fn stored(
    conn: &mut PgConnection,
    layout: KeyLayout,
    ledger: bool,
    scope: &Scope,
    keys: &[String],
) -> Result<Vec<StoredRow>, Sql> {
    let sql = format!(
        "WITH reg AS MATERIALIZED ( \
             SELECT data::jsonb AS data FROM memory_data \
             WHERE tenant_id = $1 AND project_id = $2 AND key = '{REGISTRY_KEY}') \
         SELECT d.tenant_id, d.project_id, d.key, d.data::text, \
                EXISTS (SELECT 1 FROM memory_embeddings e \
                        WHERE e.tenant_id = d.tenant_id AND e.project_id = d.project_id AND e.key = d.key), \
                (SELECT reg.data -> d.key FROM reg)::text, \
                {ledger_col} \
         FROM memory_data d {ledger_join} \
         WHERE d.key = ANY ($3) {scope_filter}",
        ledger_col = if ledger { "l.skills::text" } else { "NULL::text" },
        ledger_join = if ledger {
            "LEFT JOIN engram_records l ON l.tenant_id = d.tenant_id AND l.project_id = d.project_id AND l.key = d.key"
        } else {
            ""
        },
        scope_filter = match layout {
            KeyLayout::Scoped => "AND d.tenant_id = $1 AND d.project_id = $2",
            KeyLayout::BareKey => "",
        },
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(&scope.tenant).bind(&scope.project).bind(keys).fetch_all(conn).await?;
    rows.into_iter()
        .map(|r| {
            Ok(StoredRow {
                scope: Scope::new(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?),
                key: r.try_get(2)?,
                data: r.try_get(3)?,
                has_embedding: r.try_get(4)?,
                registry_skills: r.try_get(5)?,
                ledger_skills: r.try_get(6)?,
            })
        })
        .collect()
}

/// Skill tags from a stored JSON array; anything else reads as none (as the JSON sink does).
pub fn parse_skills(raw: Option<&str>) -> Vec<String> {
    raw.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
}

/// A scope that cannot be written as asked.
pub struct ScopeProblem {
    pub scope: Scope,
    pub message: String,
}

/// Checks that each scope's project is not another tenant's and that neither the tenant nor
/// the project was deleted in Engramia. `deleted_at` is read through `to_jsonb` so that a
/// schema without the column still works.
pub async fn scope_problems(conn: &mut PgConnection, scopes: &[Scope]) -> Result<Vec<ScopeProblem>, Sql> {
    let tenants: Vec<&str> = scopes.iter().map(|s| s.tenant.as_str()).collect();
    let projects: Vec<&str> = scopes.iter().map(|s| s.project.as_str()).collect();
    // (tenant, project, the project's tenant, project deleted_at, tenant deleted_at)
    type ScopeRow = (String, String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<ScopeRow> = sqlx::query_as(
        "SELECT u.tenant, u.project, p.tenant_id, to_jsonb(p) ->> 'deleted_at', to_jsonb(t) ->> 'deleted_at' \
         FROM UNNEST($1::text[], $2::text[]) AS u(tenant, project) \
         LEFT JOIN projects p ON p.id = u.project \
         LEFT JOIN tenants t ON t.id = u.tenant",
    )
    .bind(&tenants)
    .bind(&projects)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::new();
    for scope in scopes {
        let mine: Vec<_> = rows.iter().filter(|r| r.0 == scope.tenant && r.1 == scope.project).collect();
        let owners: Vec<&str> = mine.iter().filter_map(|r| r.2.as_deref()).collect();
        let message = if !owners.is_empty() && !owners.contains(&scope.tenant.as_str()) {
            Some(format!(
                "project {:?} already belongs to tenant {:?} in this database, and Engramia keeps project ids unique across tenants (projects.id is its primary key), so it cannot also be a project of tenant {:?}",
                scope.project, owners[0], scope.tenant
            ))
        } else if let Some(at) = mine.iter().find(|r| r.2.as_deref() == Some(scope.tenant.as_str())).and_then(|r| r.3.as_ref()) {
            Some(format!("project {:?} of tenant {:?} was deleted in Engramia (deleted_at {at})", scope.project, scope.tenant))
        } else {
            mine.iter()
                .find_map(|r| r.4.as_ref())
                .map(|at| format!("tenant {:?} was deleted in Engramia (deleted_at {at})", scope.tenant))
        };
        if let Some(message) = message {
            out.push(ScopeProblem { scope: scope.clone(), message });
        }
    }
    Ok(out)
}

/// Creates the tenants and projects rows of `scopes` that are missing (name = id, every other
/// column Engramia's default).
pub async fn insert_scopes(conn: &mut PgConnection, scopes: &[Scope]) -> Result<(), Sql> {
    let tenants: Vec<&str> = scopes.iter().map(|s| s.tenant.as_str()).collect();
    let projects: Vec<&str> = scopes.iter().map(|s| s.project.as_str()).collect();
    sqlx::query("INSERT INTO tenants (id, name) SELECT DISTINCT t, t FROM UNNEST($1::text[]) AS t ON CONFLICT DO NOTHING")
        .bind(&tenants)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO projects (id, tenant_id, name) \
         SELECT DISTINCT u.p, u.t, u.p FROM UNNEST($1::text[], $2::text[]) AS u(t, p) ON CONFLICT DO NOTHING",
    )
    .bind(&tenants)
    .bind(&projects)
    .execute(conn)
    .await?;
    Ok(())
}

/// Upserts the patterns; returns the keys that were inserted (the rest were updated). Each
/// table gets one binary COPY into a temporary staging table and one set-based upsert from it
/// (COPY is PostgreSQL's fastest way in; the upsert is what makes a rerun idempotent). The
/// staging tables empty themselves at commit, and vanish with the connection.
pub async fn upsert_patterns(conn: &mut PgConnection, batch: &[&Embedded]) -> Result<Vec<String>, Sql> {
    sqlx::raw_sql(
        "CREATE TEMP TABLE IF NOT EXISTS engram_stage_data \
             (key text, tenant_id text, project_id text, data text, classification text, origin text) ON COMMIT DELETE ROWS; \
         CREATE TEMP TABLE IF NOT EXISTS engram_stage_embeddings \
             (key text, tenant_id text, project_id text, embedding vector) ON COMMIT DELETE ROWS",
    )
    .execute(&mut *conn)
    .await?;

    // Sent in parts of 256 rows: the vectors of a full batch (2048 × 1536 floats) are 12.5 MB,
    // and need never be in one buffer.
    let parts = |row: fn(&mut Vec<u8>, &Embedded)| {
        let rows = batch.chunks(COPY_PART_ROWS).map(move |chunk| {
            let mut buf = Vec::with_capacity(1 << 20);
            chunk.iter().for_each(|e| row(&mut buf, e));
            buf
        });
        std::iter::once(binary_copy::header()).chain(rows).chain(std::iter::once(binary_copy::trailer()))
    };
    copy_in(conn, "COPY engram_stage_data FROM STDIN (FORMAT binary)", parts(|buf, e| {
        let r = &e.record;
        binary_copy::row(buf, 6);
        for text in [&r.key, &r.scope.tenant, &r.scope.project, &r.pattern.to_string(), &r.classification, &r.origin] {
            binary_copy::text(buf, text);
        }
    }))
    .await?;
    copy_in(conn, "COPY engram_stage_embeddings FROM STDIN (FORMAT binary)", parts(|buf, e| {
        let r = &e.record;
        binary_copy::row(buf, 4);
        for text in [&r.key, &r.scope.tenant, &r.scope.project] {
            binary_copy::text(buf, text);
        }
        binary_copy::vector(buf, &e.embedding);
    }))
    .await?;

    let rows: Vec<(String, bool)> = sqlx::query_as(
        "INSERT INTO memory_data (key, tenant_id, project_id, data, classification, source, run_id, updated_at) \
         SELECT s.key, s.tenant_id, s.project_id, s.data::json, s.classification, 'import', s.origin, now()::text \
         FROM engram_stage_data s \
         ON CONFLICT (tenant_id, project_id, key) DO UPDATE SET \
              data = EXCLUDED.data, classification = EXCLUDED.classification, source = EXCLUDED.source, \
              run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at \
         RETURNING key, (xmax = 0)",
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO memory_embeddings (key, tenant_id, project_id, embedding) \
         SELECT s.key, s.tenant_id, s.project_id, s.embedding FROM engram_stage_embeddings s \
         ON CONFLICT (tenant_id, project_id, key) DO UPDATE SET embedding = EXCLUDED.embedding",
    )
    .execute(&mut *conn)
    .await?;
    Ok(rows.into_iter().filter(|(_, inserted)| *inserted).map(|(k, _)| k).collect())
}

const COPY_PART_ROWS: usize = 256;

/// Runs `statement` (a `COPY ... FROM STDIN`) and sends it `parts`, one at a time.
async fn copy_in(conn: &mut PgConnection, statement: &str, parts: impl Iterator<Item = Vec<u8>>) -> Result<(), Sql> {
    let mut copy = conn.copy_in_raw(statement).await?;
    for part in parts {
        if let Err(e) = copy.send(part).await {
            // The connection must leave COPY mode before it can report anything else.
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
    }
    copy.finish().await.map(drop)
}

/// PostgreSQL's binary COPY format: a header, then per row a field count and each field as a
/// length and its bytes, then a trailer; the stream may be cut anywhere between parts. Text
/// fields are UTF-8; a `vector` field is pgvector's binary form: dimensions (int16), 0 (int16),
/// the floats (big-endian float4).
mod binary_copy {
    pub fn header() -> Vec<u8> {
        let mut buf = b"PGCOPY\n\xff\r\n\0".to_vec();
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        buf
    }

    pub fn trailer() -> Vec<u8> {
        (-1i16).to_be_bytes().to_vec()
    }

    pub fn row(buf: &mut Vec<u8>, fields: i16) {
        buf.extend_from_slice(&fields.to_be_bytes());
    }

    pub fn text(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as i32).to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
    }

    pub fn vector(buf: &mut Vec<u8>, v: &[f32]) {
        buf.extend_from_slice(&((4 + 4 * v.len()) as i32).to_be_bytes());
        buf.extend_from_slice(&(v.len() as i16).to_be_bytes());
        buf.extend_from_slice(&0i16.to_be_bytes());
        for f in v {
            buf.extend_from_slice(&f.to_be_bytes());
        }
    }
}

/// Applies `entries` (key -> skills; empty skills unregister the key) to the scope's registry
/// row, read under a row lock; writes it only when it changed. Returns whether it wrote.
pub async fn update_registry(conn: &mut PgConnection, scope: &Scope, entries: &[(&str, &[String])]) -> Result<bool, Sql> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT data::text FROM memory_data WHERE tenant_id = $1 AND project_id = $2 AND key = $3 FOR UPDATE",
    )
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(REGISTRY_KEY)
    .fetch_optional(&mut *conn)
    .await?;
    // Engramia reads anything but an object as an empty registry; so do we.
    let mut registry: IndexMap<String, Value> = current.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let mut changed = false;
    for (key, skills) in entries {
        if skills.is_empty() {
            changed |= registry.shift_remove(*key).is_some();
        } else {
            let v = Value::from(skills.to_vec());
            if registry.get(*key) != Some(&v) {
                registry.insert(key.to_string(), v);
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(false);
    }
    // The same statement as Engramia's own save() of the registry.
    sqlx::query(
        "INSERT INTO memory_data (key, tenant_id, project_id, data, updated_at) \
         VALUES ($3, $1, $2, $4::json, now()::text) \
         ON CONFLICT (tenant_id, project_id, key) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
    )
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(REGISTRY_KEY)
    .bind(Value::Object(registry.into_iter().collect()).to_string())
    .execute(conn)
    .await?;
    Ok(true)
}

/// Records what this run wrote in `engram_records`.
pub async fn upsert_ledger(conn: &mut PgConnection, run_id: &str, batch: &[&Embedded]) -> Result<(), Sql> {
    let col = |f: fn(&Embedded) -> String| batch.iter().map(|e| f(e)).collect::<Vec<String>>();
    sqlx::query(
        "INSERT INTO engram_records (tenant_id, project_id, key, content_hash, skills, origin, run_id, written_at) \
         SELECT u.t, u.p, u.k, u.h, u.s::jsonb, u.o, $7, now() \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(t, p, k, h, s, o) \
         ON CONFLICT (tenant_id, project_id, key) DO UPDATE SET \
              content_hash = EXCLUDED.content_hash, skills = EXCLUDED.skills, origin = EXCLUDED.origin, \
              run_id = EXCLUDED.run_id, written_at = EXCLUDED.written_at",
    )
    .bind(col(|e| e.record.scope.tenant.clone()))
    .bind(col(|e| e.record.scope.project.clone()))
    .bind(col(|e| e.record.key.clone()))
    .bind(col(|e| e.record.content_hash()))
    .bind(col(|e| Value::from(e.record.skills.clone()).to_string()))
    .bind(col(|e| e.record.origin.clone()))
    .bind(run_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What one run wrote into one scope.
#[derive(Debug, Clone, Default)]
pub struct ScopeCounts {
    pub created: usize,
    pub updated: usize,
    /// Stored near-duplicates removed in favour of a better record.
    pub replaced: usize,
}

/// Every pattern of a scope (key, task, success_score, design.openai as JSON text), for the
/// near-duplicate check and the rerun's replace/retire step.
pub async fn scope_patterns(
    conn: &mut PgConnection,
    scope: &Scope,
) -> Result<Vec<(String, Option<String>, Option<String>, Option<String>)>, Sql> {
    sqlx::query_as(
        "SELECT key, data ->> 'task', data ->> 'success_score', data #>> '{design,openai}' FROM memory_data \
         WHERE tenant_id = $1 AND project_id = $2 AND key LIKE 'patterns/%' ORDER BY key",
    )
    .bind(&scope.tenant)
    .bind(&scope.project)
    .fetch_all(conn)
    .await
}

/// Deletes patterns with their embeddings and ledger rows (the registry is the caller's).
pub async fn delete_patterns(conn: &mut PgConnection, scope: &Scope, keys: &[String], ledger: bool) -> Result<(), Sql> {
    let mut tables = vec!["memory_embeddings", "memory_data"];
    if ledger {
        tables.push("engram_records");
    }
    for table in tables {
        let sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND project_id = $2 AND key = ANY ($3)");
        sqlx::query(AssertSqlSafe(sql)).bind(&scope.tenant).bind(&scope.project).bind(keys).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The latest run that wrote and neither finished nor was finished by a later run.
pub async fn unfinished_run(conn: &mut PgConnection) -> Result<Option<(String, i64, i64, Option<String>)>, Sql> {
    sqlx::query_as(
        "SELECT run_id, batches, records, last_thread FROM engram_runs \
         WHERE finished_at IS NULL AND completed_by IS NULL ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await
}

pub async fn mark_progress(conn: &mut PgConnection, run_id: &str, batches: i64, records: i64, last_thread: Option<&str>) -> Result<(), Sql> {
    sqlx::query("UPDATE engram_runs SET batches = $2, records = $3, last_thread = $4, heartbeat_at = now() WHERE run_id = $1")
        .bind(run_id)
        .bind(batches)
        .bind(records)
        .bind(last_thread)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks earlier runs that stopped before finishing as finished by `run_id`.
pub async fn complete_earlier_runs(conn: &mut PgConnection, run_id: &str) -> Result<(), Sql> {
    sqlx::query("UPDATE engram_runs SET completed_by = $1 WHERE finished_at IS NULL AND completed_by IS NULL AND run_id <> $1")
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One `audit_log` row per scope written (action `import`), and the run's end in `engram_runs`.
pub async fn finish_run(
    conn: &mut PgConnection,
    run_id: &str,
    source: &str,
    counts: &IndexMap<Scope, ScopeCounts>,
) -> Result<(), Sql> {
    let tenants: Vec<&str> = counts.keys().map(|s| s.tenant.as_str()).collect();
    let projects: Vec<&str> = counts.keys().map(|s| s.project.as_str()).collect();
    let details: Vec<String> = counts
        .values()
        .map(|c| {
            serde_json::json!({
                "tool": format!("engram {}", env!("CARGO_PKG_VERSION")),
                "engram_run_id": run_id,
                "source": source,
                "created": c.created,
                "updated": c.updated,
                "replaced": c.replaced,
                "written": c.created + c.updated,
            })
            .to_string()
        })
        .collect();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, project_id, action, resource_type, resource_id, detail) \
         SELECT u.t, u.p, 'import', 'patterns', $4, u.d::jsonb FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(t, p, d)",
    )
    .bind(&tenants)
    .bind(&projects)
    .bind(&details)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    let by_scope: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(s, c)| (s.to_string(), serde_json::json!({"created": c.created, "updated": c.updated, "replaced": c.replaced})))
        .collect();
    sqlx::query("UPDATE engram_runs SET finished_at = now(), source = $2, counts = $3::jsonb WHERE run_id = $1")
        .bind(run_id)
        .bind(source)
        .bind(Value::Object(by_scope).to_string())
        .execute(conn)
        .await?;
    Ok(())
}
