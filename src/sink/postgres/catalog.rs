//! Read-only inspection of the target database: which of Engramia's and engram's tables exist,
//! the key layout of `memory_data` / `memory_embeddings`, the embedding column's dimension, the
//! `vector` extension, and what the connected role may do. Nothing here writes.

use super::schema;
use crate::record::Scope;
use sqlx::{PgConnection, Row};
use std::collections::BTreeSet;

/// Engramia's tables engram writes into (or creates, all together, in an empty database).
pub const ENGRAMIA_TABLES: [&str; 5] = ["memory_data", "memory_embeddings", "tenants", "projects", "audit_log"];
/// engram's own tables (`migrations/0002_engram_ledger.sql`, `0003_engram_dropped_indexes.sql`)
/// and sqlx's tracking table.
pub const LEDGER_TABLES: [&str; 3] = ["engram_runs", "engram_records", "engram_dropped_indexes"];
pub const MIGRATIONS_TABLE: &str = "engram_migrations";
/// The embedding size every shipped Engramia schema creates (its migration 001), and the
/// default `embedding_dim` of Engramia's PostgresStorage (0.6.6 accepts no other).
pub const CREATED_DIMENSIONS: usize = 1536;
/// Engramia's skills registry key, one per scope (`engramia/core/skill_registry.py`).
pub const REGISTRY_KEY: &str = "skills/_registry";

/// How `memory_data` and `memory_embeddings` are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// Engramia 0.6.x up to head 015: PRIMARY KEY (key) plus UNIQUE (tenant_id, project_id, key).
    /// A key is unique across all scopes, and so is the one `skills/_registry` row.
    BareKey,
    /// Later heads: PRIMARY KEY (tenant_id, project_id, key).
    Scoped,
}

/// The `vector` extension as the server offers it.
#[derive(Debug, Clone, Default)]
pub struct VectorExt {
    pub installed: Option<String>,
    pub available: bool,
    pub trusted: bool,
}

/// What preflight found. `layout`, `dims` and `registry_owner` are only known when Engramia's
/// tables exist.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub user: String,
    /// `current_database()`, for the SQL an owner is asked to run.
    pub database: String,
    pub superuser: bool,
    pub schema: Option<String>,
    pub present: BTreeSet<String>,
    pub alembic_head: Option<String>,
    /// Why `alembic_version` could not be read (or that it is empty).
    pub alembic_unreadable: Option<String>,
    pub vector: VectorExt,
    pub can_create_in_db: bool,
    pub can_create_in_schema: bool,
    pub layout: Option<KeyLayout>,
    pub dims: Option<usize>,
    /// engram migrations already applied (versions), from `engram_migrations`.
    pub applied: Vec<i64>,
    /// With the bare-key layout: the scope whose `skills/_registry` row exists, if any.
    pub registry_owner: Option<Scope>,
}

/// Whether Engramia's schema is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// None of Engramia's tables and no `alembic_version`: engram creates the schema on the
    /// first write.
    Empty,
    /// At a known alembic revision, with every table that revision has.
    Present,
}

impl Catalog {
    pub fn has(&self, table: &str) -> bool {
        self.present.contains(table)
    }

    pub fn has_ledger(&self) -> bool {
        LEDGER_TABLES.iter().all(|t| self.has(t))
    }

    /// engram's migration 0004 is applied: `engram_runs` rows say who each run is and whether
    /// it is alive (`coord`); before it, no run can be told alive.
    pub fn tracks_live_runs(&self) -> bool {
        self.applied.contains(&4)
    }

    /// Empty or present; anything else is a configuration error: Engramia's tables without
    /// `alembic_version`, a revision engram does not know, or a revision without all its tables.
    pub fn shape(&self, place: &str) -> Result<Shape, String> {
        let engramia: Vec<&String> = self.present.iter().filter(|t| schema::all_tables().contains(*t) && *t != "alembic_version").collect();
        if let Some(why) = &self.alembic_unreadable {
            return Err(format!(
                "{place} has an alembic_version table, but {why}, so engram cannot tell which revision of Engramia's schema it holds.\n  Grant SELECT on alembic_version to {:?}, or complete Engramia's migrations (alembic upgrade head), then rerun. Nothing was written.",
                self.user
            ));
        }
        let Some(head) = &self.alembic_head else {
            if engramia.is_empty() {
                return Ok(Shape::Empty);
            }
            let names: Vec<&str> = engramia.iter().map(|t| t.as_str()).collect();
            return Err(format!(
                "{place} has Engramia's table(s) {} but no alembic_version, so neither engram nor Engramia's alembic can tell which revision they are at.\n  If Engramia's migrations made them, record the revision they are at (alembic stamp <revision>). If an earlier engram release created them (a look-alike of revision 015 that Engramia's alembic cannot upgrade), migrate again into an empty database. Nothing was written.",
                names.join(", ")
            ));
        };
        if !schema::KNOWN.contains(&head.as_str()) {
            return Err(format!(
                "{place} holds Engramia's schema at alembic revision {head:?}, which engram does not know: it supports revisions {} to {} (Engramia up to {}), and creates {}.\n  Use an engram release that supports this revision, or point --target at a database at a supported one. Nothing was written.",
                schema::KNOWN[0],
                schema::newest().revision,
                schema::newest().engramia,
                schema::shipped_list()
            ));
        }
        let missing: Vec<String> = schema::expected_tables(head).into_iter().filter(|t| !self.has(t)).collect();
        if missing.is_empty() {
            return Ok(Shape::Present);
        }
        Err(format!(
            "{place} holds Engramia's schema at alembic revision {head}, but without the table(s) {} that revision has (engram supports revisions {} to {}).\n  Complete it with Engramia's own migrations (alembic upgrade head), or point --target at an empty database. Nothing was written.",
            missing.join(", "),
            schema::KNOWN[0],
            schema::newest().revision
        ))
    }

