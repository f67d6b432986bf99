//! Judging what `catalog` found: pure functions from the catalog (plus the missing columns and
//! privileges read beside it) and the run's `Preflight` to the lines worth telling the user
//! and the problems that stop the run.

use super::super::Preflight;
use super::catalog::{CREATED_DIMENSIONS, Catalog, KeyLayout, LEDGER_TABLES, MIGRATIONS_TABLE};
use super::schema::{Shipped, keyed_by};

/// Notes for the user, and problems (each a message with its way out).
#[derive(Debug, Default)]
pub struct Verdict {
    pub notes: Vec<String>,
    pub problems: Vec<String>,
}

/// An empty database: engram will enable pgvector and create Engramia's schema at the
/// revision `shipped` holds.
pub fn empty(cat: &Catalog, check: &Preflight, place: &str, shipped: &Shipped) -> Verdict {
    let mut v = Verdict::default();
    if cat.vector.installed.is_none() {
        if !cat.vector.available {
            v.problems.push(format!(
                "the PostgreSQL server of {place} has no pgvector (the `vector` extension is not available).\n  Install pgvector on the server (for a local test server: scripts/pg start), then rerun."
            ));
        } else if !(cat.superuser || (cat.vector.trusted && cat.can_create_in_db)) {
            v.problems.push(format!(
                "the `vector` extension is not enabled in {place}, and role {:?} may not create it ({}).\n  A superuser (or the database owner, where pgvector is trusted) must run this once in database {:?}, then rerun engram:\n    CREATE EXTENSION IF NOT EXISTS vector;",
                cat.user,
                if cat.vector.trusted { "that needs CREATE on the database" } else { "pgvector is not a trusted extension here, so that needs a superuser" },
                cat.database
            ));
        }
    }
    if !cat.can_create_in_schema {
        v.problems.push(format!(
            "role {:?} may not create tables in schema {} of {place} (needs CREATE on the schema).\n  Grant it (GRANT CREATE ON SCHEMA {} TO {:?}), use the database owner's role, or create Engramia's schema first with Engramia's own migrations (alembic upgrade head).",
            cat.user,
            schema(cat),
            schema(cat),
            cat.user
        ));
    }
    if let Some(d) = check.dimensions.filter(|d| *d != CREATED_DIMENSIONS) {
        v.problems.push(dims_message(
            &format!(
                "{place} is empty, and engram would create memory_embeddings.embedding as vector({CREATED_DIMENSIONS}), the size Engramia's migrations create (and the only one Engramia 0.6.6's PostgreSQL storage accepts)"
            ),
            CREATED_DIMENSIONS,
            d,
            &check.model,
        ));
    }
    let vector = if cat.vector.installed.is_none() { "enable the vector extension and " } else { "" };
    v.notes.push(format!(
        "{place} has no Engramia schema: the first write will {vector}create Engramia {}'s schema at alembic revision {} ({}; [target] engramia_schema), and engram's {}",
        shipped.engramia,
        shipped.revision,
        keyed_by(shipped.layout),
        ledger_note()
    ));
    v
}

/// Engramia's tables exist: engram writes into them as they are. `layout` is None when they
/// have no unique (tenant_id, project_id, key).
pub fn present(cat: &Catalog, check: &Preflight, place: &str, missing_columns: &[String], lacking: &[String]) -> Verdict {
    let mut v = Verdict::default();
    if !missing_columns.is_empty() {
        v.problems.push(format!(
            "Engramia's tables in {place} predate the schema engram writes (missing column(s) {}).\n  Upgrade them with Engramia's own migrations (alembic upgrade head), then rerun.",
            missing_columns.join(", ")
        ));
    }
    let head = match &cat.alembic_head {
        Some(h) => format!("Engramia's schema at alembic head {h}"),
        None => "Engramia's tables (no alembic_version)".into(),
    };
    match cat.layout {
        None => v.problems.push(format!(
            "memory_data / memory_embeddings in {place} have no unique key on (tenant_id, project_id, key) (Engramia's schema before head 009).\n  Upgrade them with Engramia's own migrations (alembic upgrade head), then rerun."
        )),
        Some(KeyLayout::BareKey) => v.notes.push(format!(
            "{place}: {head}, keyed by `key` alone (Engramia 0.6.x): keys are unique across scopes, and only one scope can hold the skills registry{}",
            cat.registry_owner.as_ref().map(|s| format!(" (held by {s})")).unwrap_or_default()
        )),
        Some(KeyLayout::Scoped) => v.notes.push(format!("{place}: {head}, keyed by (tenant_id, project_id, key)")),
    }
    match cat.dims {
        Some(found) => {
            if let Some(d) = check.dimensions.filter(|d| *d != found) {
                v.problems.push(dims_message(
                    &format!("memory_embeddings.embedding in {place} is vector({found})"),
                    found,
                    d,
                    &check.model,
                ));
            }
        }
        None => v.notes.push(format!("memory_embeddings.embedding in {place} has no fixed dimension")),
    }
    if !cat.has_ledger() {
        if !cat.can_create_in_schema {
            v.problems.push(format!(
                "role {:?} may not create engram's bookkeeping tables in schema {} of {place} (needs CREATE on the schema).\n  Grant it (GRANT CREATE ON SCHEMA {} TO {:?}), or run engram once as the database owner.",
                cat.user,
                schema(cat),
                schema(cat),
                cat.user
            ));
        }
        v.notes.push(format!("the first write will create engram's {}", ledger_note()));
    }
    if !lacking.is_empty() {
        v.problems.push(format!(
            "role {:?} lacks privileges engram needs in {place}: {}.\n  Grant them (e.g. GRANT SELECT, INSERT, UPDATE ON memory_data, memory_embeddings TO {:?}), or use the role Engramia itself connects with.",
            cat.user,
            lacking.join(", "),
            cat.user
        ));
    }
    v
}

