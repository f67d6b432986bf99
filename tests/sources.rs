//! End to end, one test group per source kind: an NDJSON export (Engramia's guide), an export
//! directory (`engram export`, and one in the shape of redwoodworksco/assistants-api-export),
//! and the Responses API's Conversations from the stand-in server. Each goes into Engramia's
//! JSON storage, compared byte for byte with the equivalent live migration, and into
//! PostgreSQL, read back the way Engramia recalls.
//!
//! Needs ENGRAM_TEST_PG and ENGRAM_TEST_PYTHON for the PostgreSQL and read-back tests
//! (scripts/test sets both).

mod common;

use common::*;
use engram_standin::{Account, Options};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn server(account: Account) -> Server {
    Server::start(account, Options { api_key: Some(TEST_KEY.into()), ..Options::default() })
}

/// A server that answers only what survives the Assistants shutdown (files, vector stores,
/// embeddings): migrations from exports must not need more.
fn shut_down_server() -> Server {
    Server::start(demo_account(), Options { api_key: Some(TEST_KEY.into()), assistants_shut_down: true, ..Options::default() })
}

/// A temporary directory with `mapping.toml` holding `mapping` (with `BASE_URL` replaced).
fn workspace(base_url: &str, mapping: &str) -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mapping.toml"), mapping.replace("BASE_URL", base_url)).unwrap();
    Workspace { dir }
}

fn warnings(report: &Value) -> Vec<(String, String)> {
    report["warnings"].as_array().unwrap().iter().map(|w| (w["kind"].as_str().unwrap().into(), w["id"].as_str().unwrap().into())).collect()
}

fn projects(report: &Value) -> Vec<(String, u64)> {
    report["scopes"].as_array().unwrap().iter().map(|s| (s["project"].as_str().unwrap().into(), s["create"].as_u64().unwrap())).collect()
}

fn pattern_files(dir: &Path) -> usize {
    snapshot(dir).into_keys().filter(|p| p.components().any(|c| c.as_os_str() == "patterns")).count()
}

fn pg_recall(server: &Server, url: &str, project: &str, question: &str) -> Value {
    pg_readback(&server.base_url, url, &["--tenant", "acme", "--project", project, "--question", question])
}

// ---------------------------------------------------------------------------------- NDJSON

/// The demo account without what an NDJSON export cannot carry (runs, tool definitions,
/// annotations, attachments, file resources), so that a live migration of it and a migration
/// of its NDJSON export must give the same patterns.
fn text_only_demo() -> Value {
    let mut a = demo_account_json();
    for asst in a["assistants"].as_array_mut().unwrap() {
        asst["tools"] = json!([]);
        asst["tool_resources"] = json!({});
    }
    for t in a["threads"].as_array_mut().unwrap() {
        t["runs"] = json!([]);
        t["thread"]["tool_resources"] = json!({});
        for m in t["messages"].as_array_mut().unwrap() {
            let o = m.as_object_mut().unwrap();
            o.remove("run_id");
            o.insert("attachments".into(), json!([]));
            for part in o.get_mut("content").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(text) = part.get_mut("text").and_then(Value::as_object_mut) {
                    text.insert("annotations".into(), json!([]));
                }
            }
        }
    }
    a
}

