//! End to end: `engram init`, `engram completions` and `engram --version`.

mod common;

use common::*;
use std::path::Path;

fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    run(engram().current_dir(dir).arg("init").args(args))
}

fn dry_run(dir: &Path, mapping: &str) -> std::process::Output {
    run(engram().current_dir(dir).args(["migrate", "--dry-run", "--quiet", "--config", mapping]))
}

#[test]
fn init_on_an_export_directory_writes_a_mapping_that_migrates_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let export = repo_root().join("fixtures/exports/redwood");
    let out = init(dir.path(), &["--path", export.to_str().unwrap(), "--target", "./data"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("asst_rw0BillingHelper0000001 \"Billing Helper\": 1 thread(s), 4 message(s) -> scope default/Billing Helper"), "{stdout}");
    assert!(stdout.trim_end().ends_with("next: engram migrate --config mapping.toml --dry-run"), "{stdout}");
    let mapping = std::fs::read_to_string(dir.path().join("mapping.toml")).unwrap();
    assert!(mapping.contains("kind = \"export-dir\"") && mapping.contains(&format!("path = \"{}\"", export.display())), "{mapping}");
    assert!(mapping.contains("url = \"./data\""), "{mapping}");
    assert!(mapping.contains("# threads_file = "), "an export needs no thread list: {mapping}");
    // Every key of the reference mapping is still there, with its comments.
    let reference = std::fs::read_to_string(repo_root().join("mapping.toml")).unwrap();
    for line in reference.lines().filter(|l| l.starts_with("# ") && l.len() > 40) {
        assert!(mapping.contains(line), "lost the comment {line:?}");
    }
    // The cutover code is on, beside the mapping.
    assert!(mapping.contains("\n[agents]\n") && mapping.contains("\nout_dir = \"agents\"\n"), "{mapping}");
    // The printed next command works, and says it would generate the agents.
    let out = run(engram().current_dir(dir.path()).args(["migrate", "--dry-run", "--config", "mapping.toml"]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("agents   would write 1 agent module to agents/migrated_agents"), "{stdout}");
    assert!(!dir.path().join("agents").exists(), "a dry run wrote the agents");

    // A second init refuses, and leaves the file as it was.
    let out = init(dir.path(), &["--path", export.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("mapping.toml")).unwrap(), mapping);
}

#[test]
fn init_on_an_ndjson_export_names_its_assistants() {
    let dir = tempfile::tempdir().unwrap();
    let file = repo_root().join("fixtures/exports/ndjson/threads.ndjson");
    let out = init(dir.path(), &["--path", file.to_str().unwrap(), "--out", "nd.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let mapping = std::fs::read_to_string(dir.path().join("nd.toml")).unwrap();
    assert!(mapping.contains("kind = \"ndjson\""), "{mapping}");
    assert!(mapping.contains("[scope.assistants]\n\"asst_ndj0coder000000001\" = \"asst_ndj0coder000000001\""), "{mapping}");
    assert!(mapping.contains("#   2 assistant(s), 2 thread(s), 6 message(s)"), "{mapping}");
    let out = dry_run(dir.path(), "nd.toml");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn init_asks_an_http_source_what_it_holds() {
    let server = Server::demo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("fixtures/demo/thread_ids.txt"), dir.path().join("thread_ids.txt")).unwrap();
    let out = init(dir.path(), &["--base-url", &server.base_url, "--path", "thread_ids.txt"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in ["Support Bot", "Docs Assistant", "Weather Helper"] {
        assert!(stdout.contains(&format!("\"{name}\": ")) && stdout.contains(&format!("-> scope default/{name}")), "{name}: {stdout}");
    }
    let mapping = std::fs::read_to_string(dir.path().join("mapping.toml")).unwrap();
    assert!(mapping.contains(&format!("base_url = \"{}\"", server.base_url)), "{mapping}");
    let out = dry_run(dir.path(), "mapping.toml");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn init_refuses_an_unreadable_export_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let not_an_export = repo_root().join("fixtures/exports/conversations");
    let out = init(dir.path(), &["--path", not_an_export.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no threads/ directory"), "{}", text(&out));
    assert!(!dir.path().join("mapping.toml").exists());
    let out = init(dir.path(), &["--source-kind", "csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(engram().args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["migrate", "verify", "init", "min-recall"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = run(engram().args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn version_names_the_git_commit() {
    let out = run(engram().arg("--version"));
    assert!(out.status.success(), "{}", text(&out));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(version.starts_with(&format!("engram {} (", env!("CARGO_PKG_VERSION"))), "{version}");
    let head = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(repo_root()).output();
    match head {
        Ok(h) if h.status.success() => {
            let head = String::from_utf8_lossy(&h.stdout).trim().to_string();
            assert!(version.contains(&format!("({head}")), "{version} does not name HEAD {head}");
        }
        // Built outside a git checkout: build.rs says so instead of failing.
        _ => assert!(version.ends_with("(unknown commit)"), "{version}"),
    }
}

#[test]
fn init_for_an_engramia_server_target_leaves_the_cutover_code_off() {
    let dir = tempfile::tempdir().unwrap();
    let export = repo_root().join("fixtures/exports/redwood");
    let out = init(dir.path(), &["--path", export.to_str().unwrap(), "--target", "https://engramia.example.com"]);
    assert!(out.status.success(), "{}", text(&out));
    let mapping = std::fs::read_to_string(dir.path().join("mapping.toml")).unwrap();
    assert!(mapping.contains("url = \"https://engramia.example.com\""), "{mapping}");
    // A server target gets no generated code: the key stays commented, as in the reference.
    assert!(mapping.contains("\n# out_dir = \"agents\"\n") && !mapping.contains("\nout_dir = "), "{mapping}");
}