fn schema(cat: &Catalog) -> &str {
    cat.schema.as_deref().unwrap_or("(none: search_path names no existing schema)")
}

fn ledger_note() -> String {
    format!("bookkeeping tables {} (migrations tracked in {MIGRATIONS_TABLE})", LEDGER_TABLES.join(", "))
}

/// A dimension mismatch, with both numbers and the two ways out.
pub fn dims_message(what: &str, found: usize, wanted: usize, model: &str) -> String {
    format!(
        "{what}, but {model} gives {wanted}-dimensional embeddings.\n  Ways out: set [embedding] dimensions = {found} in mapping.toml (text-embedding-3-* models can shorten their vectors), or use a model that gives {found} dimensions (e.g. text-embedding-3-small)."
    )
}

#[cfg(test)]
mod tests {
    use super::super::catalog::VectorExt;
    use super::*;
    use crate::record::Scope;

    fn catalog(tables: &[&str]) -> Catalog {
        Catalog {
            user: "app".into(),
            superuser: false,
            schema: Some("public".into()),
            present: tables.iter().map(|t| t.to_string()).collect(),
            alembic_head: Some("015".into()),
            alembic_unreadable: None,
            database: "db".into(),
            vector: VectorExt { installed: Some("0.6.2".into()), available: true, trusted: false },
            can_create_in_db: true,
            can_create_in_schema: true,
            layout: Some(KeyLayout::BareKey),
            dims: Some(1536),
            applied: vec![],
            registry_owner: Some(Scope::new("acme", "bot")),
        }
    }

    fn check(dims: Option<usize>) -> Preflight {
        Preflight { model: "text-embedding-3-large".into(), dimensions: dims }
    }

    #[test]
    fn empty_database_needs_a_creatable_extension_and_the_created_size() {
        let mut cat = catalog(&[]);
        cat.vector.installed = None;
        let v = empty(&cat, &check(Some(3072)), "h:5432/db", super::super::schema::newest());
        assert_eq!(v.problems.len(), 2, "{v:?}");
        assert!(v.problems[0].contains("CREATE EXTENSION IF NOT EXISTS vector;") && v.problems[0].contains("superuser"), "{v:?}");
        assert!(v.problems[1].contains("vector(1536)") && v.problems[1].contains("3072"));
        cat.superuser = true;
        let v = empty(&cat, &check(Some(1536)), "h:5432/db", super::super::schema::shipped("015").unwrap());
        assert!(v.problems.is_empty(), "{v:?}");
        assert!(v.notes[0].contains("enable the vector extension and create Engramia 0.6.6's schema at alembic revision 015"), "{v:?}");
    }

    #[test]
    fn present_schema_reports_layout_dims_ledger_and_privileges() {
        let cat = catalog(&["memory_data", "memory_embeddings", "tenants", "projects", "audit_log"]);
        let v = present(&cat, &check(Some(3072)), "h:5432/db", &[], &["INSERT on memory_data".into()]);
        assert_eq!(v.problems.len(), 2, "{v:?}");
        assert!(v.problems[0].contains("vector(1536)") && v.problems[0].contains("3072"));
        assert!(v.problems[1].contains("INSERT on memory_data"));
        assert!(v.notes[0].contains("head 015") && v.notes[0].contains("(held by acme/bot)"), "{v:?}");
        assert!(v.notes.iter().any(|n| n.contains("engram_runs, engram_records")), "{v:?}");

        let mut old = cat.clone();
        old.layout = None;
        let v = present(&old, &check(None), "h:5432/db", &["memory_data.run_id".into()], &[]);
        assert!(v.problems.iter().any(|p| p.contains("before head 009")), "{v:?}");
        assert!(v.problems.iter().any(|p| p.contains("memory_data.run_id")), "{v:?}");
    }
}
