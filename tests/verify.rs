//! End to end: `engram verify` on stores `engram migrate` wrote, intact and broken on purpose.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The demo migrated once (replayed, no key), copied for each test that breaks it.
fn demo_store() -> (Workspace, PathBuf) {
    let ws = Workspace::new("http://127.0.0.1:9/v1", "", "[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n");
    let target = ws.path("data");
    let out = migrate_replayed(&ws, &target, &repo_root().join("fixtures/demo/recording"));
    assert!(out.status.success(), "{}", text(&out));
    (ws, target)
}

fn verify(ws: &Workspace, target: &Path, extra: &[&str]) -> (Output, Value) {
    let report = ws.path("verify.json");
    let _ = std::fs::remove_file(&report);
    let out = run(engram()
        .env_remove("OPENAI_API_KEY")
        .args(["verify", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(target)
        .arg("--replay")
        .arg(repo_root().join("fixtures/demo/recording"))
        .arg("--report")
        .arg(&report)
        .args(extra));
    let json = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    (out, json)
}

fn scope_dir(target: &Path, project: &str) -> PathBuf {
    target.join("acme").join(project.replace(' ', "_"))
}

/// Keys of a scope's ledger, in order.
fn ledger_keys(dir: &Path) -> Vec<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("_engram_records.json")).unwrap()).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

fn ledger_kind(dir: &Path, key: &str) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("_engram_records.json")).unwrap()).unwrap();
    v[key]["kind"].as_str().unwrap().to_string()
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// The faults of a report as (kind, key).
fn faults(report: &Value) -> Vec<(String, Option<String>)> {
    report["faults"]
        .as_array()
        .unwrap_or_else(|| panic!("no faults in {report:#}"))
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["key"].as_str().map(str::to_string)))
        .collect()
}

fn assert_names(report: &Value, out: &Output, kind: &str, key: &str) {
    assert_eq!(out.status.code(), Some(3), "{}", text(out));
    assert!(faults(report).contains(&(kind.to_string(), Some(key.to_string()))), "{kind} {key} not named: {:#}", report["faults"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("FAULT {kind}")) && stdout.contains(key), "{}", text(out));
}