/// What Engramia's `export_threads.py` writes for an account: one line per message, the
/// thread's assistant on every line, text parts joined by a newline.
fn ndjson_lines(account: &Value) -> Vec<Vec<String>> {
    let mut threads = Vec::new();
    for t in account["threads"].as_array().unwrap() {
        let id = t["thread"]["id"].as_str().unwrap();
        let messages = t["messages"].as_array().unwrap();
        let assistant = messages.iter().find_map(|m| m["assistant_id"].as_str()).unwrap();
        let lines = messages
            .iter()
            .map(|m| {
                let text: Vec<&str> = m["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .map(|p| p["text"]["value"].as_str().or(p["text"].as_str()).unwrap())
                    .collect();
                json!({"thread_id": id, "assistant_id": assistant, "message_id": m["id"], "role": m["role"],
                       "text": text.join("\n"), "created_at": m["created_at"]})
                .to_string()
            })
            .collect();
        threads.push(lines);
    }
    threads
}

const NDJSON_MAPPING: &str = "[source]\nkind = \"ndjson\"\nbase_url = \"BASE_URL\"\npath = \"export/*.ndjson\"\n[files]\nenabled = false\n[scope]\ntenant = \"acme\"\n";

#[test]
fn an_ndjson_export_migrates_to_the_same_patterns_as_the_live_account() {
    let account = text_only_demo();
    let server = server(Account::from_json(account.clone()).unwrap());
    let live = Workspace::new(&server.base_url, "", "[files]\nenabled = false\n[scope]\ntenant = \"acme\"\n");
    let live_report = migrate_ok(&live, &live.path("data"), &[]);

    // Two files; threads interleaved line by line, each thread's lines newest first; a
    // malformed line (file 1, line 3) and a blank line.
    let mut names = String::from("[scope.assistants]\n");
    for a in account["assistants"].as_array().unwrap() {
        names.push_str(&format!("{:?} = {:?}\n", a["id"].as_str().unwrap(), a["name"].as_str().unwrap()));
    }
    let ws = workspace(&server.base_url, &format!("{NDJSON_MAPPING}{names}"));
    std::fs::create_dir(ws.path("export")).unwrap();
    let mut threads: Vec<Vec<String>> = ndjson_lines(&account).into_iter().map(|l| l.into_iter().rev().collect()).collect();
    let mut interleaved = Vec::new();
    while threads.iter().any(|t| !t.is_empty()) {
        for t in threads.iter_mut().filter(|t| !t.is_empty()) {
            interleaved.push(t.remove(0));
        }
    }
    interleaved.insert(2, r#"{"thread_id": "thread_cut", "message_id": "msg_cut", "role": "user", "text": "cut off"#.to_string());
    interleaved.insert(5, String::new());
    let half = interleaved.len() / 2;
    std::fs::write(ws.path("export/part-1.ndjson"), interleaved[..half].join("\n") + "\n").unwrap();
    std::fs::write(ws.path("export/part-2.ndjson"), interleaved[half..].join("\n")).unwrap();

    let report = migrate_ok(&ws, &ws.path("data"), &[]);
    assert!(warnings(&report).contains(&("ndjson_invalid_line".into(), "part-1.ndjson:3".into())), "{report:#}");
    assert_eq!(report["threads"]["read"], 7, "{report:#}");
    assert_eq!(report["scopes"], live_report["scopes"]);
    assert_eq!(storage(&ws.path("data")), storage(&live.path("data")), "the NDJSON migration differs from the live one");
    assert!(pattern_files(&ws.path("data")) > 60);
    verify_ok(&ws, ws.path("data").to_str().unwrap());
}

#[test]
fn an_ndjson_export_needs_a_name_for_each_assistant_the_template_names() {
    let server = Server::demo();
    let ws = workspace(&server.base_url, NDJSON_MAPPING);
    std::fs::create_dir(ws.path("export")).unwrap();
    std::fs::copy(repo_root().join("fixtures/exports/ndjson/threads.ndjson"), ws.path("export/t.ndjson")).unwrap();
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("data")));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[scope.assistants]") && err.contains("\"asst_ndj0coder000000001\" = \"project name\""), "{err}");
    assert!(!ws.path("data").exists());
    assert_eq!(server.stats().requests, 0);
}

