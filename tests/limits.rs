//! Runs against a server with real latency and declared limits (the stand-in's `Timing`,
//! requests and tokens per window): with `[source] concurrency = "auto"` (the default) engram
//! never runs into a declared limit, says where its concurrency settled, and migrates
//! everything; a pinned number still pins it.

mod common;

use common::*;
use engram_standin::{Account, Options, Timing};
use std::time::Duration;

/// 60 threads of 6 messages (about 200 requests) from the synthetic benchmark account.
fn account() -> (Account, tempfile::TempDir) {
    let account = Account::from_json(engram_standin::synthetic_account(60, 6, 0, 7)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ids.txt"), account.thread_ids().join("\n") + "\n").unwrap();
    (account, dir)
}

fn workspace(base_url: &str, ids: &std::path::Path, extra_source: &str) -> Workspace {
    let ws = Workspace::new(base_url, extra_source, "[scope]\ntenant = \"acme\"\n[target]\nbatch_size = 64\n");
    std::fs::copy(ids, ws.path("thread_ids.txt")).unwrap();
    ws
}

#[test]
fn auto_concurrency_never_exceeds_the_declared_request_and_token_limits() {
    let (account, ids) = account();
    // The limits of a minute, squeezed into 3 s so that the test takes seconds: about 200
    // requests against 40 per window need at least 12 s, whatever the concurrency.
    let server = Server::start(
        account,
        Options {
            api_key: Some(TEST_KEY.into()),
            rate_limit_per_minute: Some(40),
            tokens_per_minute: Some(3_000),
            rate_window: Some(Duration::from_secs(3)),
            timing: Timing { latency_ms: 20, jitter_ms: 10, embed_us_per_input: 200 },
            ..Options::default()
        },
    );
    let ws = workspace(&server.base_url, &ids.path().join("ids.txt"), "");
    let report = migrate_ok(&ws, &ws.path("data"), &[]);
    let stats = server.stats();
    assert_eq!(stats.rate_limited, 0, "a declared limit was exceeded: {stats:?}\n{report:#}");
    assert_eq!(report["threads"]["read"], 60);
    assert!(stats.embedding_tokens > 3_000, "the token limit was exercised: {stats:?}");
    let c = &report["requests"]["concurrency"];
    assert_eq!(c["mode"], "auto", "{report:#}");
    let limit = c["limit"].as_u64().unwrap();
    assert!((1..=64).contains(&limit), "{c}");
    assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()), "{c}");
    assert_eq!(report["requests"]["rate_limit_per_minute"], 40);
}

#[test]
fn auto_grows_past_the_old_default_on_a_slow_server_without_limits() {
    let (account, ids) = account();
    let server = Server::start(
        account,
        Options { api_key: Some(TEST_KEY.into()), timing: Timing { latency_ms: 40, jitter_ms: 0, embed_us_per_input: 0 }, ..Options::default() },
    );
    let ws = workspace(&server.base_url, &ids.path().join("ids.txt"), "");
    let report = migrate_ok(&ws, &ws.path("data"), &[]);
    let c = &report["requests"]["concurrency"];
    assert_eq!(c["mode"], "auto");
    assert!(c["peak"].as_u64().unwrap() > 4, "40 ms answers and no limit: more than 4 in flight pay: {c}");
    assert_eq!(server.stats().rate_limited, 0);
}

#[test]
fn a_number_pins_the_concurrency_and_the_text_report_says_so() {
    let (account, ids) = account();
    let server = Server::start(account, Options { api_key: Some(TEST_KEY.into()), ..Options::default() });
    let ws = workspace(&server.base_url, &ids.path().join("ids.txt"), "concurrency = 3");
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("data")));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("in flight fixed, settled at 3 (peak 3, 0 back-offs): [source] concurrency"), "{stdout}");
}

#[test]
fn a_concurrency_that_is_neither_a_number_nor_auto_is_refused() {
    let server = Server::demo();
    for (value, expected) in [("\"fast\"", "expected \"auto\" or a number 1..=64, got \"fast\""), ("0", "must be \"auto\" or 1..=64, got 0")] {
        let ws = Workspace::new(&server.base_url, &format!("concurrency = {value}"), "");
        let out = run(engram().args(["migrate", "--dry-run", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("data")));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(expected), "{}", text(&out));
        assert!(!ws.path("data").exists(), "nothing is written");
    }
}
