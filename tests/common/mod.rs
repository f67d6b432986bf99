//! Shared context for end-to-end tests: a stand-in OpenAI server on a loopback port (real
//! HTTP), the `engram` binary, temporary directories, fresh PostgreSQL databases, and the
//! Engramia read-back scripts run with the project's Python 3.12 virtualenv.
//!
//! Tests that need Python or PostgreSQL fail (never skip) when their environment is missing:
//! run them through `scripts/test`, which installs and starts both.
#![allow(dead_code)]

use engram_standin::{Account, Faults, Options, Standin, Stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const TEST_KEY: &str = "sk-test-engram-e2e-0123456789";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn demo_account() -> Account {
    Account::load(&repo_root().join("fixtures/demo/account.json")).expect("fixtures/demo/account.json loads")
}

/// A stand-in server running on its own runtime for as long as the value lives.
pub struct Server {
    pub standin: Option<Standin>,
    pub base_url: String,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(account: Account, options: Options) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let standin = runtime
            .block_on(engram_standin::serve(account, options, "127.0.0.1:0".parse().unwrap()))
            .expect("stand-in starts");
        let base_url = standin.base_url.clone();
        Server { standin: Some(standin), base_url, runtime }
    }

    pub fn demo() -> Server {
        Server::start(demo_account(), Options { api_key: Some(TEST_KEY.into()), ..Options::default() })
    }

    /// The demo account behind injected faults (slow answers, 429s, 500s, drops).
    pub fn with_faults(faults: Faults) -> Server {
        Server::start(demo_account(), Options { api_key: Some(TEST_KEY.into()), faults, ..Options::default() })
    }

    pub fn stats(&self) -> Stats {
        self.standin.as_ref().unwrap().stats()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.standin.take() {
            self.runtime.block_on(s.shutdown());
        }
    }
}

/// A working directory with a mapping file and the demo's thread list.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// `mapping_body` is the mapping without `[source]`, which is written for `base_url`.
    pub fn new(base_url: &str, extra_source: &str, rest: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(repo_root().join("fixtures/demo/thread_ids.txt"), dir.path().join("thread_ids.txt")).unwrap();
        let mapping = format!(
            "[source]\nbase_url = \"{base_url}\"\nthreads_file = \"thread_ids.txt\"\n{extra_source}\n{rest}\n"
        );
        std::fs::write(dir.path().join("mapping.toml"), mapping).unwrap();
        Workspace { dir }
    }

    /// The demo mapping (tenant acme, project per assistant name) against `base_url`.
    pub fn demo(base_url: &str) -> Workspace {
        Workspace::new(
            base_url,
            "",
            "[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n",
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn mapping(&self) -> PathBuf {
        self.path("mapping.toml")
    }
}

/// `engram` with a clean environment: no inherited OpenAI variables, the test key set.
pub fn engram() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engram"));
    for var in ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "ENGRAM_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("OPENAI_API_KEY", TEST_KEY);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("engram runs")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `engram migrate` and asserts it exited 0; returns the parsed `--report`.
pub fn migrate_ok(ws: &Workspace, target: &Path, extra: &[&str]) -> Value {
    let report = ws.path(&format!("report-{}.json", rand_suffix()));
    let out = run(engram()
        .arg("migrate")
        .arg("--config")
        .arg(ws.mapping())
        .arg("--target")
        .arg(target)
        .arg("--report")
        .arg(&report)
        .args(extra));
    assert!(out.status.success(), "engram migrate failed:\n{}", text(&out));
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// The counts of one scope in a report.
pub fn scope_counts(report: &Value, project: &str) -> (u64, u64, u64, u64) {
    let s = report["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["project"] == project)
        .unwrap_or_else(|| panic!("no scope {project} in {report:#}"));
    (s["create"].as_u64().unwrap(), s["update"].as_u64().unwrap(), s["unchanged"].as_u64().unwrap(), s["skip"].as_u64().unwrap())
}

/// Every file below `dir` with its bytes, for before/after comparisons.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, p: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(p) else { return };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The project's Python (a 3.12 virtualenv with Engramia 0.6.6), from `scripts/test`.
pub fn python() -> PathBuf {
    match std::env::var_os("ENGRAM_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "ENGRAM_TEST_PYTHON is not set: run the tests with scripts/test, which installs Engramia 0.6.6 into .cache/venv and starts PostgreSQL"
        ),
    }
}

/// The venv with the vendored Engramia 0.7.0.dev0 (alembic head 032), from `scripts/test`.
pub fn python_engramia07() -> PathBuf {
    match std::env::var_os("ENGRAM_TEST_PYTHON_ENGRAMIA07") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "ENGRAM_TEST_PYTHON_ENGRAMIA07 is not set: run the tests with scripts/test, which installs Engramia 0.7.0.dev0 (tests/support/wheels) into .cache/venv-engramia07"
        ),
    }
}

