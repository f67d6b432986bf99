//! Engramia's schema as engram knows it: the alembic revisions of Engramia's migration chain,
//! and the ones engram can create in an empty database (`migrations/engramia_<rev>_*.sql`,
//! the offline output of Engramia's own `alembic upgrade <rev> --sql`; see the files' headers).
//! `[target] engramia_schema` picks which one an empty database gets.

use super::catalog::{ENGRAMIA_TABLES, KeyLayout};
use std::collections::BTreeSet;

/// A schema engram can create: Engramia's migrations up to `revision`, as one SQL script.
#[derive(Debug)]
pub struct Shipped {
    pub revision: &'static str,
    /// The Engramia release whose migrations produced the script.
    pub engramia: &'static str,
    pub layout: KeyLayout,
    pub sql: &'static str,
}

/// Oldest first; the last is what `auto` creates.
pub static SHIPPED: [Shipped; 2] = [
    Shipped {
        revision: "015",
        engramia: "0.6.6",
        layout: KeyLayout::BareKey,
        sql: include_str!("../../../migrations/engramia_015_engramia_0_6_6.sql"),
    },
    Shipped {
        revision: "032",
        engramia: "0.7.0.dev0",
        layout: KeyLayout::Scoped,
        sql: include_str!("../../../migrations/engramia_032_engramia_0_7_0_dev0.sql"),
    },
];

/// Engramia's alembic revisions up to the newest engram ships, in order (there is no 007).
/// A database at one of these is used as it is; any other `alembic_version` is refused.
pub const KNOWN: [&str; 31] = [
    "001", "002", "003", "004", "005", "006", "008", "009", "010", "011", "012", "013", "014", "015", "016", "017", "018",
    "019", "020", "021", "022", "023", "024", "025", "026", "027", "028", "029", "030", "031", "032",
];

/// `[target] engramia_schema`: which revision an empty database gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Choice {
    /// The newest shipped revision.
    #[default]
    Auto,
    Revision(&'static Shipped),
}

impl PartialEq for Shipped {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
    }
}
impl Eq for Shipped {}

impl TryFrom<String> for Choice {
    type Error = String;
    fn try_from(value: String) -> Result<Choice, String> {
        Choice::parse(&value)
    }
}

impl Choice {
    /// "auto" or a shipped revision; otherwise a message naming what engram ships.
    pub fn parse(value: &str) -> Result<Choice, String> {
        if value == "auto" {
            return Ok(Choice::Auto);
        }
        shipped(value).map(Choice::Revision).ok_or_else(|| {
            format!("[target] engramia_schema = {value:?} is not a schema engram can create; use \"auto\" (revision {}) or one of: {}", newest().revision, shipped_list())
        })
    }

    pub fn shipped(&self) -> &'static Shipped {
        match self {
            Choice::Auto => newest(),
            Choice::Revision(s) => s,
        }
    }
}

pub fn newest() -> &'static Shipped {
    &SHIPPED[SHIPPED.len() - 1]
}

pub fn shipped(revision: &str) -> Option<&'static Shipped> {
    SHIPPED.iter().find(|s| s.revision == revision)
}

/// "015 (Engramia 0.6.x, keyed by key), 032 (...)", for messages.
pub fn shipped_list() -> String {
    SHIPPED.iter().map(|s| format!("\"{}\" (Engramia {}, {})", s.revision, s.engramia, keyed_by(s.layout))).collect::<Vec<_>>().join(", ")
}

pub fn keyed_by(layout: KeyLayout) -> &'static str {
    match layout {
        KeyLayout::BareKey => "memory_data keyed by key alone",
        KeyLayout::Scoped => "memory_data keyed by (tenant_id, project_id, key)",
    }
}

/// The tables a shipped script leaves (CREATE TABLE, ALTER TABLE .. RENAME TO, DROP TABLE, in
/// order), `alembic_version` included.
pub fn tables_of(sql: &str) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for statement in sql.split(';') {
        let words: Vec<String> = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .flat_map(str::split_whitespace)
            .map(|w| w.split('(').next().unwrap_or_default().to_ascii_lowercase())
            .collect();
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["create", "table", "if", "not", "exists", name, ..] | ["create", "table", name, ..] => {
                tables.insert(name.to_string());
            }
            ["alter", "table", old, "rename", "to", new, ..] => {
                tables.remove(*old);
                tables.insert(new.to_string());
            }
            ["drop", "table", "if", "exists", name, ..] | ["drop", "table", name, ..] => {
                tables.remove(*name);
            }
            _ => {}
        }
    }
    tables
}

