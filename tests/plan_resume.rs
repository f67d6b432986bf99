//! The plan as a first-class stage: edits become exactly one update, near-duplicates follow
//! `[patterns] on_duplicate`, a killed run is finished by the next, and the Markdown report
//! renders for review.

mod common;

use common::*;
use engram_standin::{Account, Faults, Options};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WEATHER_THREAD: &str = "thread_yafcFGEnOIo4nI6KHhWoQZjo";

fn served(account: Value) -> Server {
    Server::start(Account::from_json(account).unwrap(), Options { api_key: Some(TEST_KEY.into()), ..Options::default() })
}

fn totals(report: &Value) -> (u64, u64, u64, u64) {
    report["scopes"].as_array().unwrap().iter().fold((0, 0, 0, 0), |t, s| {
        (
            t.0 + s["create"].as_u64().unwrap(),
            t.1 + s["update"].as_u64().unwrap(),
            t.2 + s["unchanged"].as_u64().unwrap(),
            t.3 + s["skip"].as_u64().unwrap(),
        )
    })
}

/// Appends `suffix` to the first text of the first message of `role` in a thread.
fn edit_message(account: &mut Value, thread: &str, role: &str, suffix: &str) {
    let t = account["threads"].as_array_mut().unwrap().iter_mut().find(|t| t["thread"]["id"] == thread).unwrap();
    let m = t["messages"].as_array_mut().unwrap().iter_mut().find(|m| m["role"] == role).unwrap();
    match &mut m["content"] {
        Value::String(s) => s.push_str(suffix),
        Value::Array(parts) => {
            let part = parts.iter_mut().find(|p| p["type"] == "text").unwrap();
            match &mut part["text"] {
                Value::String(s) => s.push_str(suffix),
                text => {
                    let v = format!("{}{suffix}", text["value"].as_str().unwrap());
                    text["value"] = json!(v);
                }
            }
        }
        other => panic!("unexpected content {other}"),
    }
}

#[test]
fn an_edited_message_is_exactly_one_update_and_one_embedding() {
    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("data");
    let before = {
        let server = Server::demo();
        let ws = Workspace::demo(&server.base_url);
        migrate_ok(&ws, &target, &[])
    };
    let created = totals(&before).0;

    let mut account = demo_account_json();
    edit_message(&mut account, WEATHER_THREAD, "user", " Also, do I need an umbrella?");
    let server = served(account);
    let ws = Workspace::demo(&server.base_url);
    let after = migrate_ok(&ws, &target, &[]);
    assert_eq!(totals(&after), (0, 1, created - 1, 0), "{after:#}");
    assert_eq!(scope_counts(&after, "Weather Helper").1, 1);
    assert_eq!(after["embedding"]["inputs"], 1);
    assert_eq!(server.stats().embedding_inputs, 1);
    // The pattern on disk carries the edit.
    let edited = snapshot(&target)
        .into_iter()
        .filter(|(p, _)| p.starts_with("acme/Weather_Helper/patterns"))
        .any(|(_, b)| String::from_utf8_lossy(&b).contains("do I need an umbrella?"));
    assert!(edited);
}

/// The weather pattern's full task, as the demo migration writes it.
fn weather_task(target: &Path) -> String {
    snapshot(target)
        .into_iter()
        .filter(|(p, _)| p.starts_with("acme/Weather_Helper/patterns"))
        .map(|(_, b)| serde_json::from_slice::<Value>(&b).unwrap())
        .find(|v| v["design"]["openai"]["kind"] == "message_pair" && v["task"].as_str().unwrap().contains("Oslo"))
        .map(|v| v["task"].as_str().unwrap().to_string())
        .expect("a weather question about Oslo in the demo")
}

/// A target holding one pattern that Engramia wrote itself: the demo's weather question with
/// its first word repeated and upper-cased (the same word set: a near-duplicate by Engramia's
/// rule, Jaccard 1.0), with the given score.
fn target_with_their_pattern(task: &str, score: f64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("data/acme/Weather_Helper");
    std::fs::create_dir_all(scope.join("patterns")).unwrap();
    let first = task.split_whitespace().next().unwrap().to_uppercase();
    let theirs = json!({"task": format!("{task} {first}"), "design": {"code": "their answer"}, "success_score": score, "reuse_count": 2, "timestamp": 1.0});
    std::fs::write(scope.join("patterns/theirs_1.json"), serde_json::to_vec_pretty(&theirs).unwrap()).unwrap();
    let embedding = engram_standin::embed_text(theirs["task"].as_str().unwrap(), 1536);
    std::fs::write(scope.join("_embeddings.json"), serde_json::to_vec(&json!({"patterns/theirs_1": embedding})).unwrap()).unwrap();
    let target = dir.path().join("data");
    (dir, target)
}

