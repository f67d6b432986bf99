//! End to end: `engram migrate` over real HTTP against the stand-in server into Engramia's JSON
//! storage, read back with Engramia 0.6.6 itself.

mod common;

use common::*;
use engram_standin::Options;
use serde_json::Value;

/// The demo's weather thread: a user question answered after a get_weather call.
const WEATHER_QUESTION_PARAPHRASE: &str = "what will the weather be like in Oslo tomorrow";

fn pattern_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| p.components().any(|c| c.as_os_str() == "patterns") && p.extension().is_some_and(|e| e == "json"))
        .collect()
}

fn warning_kinds(report: &Value) -> Vec<String> {
    report["warnings"].as_array().unwrap().iter().map(|w| w["kind"].as_str().unwrap().to_string()).collect()
}

#[test]
fn demo_account_is_migrated_and_recalled_by_engramia() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("engramia_data");
    let report = migrate_ok(&ws, &target, &[]);

    // Every assistant got its scope, everything is new, the deleted thread is a warning.
    let projects: Vec<&str> = report["scopes"].as_array().unwrap().iter().map(|s| s["project"].as_str().unwrap()).collect();
    assert_eq!(projects, vec!["Docs Assistant", "Support Bot", "Weather Helper"], "{report:#}");
    for p in &projects {
        let (create, update, unchanged, skip) = scope_counts(&report, p);
        assert!(create > 0, "{p}: {report:#}");
        assert_eq!((update, unchanged, skip), (0, 0, 0), "{p}");
    }
    assert!(warning_kinds(&report).contains(&"thread_not_found".to_string()), "{report:#}");
    assert_eq!(report["threads"]["skipped"], 1);
    assert!(report["embedding"]["requests"].as_u64().unwrap() >= 1);
    assert_eq!(report["embedding"]["inputs"], server.stats().embedding_inputs);

    // The layout Engramia reads: scope directories sanitised, one file per pattern.
    assert!(target.join("acme/Weather_Helper/_embeddings.json").exists());
    assert!(target.join("metadata/embedding_config.json").exists());
    let created: u64 = projects.iter().map(|p| scope_counts(&report, p).0).sum();
    assert_eq!(pattern_files(&target).len() as u64, created);

    // Engramia 0.6.6 recalls the weather answer for a paraphrase of the question, by embedding.
    let recalled = readback(
        "engramia_json_recall.py",
        &server.base_url,
        &[
            "--data",
            target.to_str().unwrap(),
            "--tenant",
            "acme",
            "--project",
            "Weather Helper",
            "--question",
            WEATHER_QUESTION_PARAPHRASE,
            "--skill",
            "get_weather",
        ],
    );
    assert_eq!(recalled["used_keyword_fallback"], false, "{recalled:#}");
    let top = &recalled["matches"][0];
    let task = top["task"].as_str().unwrap().to_lowercase();
    assert!(task.contains("oslo") && task.contains("weather"), "top match: {recalled:#}");
    assert_eq!(top["design"]["openai"]["kind"], "message_pair");
    // find_by_skills returns the pattern whose run called get_weather.
    let with_skill = recalled["skills"]["get_weather"].as_array().unwrap();
    assert!(with_skill.contains(&top["key"]), "{recalled:#}");

    // Scopes are isolated: the support bot's scope does not hold weather answers.
    let support = readback(
        "engramia_json_recall.py",
        &server.base_url,
        &["--data", target.to_str().unwrap(), "--tenant", "acme", "--project", "Support Bot", "--question", WEATHER_QUESTION_PARAPHRASE],
    );
    let weather_key = &top["key"];
    for m in support["matches"].as_array().unwrap() {
        assert_ne!(&m["key"], weather_key, "{support:#}");
        assert!(m["similarity"].as_f64() < top["similarity"].as_f64(), "{support:#}");
    }
}

#[test]
fn second_run_writes_identical_files_and_embeds_nothing() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("data");
    let first = migrate_ok(&ws, &target, &[]);
    let before = snapshot(&target);
    let requests_after_first = server.stats().embedding_requests;

    let second = migrate_ok(&ws, &target, &[]);
    assert_eq!(snapshot(&target), before, "the second run changed files");
    assert_eq!(server.stats().embedding_requests, requests_after_first, "the second run embedded");
    for s in second["scopes"].as_array().unwrap() {
        let p = s["project"].as_str().unwrap();
        let (create, update, unchanged, _) = scope_counts(&second, p);
        assert_eq!((create, update), (0, 0), "{p}: {second:#}");
        assert_eq!(unchanged, scope_counts(&first, p).0, "{p}");
    }
    assert_eq!(second["embedding"]["requests"], 0);
}