/// The tables a database at `revision` (a known one) must have: engram's five, and those of
/// every shipped schema at or before it (Engramia's migrations only add tables after 002).
pub fn expected_tables(revision: &str) -> BTreeSet<String> {
    let at = KNOWN.iter().position(|r| *r == revision);
    let mut tables: BTreeSet<String> = ENGRAMIA_TABLES.iter().map(|t| t.to_string()).collect();
    for s in &SHIPPED {
        if at.is_some_and(|at| KNOWN.iter().position(|r| *r == s.revision).is_some_and(|p| p <= at)) {
            tables.extend(tables_of(s.sql));
        }
    }
    tables
}

/// Every table name any shipped schema has (for the catalog's existence check).
pub fn all_tables() -> BTreeSet<String> {
    SHIPPED.iter().flat_map(|s| tables_of(s.sql)).collect()
}

pub use crate::sink::SchemaReport;

impl SchemaReport {
    pub fn summary(&self) -> String {
        let what = match self.status {
            "found" => "found",
            "create" => "to be created",
            _ => "created",
        };
        let from = self.engramia.as_ref().map(|e| format!(" from Engramia {e}'s migrations")).unwrap_or_default();
        let key = self.keyed_by.map(|k| format!(", keyed by ({k})")).unwrap_or_default();
        format!("Engramia alembic revision {} {what}{from}{key}", self.revision)
    }
}

pub fn layout_key(layout: KeyLayout) -> &'static str {
    match layout {
        KeyLayout::BareKey => "key",
        KeyLayout::Scoped => "tenant_id, project_id, key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scripts_are_engramias_offline_output_at_their_revision() {
        for s in &SHIPPED {
            assert!(KNOWN.contains(&s.revision), "{}", s.revision);
            assert!(s.sql.contains(&format!("(Engramia {})", s.engramia)), "{}", s.revision);
            assert!(s.sql.contains(&format!("UPDATE alembic_version SET version_num='{}'", s.revision)), "{}", s.revision);
            assert!(s.sql.contains("CREATE EXTENSION IF NOT EXISTS vector;"), "{}", s.revision);
            assert!(s.sql.trim_end().ends_with("COMMIT;"), "{}", s.revision);
        }
        assert_eq!(newest().revision, *KNOWN.last().unwrap());
    }

    #[test]
    fn tables_follow_creates_renames_and_drops() {
        let t015 = tables_of(SHIPPED[0].sql);
        let want = [
            "alembic_version", "api_keys", "audit_log", "billing_subscriptions", "cloud_users", "dsr_requests", "jobs",
            "memory_data", "memory_embeddings", "overage_settings", "processed_webhook_events", "projects", "revoked_jtis",
            "tenants", "usage_counters",
        ];
        assert_eq!(t015.iter().map(String::as_str).collect::<Vec<_>>(), want);
        let t032 = tables_of(SHIPPED[1].sql);
        assert!(t015.is_subset(&t032));
        assert!(t032.contains("admin_users") && t032.contains("tenant_credentials") && !t032.contains("brain_data"));
        assert_eq!(tables_of("CREATE TABLE a (x int); ALTER TABLE a RENAME TO b; CREATE TABLE c(); DROP TABLE IF EXISTS c;"), ["b".to_string()].into());
        assert_eq!(expected_tables("009").len(), ENGRAMIA_TABLES.len());
        assert_eq!(expected_tables("020"), t015.iter().cloned().chain(ENGRAMIA_TABLES.iter().map(|t| t.to_string())).collect());
        assert_eq!(expected_tables("032"), t032);
    }

    #[test]
    fn choice_parses_auto_and_shipped_revisions_only() {
        assert_eq!(Choice::parse("auto").unwrap().shipped().revision, "032");
        assert_eq!(Choice::parse("015").unwrap().shipped().layout, KeyLayout::BareKey);
        let err = Choice::parse("019").unwrap_err();
        assert!(err.contains("\"019\"") && err.contains("\"015\" (Engramia 0.6.6") && err.contains("\"032\""), "{err}");
    }
}