#[test]
fn an_ndjson_export_into_postgres_is_recalled_by_engramia() {
    let server = Server::demo();
    let mapping = std::fs::read_to_string(repo_root().join("fixtures/exports/ndjson/mapping.toml")).unwrap();
    let ws = workspace(&server.base_url, &mapping.replace("[source]\n", "[source]\nbase_url = \"BASE_URL\"\n"));
    std::fs::copy(repo_root().join("fixtures/exports/ndjson/threads.ndjson"), ws.path("threads.ndjson")).unwrap();
    let url = fresh_database("sources_ndjson");
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(projects(&report), [("Billing".to_string(), 1), ("Coder".to_string(), 2)], "{report:#}");
    assert_eq!(warnings(&report), [("ndjson_invalid_line".to_string(), "threads.ndjson:4".to_string())]);

    let found = pg_recall(&server, &url, "Coder", "what if my csv file is separated by semicolons");
    assert_eq!(found["matches"][0]["task"], "And if the file uses semicolons instead of commas?", "{found:#}");
    assert_eq!(found["pattern_count"], 2);
    assert!(found["invalid"].as_array().unwrap().is_empty(), "{found:#}");
    let billing = pg_recall(&server, &url, "Billing", "when do I have to pay my next invoice");
    assert_eq!(billing["matches"][0]["task"], "When is my next invoice due?", "{billing:#}");
    verify_ok(&ws, &url);
}

// ------------------------------------------------------------------------ export directory

const EXPORT_DIR_MAPPING: &str = "[source]\nkind = \"export-dir\"\nbase_url = \"BASE_URL\"\npath = \"export\"\n[scope]\ntenant = \"acme\"\n";

/// `engram export` of the demo account into `ws/export`.
fn export_demo(server: &Server, ws: &Workspace) -> PathBuf {
    let out = ws.path("export");
    let result = run(engram().args(["export", "--quiet", "--config"]).arg(ws.mapping()).arg("--out").arg(&out));
    assert!(result.status.success(), "{}", text(&result));
    assert!(server.stats().requests > 0);
    out
}

#[test]
fn engram_export_then_an_offline_migration_gives_the_live_patterns() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let live = migrate_ok(&ws, &ws.path("live"), &[]);
    let export = export_demo(&server, &ws);

    // The layout: manifest last, one file per thread (the deleted one recorded as failed).
    let manifest: Value = serde_json::from_slice(&std::fs::read(export.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["export_schema"], "assistants-export-manifest/v1");
    assert_eq!(manifest["threads_failed"], json!([{"thread_id": "thread_6IjZ13tsTOv1mSFLUXAAKnnV", "error": "not_found_or_deleted"}]));
    assert_eq!(manifest["thread_ids"].as_array().unwrap().len(), 8);
    let thread: Value = serde_json::from_slice(&std::fs::read(export.join("threads/thread_f6iaeiWYtbE4zTqdiO6snqLj.json")).unwrap()).unwrap();
    assert_eq!(thread["export_schema"], "assistants-thread-export/v1");
    assert!(thread["runs"][0]["steps"].as_array().is_some_and(|s| !s.is_empty()), "runs carry their steps");
    assert!(export.join("vector_stores/vs_trHWWfxlk6GsTmLwB7w9bAuE.json").exists());
    assert!(export.join("files/file-M9ZKSzI0Wa2RiZSeTC5BP4.content").exists(), "downloadable bytes are kept");
    assert!(!snapshot(&export).keys().any(|p| p.to_string_lossy().contains(".tmp")), "no temporary file left");

    // A second export into the same directory is refused before any request.
    let before = server.stats().requests;
    let again = run(engram().args(["export", "--config"]).arg(ws.mapping()).arg("--out").arg(&export));
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(server.stats().requests, before);

    // Migrating the export needs nothing of the API but embeddings.
    let after_shutdown = shut_down_server();
    let offline = workspace(&after_shutdown.base_url, EXPORT_DIR_MAPPING);
    std::fs::rename(&export, offline.path("export")).unwrap();
    let report = migrate_ok(&offline, &offline.path("data"), &[]);
    let routes = after_shutdown.stats().by_route;
    assert!(routes.keys().all(|r| r == "POST /embeddings"), "the offline migration asked for {routes:?}");
    assert_eq!(report["threads"], live["threads"]);
    assert_eq!(report["scopes"], live["scopes"]);
    assert_eq!(report["files"], live["files"]);
    assert_eq!(storage(&offline.path("data")), storage(&ws.path("live")), "the export migrates differently from the live account");
}

