//! The Engramia schema engram creates in an empty PostgreSQL database is Engramia's own
//! (`migrations/engramia_<revision>_*.sql`, the offline SQL of Engramia's alembic): table by
//! table equal to what Engramia's `alembic upgrade <revision>` makes, for every revision engram
//! ships; Engramia's `alembic upgrade head` continues from it and Engramia then reads every
//! migrated pattern, file chunk and skill back; and databases whose schema engram cannot
//! place are refused before anything is written.
//!
//! Needs ENGRAM_TEST_PG, ENGRAM_TEST_PYTHON (Engramia 0.6.6) and ENGRAM_TEST_PYTHON_ENGRAMIA07
//! (Engramia 0.7.0.dev0); scripts/test sets all three.

mod common;

use common::*;
use engram::sink::postgres::schema::SHIPPED;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

fn db<T>(url: &str, f: impl AsyncFnOnce(&mut PgConnection) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        f(&mut c).await
    })
}

fn exec(url: &str, sql: &'static str) {
    db(url, async |c| {
        sqlx::raw_sql(sql).execute(c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

fn pairs(url: &str, sql: &'static str) -> Vec<(String, String)> {
    db(url, async |c| sqlx::query_as(sql).fetch_all(c).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn strings(url: &str, sql: &'static str) -> Vec<String> {
    pairs(url, sql).into_iter().map(|(a, b)| format!("{a} {b}")).collect()
}

fn count(url: &str, sql: &'static str) -> i64 {
    db(url, async |c| sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// `alembic upgrade <revision>` by Engramia's own migrations, in the venv of the Engramia
/// release that ships that revision; returns the helper's JSON ({before, head, tables}).
fn alembic_upgrade(python: &Path, url: &str, revision: &str) -> Value {
    let out = Command::new(python)
        .arg(repo_root().join("tests/support/engramia_schema.py"))
        .args(["--url", url, "--revision", revision])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "alembic upgrade {revision} failed:\n{}", text(&out));
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

const ENGRAM_TABLES: [&str; 4] = ["engram_dropped_indexes", "engram_migrations", "engram_records", "engram_runs"];

// Every catalog query yields (table, description) rows, engram's own tables left out.
const TABLES: &str = "SELECT c.relname::text, c.relkind::text FROM pg_class c \
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S') \
      AND c.relname NOT LIKE 'engram\\_%' ORDER BY 1";
const COLUMNS: &str = "SELECT c.relname::text, a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
        || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END \
        || ' default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') || ' identity ' || a.attidentity::text \
        || ' generated ' || a.attgenerated::text || ' collation ' || a.attcollation::regcollation::text \
        || ' comment ' || coalesce(col_description(c.oid, a.attnum), '-') \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
      AND c.relname NOT LIKE 'engram\\_%' ORDER BY 1, 2";
const CONSTRAINTS: &str = "SELECT conrelid::regclass::text, conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid) \
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid <> 0 \
      AND conrelid::regclass::text NOT LIKE 'engram\\_%' ORDER BY 1, 2";
const INDEXES: &str = "SELECT tablename::text, indexdef FROM pg_indexes WHERE schemaname = 'public' \
      AND tablename NOT LIKE 'engram\\_%' ORDER BY 1, 2";
const SEQUENCES: &str = "SELECT sequencename::text, data_type::text || ' ' || start_value || ' ' || increment_by || ' ' || max_value \
    FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1";
const EXTENSIONS: &str = "SELECT extname::text, extversion || ' in ' || extnamespace::regnamespace::text FROM pg_extension ORDER BY 1";
const ALEMBIC: &str = "SELECT 'alembic_version', version_num::text FROM alembic_version";

/// The schema of `url`, table by table: every kind of row above, grouped under its table.
fn schema_of(url: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (kind, sql) in
        [("relation", TABLES), ("column", COLUMNS), ("constraint", CONSTRAINTS), ("index", INDEXES), ("sequence", SEQUENCES)]
    {
        for (table, what) in pairs(url, sql) {
            out.entry(table).or_default().push(format!("{kind}: {what}"));
        }
    }
    out.insert("(extensions)".into(), strings(url, EXTENSIONS));
    out.insert("(alembic_version rows)".into(), strings(url, ALEMBIC));
    out
}

fn workspace(server: &Server, target_section: &str) -> Workspace {
    Workspace::new(
        &server.base_url,
        "",
        &format!("[target]\n{target_section}\n[scope]\ntenant = \"acme\"\nproject = \"{{assistant.name}}\"\n"),
    )
}

fn migrate(ws: &Workspace, url: &str, extra: &[&str]) -> Output {
    run(engram().arg("migrate").arg("--config").arg(ws.mapping()).arg("--target").arg(url).args(extra))
}

// ------------------------------------------------------------------- the schema itself

/// For every revision engram ships: the demo migrated into an empty database with
/// `engramia_schema = "<revision>"` has, table by table, exactly the schema Engramia's own
/// `alembic upgrade <revision>` makes in another empty database (columns with types, defaults,
/// nullability and comments; constraints; indexes; sequences; extensions; alembic_version).
#[test]
fn engram_creates_engramias_exact_schema_at_every_shipped_revision() {
    let server = Server::demo();
    assert!(SHIPPED.len() >= 2, "engram ships the 0.6.x schema and a scoped one");
    for shipped in &SHIPPED {
        let rev = shipped.revision;
        let ours = fresh_database(&format!("schema_eq_ours_{rev}"));
        let theirs = fresh_database(&format!("schema_eq_theirs_{rev}"));
        let ws = workspace(&server, &format!("engramia_schema = \"{rev}\""));
        let report = migrate_ok(&ws, Path::new(&ours), &[]);
        assert_eq!(report["engramia_schema"]["revision"], rev, "{report:#}");
        assert_eq!(report["engramia_schema"]["status"], "created", "{report:#}");
        let made = alembic_upgrade(&python_for_revision(rev), &theirs, rev);
        assert_eq!(made["head"], rev, "{made:#}");

        let (a, b) = (schema_of(&ours), schema_of(&theirs));
        let names = |m: &BTreeMap<String, Vec<String>>| m.keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(names(&a), names(&b), "revision {rev}: the tables differ (engram's left, Engramia's right)");
        for (table, rows) in &a {
            assert_eq!(rows, &b[table], "revision {rev}, table {table}: engram's schema (left) differs from Engramia's alembic (right)");
        }
        let tables: Vec<String> = made["tables"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        assert!(tables.contains(&"memory_data".to_string()) && tables.len() > 10, "{made:#}");
        // engram's own bookkeeping is all it adds.
        let extra: Vec<String> = strings(&ours, "SELECT 'x', table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'engram\\_%' ORDER BY 2")
            .into_iter()
            .map(|s| s[2..].to_string())
            .collect();
        assert_eq!(extra, ENGRAM_TABLES);
    }
}

/// The shipped scripts are what their header says: Engramia's alembic in offline mode
/// (`alembic upgrade <revision> --sql`, tests/support/engramia_offline_sql.py) prints them
/// byte for byte, with the Engramia release that ships the revision.
#[test]
fn shipped_scripts_are_engramias_offline_sql() {
    for shipped in &SHIPPED {
        let out = Command::new(python_for_revision(shipped.revision))
            .arg(repo_root().join("tests/support/engramia_offline_sql.py"))
            .arg(shipped.revision)
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout) == shipped.sql, "migrations/engramia_{}_*.sql is not Engramia {}'s offline SQL; regenerate it with the command in its header", shipped.revision, shipped.engramia);
    }
}

// ------------------------------------------------------------------- alembic upgrade head, then Engramia reads it all

/// Every migrated scope read back through Engramia 0.7.0.dev0 (after `alembic upgrade head`):
/// each pattern (message pairs, tool patterns, file chunks) recalled by its own task, every
/// skill of every assistant found by find_by_skills, scopes isolated from each other.
fn everything_is_read_back(server: &Server, url: &str, report: &Value) {
    let scopes: Vec<String> = report["scopes"].as_array().unwrap().iter().map(|s| s["project"].as_str().unwrap().to_string()).collect();
    assert_eq!(scopes.len(), 3, "{report:#}");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut skilled = 0;
    for project in &scopes {
        // What engram wrote into this scope, skill by skill (its ledger).
        let by_skill: Vec<(String, String)> = db(url, async |c| {
            sqlx::query_as(
                "SELECT s, key FROM engram_records, jsonb_array_elements_text(skills) AS s \
                 WHERE tenant_id = 'acme' AND project_id = $1 ORDER BY s, key",
            )
            .bind(project)
            .fetch_all(c)
            .await
            .unwrap()
        });
        let mut skills: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (skill, key) in by_skill {
            skills.entry(skill).or_default().push(key);
        }
        let mut args = vec!["--tenant", "acme", "--project", project.as_str(), "--question", "where is my order", "--every"];
        for s in skills.keys() {
            args.extend(["--skill", s.as_str()]);
        }
        let r = pg_readback(&server.base_url, url, &args);
        assert_eq!(r["engramia"], "0.7.0.dev0", "{r:#}");
        let n = report["scopes"].as_array().unwrap().iter().find(|s| &s["project"] == project).unwrap()["patterns"].as_i64().unwrap();
        assert_eq!((r["pattern_count"].as_i64(), r["embedding_count"].as_i64()), (Some(n), Some(n)), "{project}: {r:#}");
        assert_eq!(r["unrecalled"], json!([]), "{project}: patterns Engramia does not recall by their own task: {r:#}");
        assert_eq!((&r["invalid"], &r["missing"], &r["used_keyword_fallback"]), (&json!([]), &json!([]), &json!(false)), "{project}: {r:#}");
        let keys: BTreeSet<String> = r["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
        for m in r["matches"].as_array().unwrap() {
            assert!(keys.contains(m["key"].as_str().unwrap()), "{project}: recall returned a key of another scope: {r:#}");
        }
        for (skill, want) in &skills {
            let mut got: Vec<String> = serde_json::from_value(r["skills"][skill].clone()).unwrap();
            got.sort();
            assert_eq!(&got, want, "{project}: find_by_skills([{skill:?}])");
            skilled += 1;
        }
        for k in keys {
            if let Some(other) = seen.insert(k.clone(), project.clone()) {
                panic!("key {k} is in scopes {other} and {project}");
            }
        }
    }
    assert!(skilled >= 3, "the demo's assistants have skills: {skilled}");
    // A scope nothing was migrated into holds nothing.
    let none = pg_readback(&server.base_url, url, &["--tenant", "acme", "--project", "nobody", "--question", "where is my order"]);
    assert_eq!((&none["pattern_count"], &none["matches"]), (&json!(0), &json!([])), "{none:#}");
}

/// An empty database: `engram migrate` (auto: revision 032), then Engramia's own deployment
/// step `alembic upgrade head` exits 0 with nothing to do, and Engramia 0.7 reads everything
/// back; a rerun of engram afterwards changes nothing.
#[test]
fn alembic_upgrade_head_after_engram_then_engramia_reads_everything() {
    let url = fresh_database("schema_upgrade_auto");
    let server = Server::demo();
    let ws = workspace(&server, "");
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    let up = alembic_upgrade(&python_engramia07(), &url, "head");
    assert_eq!((&up["before"], &up["head"]), (&json!("032"), &json!("032")), "{up:#}");
    everything_is_read_back(&server, &url, &report);
    let again = migrate_ok(&ws, Path::new(&url), &[]);
    for s in again["scopes"].as_array().unwrap() {
        assert_eq!(s["unchanged"], s["patterns"], "{s}");
    }
}

/// An empty database given the 0.6.x schema (`engramia_schema = "015"`): Engramia 0.7's
/// `alembic upgrade head` continues from 015 to 032 keeping every row, and the next engram run
/// registers the skills the 0.6.x layout could not hold (one registry per database) in their
/// own scope; then Engramia reads everything back.
#[test]
fn alembic_upgrade_head_continues_from_the_0_6_schema_engram_created() {
    let url = fresh_database("schema_upgrade_015");
    let server = Server::demo();
    let ws = workspace(&server, "engramia_schema = \"015\"");
    let first = migrate_ok(&ws, Path::new(&url), &[]);
    let limited: Vec<&Value> = first["warnings"].as_array().unwrap().iter().filter(|w| w["kind"] == "skills_registry_limit").collect();
    assert_eq!(limited.len(), 1, "{first:#}");
    let rows = count(&url, "SELECT count(*) FROM memory_data");
    let up = alembic_upgrade(&python_engramia07(), &url, "head");
    assert_eq!((&up["before"], &up["head"]), (&json!("015"), &json!("032")), "{up:#}");
    assert_eq!(count(&url, "SELECT count(*) FROM memory_data"), rows, "the upgrade lost rows");

    let second = migrate_ok(&ws, Path::new(&url), &[]);
    assert!(second["warnings"].as_array().unwrap().iter().all(|w| w["kind"] != "skills_registry_limit"), "{second:#}");
    assert_eq!(second["engramia_schema"], json!({"revision": "032", "status": "found", "keyed_by": "tenant_id, project_id, key"}));
    let registries = strings(&url, "SELECT 'r', project_id FROM memory_data WHERE key = 'skills/_registry' ORDER BY 2");
    assert_eq!(registries, ["r Support Bot", "r Weather Helper"]);
    everything_is_read_back(&server, &url, &second);
}

// ------------------------------------------------------------------- refused before anything is written

/// Runs the demo into `url` and expects exit 2 before anything is embedded; returns stderr.
fn refused(url: &str, target_section: &str) -> String {
    let server = Server::demo();
    let ws = workspace(&server, target_section);
    let out = migrate(&ws, url, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(server.stats().embedding_requests, 0, "embedded before refusing");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The footprint a refused run must leave as it was: every table, and the rows of a few.
fn footprint(url: &str) -> Vec<String> {
    let mut out = strings(url, "SELECT table_name::text, table_type::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
    out.extend(strings(url, EXTENSIONS));
    out
}

/// Engramia's schema at 032 with a table missing: exit 2 naming the revision, the missing
/// table and what engram supports; nothing written.
#[test]
fn a_partial_schema_is_refused() {
    let url = fresh_database("schema_partial");
    alembic_upgrade(&python_engramia07(), &url, "032");
    exec(&url, "DROP TABLE admin_audit_log");
    let before = footprint(&url);
    let err = refused(&url, "");
    for needle in ["revision 032", "admin_audit_log", "001 to 032", "alembic upgrade head"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(footprint(&url), before);
    assert_eq!(count(&url, "SELECT count(*) FROM memory_data"), 0);
}

/// An alembic revision engram does not know (a newer Engramia): exit 2 naming it and the range
/// engram supports; nothing written.
#[test]
fn an_unknown_alembic_revision_is_refused() {
    let url = fresh_database("schema_unknown_rev");
    alembic_upgrade(&python_engramia07(), &url, "032");
    exec(&url, "UPDATE alembic_version SET version_num = '099'");
    let before = footprint(&url);
    let err = refused(&url, "");
    for needle in ["\"099\"", "001 to 032", "\"015\" (Engramia 0.6.6", "\"032\" (Engramia 0.7.0.dev0"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(footprint(&url), before);
}

/// Engramia's tables without alembic_version (e.g. made by an earlier engram release, or by
/// hand): exit 2 saying what to do; nothing written.
#[test]
fn engramia_tables_without_alembic_version_are_refused() {
    let url = fresh_database("schema_no_alembic");
    alembic_upgrade(&python(), &url, "015");
    exec(&url, "DROP TABLE alembic_version");
    let before = footprint(&url);
    let err = refused(&url, "");
    for needle in ["no alembic_version", "memory_data", "alembic stamp", "empty database"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(footprint(&url), before);
}

/// A revision engram does not ship, in mapping.toml: exit 2 naming what it ships, before any
/// connection (the database stays empty).
#[test]
fn an_engramia_schema_engram_does_not_ship_is_a_config_error() {
    let url = fresh_database("schema_bad_choice");
    let err = refused(&url, "engramia_schema = \"019\"");
    for needle in ["engramia_schema", "\"019\"", "\"auto\"", "\"015\"", "\"032\""] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(count(&url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"), 0);
}

/// `engramia_schema` names what an empty database gets; a database that has Engramia's schema
/// is used at its own revision, and the run says so.
#[test]
fn a_chosen_revision_does_not_touch_an_existing_schema() {
    let url = fresh_database("schema_choice_existing");
    alembic_upgrade(&python_engramia07(), &url, "032");
    let server = Server::demo();
    let ws = workspace(&server, "engramia_schema = \"015\"");
    let out = migrate(&ws, &url, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("engramia_schema = \"015\" applies to an empty database only") && err.contains("revision 032"), "{err}");
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(report["engramia_schema"]["revision"], "032", "{report:#}");
    assert_eq!(report["engramia_schema"]["status"], "found", "{report:#}");
}