#[test]
fn near_duplicates_follow_on_duplicate() {
    let server = Server::demo();
    let scratch = tempfile::tempdir().unwrap();
    let ws = Workspace::demo(&server.base_url);
    migrate_ok(&ws, scratch.path(), &[]);
    let task = weather_task(scratch.path());

    for (policy, their_score, expect_theirs, expect_skip) in
        [("skip", 3.0, true, 1), ("replace_with_better", 3.0, false, 0), ("replace_with_better", 9.0, true, 1), ("keep_both", 9.0, true, 0)]
    {
        let ws = Workspace::new(
            &server.base_url,
            "",
            &format!("[scope]\ntenant = \"acme\"\nproject = \"{{assistant.name}}\"\n[patterns]\non_duplicate = \"{policy}\"\n"),
        );
        let (_keep, target) = target_with_their_pattern(&task, their_score);
        let theirs = target.join("acme/Weather_Helper/patterns/theirs_1.json");
        let before = std::fs::read(&theirs).unwrap();
        let plan = migrate_ok(&ws, &target, &["--dry-run"]);
        let report = migrate_ok(&ws, &target, &[]);
        assert_eq!(plan["scopes"], report["scopes"], "{policy}: the dry run predicts the run");
        let (_, _, _, skip) = scope_counts(&report, "Weather Helper");
        assert_eq!(skip, expect_skip, "{policy}/{their_score}: {report:#}");
        assert_eq!(theirs.exists(), expect_theirs, "{policy}/{their_score}");
        if expect_theirs {
            assert_eq!(std::fs::read(&theirs).unwrap(), before, "{policy}: their pattern was touched");
        } else {
            let index = std::fs::read_to_string(target.join("acme/Weather_Helper/_embeddings.json")).unwrap();
            assert!(!index.contains("theirs_1"), "replaced pattern's embedding left behind");
        }
        // The migrated weather pattern is there unless it was skipped.
        assert_eq!(weather_task_present(&target, &task), expect_skip == 0, "{policy}/{their_score}");
    }
}

fn weather_task_present(target: &Path, task: &str) -> bool {
    snapshot(target)
        .into_iter()
        .filter(|(p, _)| p.starts_with("acme/Weather_Helper/patterns"))
        .any(|(_, b)| serde_json::from_slice::<Value>(&b).unwrap()["task"] == task)
}

#[test]
fn a_killed_run_is_finished_by_the_next_with_the_same_result() {
    // Reference: one uninterrupted run.
    let server = Server::demo();
    let ws = Workspace::new(
        &server.base_url,
        "concurrency = 1",
        "[target]\nbatch_size = 4\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n",
    );
    let reference = ws.path("reference");
    migrate_ok(&ws, &reference, &[]);

    // A slow server, so the run is still going when it is killed.
    let slow = Server::with_faults(Faults { delay_ms: 40, ..Faults::default() });
    let slow_ws = Workspace::new(
        &slow.base_url,
        "concurrency = 1",
        "[target]\nbatch_size = 4\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n",
    );
    let target = ws.path("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_engram"))
        .env("OPENAI_API_KEY", TEST_KEY)
        .env_remove("OPENAI_BASE_URL")
        .args(["migrate", "--quiet", "--config"])
        .arg(slow_ws.mapping())
        .arg("--target")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = target.join("_engram_run.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let batches = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["batches"].as_u64())
            .unwrap_or(0);
        if batches >= 2 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        assert!(Instant::now() < deadline, "no progress within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = storage(&target);
    assert!(partial.len() < storage(&reference).len(), "the kill came too late to test anything");
    // No temporary file is left visible to Engramia as a pattern; the one other file is the
    // embeddings log and engram's ledger log of each scope (Engramia reads *.json only),
    // merged by the next run, and the lock file the killed run held and the temporary file of a
    // write it was killed in (both taken over and swept by the next).
    assert!(
        partial.keys().all(|p| p.extension().is_none_or(|e| e == "json")
            || p.file_name().is_some_and(|n| n == "_embeddings.wal" || n == "_engram_records.wal" || n == "_engram.lock")
            || p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".engram-") && n.to_string_lossy().ends_with(".tmp"))),
        "{:?}",
        partial.keys()
    );

    let requests_before = server.stats().embedding_inputs;
    let resumed = migrate_ok(&ws, &target, &[]);
    assert_eq!(storage(&target), storage(&reference), "the resumed run differs from an uninterrupted one");
    let r = &resumed["resumed"];
    assert!(r["batches"].as_u64().unwrap() >= 2, "{resumed:#}");
    assert!(r["last_thread"].is_string(), "{resumed:#}");
    // Nothing already written was embedded again.
    let (created, updated, unchanged, _) = totals(&resumed);
    assert!(unchanged >= r["records"].as_u64().unwrap(), "{resumed:#}");
    assert_eq!(server.stats().embedding_inputs - requests_before, created + updated);
    // A further run finds nothing to do and no unfinished run.
    let again = migrate_ok(&ws, &target, &[]);
    assert!(again["resumed"].is_null());
    assert_eq!(totals(&again).0 + totals(&again).1, 0);
    // The killed run's ledger log was merged too: verify finds every record.
    verify_ok(&ws, target.to_str().unwrap());
}

