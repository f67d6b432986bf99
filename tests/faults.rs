//! Resilience and bad input, end to end through the `engram` binary: injected network faults
//! (429 with retry-after, 500, dropped connections, slow answers, timeouts), per-object errors,
//! wrong configuration, unwritable targets, Ctrl-C, the rejects file and `--retry-failed`, and
//! secrets. Each test says what it proves; every one checks the exit code, the message, and
//! what was (not) written.
//!
//! Rows of the table already covered in tests/migrate_json.rs and not repeated here: a rejected
//! key (401), the shut-down Assistants API, an unknown mapping key, a missing threads file, an
//! unknown placeholder.
//!
//! Faults the stand-in cannot aim at one object (a 500 on one thread, a 403 on another, a key
//! echoed back) come from `Proxy`: a real HTTP server in front of the stand-in that answers
//! chosen paths itself and forwards everything else.

mod common;

use common::*;
use engram_standin::{Faults, Options};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The demo mapping after `[source]` (see `Workspace::demo`).
const DEMO_REST: &str = "[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n";
const WEATHER_THREAD: &str = "thread_yafcFGEnOIo4nI6KHhWoQZjo";
const SUPPORT_THREAD: &str = "thread_eZ3QyxnzZdy18BznSRtBht4S";
/// Cites file-XTw0… and file-y0x4….
const DOCS_THREAD: &str = "thread_egExQ1BJoynbv6IWPmbb8fVQ";
/// Cited by thread_jU0B….
const CITED_FILE: &str = "file-M9ZKSzI0Wa2RiZSeTC5BP4";

/// `engram` with backoff shortened for tests (a server's retry-after is still honoured).
fn engram_fast() -> Command {
    let mut cmd = engram();
    cmd.env("ENGRAM_RETRY_BASE_MS", "1");
    cmd
}

/// Runs `engram migrate` with `--report`; returns the output and the report if one was written.
fn migrate(mapping: &Path, target: &Path, extra: &[&str]) -> (Output, Option<Value>) {
    let report = target.with_extension("report.json");
    let out = run(engram_fast()
        .arg("migrate")
        .arg("--config")
        .arg(mapping)
        .arg("--target")
        .arg(target)
        .arg("--report")
        .arg(&report)
        .args(extra));
    let parsed = std::fs::read(&report).ok().map(|b| serde_json::from_slice(&b).unwrap());
    (out, parsed)
}

fn migrate_ok(mapping: &Path, target: &Path, extra: &[&str]) -> Value {
    let (out, report) = migrate(mapping, target, extra);
    assert!(out.status.success(), "engram migrate failed:\n{}", text(&out));
    let report = report.expect("a report");
    assert_counts_add_up(&report);
    report
}

/// listed = read + skipped + failed + not_reached, in every report.
fn assert_counts_add_up(report: &Value) {
    let t = &report["threads"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("threads.{k} missing: {report:#}"));
    assert_eq!(n("listed"), n("read") + n("skipped") + n("failed") + n("not_reached"), "{report:#}");
}

fn warnings(report: &Value) -> Vec<(String, String)> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["kind"].as_str().unwrap().to_string(), w["id"].as_str().unwrap().to_string()))
        .collect()
}

/// The embedding config without its creation time.
fn embedding_config(dir: &Path) -> Value {
    let mut v: Value = serde_json::from_slice(&std::fs::read(dir.join("metadata/embedding_config.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("created_at");
    v
}

/// Every file's JSON with object keys sorted: equal when two targets hold the same data,
/// whatever order entries were appended in.
fn canonical(dir: &Path) -> BTreeMap<PathBuf, String> {
    storage(dir)
        .into_iter()
        .map(|(p, b)| {
            let v: Value = serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, engram::record::canonical_json(&v))
        })
        .collect()
}

/// A target a reader can trust: no temporary files, every JSON file whole, and every pattern
/// file's key in its scope's embedding index or in the scope's embedding log (an index entry
/// without its file is allowed: invisible to Engramia, and rewritten by the next run). The log
/// counts because folding it into the index needs room for a new index: on a full disk the fold
/// itself fails, and the next run folds it before reading the scope.
fn assert_consistent(dir: &Path) {
    let files = snapshot(dir);
    let mut parsed: BTreeMap<&Path, Value> = BTreeMap::new();
    for (path, bytes) in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with(".engram-"), "a temporary file was left behind: {}", path.display());
        if name.ends_with(".json") {
            let v = serde_json::from_slice::<Value>(bytes).unwrap_or_else(|e| panic!("{} is not whole JSON: {e}", path.display()));
            parsed.insert(path, v);
        }
    }
    for path in parsed.keys().filter(|p| p.parent().is_some_and(|p| p.ends_with("patterns"))) {
        let index = path.parent().unwrap().parent().unwrap().join("_embeddings.json");
        let key = format!("patterns/{}", path.file_stem().unwrap().to_string_lossy());
        let in_index = parsed.get(index.as_path()).and_then(|i| i.get(&key)).is_some();
        let log = index.with_file_name("_embeddings.wal");
        let in_log = files.get(&log).is_some_and(|bytes| {
            bytes.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice::<(String, Value)>(line).ok()).any(|(k, _)| k == key)
        });
        assert!(in_index || in_log, "{} has no embedding", path.display());
    }
}

