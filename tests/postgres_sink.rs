//! `engram migrate` into PostgreSQL + pgvector, end to end: the demo account from the stand-in
//! server into a database that holds Engramia's own schema (made by Engramia's alembic
//! migrations) and into an empty one, read back the way Engramia recalls; reruns; and every way
//! a target can be refused before anything is embedded or written.
//!
//! Needs ENGRAM_TEST_PG and ENGRAM_TEST_PYTHON (scripts/test sets both); fails without them.

mod common;

use common::*;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::process::{Command, Output};

const DOCS: &str = "Docs Assistant";
const SUPPORT: &str = "Support Bot";
const WEATHER: &str = "Weather Helper";
/// A demo user turn (thread_egExQ1BJoynbv6IWPmbb8fVQ) and a paraphrase of it.
const ROTATE_TURN: &str = "How do I rotate our production API key without downtime?";
const ROTATE_QUESTION: &str = "how can we rotate the production API key with no downtime";

// ------------------------------------------------------------------- helpers

/// Runs SQL against `url` on a private runtime (the tests are synchronous: the stand-in
/// server has its own runtime).
fn db<T>(url: &str, f: impl AsyncFnOnce(&mut PgConnection) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        f(&mut c).await
    })
}

fn exec(url: &str, sql: &str) {
    let sql = sql.to_string();
    db(url, async move |c| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

fn count(url: &str, sql: &'static str) -> i64 {
    db(url, async |c| sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn strings(url: &str, sql: &'static str) -> Vec<String> {
    db(url, async |c| sqlx::query_scalar::<_, String>(sql).fetch_all(c).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn tables(url: &str) -> Vec<String> {
    strings(url, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
}

fn patterns(url: &str) -> i64 {
    count(url, "SELECT count(*) FROM memory_data WHERE key LIKE 'patterns/%'")
}

fn embeddings(url: &str) -> i64 {
    count(url, "SELECT count(*) FROM memory_embeddings")
}

/// Engramia 0.6.6's schema at head 015, made by its own alembic migrations.
fn engramia_schema(url: &str) {
    let out = Command::new(python())
        .arg(repo_root().join("tests/support/engramia_schema.py"))
        .args(["--url", url])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "engramia_schema.py failed:\n{}", text(&out));
}

fn migrate(ws: &Workspace, target: &str, extra: &[&str]) -> Output {
    run(engram().arg("migrate").arg("--config").arg(ws.mapping()).arg("--target").arg(target).args(extra))
}

/// Sum of the report's patterns (everything but skips), over all scopes.
fn report_patterns(report: &Value) -> i64 {
    report["scopes"].as_array().unwrap().iter().map(|s| s["patterns"].as_i64().unwrap()).sum()
}

fn scope<'a>(report: &'a Value, project: &str) -> &'a Value {
    report["scopes"].as_array().unwrap().iter().find(|s| s["project"] == project).unwrap_or_else(|| panic!("no scope {project}"))
}

/// Engramia's recall in one scope, by the Engramia that reads the database's revision.
fn recall(server: &Server, url: &str, project: &str, question: &str) -> Value {
    pg_readback(&server.base_url, url, &["--tenant", "acme", "--project", project, "--question", question])
}

/// Engramia's own SkillRegistry over its PostgresStorage (whose load/save work in 0.6.6 too;
/// only its vector search is broken): the keys registered under `skill` in a scope.
fn engramia_find_by_skills(server: &Server, url: &str, project: &str, skill: &str) -> Vec<String> {
    let r = pg_readback(&server.base_url, url, &["--tenant", "acme", "--project", project, "--skill", skill]);
    serde_json::from_value(r["skills"][skill].clone()).unwrap()
}

/// The full demo migration into `url` (`target_section` goes under `[target]`), then the
/// checks every starting point shares: counts equal the report, Engramia recalls a
/// paraphrased user question, a rerun adds nothing. Returns the server and the first report.
fn migrate_demo_and_recall(url: &str, target_section: &str) -> (Server, Value) {
    let server = Server::demo();
    let ws = Workspace::new(
        &server.base_url,
        "",
        &format!("[target]\n{target_section}\n[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{{assistant.name}}\"\n"),
    );
    let report = migrate_ok(&ws, Path::new(url), &[]);
    let total = report_patterns(&report);
    assert!(total > 0, "the demo produced no patterns: {report:#}");
    assert_eq!(patterns(url), total, "memory_data rows vs the report's patterns");
    assert_eq!(embeddings(url), total, "memory_embeddings rows vs the report's patterns");

    let found = recall(&server, url, DOCS, ROTATE_QUESTION);
    assert_eq!(found["matches"][0]["task"], ROTATE_TURN, "{found:#}");
    assert_eq!(found["invalid"], json!([]), "{found:#}");
    assert_eq!(found["missing"], json!([]), "{found:#}");
    for project in [DOCS, SUPPORT, WEATHER] {
        let r = recall(&server, url, project, "where is my order");
        let n = scope(&report, project)["patterns"].as_i64().unwrap();
        assert_eq!((r["pattern_count"].as_i64(), r["embedding_count"].as_i64()), (Some(n), Some(n)), "{project}: {r:#}");
        assert_eq!((&r["invalid"], &r["missing"]), (&json!([]), &json!([])), "{project}: {r:#}");
    }

    // What engram writes beside the pattern JSON.
    assert_eq!(count(url, "SELECT count(*) FROM memory_data WHERE key LIKE 'patterns/%' AND source IS DISTINCT FROM 'import'"), 0);
    // run_id is the record's origin; for the recalled user turn, its thread.
    assert_eq!(
        count(url, "SELECT count(*) FROM memory_data d LEFT JOIN engram_records l USING (tenant_id, project_id, key) WHERE d.key LIKE 'patterns/%' AND d.run_id IS DISTINCT FROM l.origin"),
        0
    );
    let key = found["matches"][0]["key"].as_str().unwrap().to_string();
    let run_id: String = db(url, async |c| {
        sqlx::query_scalar("SELECT run_id FROM memory_data WHERE key = $1").bind(&key).fetch_one(c).await.unwrap()
    });
    assert_eq!(run_id, "openai-thread:thread_egExQ1BJoynbv6IWPmbb8fVQ");
    assert_eq!(strings(url, "SELECT id FROM tenants WHERE id = 'acme'"), ["acme"]);
    assert_eq!(
        strings(url, "SELECT id FROM projects WHERE tenant_id = 'acme' ORDER BY id"),
        [DOCS, SUPPORT, WEATHER]
    );
    assert_eq!(count(url, "SELECT count(*) FROM audit_log WHERE action = 'import'"), 3, "one audit row per scope");
    let detail: Value = serde_json::from_str(
        &strings(url, "SELECT detail::text FROM audit_log WHERE action = 'import' AND project_id = 'Docs Assistant'")[0],
    )
    .unwrap();
    assert_eq!(detail["engram_run_id"], report["run_id"], "{detail}");
    assert_eq!(detail["created"], scope(&report, DOCS)["create"], "{detail}");
    assert_eq!(count(url, "SELECT count(*) FROM engram_records"), total);
    assert_eq!(count(url, "SELECT count(*) FROM engram_runs WHERE finished_at IS NOT NULL"), 1);

    // A rerun: every record unchanged, no row added, nothing embedded.
    let requests = server.stats().embedding_requests;
    let before = (patterns(url), embeddings(url), count(url, "SELECT count(*) FROM audit_log"), count(url, "SELECT count(*) FROM engram_runs"));
    let again = migrate_ok(&ws, Path::new(url), &[]);
    for s in again["scopes"].as_array().unwrap() {
        assert_eq!((s["create"].as_i64(), s["update"].as_i64()), (Some(0), Some(0)), "{s}");
        assert_eq!(s["unchanged"], s["patterns"], "{s}");
    }
    assert_eq!(report_patterns(&again), total);
    let after = (patterns(url), embeddings(url), count(url, "SELECT count(*) FROM audit_log"), count(url, "SELECT count(*) FROM engram_runs"));
    assert_eq!(after, before, "(patterns, embeddings, audit rows, runs) after the rerun");
    assert_eq!(server.stats().embedding_requests, requests, "the rerun embedded something");
    (server, report)
}

fn warning_kinds(report: &Value) -> Vec<String> {
    report["warnings"].as_array().unwrap().iter().map(|w| w["kind"].as_str().unwrap().to_string()).collect()
}

// ------------------------------------------------------------------- end to end

/// (a) Into a database with Engramia 0.6.6's own schema (head 015, bare `key` primary keys).
#[test]
fn demo_into_engramia_schema_is_recalled() {
    let url = fresh_database("pg_e2e_engramia_015");
    engramia_schema(&url);
    let before = tables(&url);
    let (server, report) = migrate_demo_and_recall(&url, "");
    // engram added its own tables and touched no other table definition.
    let added: Vec<String> = tables(&url).into_iter().filter(|t| !before.contains(t)).collect();
    assert_eq!(added, ["engram_dropped_indexes", "engram_migrations", "engram_records", "engram_runs"]);
    assert_eq!(strings(&url, "SELECT version_num::text FROM alembic_version"), ["015"]);
    assert_eq!(report["engramia_schema"], json!({"revision": "015", "status": "found", "keyed_by": "key"}), "{report:#}");

    // Skills: with bare keys one scope holds the registry (Support Bot, the first written) and
    // Engramia itself finds its skills there; Weather Helper's are kept in engram_records.
    assert_eq!(strings(&url, "SELECT project_id FROM memory_data WHERE key = 'skills/_registry'"), [SUPPORT]);
    assert!(!engramia_find_by_skills(&server, &url, SUPPORT, "get_order_status").is_empty());
    assert!(engramia_find_by_skills(&server, &url, WEATHER, "get_weather").is_empty());
    assert!(count(&url, "SELECT count(*) FROM engram_records WHERE project_id = 'Weather Helper' AND skills ? 'get_weather'") > 0);
    assert!(warning_kinds(&report).contains(&"skills_registry_limit".to_string()), "{report:#}");
}

/// (b) Into an empty database (`engramia_schema = "auto"`): engram creates Engramia's schema
/// at the newest revision it ships (032, keyed by scope), and each scope keeps its own skills
/// registry, found by Engramia 0.7's find_by_skills.
#[test]
fn demo_into_empty_database_is_recalled() {
    let url = fresh_database("pg_e2e_empty");
    assert!(tables(&url).is_empty());
    let (server, report) = migrate_demo_and_recall(&url, "");
    assert_eq!(strings(&url, "SELECT version_num::text FROM alembic_version"), ["032"]);
    assert_eq!(
        report["engramia_schema"],
        json!({"revision": "032", "status": "created", "engramia": "0.7.0.dev0", "keyed_by": "tenant_id, project_id, key"}),
        "{report:#}"
    );
    for t in ["admin_users", "tenant_credentials", "cloud_users", "api_keys", "memory_data", "engram_runs"] {
        assert!(tables(&url).contains(&t.to_string()), "{t}: {:?}", tables(&url));
    }
    let found = recall(&server, &url, DOCS, ROTATE_QUESTION);
    assert_eq!((&found["engramia"], &found["matches"][0]["task"]), (&json!("0.7.0.dev0"), &json!(ROTATE_TURN)), "{found:#}");
    assert!(!warning_kinds(&report).contains(&"skills_registry_limit".to_string()), "{report:#}");
    assert_eq!(strings(&url, "SELECT project_id FROM memory_data WHERE key = 'skills/_registry' ORDER BY 1"), [SUPPORT, WEATHER]);
    assert!(!engramia_find_by_skills(&server, &url, SUPPORT, "get_order_status").is_empty());
    assert!(!engramia_find_by_skills(&server, &url, WEATHER, "get_weather").is_empty());
}

/// (c) Into an empty database with `engramia_schema = "015"`: Engramia 0.6.6's schema (bare
/// keys, one skills registry per database), read back by Engramia 0.6.6.
#[test]
fn demo_into_empty_database_with_the_0_6_schema_is_recalled_by_0_6_6() {
    let url = fresh_database("pg_e2e_empty_015");
    let (server, report) = migrate_demo_and_recall(&url, "engramia_schema = \"015\"");
    assert_eq!(strings(&url, "SELECT version_num::text FROM alembic_version"), ["015"]);
    assert_eq!(report["engramia_schema"]["revision"], "015", "{report:#}");
    assert_eq!(report["engramia_schema"]["keyed_by"], "key", "{report:#}");
    assert!(!tables(&url).contains(&"admin_users".to_string()));
    let found = recall(&server, &url, DOCS, ROTATE_QUESTION);
    assert_eq!((&found["engramia"], &found["matches"][0]["task"]), (&json!("0.6.6"), &json!(ROTATE_TURN)), "{found:#}");
    assert_eq!(strings(&url, "SELECT project_id FROM memory_data WHERE key = 'skills/_registry'"), [SUPPORT]);
    assert!(!engramia_find_by_skills(&server, &url, SUPPORT, "get_order_status").is_empty());
    assert!(warning_kinds(&report).contains(&"skills_registry_limit".to_string()), "{report:#}");
}

/// Engramia schemas keyed by (tenant_id, project_id, key) (later heads): every scope keeps its
/// own skills registry, and Engramia finds the skills in each.
#[test]
fn scoped_key_layout_keeps_a_registry_per_scope() {
    let url = fresh_database("pg_e2e_scoped");
    engramia_schema(&url);
    exec(
        &url,
        "ALTER TABLE memory_data DROP CONSTRAINT brain_data_pkey, DROP CONSTRAINT uq_memory_data_scope_key,
             ADD CONSTRAINT memory_data_pkey PRIMARY KEY (tenant_id, project_id, key);
         ALTER TABLE memory_embeddings DROP CONSTRAINT brain_embeddings_pkey, DROP CONSTRAINT uq_memory_embeddings_scope_key,
             ADD CONSTRAINT memory_embeddings_pkey PRIMARY KEY (tenant_id, project_id, key);",
    );
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let out = migrate(&ws, &url, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("skills registry"), "{}", text(&out));
    assert_eq!(strings(&url, "SELECT project_id FROM memory_data WHERE key = 'skills/_registry' ORDER BY 1"), [SUPPORT, WEATHER]);
    assert!(!engramia_find_by_skills(&server, &url, SUPPORT, "get_order_status").is_empty());
    assert!(!engramia_find_by_skills(&server, &url, WEATHER, "get_weather").is_empty());
    let found = recall(&server, &url, DOCS, ROTATE_QUESTION);
    assert_eq!(found["matches"][0]["task"], ROTATE_TURN, "{found:#}");
    // Every skill in its scope's own registry: verify checks them all.
    let verified = verify_ok(&ws, &url);
    assert!(verified["notes"].as_array().unwrap().iter().all(|n| !n.as_str().unwrap().contains("engram_records only")), "{verified:#}");
}

/// `--dry-run` on an empty database: the plan of the real run, and nothing at all written
/// (no extension, no tables, no ledger), nothing embedded.
#[test]
fn dry_run_writes_nothing_to_an_empty_database() {
    let url = fresh_database("pg_dry_run");
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let plan = migrate_ok(&ws, Path::new(&url), &["--dry-run"]);
    assert!(tables(&url).is_empty(), "{:?}", tables(&url));
    assert_eq!(count(&url, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"), 0);
    assert_eq!(server.stats().embedding_requests, 0);
    assert_eq!((&plan["engramia_schema"]["revision"], &plan["engramia_schema"]["status"]), (&json!("032"), &json!("create")), "{plan:#}");
    let done = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(plan["scopes"], done["scopes"], "the dry run's plan differs from the real run");
    assert_eq!((&done["engramia_schema"]["revision"], &done["engramia_schema"]["status"]), (&json!("032"), &json!("created")), "{done:#}");
}

// ------------------------------------------------------------------- refused targets

/// Runs the demo migration against a target that must be refused; returns stderr after
/// checking the exit code and that the stand-in saw no embedding request.
fn refused(url: &str, model: &str, code: i32) -> String {
    let server = Server::demo();
    let ws = Workspace::new(
        &server.base_url,
        "",
        &format!("[embedding]\nmodel = \"{model}\"\n[scope]\ntenant = \"acme\"\nproject = \"{{assistant.name}}\"\n"),
    );
    let out = migrate(&ws, url, &["--report", ws.path("report.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    assert_eq!(server.stats().embedding_requests, 0, "embedded before refusing");
    assert!(!ws.path("report.json").exists());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// text-embedding-3-large (3072) against vector(1536): exit 2 naming both sizes and the ways
/// out, in Engramia's schema and in an empty database alike; nothing written.
#[test]
fn dimension_mismatch_is_refused_before_anything_is_written() {
    let url = fresh_database("pg_dims_engramia");
    engramia_schema(&url);
    let before = tables(&url);
    let err = refused(&url, "text-embedding-3-large", 2);
    for needle in ["1536", "3072", "[embedding] dimensions", "text-embedding-3-small"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(tables(&url), before);
    assert_eq!((patterns(&url), embeddings(&url)), (0, 0));

    let empty = fresh_database("pg_dims_empty");
    let err = refused(&empty, "text-embedding-3-large", 2);
    assert!(err.contains("1536") && err.contains("3072"), "{err}");
    assert!(tables(&empty).is_empty());
    assert_eq!(count(&empty, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"), 0);
}

/// A closed port: exit 1, the message names host, port and database but not the password.
#[test]
fn unreachable_database_fails_without_leaking_the_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://engram:s3cret-pw@127.0.0.1:{port}/engramia");
    let err = refused(&url, "text-embedding-3-small", 1);
    assert!(err.contains(&format!("127.0.0.1:{port}/engramia")), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

/// A role that may not CREATE EXTENSION vector, on an empty database: exit 2, an
/// administrator's one-line fix, no table created.
#[test]
fn missing_extension_without_privilege_is_refused() {
    let admin = fresh_database("pg_noext");
    exec(
        &admin,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engram_noext') THEN CREATE ROLE engram_noext LOGIN; END IF; END $$;
         GRANT ALL ON SCHEMA public TO engram_noext;",
    );
    let url = admin.replacen("postgres://postgres@", "postgres://engram_noext@", 1);
    let err = refused(&url, "text-embedding-3-small", 2);
    assert!(err.contains("CREATE EXTENSION IF NOT EXISTS vector;"), "{err}");
    assert!(err.contains("engram_noext") && err.contains("\"pg_noext\""), "{err}");
    assert!(tables(&admin).is_empty(), "{:?}", tables(&admin));

    // The statement the message gives, run by the owner, is all the role needed.
    exec(&admin, "CREATE EXTENSION IF NOT EXISTS vector;");
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(report["engramia_schema"]["status"], "created", "{report:#}");
    assert_eq!(strings(&admin, "SELECT version_num::text FROM alembic_version"), ["032"]);
}

/// A read-only role on Engramia's schema: exit 2 listing what it lacks; nothing written.
#[test]
fn insufficient_privileges_are_refused() {
    let admin = fresh_database("pg_readonly");
    engramia_schema(&admin);
    exec(
        &admin,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engram_readonly') THEN CREATE ROLE engram_readonly LOGIN; END IF; END $$;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO engram_readonly;",
    );
    let url = admin.replacen("postgres://postgres@", "postgres://engram_readonly@", 1);
    let before = tables(&admin);
    let err = refused(&url, "text-embedding-3-small", 2);
    assert!(err.contains("INSERT on memory_data") && err.contains("INSERT on memory_embeddings"), "{err}");
    assert!(err.contains("CREATE on the schema"), "{err}");
    assert_eq!(tables(&admin), before);
    assert_eq!((patterns(&admin), embeddings(&admin)), (0, 0));
}

/// A project id another tenant already owns (projects.id is global in Engramia 0.6.x): exit 2
/// before anything is embedded; nothing written.
#[test]
fn project_of_another_tenant_is_refused() {
    let url = fresh_database("pg_project_clash");
    engramia_schema(&url);
    exec(&url, "INSERT INTO tenants (id, name) VALUES ('globex', 'Globex'); INSERT INTO projects (id, tenant_id, name) VALUES ('Support Bot', 'globex', 'Support Bot');");
    let before = tables(&url);
    let err = refused(&url, "text-embedding-3-small", 2);
    assert!(err.contains("\"Support Bot\"") && err.contains("\"globex\"") && err.contains("\"acme\""), "{err}");
    assert_eq!(tables(&url), before);
    assert_eq!((patterns(&url), count(&url, "SELECT count(*) FROM tenants WHERE id = 'acme'")), (0, 0));
}

/// A model whose size is unknown up front (no preflight check possible): the first write into
/// an empty database refuses vectors that are not 1536 long before creating anything.
#[test]
fn unknown_size_is_refused_at_write_before_tables_are_created() {
    use engram::record::{Record, RecordKind, Scope};
    use engram::sink::postgres::{PgSink, new_run_id};
    use engram::sink::{Embedded, Preflight, Sink, SinkError};
    let url = fresh_database("pg_dims_unknown");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(async {
        let mut sink = PgSink::open(&url, new_run_id()).await.unwrap();
        sink.preflight(&Preflight { model: "some-local-model".into(), dimensions: None }).await.unwrap();
        let record = Record {
            scope: Scope::new("acme", "bot"),
            key: "patterns/abcd0001_1700000000000_x".into(),
            kind: RecordKind::MessagePair,
            pattern: json!({"task": "t", "design": {"code": "c"}, "success_score": 5.0, "reuse_count": 0, "timestamp": 1.0}),
            skills: vec![],
            classification: "internal".into(),
            origin: "openai-thread:thread_1".into(),
        };
        sink.write(&[Embedded { record, embedding: vec![0.5; 384] }]).await.unwrap_err()
    });
    assert!(matches!(err, SinkError::Config(ref m) if m.contains("vector(1536)") && m.contains("384")), "{err:?}");
    assert!(tables(&url).is_empty(), "{:?}", tables(&url));
}

// ------------------------------------------------------------------- the HNSW index during loads

const HNSW_DEFINITION: &str =
    "SELECT indexdef FROM pg_indexes WHERE tablename = 'memory_embeddings' AND indexdef ILIKE '% USING hnsw %'";

fn demo_with(server: &Server, target_section: &str) -> Workspace {
    Workspace::new(
        &server.base_url,
        "",
        &format!("[target]\n{target_section}\n[scope]\ntenant = \"acme\"\nproject = \"{{assistant.name}}\"\n"),
    )
}

/// `index_strategy = "rebuild"`: the dry run says so and leaves the index; the run drops it,
/// loads, and rebuilds it with its exact definition; Engramia's recall works afterwards.
#[test]
fn rebuild_strategy_drops_and_rebuilds_the_hnsw_index() {
    let url = fresh_database("pg_index_rebuild");
    engramia_schema(&url);
    let before = strings(&url, HNSW_DEFINITION);
    assert_eq!(before.len(), 1, "Engramia's schema has one HNSW index: {before:?}");
    let server = Server::demo();
    let ws = demo_with(&server, "index_strategy = \"rebuild\"");

    let plan = migrate_ok(&ws, Path::new(&url), &["--dry-run"]);
    assert_eq!(plan["index"]["action"], "rebuild", "{plan:#}");
    assert_eq!(strings(&url, HNSW_DEFINITION), before);
    assert_eq!(patterns(&url), 0);

    let report = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(report["index"]["action"], "rebuild", "{report:#}");
    let notes = report["target_notes"].to_string();
    assert!(notes.contains("rebuilt the HNSW index idx_memory_embeddings_hnsw"), "{report:#}");
    assert_eq!(strings(&url, HNSW_DEFINITION), before, "the rebuilt index differs from Engramia's");
    assert_eq!(count(&url, "SELECT count(*) FROM engram_dropped_indexes"), 0);
    assert_eq!(embeddings(&url), report_patterns(&report));
    let found = recall(&server, &url, DOCS, ROTATE_QUESTION);
    assert_eq!(found["matches"][0]["task"], ROTATE_TURN, "{found:#}");
}

/// Under `auto`, a load of a few rows keeps the index (and says why).
#[test]
fn auto_strategy_keeps_the_index_for_a_small_load() {
    let url = fresh_database("pg_index_auto_small");
    let server = Server::demo();
    let ws = demo_with(&server, "");
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(report["index"]["action"], "keep", "{report:#}");
    assert!(report["index"]["reason"].as_str().unwrap().contains("under 200)"), "{report:#}");
    assert_eq!(report["target_notes"], json!(null), "nothing was rebuilt: {report:#}");
    assert_eq!(strings(&url, HNSW_DEFINITION).len(), 1);
}

/// A run stopped between the drop and the rebuild (its note is in engram_dropped_indexes): a
/// dry run reports it and changes nothing; the next run rebuilds the index even though it has
/// nothing to write.
#[test]
fn an_index_left_dropped_is_rebuilt_by_the_next_run() {
    let url = fresh_database("pg_index_left_dropped");
    let server = Server::demo();
    let ws = demo_with(&server, "");
    migrate_ok(&ws, Path::new(&url), &[]);
    let before = strings(&url, HNSW_DEFINITION);
    exec(
        &url,
        "INSERT INTO engram_dropped_indexes (index_name, table_name, definition, run_id) \
         SELECT indexname, 'memory_embeddings', indexdef, 'engram-killed' FROM pg_indexes \
         WHERE tablename = 'memory_embeddings' AND indexdef ILIKE '% USING hnsw %'; \
         DROP INDEX idx_memory_embeddings_hnsw;",
    );
    assert!(strings(&url, HNSW_DEFINITION).is_empty());

    let out = migrate(&ws, &url, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("an earlier run dropped the HNSW index idx_memory_embeddings_hnsw"), "{}", text(&out));
    assert!(strings(&url, HNSW_DEFINITION).is_empty(), "a dry run rebuilt the index");

    let report = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(report["scopes"].as_array().unwrap().iter().map(|s| s["create"].as_i64().unwrap()).sum::<i64>(), 0);
    assert_eq!(strings(&url, HNSW_DEFINITION), before);
    assert_eq!(count(&url, "SELECT count(*) FROM engram_dropped_indexes"), 0);
    assert!(report["target_notes"].to_string().contains("rebuilt the HNSW index"), "{report:#}");
}

/// A load of several full batches (each COPY sent in chunks) into an empty database: every row
/// arrives once, with its embedding, and a rerun changes nothing.
#[test]
fn several_batches_load_every_row_once() {
    let url = fresh_database("pg_several_batches");
    let account = engram_standin::Account::from_json(engram_standin::synthetic_account(40, 40, 0, 3)).unwrap();
    let ids = account.thread_ids();
    let server = Server::start(account, engram_standin::Options { api_key: Some(TEST_KEY.into()), ..Default::default() });
    let ws = Workspace::new(&server.base_url, "", "[target]\nbatch_size = 300\n[scope]\ntenant = \"bench\"\n");
    std::fs::write(ws.path("thread_ids.txt"), ids.join("\n")).unwrap();
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    let total = report_patterns(&report);
    assert!(total > 800, "{report:#}");
    assert_eq!(patterns(&url), total);
    assert_eq!(embeddings(&url), total);
    assert_eq!(count(&url, "SELECT count(*) FROM memory_embeddings WHERE vector_dims(embedding) <> 1536"), 0);
    assert_eq!(report["embedding"]["requests"], json!((total + 299) / 300), "{report:#}");
    let again = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(again["scopes"].as_array().unwrap().iter().map(|s| s["unchanged"].as_i64().unwrap()).sum::<i64>(), total);
    assert_eq!((patterns(&url), embeddings(&url)), (total, total));
}

/// The real thing: a run killed (SIGKILL) after it dropped the index for its load leaves the
/// note; the next run rebuilds the index with its exact definition and finishes the load.
#[test]
fn a_run_killed_after_dropping_the_index_is_repaired_by_the_next() {
    let url = fresh_database("pg_index_killed");
    engramia_schema(&url);
    let before = strings(&url, HNSW_DEFINITION);
    let slow = Server::with_faults(engram_standin::Faults { delay_ms: 60, ..Default::default() });
    let ws = Workspace::new(
        &slow.base_url,
        "concurrency = 1",
        "[target]\nbatch_size = 4\nindex_strategy = \"rebuild\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n",
    );
    let mut child = engram()
        .args(["migrate", "--quiet", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(&url, "SELECT count(*) FROM pg_tables WHERE tablename = 'engram_dropped_indexes'") == 0
        || count(&url, "SELECT count(*) FROM engram_dropped_indexes") == 0
    {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(std::time::Instant::now() < deadline, "the index was not dropped within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no rebuild
    child.wait().unwrap();
    assert!(strings(&url, HNSW_DEFINITION).is_empty(), "the index should be missing after the kill");

    let fast = Server::demo();
    let ws2 = Workspace::new(&fast.base_url, "", "[target]\nindex_strategy = \"keep\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n");
    let report = migrate_ok(&ws2, Path::new(&url), &[]);
    assert_eq!(strings(&url, HNSW_DEFINITION), before, "{report:#}");
    assert_eq!(count(&url, "SELECT count(*) FROM engram_dropped_indexes"), 0);
    assert!(report["index"]["reason"].as_str().unwrap().contains("an earlier run dropped idx_memory_embeddings_hnsw"), "{report:#}");
    assert_eq!(embeddings(&url), report_patterns(&report));
    let found = recall(&fast, &url, DOCS, ROTATE_QUESTION);
    assert_eq!(found["matches"][0]["task"], ROTATE_TURN, "{found:#}");
}