#[test]
fn markdown_report_renders_for_review() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let report = ws.path("plan.md");
    let out = run(engram()
        .args(["migrate", "--dry-run", "--quiet", "--report-format", "markdown", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(ws.path("data"))
        .arg("--report")
        .arg(&report));
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(&report).unwrap().replace(&server.base_url, "http://STANDIN/v1").replace(
        &ws.path("data").display().to_string(),
        "DATA",
    );
    let snapshot_path = repo_root().join("tests/snapshots/demo_plan.md");
    if std::env::var_os("ENGRAM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot_path.parent().unwrap()).unwrap();
        std::fs::write(&snapshot_path, &md).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot_path)
        .expect("tests/snapshots/demo_plan.md (create it with ENGRAM_UPDATE_SNAPSHOTS=1)");
    assert_eq!(md, expected, "the Markdown report changed; review it and rerun with ENGRAM_UPDATE_SNAPSHOTS=1");
    assert!(!ws.path("data").exists());
}

#[test]
fn detailed_report_lists_every_record_with_its_decision() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let report = migrate_ok(&ws, &ws.path("data"), &["--dry-run", "--report-detail"]);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len() as u64, totals(&report).0 + totals(&report).3);
    let first = &records[0];
    for field in ["tenant", "project", "key", "action", "kind", "origin", "task"] {
        assert!(!first[field].is_null(), "{field} missing in {first:#}");
    }
    assert!(records.iter().all(|r| r["key"].as_str().unwrap().starts_with("patterns/")));
    assert!(records.iter().any(|r| r["kind"] == "tool") && records.iter().any(|r| r["kind"] == "message_pair"));
}

/// The dry run counts the requests it made, and predicts those of the real run (the same reads
/// plus its embeddings requests) and their time at `[source] requests_per_minute`.
#[test]
fn a_dry_run_predicts_the_requests_of_the_real_run_and_their_time() {
    let server = Server::demo();
    let ws = Workspace::new(&server.base_url, "requests_per_minute = 6000", "[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n");
    let plan = migrate_ok(&ws, &ws.path("data"), &["--dry-run"]);
    let r = &plan["requests"];
    let reads = server.stats().requests;
    assert_eq!(r["api"].as_u64(), Some(reads), "{plan:#}");
    assert_eq!(r["retries"], 0);
    assert!(r["run_steps"].as_u64().unwrap() > 0, "{plan:#}");
    assert_eq!(r["embeddings"], plan["embedding"]["requests"]);
    let estimated = r["estimated_requests"].as_u64().unwrap();
    assert_eq!(estimated, reads + r["embeddings"].as_u64().unwrap());
    assert_eq!(r["rate_limit_per_minute"], 6000);
    assert!((r["estimated_minutes"].as_f64().unwrap() - estimated as f64 / 6000.0).abs() < 1e-9, "{plan:#}");

    let real = migrate_ok(&ws, &ws.path("data"), &[]);
    assert_eq!(server.stats().requests - reads, estimated, "the real run made other requests than predicted: {real:#}");
    assert_eq!(real["requests"]["api"].as_u64().unwrap() + real["requests"]["embeddings"].as_u64().unwrap(), estimated);
    assert!(real["requests"].get("estimated_requests").is_none());
}