/// The Engramia that reads a PostgreSQL database at alembic `revision`: 0.6.6 up to 015 (its
/// last revision, keyed by `key` alone), 0.7.0.dev0 after it.
pub fn python_for_revision(revision: &str) -> PathBuf {
    if revision <= "015" { python() } else { python_engramia07() }
}

/// `alembic_version.version_num` of the database at `url`.
pub fn alembic_revision(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        sqlx::query_scalar("SELECT version_num::text FROM alembic_version").fetch_one(&mut c).await.unwrap_or_else(|e| panic!("reading alembic_version of {url}: {e}"))
    })
}

/// tests/support/engramia_pg_recall.py on `url`, run by the Engramia that reads its revision.
pub fn pg_readback(base_url: &str, url: &str, args: &[&str]) -> Value {
    let python = python_for_revision(&alembic_revision(url));
    let mut all = vec!["--url", url];
    all.extend_from_slice(args);
    readback_with(&python, "engramia_pg_recall.py", base_url, &all)
}

/// Runs a read-back script from tests/support with the stand-in as Engramia's OpenAI server.
pub fn readback(script: &str, base_url: &str, args: &[&str]) -> Value {
    readback_with(&python(), script, base_url, args)
}

/// `readback` with the given venv's python.
pub fn readback_with(python: &Path, script: &str, base_url: &str, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg(repo_root().join("tests/support").join(script))
        .args(args)
        .env("OPENAI_API_KEY", TEST_KEY)
        .env("OPENAI_BASE_URL", base_url)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script} failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_else(|| panic!("{script}: no JSON in {stdout}"));
    serde_json::from_str(line).unwrap()
}

/// A fresh, empty PostgreSQL database (pgvector available) from `scripts/pg createdb`.
pub fn fresh_database(name: &str) -> String {
    let pg = std::env::var_os("ENGRAM_TEST_PG").unwrap_or_else(|| {
        panic!("ENGRAM_TEST_PG is not set: run the tests with scripts/test, which starts a PostgreSQL with pgvector")
    });
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).take(60).collect();
    let out = Command::new(pg).arg("createdb").arg(&safe).output().expect("scripts/pg runs");
    assert!(out.status.success(), "scripts/pg createdb {safe} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).lines().last().expect("a URL").trim().to_string()
}

/// `snapshot` without the two files that legitimately differ between equivalent runs: the
/// embedding config's creation time and engram's run marker (it names the run).
pub fn storage(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut s = snapshot(dir);
    s.remove(Path::new("metadata/embedding_config.json"));
    s.remove(Path::new("_engram_run.json"));
    s
}

/// The demo account as JSON, to edit before serving it.
pub fn demo_account_json() -> Value {
    serde_json::from_slice(&std::fs::read(repo_root().join("fixtures/demo/account.json")).unwrap()).unwrap()
}

/// `engram migrate` replaying `recording` with no API key (and so no network), into `target`.
pub fn migrate_replayed(ws: &Workspace, target: &Path, recording: &Path) -> Output {
    run(engram()
        .env_remove("OPENAI_API_KEY")
        .args(["migrate", "--quiet", "--config"])
        .arg(ws.mapping())
        .arg("--target")
        .arg(target)
        .arg("--replay")
        .arg(recording))
}

/// `engram verify --all` of what `ws`'s mapping migrated into `target`, embedding its queries
/// with the mapping's server; asserts that every check passed and returns the report.
pub fn verify_ok(ws: &Workspace, target: &str) -> Value {
    let report = ws.path(&format!("verify-{}.json", rand_suffix()));
    let out = run(engram().args(["verify", "--all", "--quiet", "--config"]).arg(ws.mapping()).args(["--target", target, "--report"]).arg(&report));
    let json: Value = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    assert!(out.status.success(), "engram verify failed:\n{}\n{:#}", text(&out), json);
    assert!(json["scopes"].as_array().is_some_and(|s| !s.is_empty()), "{json:#}");
    json
}