/// A clean run of the demo account with the given `[source]` extras and mapping rest.
fn clean_run(extra_source: &str, rest: &str) -> (tempfile::TempDir, PathBuf, Value) {
    let server = Server::demo();
    let ws = Workspace::new(&server.base_url, extra_source, rest);
    let target = ws.path("clean");
    let report = migrate_ok(&ws.mapping(), &target, &[]);
    (ws.dir, target, report)
}

/// Writes a copy of the workspace's mapping pointing at another server.
fn mapping_for(ws: &Workspace, name: &str, base_url: &str) -> PathBuf {
    let text = std::fs::read_to_string(ws.mapping()).unwrap();
    let line = text.lines().find(|l| l.starts_with("base_url")).unwrap().to_string();
    let path = ws.path(name);
    std::fs::write(&path, text.replace(&line, &format!("base_url = \"{base_url}\""))).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Network faults: the output is the same as a clean run's, byte for byte.

/// 429 (retry-after 1 s) on every 5th request and 500 on every 7th: the run completes, waits
/// at least what the server asked, and writes exactly what a clean run writes.
#[test]
fn rate_limits_and_server_errors_give_byte_identical_output() {
    let clean = std::thread::spawn(|| clean_run("", DEMO_REST));
    let server = Server::with_faults(Faults { every_429: Some(5), retry_after_secs: 1, every_500: Some(7), ..Faults::default() });
    let ws = Workspace::new(&server.base_url, "", DEMO_REST);
    let target = ws.path("faulty");
    let started = Instant::now();
    let report = migrate_ok(&ws.mapping(), &target, &[]);
    let elapsed = started.elapsed();
    let (_keep, clean_target, clean_report) = clean.join().unwrap();

    let stats = server.stats();
    assert!(stats.faults_injected >= 10, "{stats:?}");
    assert!(elapsed >= Duration::from_secs(1), "the 429s' retry-after was not honoured: {elapsed:?}");
    assert_eq!(storage(&target), storage(&clean_target), "the faulted run wrote something else");
    assert_eq!(embedding_config(&target), embedding_config(&clean_target));
    for k in ["threads", "scopes", "warnings", "embedding"] {
        assert_eq!(report[k], clean_report[k], "{k}");
    }
    assert!(report["rejects_file"].is_null(), "{report:#}");
    assert!(!ws.path("faulty.report.json.rejects.jsonl").exists());
}

/// Connections reset without a byte (every 4th request) and slow answers: retried, same output.
#[test]
fn dropped_connections_and_slow_answers_give_byte_identical_output() {
    let clean = std::thread::spawn(|| clean_run("", DEMO_REST));
    let server = Server::with_faults(Faults { drop_every: Some(4), delay_ms: 20, ..Faults::default() });
    let ws = Workspace::new(&server.base_url, "", DEMO_REST);
    let target = ws.path("faulty");
    migrate_ok(&ws.mapping(), &target, &[]);
    let (_keep, clean_target, _) = clean.join().unwrap();
    assert!(server.stats().faults_injected >= 8, "{:?}", server.stats());
    assert_eq!(storage(&target), storage(&clean_target));
}

/// A server that answers 500 to everything: bounded attempts, then exit 1 naming the request;
/// nothing written.
#[test]
fn a_server_that_keeps_failing_is_given_up_on_naming_the_request() {
    let server = Server::with_faults(Faults { every_500: Some(1), ..Faults::default() });
    let ws = Workspace::new(&server.base_url, "max_attempts = 3", DEMO_REST);
    let target = ws.path("data");
    let (out, report) = migrate(&ws.mapping(), &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GET /assistants") && err.contains("gave up after 3 attempts") && err.contains("HTTP 500"), "{err}");
    assert_eq!(server.stats().requests, 3);
    assert!(!target.exists() && report.is_none());
}

/// A server that answers 429 forever: the retry-after is honoured on every retry, but the
/// attempts stay bounded (a server hint never revives a request whose attempts are used up).
#[test]
fn endless_429s_are_bounded_and_their_retry_after_honoured() {
    let server = Server::with_faults(Faults { every_429: Some(1), retry_after_secs: 1, ..Faults::default() });
    let ws = Workspace::new(&server.base_url, "max_attempts = 2", DEMO_REST);
    let started = Instant::now();
    let (out, _) = migrate(&ws.mapping(), &ws.path("data"), &[]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GET /assistants") && err.contains("gave up after 2 attempts") && err.contains("HTTP 429"), "{err}");
    assert_eq!(server.stats().requests, 2);
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert!(!ws.path("data").exists());
}

/// Answers slower than `timeout_secs`: each attempt times out, is retried, and the error names
/// the request and the timeout.
#[test]
fn timeouts_are_retried_then_named() {
    let server = Server::with_faults(Faults { delay_ms: 1500, ..Faults::default() });
    let ws = Workspace::new(&server.base_url, "timeout_secs = 1\nmax_attempts = 2", DEMO_REST);
    let (out, _) = migrate(&ws.mapping(), &ws.path("data"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GET /assistants") && err.contains("timed out") && err.contains("2 attempts"), "{err}");
    assert_eq!(server.stats().requests, 2);
    assert!(!ws.path("data").exists());
}

/// One budget for the whole run: never more than `[source] concurrency` requests on the wire
/// (thread fetches, file look-ups and embeddings together), and a 429 with `retry-after: 1`
/// holds every request back for that second, not just the one that got it.
#[test]
fn concurrency_is_bounded_and_a_429_pauses_every_request() {
    let server = Server::with_faults(Faults { delay_ms: 30, ..Faults::default() });
    let proxy = Proxy::start(&server.base_url, vec![("/runs".to_string(), Answer::RateLimitOnce)]);
    let ws = Workspace::new(&proxy.base_url, "concurrency = 3", DEMO_REST);
    let report = migrate_ok(&ws.mapping(), &ws.path("data"), &[]);
    assert_eq!(report["threads"]["read"], 7, "{report:#}");
    let max = proxy.max_in_flight();
    assert!((2..=3).contains(&max), "at most 3 requests at once, and more than 1: {max}");

    let limited = proxy.state.limited_at.lock().unwrap().expect("the 429 was sent");
    let arrivals = proxy.state.arrivals.lock().unwrap().clone();
    // Requests already on their way when the 429 went out may still arrive just after it.
    let during_pause: Vec<Duration> = arrivals
        .iter()
        .filter(|t| **t > limited + Duration::from_millis(100) && **t < limited + Duration::from_millis(950))
        .map(|t| *t - limited)
        .collect();
    assert!(during_pause.is_empty(), "requests sent during the 1 s pause: {during_pause:?}");
    assert!(arrivals.iter().any(|t| *t >= limited + Duration::from_secs(1)), "nothing was sent after the pause");
}

// ---------------------------------------------------------------------------------------------
// Per-object problems: a warning naming the object, the run goes on.

/// A 403 on one thread and a 404 on one cited file: warnings naming each, everything else is
/// migrated; `--strict` turns the warnings into exit 3.
#[test]
fn a_forbidden_thread_and_a_missing_cited_file_are_warnings_and_the_run_goes_on() {
    let server = Server::demo();
    let proxy = Proxy::start(
        &server.base_url,
        vec![(format!("/threads/{SUPPORT_THREAD}"), Answer::Status(403)), (format!("/files/{CITED_FILE}"), Answer::Status(404))],
    );
    let ws = Workspace::new(&proxy.base_url, "", DEMO_REST);
    let report = migrate_ok(&ws.mapping(), &ws.path("data"), &[]);
    let w = warnings(&report);
    assert!(w.contains(&("thread_forbidden".into(), SUPPORT_THREAD.into())), "{w:?}");
    assert!(w.contains(&("cited_file_unavailable".into(), CITED_FILE.into())), "{w:?}");
    assert_eq!(report["threads"]["read"], 6, "{report:#}");
    assert_eq!(report["threads"]["skipped"], 2, "the 403 and the demo's deleted thread: {report:#}");
    assert!(report["rejects_file"].is_null(), "gone or hidden objects are not retryable failures");
    assert_consistent(&ws.path("data"));

    let (out, _) = migrate(&ws.mapping(), &ws.path("strict"), &["--strict"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

// ---------------------------------------------------------------------------------------------
// Failures you can retry: the rejects file and --retry-failed.

/// A thread whose messages keep answering 500 and a thread whose cited file's lookup does:
/// both are rejects (beside the report, then in the working directory), the rest is written;
/// `--retry-failed` re-reads just those threads, and once the server is healthy the target
/// holds what a clean run writes and the rejects file is gone.
#[test]
fn failed_threads_go_to_the_rejects_file_and_retry_failed_finishes_them() {
    let clean = std::thread::spawn(|| clean_run("max_attempts = 2", DEMO_REST));
    let server = Server::demo();
    let proxy = Proxy::start(
        &server.base_url,
        vec![
            (format!("/threads/{WEATHER_THREAD}/messages"), Answer::Status(500)),
            ("/files/file-y0x4WjBQe7RTyeCncilNYq".to_string(), Answer::Status(502)),
        ],
    );
    let ws = Workspace::new(&proxy.base_url, "max_attempts = 2", DEMO_REST);
    let target = ws.path("data");

    // 1. Two threads fail: warnings, counted as failed, listed beside the report.
    let report = migrate_ok(&ws.mapping(), &target, &[]);
    assert_eq!(report["threads"]["failed"], 2, "{report:#}");
    let w = warnings(&report);
    assert!(w.contains(&("thread_failed".into(), WEATHER_THREAD.into())), "{w:?}");
    assert!(w.contains(&("thread_failed".into(), DOCS_THREAD.into())), "{w:?}");
    let rejects_path = ws.path("data.report.json.rejects.jsonl");
    assert_eq!(report["rejects_file"], rejects_path.display().to_string());
    let rejects = read_rejects(&rejects_path);
    assert_eq!(rejects.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), [WEATHER_THREAD, DOCS_THREAD]);
    for r in &rejects {
        assert_eq!(r["stage"], "thread");
        assert_eq!(r["attempts"], 2, "{r}");
    }
    assert!(rejects[0]["reason"].as_str().unwrap().contains("HTTP 500"), "{rejects:?}");
    assert!(rejects[1]["reason"].as_str().unwrap().contains("file-y0x4WjBQe7RTyeCncilNYq"), "{rejects:?}");
    assert_consistent(&target);

    // 2. Retry through the still-failing proxy, without --report: only those two threads are
    //    fetched, and the rejects land in the working directory.
    let threads_before = proxy.forwarded("/threads/");
    let out = run(engram_fast()
        .current_dir(ws.dir.path())
        .args(["migrate", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(&target)
        .arg("--retry-failed")
        .arg(&rejects_path));
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 failed"), "{}", text(&out));
    let fetched = proxy.forwarded("/threads/")[threads_before.len()..].to_vec();
    assert!(fetched.iter().all(|p| p.contains(WEATHER_THREAD) || p.contains(DOCS_THREAD)), "{fetched:?}");
    let in_cwd = ws.path("engram-rejects.jsonl");
    assert_eq!(read_rejects(&in_cwd).len(), 2);

    // 3. The server is healthy again: retry straight against it.
    let direct = mapping_for(&ws, "direct.toml", &server.base_url);
    let before = server.stats();
    let out = run(engram_fast()
        .current_dir(ws.dir.path())
        .args(["migrate", "--config"])
        .arg(&direct)
        .arg("--target")
        .arg(&target)
        .arg("--retry-failed")
        .arg("engram-rejects.jsonl"));
    assert!(out.status.success(), "{}", text(&out));
    let after = server.stats();
    let thread_gets = after.by_route["GET /threads/{id}"] - before.by_route.get("GET /threads/{id}").copied().unwrap_or(0);
    assert_eq!(thread_gets, 2, "only the rejected threads are read again");
    assert!(!in_cwd.exists(), "a run without rejects removes the old rejects file");
    let (_keep, clean_target, _) = clean.join().unwrap();
    assert_eq!(canonical(&target), canonical(&clean_target));
    assert_consistent(&target);
}

fn read_rejects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Clear errors, nothing written.

/// mapping.toml syntax and type errors: exit 2, file:line:column and what was expected; no
/// request, no file.
#[test]
fn mapping_syntax_and_type_errors_name_file_line_column_and_what_was_expected() {
    let server = Server::demo();
    for (body, line_col, expected) in [
        ("[scope\ntenant = \"acme\"\n", "mapping.toml:5:7", "expected `]`"),
        ("[patterns]\neval_score = \"high\"\n", "mapping.toml:6:14", "expected f64"),
        ("[source2]\n", "mapping.toml:5:2", "did you mean `source`"),
    ] {
        let ws = Workspace::new(&server.base_url, "", body);
        let (out, report) = migrate(&ws.mapping(), &ws.path("data"), &[]);
        assert_eq!(out.status.code(), Some(2), "{body}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(line_col) && err.contains(expected), "{body}: {err}");
        assert!(!ws.path("data").exists() && report.is_none());
    }
    assert_eq!(server.stats().requests, 0);
}

/// A threads file that exists but cannot be read (a directory, bytes that are not UTF-8), and
/// a --retry-failed file that is missing: exit 2 naming the path.
#[test]
fn unreadable_thread_lists_exit_2_naming_the_path() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    std::fs::remove_file(ws.path("thread_ids.txt")).unwrap();
    std::fs::create_dir(ws.path("thread_ids.txt")).unwrap();
    let (out, _) = migrate(&ws.mapping(), &ws.path("data"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("thread_ids.txt"), "{}", text(&out));

    std::fs::remove_dir(ws.path("thread_ids.txt")).unwrap();
    std::fs::write(ws.path("thread_ids.txt"), b"thread_abc\n\xff\xfe\n").unwrap();
    let (out, _) = migrate(&ws.mapping(), &ws.path("data"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("thread_ids.txt"), "{}", text(&out));

    std::fs::copy(repo_root().join("fixtures/demo/thread_ids.txt"), ws.path("thread_ids.txt")).unwrap();
    let (out, _) = migrate(&ws.mapping(), &ws.path("data"), &["--retry-failed", "no-such-rejects.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-rejects.jsonl"), "{}", text(&out));
    assert!(!ws.path("data").exists());
    assert_eq!(server.stats().requests, 0);
}

/// `{assistant.name}` for an assistant without a name (and no default_project): exit 2 at
/// start-up naming the placeholder and the assistant, before any write or embedding.
#[test]
fn a_placeholder_that_cannot_resolve_stops_at_start_up() {
    let mut account = demo_account_json();
    let nameless = account["assistants"][0]["id"].as_str().unwrap().to_string();
    account["assistants"][0]["name"] = Value::Null;
    let server = Server::start(
        engram_standin::Account::from_json(account).unwrap(),
        Options { api_key: Some(TEST_KEY.into()), ..Options::default() },
    );
    let ws = Workspace::new(&server.base_url, "", DEMO_REST);
    let (out, report) = migrate(&ws.mapping(), &ws.path("data"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("{assistant.name}") && err.contains(&nameless) && err.contains("default_project"), "{err}");
    assert!(!ws.path("data").exists() && report.is_none());
    assert_eq!(server.stats().embedding_requests, 0);
}

/// A target that is a file, or lies below one: exit 1 before any request.
#[test]
fn an_unwritable_target_fails_before_any_request() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    std::fs::write(ws.path("blocker"), "not a directory").unwrap();
    for target in [ws.path("blocker"), ws.path("blocker/data")] {
        let (out, report) = migrate(&ws.mapping(), &target, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("blocker"), "{err}");
        assert!(report.is_none());
    }
    assert_eq!(std::fs::read_to_string(ws.path("blocker")).unwrap(), "not a directory");
    assert_eq!(server.stats().requests, 0);
}

/// A write that fails in the middle of a batch (a scope's `patterns` directory is taken by a
/// file; other scopes are already written): exit 1 naming the path, no temporary or partial
/// file; once the obstacle is gone, a rerun ends where a clean run does, byte for byte.
#[test]
fn a_write_failing_mid_run_exits_1_and_a_rerun_repairs_it() {
    let clean = std::thread::spawn(|| clean_run("", DEMO_REST));
    let server = Server::demo();
    let ws = Workspace::new(&server.base_url, "", DEMO_REST);
    let target = ws.path("data");
    let blocked = target.join("acme/Weather_Helper/patterns");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "in the way").unwrap();

    let (out, report) = migrate(&ws.mapping(), &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Weather_Helper/patterns"), "{}", text(&out));
    assert!(report.is_none());
    assert!(target.join("acme/Support_Bot/_embeddings.json").exists(), "expected a scope written before the failure");
    std::fs::remove_file(&blocked).unwrap();
    assert_consistent(&target);

    migrate_ok(&ws.mapping(), &target, &[]);
    let (_keep, clean_target, _) = clean.join().unwrap();
    assert_eq!(storage(&target), storage(&clean_target));
}

/// A full disk (a 64 KiB tmpfs, in a private mount namespace): exit 1, no temporary file, every
/// file left is whole. Needs `unshare -m` and `mount` (root with CAP_SYS_ADMIN); where the
/// environment refuses them the test fails unless ENGRAM_TEST_NO_TMPFS is set (the mid-run
/// write failure above covers the same code path portably).
#[test]
fn a_full_disk_exits_1_and_leaves_no_partial_file() {
    let probe = Command::new("unshare").args(["-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        // Not a silent pass: a machine that cannot run this must say so explicitly.
        assert!(
            std::env::var_os("ENGRAM_TEST_NO_TMPFS").is_some(),
            "cannot mount a tmpfs here (unshare -m / mount refused: {probe:?}); this test needs root with CAP_SYS_ADMIN. Set ENGRAM_TEST_NO_TMPFS=1 to accept running without the full-disk check (a_write_failing_mid_run_exits_1_and_a_rerun_repairs_it covers the same code path)"
        );
        return;
    }
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("tiny");
    let copy = ws.path("copy");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&copy).unwrap();
    // Inside the namespace: mount, run engram into the tmpfs, copy what it left out of it.
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs '{t}' && '{engram}' migrate --quiet --config '{m}' --target '{t}'; code=$?; cp -a '{t}/.' '{c}/'; exit $code",
        t = target.display(),
        engram = env!("CARGO_BIN_EXE_engram"),
        m = ws.mapping().display(),
        c = copy.display()
    );
    let out = run(Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("OPENAI_API_KEY", TEST_KEY)
        .env("ENGRAM_RETRY_BASE_MS", "1")
        .env_remove("OPENAI_BASE_URL"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_consistent(&copy);

    // With room again, a rerun folds what the full disk left and ends as a clean run does.
    let clean = std::thread::spawn(|| clean_run("", DEMO_REST));
    migrate_ok(&ws.mapping(), &copy, &[]);
    let (_keep, clean_target, _) = clean.join().unwrap();
    assert_eq!(storage(&copy), storage(&clean_target));
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C.

fn sigint(child: &std::process::Child) {
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(ok.success());
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_migrate(mapping: &Path, target: &Path, report: &Path) -> std::process::Child {
    engram_fast()
        .args(["migrate", "--config"])
        .arg(mapping)
        .arg("--target")
        .arg(target)
        .arg("--report")
        .arg(report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engram starts")
}

/// The first Ctrl-C during a slow run: the batch in flight is finished, the report (marked
/// interrupted) is written, exit 130; the target is consistent, and a rerun ends byte for byte
/// where a clean run does.
#[test]
fn ctrl_c_finishes_the_batch_writes_the_report_and_a_rerun_completes() {
    let rest = format!("[target]\nbatch_size = 1\n{DEMO_REST}");
    let extra = "concurrency = 1";
    let clean = {
        let rest = rest.clone();
        std::thread::spawn(move || clean_run(extra, &rest))
    };
    let slow = Server::with_faults(Faults { delay_ms: 120, ..Faults::default() });
    let ws = Workspace::new(&slow.base_url, extra, &rest);
    let target = ws.path("data");
    let report_path = ws.path("report.json");
    let child = spawn_migrate(&ws.mapping(), &target, &report_path);
    // Interrupt once the first batch is written and more threads remain.
    wait_until("the first batch", Duration::from_secs(30), || target.join("acme").exists());
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("engram migrate: interrupted"), "{}", text(&out));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    assert_counts_add_up(&report);
    assert!(report["threads"]["not_reached"].as_u64().unwrap() > 0, "{report:#}");
    assert_consistent(&target);

    let fast = Server::demo();
    let rerun = migrate_ok(&mapping_for(&ws, "fast.toml", &fast.base_url), &target, &[]);
    assert_eq!(rerun["interrupted"], false);
    let unchanged: u64 = rerun["scopes"].as_array().unwrap().iter().map(|s| s["unchanged"].as_u64().unwrap()).sum();
    assert!(unchanged > 0, "the rerun should skip what the interrupted run wrote: {rerun:#}");
    let (_keep, clean_target, _) = clean.join().unwrap();
    assert_eq!(storage(&target), storage(&clean_target));
}

/// A second Ctrl-C does not wait for the work in flight: exit 130 at once, nothing partial,
/// and a rerun completes.
#[test]
fn a_second_ctrl_c_stops_at_once() {
    let slow = Server::with_faults(Faults { delay_ms: 2000, ..Faults::default() });
    let ws = Workspace::new(&slow.base_url, "", DEMO_REST);
    let target = ws.path("data");
    let child = spawn_migrate(&ws.mapping(), &target, &ws.path("report.json"));
    // The first request is in flight (2 s): the signal listener is up.
    wait_until("the first request", Duration::from_secs(30), || slow.stats().requests >= 1);
    sigint(&child);
    std::thread::sleep(Duration::from_millis(100));
    let second = Instant::now();
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    let took = second.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took < Duration::from_millis(1500), "the second Ctrl-C took {took:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping now"), "{}", text(&out));
    assert_consistent(&target);

    let fast = Server::demo();
    let rerun = migrate_ok(&mapping_for(&ws, "fast.toml", &fast.base_url), &target, &[]);
    assert_eq!(rerun["interrupted"], false);
    assert_consistent(&target);
}

// ---------------------------------------------------------------------------------------------
// Secrets.

/// A run with --record, --report, ENGRAM_LOG=debug, injected faults, a failing thread (so a
/// rejects file is written) and a proxy that echoes the Authorization header back in an error
/// body: the key appears in no output and no file.
#[test]
fn the_api_key_appears_in_no_output_and_no_file() {
    const SECRET: &str = "sk-proj-SECRET-do-not-leak-7f3a9c";
    let server = Server::start(
        demo_account(),
        Options {
            api_key: Some(SECRET.into()),
            faults: Faults { every_500: Some(6), drop_every: Some(11), ..Faults::default() },
            ..Options::default()
        },
    );
    // Every request for the thread is echoed, its first one included: which of its requests
    // are sent before the thread fails depends on timing (they run concurrently, and the
    // injected faults land by arrival order), so matching only its runs could echo nothing.
    let proxy = Proxy::start(&server.base_url, vec![(format!("/threads/{WEATHER_THREAD}/"), Answer::EchoAuth(500))]);
    let ws = Workspace::new(&proxy.base_url, "max_attempts = 4", DEMO_REST);
    let target = ws.path("data");
    let recording = ws.path("recording");
    let report = ws.path("report.json");
    let out = run(engram_fast()
        .env("OPENAI_API_KEY", SECRET)
        .env("ENGRAM_LOG", "debug")
        .args(["migrate", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(&target)
        .arg("--report")
        .arg(&report)
        .arg("--record")
        .arg(&recording));
    assert!(out.status.success(), "{}", text(&out));
    let rejects = ws.path("report.json.rejects.jsonl");
    assert!(rejects.exists(), "the echoing thread should be a reject");
    assert!(String::from_utf8_lossy(&out.stderr).contains("retrying"), "debug logging should be on");

    let mut leaks = Vec::new();
    for (name, bytes) in [("stdout", out.stdout.clone()), ("stderr", out.stderr.clone())] {
        if String::from_utf8_lossy(&bytes).contains(SECRET) {
            leaks.push(name.to_string());
        }
    }
    for (path, bytes) in snapshot(ws.dir.path()) {
        if String::from_utf8_lossy(&bytes).contains(SECRET) {
            leaks.push(path.display().to_string());
        }
    }
    assert!(leaks.is_empty(), "the key leaked into {leaks:?}");
    assert!(proxy.echoed() > 0, "the proxy never echoed the key: the test proves nothing");
}

// ---------------------------------------------------------------------------------------------
// A fault-injecting proxy in front of the stand-in.

#[derive(Clone, Debug)]
enum Answer {
    /// An OpenAI-shaped error with this status.
    Status(u16),
    /// This status, with the request's Authorization header in the error message (a broken
    /// proxy or a hostile server).
    EchoAuth(u16),
    /// The first matching request only: 429 with `retry-after: 1`; later ones go upstream.
    RateLimitOnce,
}

struct ProxyState {
    upstream: String,
    rules: Vec<(String, Answer)>,
    client: reqwest::Client,
    forwarded: Mutex<Vec<String>>,
    echoed: Mutex<u64>,
    /// Arrival time of every request, and when the one 429 of `RateLimitOnce` was answered.
    arrivals: Mutex<Vec<Instant>>,
    limited_at: Mutex<Option<Instant>>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

struct Proxy {
    base_url: String,
    state: Arc<ProxyState>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Requests whose path contains a rule's needle get its answer; the rest go upstream.
    fn start(upstream_base: &str, rules: Vec<(String, Answer)>) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = Arc::new(ProxyState {
            upstream: upstream_base.trim_end_matches("/v1").to_string(),
            rules,
            client: reqwest::Client::new(),
            forwarded: Mutex::new(Vec::new()),
            echoed: Mutex::new(0),
            arrivals: Mutex::new(Vec::new()),
            limited_at: Mutex::new(None),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        });
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(proxy_handle).with_state(state.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { base_url: format!("http://{addr}/v1"), state, _runtime: runtime }
    }

    /// Paths forwarded upstream so far that contain `needle`.
    fn forwarded(&self, needle: &str) -> Vec<String> {
        self.state.forwarded.lock().unwrap().iter().filter(|p| p.contains(needle)).cloned().collect()
    }

    fn echoed(&self) -> u64 {
        *self.state.echoed.lock().unwrap()
    }

    /// The most requests the proxy was answering at once.
    fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a ProxyState);

impl<'a> InFlight<'a> {
    fn new(state: &'a ProxyState) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let now = state.in_flight.fetch_add(1, SeqCst) + 1;
        state.max_in_flight.fetch_max(now, SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn proxy_handle(
    axum::extract::State(state): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    state.arrivals.lock().unwrap().push(Instant::now());
    let _in_flight = InFlight::new(&state);
    let rule = state.rules.iter().find(|(needle, answer)| {
        path.contains(needle.as_str()) && (!matches!(answer, Answer::RateLimitOnce) || state.limited_at.lock().unwrap().is_none())
    });
    if let Some((_, answer)) = rule {
        if matches!(answer, Answer::RateLimitOnce) {
            *state.limited_at.lock().unwrap() = Some(Instant::now());
            let body = serde_json::json!({"error": {"message": "Rate limit reached (test proxy)", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
            return (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], axum::Json(body)).into_response();
        }
        let (status, message) = match answer {
            Answer::Status(s) => (*s, "injected by the test proxy".to_string()),
            Answer::EchoAuth(s) => {
                *state.echoed.lock().unwrap() += 1;
                let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                (*s, format!("upstream rejected the request with header Authorization: {auth}"))
            }
            Answer::RateLimitOnce => unreachable!("answered above"),
        };
        let body = serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
        return (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    }
    state.forwarded.lock().unwrap().push(path.clone());
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut upstream = state.client.request(parts.method, format!("{}{path}", state.upstream)).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
            *out.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            out
        }
        // The stand-in dropped the connection: so does the proxy (as far as a client can tell).
        Err(_) => (axum::http::StatusCode::BAD_GATEWAY, "upstream connection dropped").into_response(),
    }
}