    /// True when the first write creates Engramia's schema (none of it is there).
    pub fn creates_engramia_schema(&self) -> bool {
        self.alembic_head.is_none() && self.alembic_unreadable.is_none() && !self.present.iter().any(|t| schema::all_tables().contains(t))
    }

    /// True when the first write must run migrations (Engramia's schema, engram's tables, or both).
    pub fn needs_migration(&self) -> bool {
        let latest_ledger = [2, 3, 4].iter().all(|v| self.applied.contains(v)) && self.has_ledger();
        !latest_ledger || self.creates_engramia_schema()
    }
}

type Sql = sqlx::Error;

/// Reads everything preflight needs, in a handful of catalog queries.
pub async fn inspect(conn: &mut PgConnection) -> Result<Catalog, Sql> {
    let row = sqlx::query(
        "SELECT current_user::text, current_schema()::text, \
                COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false), \
                has_database_privilege(current_database(), 'CREATE'), \
                COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false), \
                (SELECT extversion::text FROM pg_extension WHERE extname = 'vector'), \
                EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector'), \
                COALESCE((SELECT bool_or(trusted) FROM pg_available_extension_versions WHERE name = 'vector'), false), \
                current_database()::text",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut cat = Catalog {
        user: row.try_get(0)?,
        database: row.try_get(8)?,
        schema: row.try_get(1)?,
        superuser: row.try_get(2)?,
        can_create_in_db: row.try_get(3)?,
        can_create_in_schema: row.try_get(4)?,
        vector: VectorExt { installed: row.try_get(5)?, available: row.try_get(6)?, trusted: row.try_get(7)? },
        present: BTreeSet::new(),
        alembic_head: None,
        alembic_unreadable: None,
        layout: None,
        dims: None,
        applied: Vec::new(),
        registry_owner: None,
    };

    let mut names: BTreeSet<String> = schema::all_tables();
    names.extend(ENGRAMIA_TABLES.iter().chain(&LEDGER_TABLES).chain(&[MIGRATIONS_TABLE]).map(|t| t.to_string()));
    let names: Vec<String> = names.into_iter().collect();
    cat.present = sqlx::query_scalar("SELECT n FROM UNNEST($1::text[]) AS n WHERE to_regclass(n) IS NOT NULL")
        .bind(&names)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();

    if cat.has("alembic_version") {
        // Which schema this is; a role that may not read it is told so by `shape`.
        match sqlx::query_scalar::<_, String>("SELECT version_num::text FROM alembic_version").fetch_all(&mut *conn).await {
            Ok(v) if v.len() == 1 => cat.alembic_head = v.into_iter().next(),
            Ok(v) if v.is_empty() => cat.alembic_unreadable = Some("it holds no revision".into()),
            Ok(v) => cat.alembic_unreadable = Some(format!("it holds {} revisions ({}; Engramia's chain has one head)", v.len(), v.join(", "))),
            Err(e) => cat.alembic_unreadable = Some(format!("reading it failed ({e})")),
        }
    }
    if cat.has(MIGRATIONS_TABLE) {
        cat.applied = sqlx::query_scalar("SELECT version FROM engram_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    }
    if cat.has("memory_embeddings") {
        let ty: Option<String> = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'memory_embeddings'::regclass AND attname = 'embedding' AND NOT attisdropped",
        )
        .fetch_optional(&mut *conn)
        .await?;
        cat.dims = ty.as_deref().and_then(parse_vector_dims);
    }
    if cat.has("memory_data") && cat.has("memory_embeddings") {
        cat.layout = key_layout(conn).await?;
        if cat.layout == Some(KeyLayout::BareKey) {
            cat.registry_owner = registry_owner(conn).await?;
        }
    }
    Ok(cat)
}

/// With the bare-key layout: the scope holding the database's one skills registry row.
pub async fn registry_owner(conn: &mut PgConnection) -> Result<Option<Scope>, Sql> {
    let owner: Option<(String, String)> =
        sqlx::query_as("SELECT tenant_id, project_id FROM memory_data WHERE key = $1 ORDER BY tenant_id, project_id LIMIT 1")
            .bind(REGISTRY_KEY)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(owner.map(|(t, p)| Scope::new(t, p)))
}

/// `vector(1536)` -> 1536; `vector` without a size -> None.
pub fn parse_vector_dims(ty: &str) -> Option<usize> {
    let inner = ty.rsplit_once("vector(")?.1.strip_suffix(')')?;
    inner.parse().ok()
}

/// The layout from the unique indexes of both tables; None when either has no unique key on
/// (tenant_id, project_id, key), the upsert target Engramia itself uses (head 009 and later).
async fn key_layout(conn: &mut PgConnection) -> Result<Option<KeyLayout>, Sql> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, array_agg(a.attname::text ORDER BY a.attname) \
         FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
         WHERE i.indrelid IN ('memory_data'::regclass, 'memory_embeddings'::regclass) \
           AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
         GROUP BY c.relname, i.indexrelid",
    )
    .fetch_all(conn)
    .await?;
    let has = |table: &str, cols: &[&str]| rows.iter().any(|(t, c)| t == table && c.iter().map(String::as_str).eq(cols.iter().copied()));
    let scoped = ["key", "project_id", "tenant_id"];
    if !has("memory_data", &scoped) || !has("memory_embeddings", &scoped) {
        return Ok(None);
    }
    let bare = has("memory_data", &["key"]) || has("memory_embeddings", &["key"]);
    Ok(Some(if bare { KeyLayout::BareKey } else { KeyLayout::Scoped }))
}