#[test]
fn an_assistants_api_export_directory_keeps_runs_citations_and_failures() {
    let server = shut_down_server();
    let mapping = std::fs::read_to_string(repo_root().join("fixtures/exports/redwood/mapping.toml")).unwrap();
    let ws = workspace(&server.base_url, &mapping.replace("path = \".\"", "base_url = \"BASE_URL\"\npath = \"export\""));
    let export = repo_root().join("fixtures/exports/redwood");
    for (rel, bytes) in snapshot(&export) {
        let to = ws.path("export").join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let report = migrate_ok(&ws, &ws.path("data"), &[]);
    let w = warnings(&report);
    assert!(w.contains(&("thread_not_found".into(), "thread_rw0deleted000000000002".into())), "{report:#}");
    assert!(w.contains(&("export_error".into(), "run_rw02".into())), "{report:#}");
    assert_eq!((report["threads"]["read"].as_u64(), report["threads"]["skipped"].as_u64()), (Some(1), Some(1)));

    let scope = ws.path("data/acme/Billing_Helper");
    let registry: Value = serde_json::from_slice(&std::fs::read(scope.join("skills/_registry.json")).unwrap()).unwrap();
    let patterns: Vec<Value> = snapshot(&scope.join("patterns")).into_values().map(|b| serde_json::from_slice(&b).unwrap()).collect();
    let answer = patterns.iter().find(|p| p["task"] == "Is invoice INV-2024-117 paid, and when do late fees start?").unwrap();
    // The citation names the file the export recorded; the run's function call is its skill.
    assert!(answer["design"]["code"].as_str().unwrap().ends_with("30 days after issue [billing-policy.pdf]."), "{answer:#}");
    assert_eq!(answer["design"]["openai"]["run_id"], "run_rw01");
    let tagged: Vec<&String> = registry.as_object().unwrap().iter().filter(|(_, v)| v == &&json!(["lookup_invoice"])).map(|(k, _)| k).collect();
    assert_eq!(tagged.len(), 2, "the tool pattern and the answer: {registry:#}");
    assert_eq!(patterns.len(), 3);
    verify_ok(&ws, ws.path("data").to_str().unwrap());
}

#[test]
fn an_export_directory_into_postgres_is_recalled_by_engramia() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    export_demo(&server, &ws);
    let offline = workspace(&server.base_url, EXPORT_DIR_MAPPING);
    std::fs::rename(ws.path("export"), offline.path("export")).unwrap();
    let url = fresh_database("sources_export_dir");
    let report = migrate_ok(&offline, Path::new(&url), &[]);
    assert_eq!(report["threads"]["read"], 7);
    let found = pg_recall(&server, &url, "Docs Assistant", "how can we rotate the production API key with no downtime");
    assert_eq!(found["matches"][0]["task"], "How do I rotate our production API key without downtime?", "{found:#}");
    assert!(found["invalid"].as_array().unwrap().is_empty() && found["missing"].as_array().unwrap().is_empty(), "{found:#}");
    let weather = pg_recall(&server, &url, "Weather Helper", "what will the weather be like in Oslo tomorrow");
    let task = weather["matches"][0]["task"].as_str().unwrap().to_lowercase();
    assert!(task.contains("oslo"), "{weather:#}");
    verify_ok(&offline, &url);
}

// --------------------------------------------------------------------------- conversations

fn conversations_server() -> Server {
    server(Account::load(&repo_root().join("fixtures/exports/conversations/account.json")).unwrap())
}

fn conversations_workspace(server: &Server) -> Workspace {
    let mapping = std::fs::read_to_string(repo_root().join("fixtures/exports/conversations/mapping.toml")).unwrap();
    let ws = workspace(&server.base_url, &mapping.replace("http://127.0.0.1:8089/v1", "BASE_URL"));
    std::fs::copy(repo_root().join("fixtures/exports/conversations/conversation_ids.txt"), ws.path("conversation_ids.txt")).unwrap();
    ws
}

const REFUND_TASK: &str = "Can you refund the shipping fee because of the delay?";