#[test]
fn the_demo_migration_verifies_with_full_recall_read_only_and_deterministic() {
    let (ws, target) = demo_store();
    let before = snapshot(&target);
    let (out, report) = verify(&ws, &target, &["--seed", "7"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["faults"], json!([]));
    let scopes = report["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 3, "{report:#}");
    for s in scopes {
        assert_eq!(s["recall"]["recall_at_k"], 1.0, "{s:#}");
        assert!(s["migrated"].as_u64().unwrap() > 0);
        assert_eq!(s["migrated"], s["searchable"]);
        assert_eq!(s["recall"]["queries"], s["migrated"], "the default sample covers a small scope");
        assert_eq!(s["not_checked"], 0);
    }
    // Every kind is queried somewhere: message pairs, file chunks and tools.
    let kinds: std::collections::BTreeSet<&str> = scopes.iter().flat_map(|s| s["by_kind"].as_object().unwrap().keys().map(String::as_str)).collect();
    assert_eq!(kinds, ["file_chunk", "message_pair", "tool"].into_iter().collect());
    assert_eq!(snapshot(&target), before, "verify wrote to the target");

    // The same seed gives the same report; the Markdown report says the same.
    let (_, again) = verify(&ws, &target, &["--seed", "7"]);
    assert_eq!(again, report);
    let md = ws.path("verify.md");
    let out = run(engram()
        .env_remove("OPENAI_API_KEY")
        .args(["verify", "--quiet", "--seed", "7", "--report-format", "markdown", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(&target)
        .arg("--replay")
        .arg(repo_root().join("fixtures/demo/recording"))
        .arg("--report")
        .arg(&md));
    assert!(out.status.success() && out.stdout.is_empty(), "{}", text(&out));
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.starts_with("# engram verify: passed"), "{md}");
    assert!(md.contains("| acme/Docs Assistant | file_chunk |"), "{md}");
}

#[test]
fn a_sample_queries_n_records_per_scope() {
    let (ws, target) = demo_store();
    let chosen = |seed: &str| {
        let (out, report) = verify(&ws, &target, &["--sample", "3", "--seed", seed]);
        assert!(out.status.success(), "{}", text(&out));
        let docs = report["scopes"].as_array().unwrap().iter().find(|s| s["project"] == "Docs Assistant").unwrap().clone();
        assert_eq!(docs["recall"]["queries"], 3, "{docs:#}");
        report["embedding"]["inputs"].as_u64().unwrap()
    };
    // 3 per scope; Weather Helper holds only 3.
    assert_eq!(chosen("1"), 9);
    assert_eq!(chosen("2"), 9);
}

/// A recording made against a real API (here: one vector changed, so the stand-in's function no
/// longer reproduces it) holds the questions' embeddings but not the chunks' sentences: those
/// are counted as not checked, and the rest is verified from the recording.
#[test]
fn queries_a_real_recording_lacks_are_not_checked() {
    use base64::Engine;
    let recording = tempfile::tempdir().unwrap();
    for (rel, bytes) in snapshot(&repo_root().join("fixtures/demo/recording")) {
        let mut bytes = bytes;
        if rel.to_string_lossy().starts_with("embeddings-") {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD;
            let item = &mut v["response"]["body"]["data"][0]["embedding"];
            let floats: Vec<u8> = b64.decode(item.as_str().unwrap()).unwrap();
            let negated: Vec<u8> = floats.chunks(4).flat_map(|c| (-f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes()).collect();
            *item = json!(b64.encode(negated));
            bytes = serde_json::to_vec(&v).unwrap();
        }
        std::fs::write(recording.path().join(rel), bytes).unwrap();
    }
    let ws = Workspace::new("http://127.0.0.1:9/v1", "", "[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n");
    let target = ws.path("data");
    let out = migrate_replayed(&ws, &target, recording.path());
    assert!(out.status.success(), "{}", text(&out));
    let report_path = ws.path("v.json");
    let out = run(engram().env_remove("OPENAI_API_KEY").args(["verify", "--config"]).arg(ws.mapping()).arg("--target").arg(&target).arg("--replay").arg(recording.path()).arg("--report").arg(&report_path));
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let docs = report["scopes"].as_array().unwrap().iter().find(|s| s["project"] == "Docs Assistant").unwrap();
    let chunks = docs["by_kind"]["file_chunk"]["queries"].as_u64().unwrap_or(0);
    assert!(docs["not_checked"].as_u64().unwrap() > 0, "{docs:#}");
    assert_eq!(docs["not_checked"].as_u64().unwrap() + chunks, 11, "every chunk is either checked (a sentence that is its whole task) or not: {docs:#}");
    assert_eq!(docs["by_kind"]["message_pair"]["recall_at_k"], 1.0, "{docs:#}");
    assert!(report["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("not checked")), "{report:#}");
}

#[test]
fn a_dry_run_counts_the_embedding_requests_and_embeds_nothing() {
    let (ws, target) = demo_store();
    // No key, no recording: a dry run needs neither.
    let out = run(engram().env_remove("OPENAI_API_KEY").args(["verify", "--dry-run", "--all", "--config"]).arg(ws.mapping()).arg("--target").arg(&target).arg("--report").arg(ws.path("dry.json")));
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&std::fs::read(ws.path("dry.json")).unwrap()).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["embedding"]["inputs"], 83, "{report:#}");
    assert_eq!(report["embedding"]["requests"], 3, "one request per scope");
    assert!(report["embedding"]["estimated_cost_usd"].as_f64().unwrap() > 0.0);
    assert!(report["scopes"].as_array().unwrap().iter().all(|s| s["recall"].is_null()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dry run"), "{}", text(&out));

    // Without --dry-run and without a key or recording, it refuses before reading anything.
    let out = run(engram().env_remove("OPENAI_API_KEY").args(["verify", "--config"]).arg(ws.mapping()).arg("--target").arg(&target));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENAI_API_KEY"), "{}", text(&out));
}

#[test]
fn a_deleted_embedding_is_named() {
    let (ws, target) = demo_store();
    let dir = scope_dir(&target, "Support Bot");
    let key = ledger_keys(&dir)[0].clone();
    edit_json(&dir.join("_embeddings.json"), |v| {
        v.as_object_mut().unwrap().shift_remove(&key).unwrap();
    });
    let (out, report) = verify(&ws, &target, &[]);
    assert_names(&report, &out, "missing_embedding", &key);
    // And it is a recall miss: the only one.
    let misses: Vec<&Value> = report["scopes"].as_array().unwrap().iter().flat_map(|s| s["misses"].as_array().unwrap()).collect();
    assert_eq!(misses.len(), 1, "{misses:#?}");
    assert_eq!(misses[0]["key"], key.as_str());
}

#[test]
fn a_vector_of_another_dimension_is_named_and_breaks_the_scopes_search() {
    let (ws, target) = demo_store();
    let dir = scope_dir(&target, "Weather Helper");
    let key = ledger_keys(&dir)[1].clone();
    edit_json(&dir.join("_embeddings.json"), |v| {
        let vector = v[&key].as_array_mut().unwrap();
        vector.truncate(384);
    });
    let (out, report) = verify(&ws, &target, &[]);
    assert_names(&report, &out, "wrong_dimension", &key);
    // Engramia's numpy search raises on it, for every query of the scope.
    let weather = report["scopes"].as_array().unwrap().iter().find(|s| s["project"] == "Weather Helper").unwrap();
    assert_eq!(weather["recall"]["recall_at_k"], 0.0, "{weather:#}");
    assert!(weather["misses"][0]["why"].as_str().unwrap().contains("384-dimensional"), "{weather:#}");
    assert!(faults(&report).contains(&("recall_below_threshold".into(), None)), "{:#}", report["faults"]);
}

#[test]
fn a_pattern_moved_to_another_scope_is_named_in_both() {
    let (ws, target) = demo_store();
    let (from, to) = (scope_dir(&target, "Support Bot"), scope_dir(&target, "Weather Helper"));
    let key = ledger_keys(&from)[2].clone();
    let file = format!("{key}.json");
    std::fs::rename(from.join(&file), to.join(&file)).unwrap();
    let (out, report) = verify(&ws, &target, &[]);
    assert_names(&report, &out, "missing_pattern", &key);
    assert_names(&report, &out, "misplaced", &key);
    let misplaced = report["faults"].as_array().unwrap().iter().find(|f| f["kind"] == "misplaced").unwrap();
    assert!(misplaced["message"].as_str().unwrap().contains("acme/Weather Helper"), "{misplaced:#}");
}

#[test]
fn a_corrupt_pattern_file_and_an_invalid_pattern_are_named() {
    let (ws, target) = demo_store();
    let dir = scope_dir(&target, "Docs Assistant");
    let keys = ledger_keys(&dir);
    let (broken, invalid) = (keys[0].clone(), keys[1].clone());
    let path = dir.join(format!("{broken}.json"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, bytes).unwrap();
    edit_json(&dir.join(format!("{invalid}.json")), |v| v["success_score"] = json!(11));
    let (out, report) = verify(&ws, &target, &[]);
    assert_names(&report, &out, "unreadable_pattern", &broken);
    assert_names(&report, &out, "invalid_pattern", &invalid);
    let message = report["faults"].as_array().unwrap().iter().find(|f| f["kind"] == "invalid_pattern").unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("success_score") && message.contains("outside 0-10"), "{message}");
    assert!(!ledger_kind(&dir, &broken).is_empty());
}

#[test]
fn a_missing_skill_and_a_changed_model_are_named() {
    let (ws, target) = demo_store();
    let dir = scope_dir(&target, "Weather Helper");
    let mut key = String::new();
    edit_json(&dir.join("skills/_registry.json"), |v| {
        let m = v.as_object_mut().unwrap();
        key = m.keys().next().unwrap().clone();
        m.shift_remove(&key);
    });
    edit_json(&target.join("metadata/embedding_config.json"), |v| v["model"] = json!("text-embedding-3-large"));
    let (out, report) = verify(&ws, &target, &[]);
    assert_names(&report, &out, "missing_skills", &key);
    assert!(faults(&report).contains(&("wrong_model".into(), None)), "{:#}", report["faults"]);
}

#[test]
fn scopes_sharing_a_directory_and_an_unmerged_log_are_named() {
    let (ws, target) = demo_store();
    let dir = scope_dir(&target, "Support Bot");
    // A project "Support_Bot" sanitises to the same directory as "Support Bot".
    let key = ledger_keys(&dir)[0].clone();
    edit_json(&dir.join("_engram_records.json"), |v| v[&key]["project"] = json!("Support_Bot"));
    // A killed run's embeddings log, which Engramia never reads.
    std::fs::write(scope_dir(&target, "Weather Helper").join("_embeddings.wal"), "[\"patterns/x_1_y\",[0.5,0.5]]\n").unwrap();
    let (out, report) = verify(&ws, &target, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let named = faults(&report);
    assert!(named.contains(&("shared_directory".into(), None)), "{:#}", report["faults"]);
    assert!(named.contains(&("unmerged_log".into(), None)), "{:#}", report["faults"]);
    let shared = report["faults"].as_array().unwrap().iter().find(|f| f["kind"] == "shared_directory").unwrap();
    assert!(shared["message"].as_str().unwrap().contains("acme/Support Bot, acme/Support_Bot"), "{shared:#}");
}

#[test]
fn verify_embeds_its_queries_with_the_api_the_migration_used() {
    // A live migration against the stand-in over HTTP, then verify against the same server.
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("data");
    migrate_ok(&ws, &target, &[]);
    let dry_path = ws.path("dry.json");
    let out = run(engram().args(["verify", "--all", "--dry-run", "--config"]).arg(ws.mapping()).arg("--target").arg(&target).arg("--report").arg(&dry_path));
    assert!(out.status.success(), "{}", text(&out));
    let dry: Value = serde_json::from_slice(&std::fs::read(&dry_path).unwrap()).unwrap();
    let before = server.stats();
    let report_path = ws.path("live.json");
    let out = run(engram().args(["verify", "--all", "--config"]).arg(ws.mapping()).arg("--target").arg(&target).arg("--report").arg(&report_path));
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert!(report["scopes"].as_array().unwrap().iter().all(|s| s["recall"]["recall_at_k"] == 1.0), "{report:#}");
    let after = server.stats();
    let embedded = after.by_route.get("POST /embeddings").copied().unwrap_or(0) - before.by_route.get("POST /embeddings").copied().unwrap_or(0);
    assert_eq!(embedded, report["embedding"]["requests"].as_u64().unwrap(), "{:#?}", after.by_route);
    assert_eq!(embedded, 3, "one request per scope");
    // The dry run predicted exactly this.
    assert_eq!(dry["embedding"], report["embedding"]);
}

#[test]
fn a_directory_without_a_ledger_is_a_clear_error() {
    let ws = Workspace::demo("http://127.0.0.1:9/v1");
    let target = ws.path("empty");
    std::fs::create_dir_all(target.join("patterns")).unwrap();
    let out = run(engram().args(["verify", "--dry-run", "--config"]).arg(ws.mapping()).arg("--target").arg(&target));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no engram ledger"), "{}", text(&out));
}

/// verify's pattern rules agree with Engramia's own `Pattern.model_validate`, case by case.
#[test]
fn pattern_rules_agree_with_engramia() {
    let cases = json!([
        {"task": "t", "design": {}},
        {"task": "t", "design": {"code": "c"}, "success_score": 5.0, "reuse_count": 0, "timestamp": 1716000000.5},
        {"task": "t", "design": {}, "success_score": "7"},
        {"task": "t", "design": {}, "success_score": true},
        {"task": "t", "design": {}, "success_score": 10.5},
        {"task": "t", "design": {}, "success_score": -0.1},
        {"task": "t", "design": {}, "success_score": null},
        {"task": "t", "design": {}, "success_score": "nan"},
        {"task": "t", "design": {}, "success_score": [1]},
        {"task": "t", "design": {}, "reuse_count": -1},
        {"task": "t", "design": {}, "reuse_count": 2.0},
        {"task": "t", "design": {}, "reuse_count": 2.5},
        {"task": "t", "design": {}, "reuse_count": "3"},
        {"task": "t", "design": {}, "timestamp": "12"},
        {"task": "t", "design": {}, "timestamp": null},
        {"task": "t", "design": {}, "timestamp": true},
        {"task": 3, "design": {}},
        {"task": null, "design": {}},
        {"design": {}},
        {"task": "t"},
        {"task": "t", "design": []},
        {"task": "t", "design": "code"},
        [1, 2],
        "a string"
    ]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), cases.to_string()).unwrap();
    let script = "import json, sys\nfrom engramia.types import Pattern\nout = []\nfor c in json.load(open(sys.argv[1])):\n    try:\n        Pattern.model_validate(c); out.append(True)\n    except Exception:\n        out.append(False)\nprint(json.dumps(out))\n";
    let out = std::process::Command::new(python()).arg("-c").arg(script).arg(file.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let engramia: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    for (case, ok) in cases.as_array().unwrap().iter().zip(engramia) {
        let ours = engram::verify::pattern::invalid_reason(case);
        assert_eq!(ours.is_none(), ok, "{case}: Engramia says valid={ok}, verify says {ours:?}");
    }
}

// ------------------------------------------------------------------- PostgreSQL

fn exec(url: &str, sql: &str) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

fn first_key(url: &str, project: &str) -> String {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT key FROM engram_records WHERE project_id = $1 ORDER BY key LIMIT 1").bind(project).fetch_one(&mut c).await.unwrap()
    })
}

fn migrate_pg(ws: &Workspace, url: &str) {
    let out = run(engram()
        .env_remove("OPENAI_API_KEY")
        .args(["migrate", "--quiet", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(url)
        .arg("--replay")
        .arg(repo_root().join("fixtures/demo/recording")));
    assert!(out.status.success(), "{}", text(&out));
}

fn verify_pg(ws: &Workspace, url: &str) -> (Output, Value) {
    let report = ws.path("verify-pg.json");
    let _ = std::fs::remove_file(&report);
    let out = run(engram()
        .env_remove("OPENAI_API_KEY")
        .args(["verify", "--config"])
        .arg(ws.mapping())
        .args(["--target", url, "--replay"])
        .arg(repo_root().join("fixtures/demo/recording"))
        .arg("--report")
        .arg(&report));
    let json = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    (out, json)
}

fn assert_full_recall(out: &Output, report: &Value) {
    assert!(out.status.success(), "{}", text(out));
    let scopes = report["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 3, "{report:#}");
    for s in scopes {
        assert_eq!(s["recall"]["recall_at_k"], 1.0, "{s:#}");
        assert_eq!(s["migrated"], s["searchable"], "{s:#}");
    }
}

#[test]
fn postgres_store_verifies_and_planted_faults_are_named() {
    let (ws, _) = demo_store();
    let url = fresh_database("verify_pg_faults");
    migrate_pg(&ws, &url);
    let (out, report) = verify_pg(&ws, &url);
    assert_full_recall(&out, &report);
    assert!(report["target"].as_str().unwrap().starts_with("PostgreSQL"), "{report:#}");

    // Break it: one embedding deleted, one pattern moved to another scope, one pattern
    // corrupted, the HNSW index dropped.
    let deleted = first_key(&url, "Support Bot");
    let moved = first_key(&url, "Weather Helper");
    let corrupted = first_key(&url, "Docs Assistant");
    exec(
        &url,
        &format!(
            "DELETE FROM memory_embeddings WHERE key = '{deleted}';
             UPDATE memory_data SET project_id = 'Support Bot' WHERE key = '{moved}';
             UPDATE memory_embeddings SET project_id = 'Support Bot' WHERE key = '{moved}';
             UPDATE memory_data SET data = '{{\"task\": 5, \"design\": {{}}}}' WHERE key = '{corrupted}';
             DO $$ DECLARE i text; BEGIN
               FOR i IN SELECT indexname FROM pg_indexes WHERE tablename = 'memory_embeddings' AND indexdef ILIKE '%hnsw%' LOOP
                 EXECUTE format('DROP INDEX %I', i);
               END LOOP;
             END $$;"
        ),
    );
    let (out, report) = verify_pg(&ws, &url);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let named = faults(&report);
    for (kind, key) in [
        ("missing_embedding", &deleted),
        ("missing_pattern", &moved),
        ("missing_embedding", &moved),
        ("misplaced", &moved),
        ("invalid_pattern", &corrupted),
    ] {
        assert!(named.contains(&(kind.to_string(), Some(key.clone()))), "{kind} {key} not named: {:#}", report["faults"]);
    }
    assert!(named.contains(&("missing_index".into(), None)), "{:#}", report["faults"]);
    let message = report["faults"].as_array().unwrap().iter().find(|f| f["kind"] == "invalid_pattern").unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("`task` is a number"), "{message}");
}

#[test]
fn postgres_an_invalid_hnsw_index_is_named() {
    let (ws, _) = demo_store();
    let url = fresh_database("verify_pg_invalid_index");
    migrate_pg(&ws, &url);
    exec(&url, "UPDATE pg_index SET indisvalid = false WHERE indexrelid IN (SELECT c.oid FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'hnsw')");
    let (out, report) = verify_pg(&ws, &url);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(faults(&report).contains(&("invalid_index".into(), None)), "{:#}", report["faults"]);
}

#[test]
fn postgres_an_hnsw_index_for_another_distance_is_named() {
    let (ws, _) = demo_store();
    let url = fresh_database("verify_pg_l2_index");
    migrate_pg(&ws, &url);
    exec(
        &url,
        "DO $$ DECLARE i text; BEGIN
           FOR i IN SELECT indexname FROM pg_indexes WHERE tablename = 'memory_embeddings' AND indexdef ILIKE '%hnsw%' LOOP
             EXECUTE format('DROP INDEX %I', i);
           END LOOP;
         END $$;
         CREATE INDEX l2_idx ON memory_embeddings USING hnsw (embedding vector_l2_ops);",
    );
    let (out, report) = verify_pg(&ws, &url);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let named = faults(&report);
    assert!(named.contains(&("index_not_cosine".into(), None)) && !named.contains(&("missing_index".into(), None)), "{:#}", report["faults"]);
}

#[test]
fn postgres_with_engramias_own_schema_verifies() {
    let (ws, _) = demo_store();
    let url = fresh_database("verify_pg_engramia_015");
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/support/engramia_schema.py"))
        .args(["--url", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    migrate_pg(&ws, &url);
    let (out, report) = verify_pg(&ws, &url);
    assert_full_recall(&out, &report);
    assert_eq!(report["faults"], json!([]), "{report:#}");
}