/// Columns engram writes or reads, per Engramia table; a table without them predates the
/// head engram targets.
const NEEDED_COLUMNS: [(&str, &[&str]); 5] = [
    ("memory_data", &["key", "data", "updated_at", "tenant_id", "project_id", "classification", "source", "run_id"]),
    ("memory_embeddings", &["key", "embedding", "tenant_id", "project_id"]),
    ("tenants", &["id", "name"]),
    ("projects", &["id", "tenant_id", "name"]),
    ("audit_log", &["tenant_id", "project_id", "action", "resource_type", "resource_id", "detail"]),
];

/// "memory_data.source" for every needed column that is missing.
pub async fn missing_columns(conn: &mut PgConnection) -> Result<Vec<String>, Sql> {
    let (tables, columns): (Vec<String>, Vec<String>) = NEEDED_COLUMNS
        .iter()
        .flat_map(|(t, cols)| cols.iter().map(move |c| (t.to_string(), c.to_string())))
        .unzip();
    sqlx::query_scalar(
        "SELECT u.t || '.' || u.c FROM UNNEST($1::text[], $2::text[]) AS u(t, c) \
         WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass(u.t) \
                           AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped)",
    )
    .bind(tables)
    .bind(columns)
    .fetch_all(conn)
    .await
}

/// "INSERT on memory_data" for every privilege the role lacks on existing tables.
pub async fn missing_privileges(conn: &mut PgConnection, cat: &Catalog) -> Result<Vec<String>, Sql> {
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    for t in ["memory_data", "memory_embeddings"] {
        wanted.extend(["SELECT", "INSERT", "UPDATE"].map(|p| (t, p)));
    }
    for t in ["tenants", "projects"] {
        wanted.extend(["SELECT", "INSERT"].map(|p| (t, p)));
    }
    wanted.push(("audit_log", "INSERT"));
    for t in LEDGER_TABLES {
        wanted.extend(["SELECT", "INSERT", "UPDATE"].map(|p| (t, p)));
    }
    wanted.extend(["SELECT", "INSERT", "UPDATE"].map(|p| (MIGRATIONS_TABLE, p)));
    let (tables, privs): (Vec<String>, Vec<String>) =
        wanted.into_iter().filter(|(t, _)| cat.has(t)).map(|(t, p)| (t.to_string(), p.to_string())).unzip();
    let mut missing: Vec<String> = sqlx::query_scalar(
        "SELECT u.p || ' on ' || u.t FROM UNNEST($1::text[], $2::text[]) AS u(t, p) \
         WHERE NOT has_table_privilege(u.t, u.p)",
    )
    .bind(tables)
    .bind(privs)
    .fetch_all(&mut *conn)
    .await?;
    if cat.has("audit_log") {
        let seq_ok: Option<bool> = sqlx::query_scalar(
            "SELECT has_sequence_privilege(s, 'USAGE') FROM pg_get_serial_sequence('audit_log', 'id') AS s WHERE s IS NOT NULL",
        )
        .fetch_optional(&mut *conn)
        .await?;
        if seq_ok == Some(false) {
            missing.push("USAGE on the sequence of audit_log.id".into());
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_dims() {
        assert_eq!(parse_vector_dims("vector(1536)"), Some(1536));
        assert_eq!(parse_vector_dims("public.vector(384)"), Some(384));
        assert_eq!(parse_vector_dims("vector"), None);
        assert_eq!(parse_vector_dims("text"), None);
    }
}