#[test]
fn conversations_are_paired_and_their_function_calls_become_skills() {
    let server = conversations_server();
    let ws = conversations_workspace(&server);
    let recording = ws.path("recording");
    let report = migrate_ok(&ws, &ws.path("live"), &["--record", recording.to_str().unwrap()]);
    // docs: 55 questions over 110 items (two pages); support: 3 answered questions; weather:
    // one answered, one not; the deleted conversation is a warning.
    assert_eq!(projects(&report), [("docs".to_string(), 55), ("support".to_string(), 3), ("weather".to_string(), 1)], "{report:#}");
    assert_eq!(warnings(&report), [("conversation_not_found".to_string(), "conv_68c2a1deleted0004".to_string())]);
    assert_eq!(report["threads"]["skipped"], 1);
    assert!(report["source"].as_str().unwrap().starts_with("conversations at "), "{report:#}");
    let routes = server.stats().by_route;
    assert_eq!(routes.get("GET /conversations/{id}/items"), Some(&4), "{routes:?}");

    let recalled = readback(
        "engramia_json_recall.py",
        &server.base_url,
        &["--data", ws.path("live").to_str().unwrap(), "--tenant", "acme", "--project", "support", "--question", "please refund the delivery charge for my late parcel", "--skill", "issue_refund", "--skill", "get_order_status"],
    );
    assert_eq!(recalled["used_keyword_fallback"], false, "{recalled:#}");
    let top = &recalled["matches"][0];
    assert_eq!(top["task"], REFUND_TASK, "{recalled:#}");
    assert_eq!(top["design"]["openai"]["thread_id"], "conv_68c2a1support0001");
    assert_eq!(recalled["skills"]["issue_refund"], json!([top["key"]]), "{recalled:#}");
    assert_eq!(recalled["skills"]["get_order_status"].as_array().unwrap().len(), 2, "{recalled:#}");
    verify_ok(&ws, ws.path("live").to_str().unwrap());

    // Replayed from the recording, without network or key: the same storage.
    drop(server);
    let out = migrate_replayed(&ws, &ws.path("replayed"), &recording);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(storage(&ws.path("live")), storage(&ws.path("replayed")));
}

#[test]
fn conversations_into_postgres_are_recalled_by_engramia() {
    let server = conversations_server();
    let ws = conversations_workspace(&server);
    let url = fresh_database("sources_conversations");
    migrate_ok(&ws, Path::new(&url), &[]);
    let found = pg_recall(&server, &url, "support", "please refund the delivery charge for my late parcel");
    assert_eq!(found["matches"][0]["task"], REFUND_TASK, "{found:#}");
    assert_eq!(found["pattern_count"], 3);
    let docs = pg_recall(&server, &url, "docs", "how can I switch on single sign-on");
    assert_eq!(docs["matches"][0]["task"], "How do I enable single sign-on?", "{docs:#}");
    assert_eq!(docs["pattern_count"], 55);
    verify_ok(&ws, &url);
}

/// The first Ctrl-C stops `engram export` from taking threads: exit 130, and a manifest that
/// lists exactly the thread files written, so that the directory migrates what it holds.
#[test]
fn engram_export_stops_on_the_first_ctrl_c_with_a_manifest_of_what_it_wrote() {
    let slow = Server::with_faults(engram_standin::Faults { delay_ms: 150, ..Default::default() });
    let ws = Workspace::new(&slow.base_url, "concurrency = 1", "[scope]\ntenant = \"acme\"\n");
    let out_dir = ws.path("export");
    let child = engram()
        .args(["export", "--config"])
        .arg(ws.mapping())
        .arg("--out")
        .arg(&out_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let threads_written = || std::fs::read_dir(out_dir.join("threads")).map(|d| d.count()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while threads_written() == 0 {
        assert!(std::time::Instant::now() < deadline, "no thread exported within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ok = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("engram export: interrupted"), "{}", text(&out));

    let manifest: Value = serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["interrupted"], true, "{manifest:#}");
    let listed = manifest["thread_ids"].as_array().unwrap().len();
    assert_eq!(listed, threads_written(), "{manifest:#}");
    assert!(listed < 8, "the export was not interrupted: {manifest:#}");
    assert_eq!(manifest["threads_not_reached"].as_u64().unwrap() as usize, 8 - listed, "{manifest:#}");
}