#[test]
fn dry_run_writes_nothing_and_predicts_the_real_run() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("data");
    let plan = migrate_ok(&ws, &target, &["--dry-run"]);
    assert!(!target.exists(), "a dry run created the target");
    assert_eq!(server.stats().embedding_requests, 0, "a dry run called the embeddings endpoint");
    assert_eq!(plan["dry_run"], true);

    let real = migrate_ok(&ws, &target, &[]);
    assert_eq!(plan["scopes"], real["scopes"]);
    for k in ["inputs", "tokens", "requests", "estimated_cost_usd"] {
        assert_eq!(plan["embedding"][k], real["embedding"][k], "{k}");
    }
    assert_eq!(real["embedding"]["requests"], server.stats().embedding_requests);
}

#[test]
fn record_then_replay_without_network_or_key_gives_the_same_storage() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let recording = ws.path("recording");
    migrate_ok(&ws, &ws.path("live"), &["--record", recording.to_str().unwrap()]);

    // Nothing secret in the fixtures: no key, no request headers at all.
    for (path, bytes) in snapshot(&recording) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(TEST_KEY), "{} holds the API key", path.display());
        assert!(!text.to_lowercase().contains("bearer sk-"), "{} holds an auth header", path.display());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["request"].get("headers").is_none(), "{} stores request headers", path.display());
    }

    drop(server); // no network from here on
    let out = migrate_replayed(&ws, &ws.path("replayed"), &recording);
    assert!(out.status.success(), "{}", text(&out));
    // Only the embedding config's creation time and the run marker may differ.
    assert!(ws.path("live/metadata/embedding_config.json").exists());
    assert_eq!(storage(&ws.path("live")), storage(&ws.path("replayed")));
}

#[test]
fn a_request_missing_from_the_recording_is_named_with_the_closest_one() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let recording = ws.path("recording");
    migrate_ok(&ws, &ws.path("live"), &["--record", recording.to_str().unwrap()]);
    // Ask for one more thread than was recorded.
    std::fs::write(ws.path("thread_ids.txt"), "thread_never_recorded\n").unwrap();
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("x")).arg("--replay").arg(&recording));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no recorded answer for GET /threads/thread_never_recorded"), "{err}");
    assert!(err.contains("closest recorded: GET /threads/thread_"), "{err}");
    assert!(err.contains("differs in: path"), "{err}");
}

#[test]
fn the_shutdown_assistants_api_stops_before_writing() {
    let server = Server::start(demo_account(), Options { assistants_shut_down: true, ..Options::default() });
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("data");
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(&target));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Assistants API is shut down") && err.contains("2026-08-26"), "{err}");
    assert!(err.contains("--replay") && err.contains("base_url"), "{err}");
    assert!(!target.exists());
    assert_eq!(server.stats().embedding_requests, 0);
}

#[test]
fn a_rejected_key_stops_before_writing_and_is_never_printed() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let target = ws.path("data");
    let secret = "sk-wrong-key-do-not-print-4242";
    let out = run(engram().env("OPENAI_API_KEY", secret).args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(&target));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("OPENAI_API_KEY") && all.contains("rejected"), "{all}");
    assert!(!all.contains(secret), "the key was printed: {all}");
    assert!(!target.exists());
}

#[test]
fn configuration_errors_exit_2_and_name_the_problem() {
    let server = Server::demo();
    // Unknown key: named, with the nearest valid one and its line.
    let ws = Workspace::new(&server.base_url, "", "[scope]\nprojekt = \"x\"\n");
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("d")));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("projekt") && err.contains("did you mean `project`") && err.contains("mapping.toml:6:1"), "{err}");

    // A missing threads file names the path.
    let ws = Workspace::demo(&server.base_url);
    std::fs::remove_file(ws.path("thread_ids.txt")).unwrap();
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("d")));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("thread_ids.txt"));

    // No key and no --replay.
    let ws = Workspace::demo(&server.base_url);
    let out = run(engram().env_remove("OPENAI_API_KEY").args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("d")));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENAI_API_KEY is not set"));

    // An unknown placeholder.
    let ws = Workspace::new(&server.base_url, "", "[scope]\nproject = \"{assistant.title}\"\n");
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(ws.path("d")));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("{assistant.title}"));
    assert!(!ws.path("d").exists());
    assert_eq!(server.stats().requests, 0, "configuration errors must stop before any request");
}

#[test]
fn the_committed_demo_recording_replays_to_what_the_stand_in_serves_today() {
    // fixtures/demo/recording must stay in step with fixtures/demo/account.json.
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    migrate_ok(&ws, &ws.path("live"), &[]);
    let out = run(engram()
        .env_remove("OPENAI_API_KEY")
        .args(["migrate", "--quiet", "--config"])
        .arg(repo_root().join("fixtures/demo/mapping.toml"))
        .arg("--target")
        .arg(ws.path("replayed"))
        .arg("--replay")
        .arg(repo_root().join("fixtures/demo/recording")));
    assert!(out.status.success(), "re-record with scripts/record-demo: {}", text(&out));
    let live = storage(&ws.path("live"));
    let replayed = storage(&ws.path("replayed"));
    assert_eq!(live.keys().collect::<Vec<_>>(), replayed.keys().collect::<Vec<_>>(), "re-record with scripts/record-demo");
    assert_eq!(live, replayed, "re-record with scripts/record-demo");
}
