//! End to end: `engram migrate` into a running Engramia server over its REST API
//! (`[target] url = "http://…"`): a real Engramia 0.7.0.dev0 (uvicorn on loopback, from
//! .cache/venv-engramia07) whose embeddings come from the stand-in, in its JSON-storage mode
//! (env-key auth) and its PostgreSQL mode (database keys, one project per assistant); what was
//! migrated is read back through that server's own /v1/recall and /v1/skills/search. Bad input:
//! wrong key, reader key, a key of another project, a key written into the mapping, a server
//! that is down or answers HTML, Engramia 0.6.6 (whose import does not embed), a project's quota
//! reached mid-run, a body limit that forces smaller batches.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const KEY: &str = "test-key-engram-rest-0123456789";

/// A running Engramia server (uvicorn), killed when dropped.
struct Engramia {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Engramia {
    /// Starts `python -m uvicorn engramia.api.app:create_app` on a free loopback port, with
    /// JSON storage in a temporary directory and env-key auth (`KEY`) unless `env` says
    /// otherwise, embedding with the stand-in at `embeddings`.
    fn start(python: &Path, embeddings: &str, env: &[(&str, &str)]) -> Engramia {
        Self::start_with(python, embeddings, env, None)
    }

    fn start_with(python: &Path, embeddings: &str, env: &[(&str, &str)], pythonpath: Option<&Path>) -> Engramia {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.path().join("server.log");
        let data = dir.path().join("data");
        let mut cmd = Command::new(python);
        cmd.args(["-m", "uvicorn", "engramia.api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ENGRAMIA_SKIP_AUTO_APP", "1")
            .env("ENGRAMIA_AUTH_MODE", "env")
            .env("ENGRAMIA_API_KEYS", KEY)
            .env("ENGRAMIA_STORAGE", "json")
            .env("ENGRAMIA_DATA_PATH", &data)
            .env("ENGRAMIA_EMBEDDING_MODEL", "text-embedding-3-small")
            .env("ENGRAMIA_LLM_PROVIDER", "none")
            // The tests read back more than 60 patterns a minute; engram paces itself anyway.
            .env("ENGRAMIA_RATE_LIMIT_DEFAULT", "100000")
            .env("ENGRAMIA_RATE_LIMIT_PER_KEY", "100000")
            .env("OPENAI_API_KEY", TEST_KEY)
            .env("OPENAI_BASE_URL", embeddings)
            .env_remove("ENGRAMIA_DATABASE_URL")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()));
        if let Some(p) = pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("python runs");
        let mut server = Engramia { child, url: format!("http://127.0.0.1:{port}"), log, _dir: dir };
        for _ in 0..600 {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("Engramia exited ({status}) before answering:\n{}", server.log());
            }
            if http("GET", &format!("{}/v1/version", server.url), None, None).0 == 200 {
                return server;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Engramia did not answer within 120 s:\n{}", server.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str, key: &str) -> Value {
        let (status, body) = http("GET", &format!("{}{path}", self.url), Some(key), None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn post(&self, path: &str, key: &str, body: Value) -> Value {
        let (status, text) = http("POST", &format!("{}{path}", self.url), Some(key), Some(body));
        assert_eq!(status, 200, "POST {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn pattern_count(&self, key: &str) -> u64 {
        self.get("/v1/health", key)["pattern_count"].as_u64().unwrap()
    }

    /// Every stored pattern of the key's project: key -> data (GET /v1/governance/export).
    fn export(&self, key: &str) -> std::collections::BTreeMap<String, Value> {
        let (status, body) = http("GET", &format!("{}/v1/governance/export", self.url), Some(key), None);
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["key"].as_str().unwrap().to_string(), v["data"].clone())
            })
            .collect()
    }
}

impl Drop for Engramia {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request; (status, body). Status 0: no answer.
fn http(method: &str, url: &str, key: Option<&str>, body: Option<Value>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => (resp.status().as_u16(), resp.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    })
}

/// A workspace migrating the demo into `url`, with `[scope]` and more from `rest`.
fn workspace(source: &str, url: &str, rest: &str) -> Workspace {
    Workspace::new(source, "", &format!("[target]\nurl = \"{url}\"\n{rest}\n"))
}

const ONE_PROJECT: &str = "[scope]\ntenant = \"default\"\nproject = \"default\"\n";

/// `engram migrate` with `ENGRAMIA_API_KEY` (when given) and the other variables in `env`;
/// the output and the JSON report (Null when none was written).
fn migrate(ws: &Workspace, key: Option<&str>, env: &[(&str, &str)], extra: &[&str]) -> (Output, Value) {
    let report = ws.path("report.json");
    let _ = std::fs::remove_file(&report);
    let mut cmd = engram();
    cmd.env_remove("ENGRAMIA_API_KEY").args(["migrate", "--report-detail", "--config"]).arg(ws.mapping()).arg("--report").arg(&report).args(extra);
    if let Some(k) = key {
        cmd.env("ENGRAMIA_API_KEY", k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let json = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    (out, json)
}

fn total(report: &Value, field: &str) -> u64 {
    report["scopes"].as_array().unwrap().iter().map(|s| s[field].as_u64().unwrap()).sum()
}

fn warning_kinds(report: &Value) -> Vec<String> {
    report["warnings"].as_array().unwrap().iter().map(|w| w["kind"].as_str().unwrap().to_string()).collect()
}

/// Asserts that no secret appears in what engram printed or reported.
fn assert_no_secret(out: &Output, report: &Value, secrets: &[&str]) {
    let all = format!("{}{}{report}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for s in secrets {
        assert!(!all.contains(s), "a key reached the output:\n{all}");
    }
}

/// Every pattern of `stored` is found by the server's recall of its own task (an exact-task
/// recall embeds the same text, similarity 1.0), and every skill engram registered finds its
/// pattern through /v1/skills/search. Returns (recalled, skill checks).
/// `limit` 1 for PostgreSQL storage: Engramia 0.7.0.dev0 answers 422 there when a returned match
/// has a negative cosine similarity (an unrelated pattern in a small project).
fn assert_recallable(server: &Engramia, key: &str, stored: &std::collections::BTreeMap<String, Value>, limit: u32) -> (usize, usize) {
    let mut skills_checked = 0;
    for (k, data) in stored {
        let task = data["task"].as_str().unwrap();
        let found = server.post("/v1/recall", key, json!({"task": task, "limit": limit, "deduplicate": false, "eval_weighted": false}));
        let same_task = |m: &&Value| m["pattern"]["task"] == task && stored.iter().filter(|(_, d)| d["task"] == task).count() > 1;
        let hit = found["matches"].as_array().unwrap().iter().find(|m| m["pattern_key"] == k.as_str() || same_task(m));
        let hit = hit.unwrap_or_else(|| panic!("recall of {k}'s task did not return it: {found:#}"));
        assert!(hit["similarity"].as_f64().unwrap() > 0.99, "{hit:#}");
        if hit["pattern_key"] == k.as_str() {
            assert_eq!(hit["pattern"]["code"], data["design"]["code"], "{k}");
        }
        for skill in data["_engram"]["skills"].as_array().unwrap() {
            let found = server.post("/v1/skills/search", key, json!({"required": [skill], "match_all": true}));
            assert!(found["matches"].as_array().unwrap().iter().any(|m| m["pattern_key"] == k.as_str()), "skill {skill} of {k}: {found:#}");
            skills_checked += 1;
        }
    }
    (stored.len(), skills_checked)
}

/// Every field Engramia's recall needs, and engram's provenance under a `_` key.
fn assert_complete(k: &str, data: &Value) {
    assert!(data["task"].as_str().is_some_and(|t| !t.is_empty()), "{k}: {data:#}");
    for f in ["code", "classification", "source"] {
        assert!(data["design"][f].is_string(), "{k}: design.{f}: {data:#}");
    }
    assert!(data["success_score"].is_number() && data["reuse_count"].is_number() && data["timestamp"].is_number(), "{k}: {data:#}");
    assert!(data["_engram"]["hash"].is_string() && data["_engram"]["origin"].is_string(), "{k}: {data:#}");
}

#[test]
fn demo_migrates_into_a_json_server_is_recalled_and_a_rerun_sends_nothing() {
    let standin = Server::demo();
    // A body limit that the demo's records exceed together: the first import gets 413.
    let server = Engramia::start(&python_engramia07(), &standin.base_url, &[("ENGRAMIA_MAX_BODY_SIZE", "60000")]);
    let ws = workspace(&standin.base_url, &server.url, ONE_PROJECT);

    // The dry run checks the server and plans against it; it writes nothing.
    let (out, plan) = migrate(&ws, Some(KEY), &[], &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let planned = total(&plan, "create");
    assert!(planned > 50, "{plan:#}");
    assert_eq!(server.pattern_count(KEY), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Engramia 0.7.0.dev0"), "{}", text(&out));
    assert_eq!(plan["embedding"]["requests"], 0);
    assert!(plan["embedding"]["embedded_by"].as_str().unwrap().contains(&server.url), "{plan:#}");
    assert_eq!(standin.stats().embedding_inputs, 0, "engram itself must not embed");

    let (out, report) = migrate(&ws, Some(KEY), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, &report, &[KEY]);
    assert_eq!(total(&report, "create"), planned, "the dry run's plan is the run's");
    assert_eq!(report["embedding"]["inputs"].as_u64().unwrap(), planned);
    assert!(report["embedding"]["embedded_by"].is_string());
    assert!(text(&out).contains("sends no embeddings"), "{}", text(&out));
    // The server embedded every record itself, through the stand-in.
    assert_eq!(standin.stats().embedding_inputs, planned, "{}", server.log());
    // The 1 MiB default did not fit this server: it answered 413 and engram sent smaller bodies.
    assert!(server.log().contains("\"POST /v1/import HTTP/1.1\" 413"), "{}", server.log());
    assert!(server.log().contains("\"POST /v1/import HTTP/1.1\" 200"), "{}", server.log());

    let stored = server.export(KEY);
    assert_eq!(stored.len() as u64, planned);
    let written: Vec<&str> = report["records"].as_array().unwrap().iter().filter(|r| r["action"] == "create").map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(written.len() as u64, planned);
    for k in &written {
        assert_complete(k, stored.get(*k).unwrap_or_else(|| panic!("{k} is not on the server")));
    }
    let kinds: std::collections::BTreeSet<&str> = stored.values().map(|d| d["_engram"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["file_chunk", "message_pair", "tool"].into_iter().collect(), "every kind of record is there");
    let (recalled, skills) = assert_recallable(&server, KEY, &stored, 10);
    assert_eq!(recalled as u64, planned);
    assert!(skills > 0, "some patterns carry skills");

    // The recalls above raised reuse counts on the server; a rerun still sends nothing.
    let embedded = standin.stats().embedding_inputs; // the server embedded each recall's query
    let (out, again) = migrate(&ws, Some(KEY), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!((total(&again, "create"), total(&again, "update"), total(&again, "unchanged")), (0, 0, planned), "{again:#}");
    assert!(again.get("target_notes").is_none_or(|n| n.as_array().unwrap().is_empty()), "a rerun sends nothing: {again:#}");
    assert_eq!(server.pattern_count(KEY), planned);
    assert_eq!(standin.stats().embedding_inputs, embedded, "nothing was embedded again");

    // An edited answer updates its pattern (overwrite), and only it.
    let mut account = demo_account_json();
    let msg = account["threads"][0]["messages"][1].clone();
    assert_eq!(msg["role"], "assistant");
    account["threads"][0]["messages"][1]["content"][0]["text"]["value"] = json!("Install it with `pip install acme-sdk==2.0`; Python 3.10 or newer.");
    let edited = Server::start(engram_standin::Account::from_json(account).unwrap(), engram_standin::Options { api_key: Some(TEST_KEY.into()), ..Default::default() });
    let ws2 = workspace(&edited.base_url, &server.url, ONE_PROJECT);
    let (out, changed) = migrate(&ws2, Some(KEY), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(total(&changed, "create"), 0, "{changed:#}");
    assert_eq!(total(&changed, "update"), 1, "{changed:#}");
    let updated = changed["records"].as_array().unwrap().iter().find(|r| r["action"] == "update").unwrap()["key"].as_str().unwrap().to_string();
    let now = server.export(KEY);
    assert_eq!(now.len() as u64, planned);
    assert!(now[&updated]["design"]["code"].as_str().unwrap().contains("acme-sdk==2.0"), "{:#}", now[&updated]);
    assert_eq!(standin.stats().embedding_inputs, embedded + 1, "the update was embedded again, once");
    assert_eq!(edited.stats().embedding_inputs, 0, "engram itself embeds nothing");
}

/// A server that answers every request with an HTML page (a proxy's login page).
fn html_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        use std::io::{Read, Write};
        // A few requests are enough for any preflight.
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<!doctype html><html><body>Sign in</body></html>";
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    (url, handle)
}

#[test]
fn bad_keys_projects_and_servers_are_refused_before_anything_is_written() {
    let standin = Server::demo();
    let server = Engramia::start(&python_engramia07(), &standin.base_url, &[]);
    let ws = workspace(&standin.base_url, &server.url, ONE_PROJECT);
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();

    // A wrong key: 401, named by its variable, never shown.
    let wrong = "engramia_sk_WRONGwrongWRONGwrongWRONGwrong";
    let (out, report) = migrate(&ws, Some(wrong), &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("refused the API key in $ENGRAMIA_API_KEY"), "{}", text(&out));
    assert_no_secret(&out, &report, &[wrong, KEY]);

    // No key at all.
    let (out, _) = migrate(&ws, None, &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("ENGRAMIA_API_KEY"), "{}", text(&out));

    // The key reaches default/default; the mapping plans a project per assistant.
    let per_assistant = workspace(&standin.base_url, &server.url, "[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n");
    for extra in [&["--dry-run"][..], &[]] {
        let (out, report) = migrate(&per_assistant, Some(KEY), &[], extra);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let e = stderr(&out);
        assert!(e.contains("lands in project default/default") && e.contains("acme/"), "{e}");
        assert_no_secret(&out, &report, &[KEY]);
    }

    // A key written into the mapping is refused, and not echoed.
    let secret = "engramia_sk_SECRETsecretSECRETsecretSECRET";
    let in_file = workspace(&standin.base_url, &server.url, &format!("{ONE_PROJECT}[target.keys]\n\"default/default\" = \"{secret}\"\n"));
    let (out, _) = migrate(&in_file, Some(KEY), &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("looks like an API key itself"), "{}", text(&out));
    assert!(!text(&out).contains("SECRETsecret"), "{}", text(&out));

    // [target.keys] names a variable that is not set; then one that is (no ENGRAMIA_API_KEY).
    let named = workspace(&standin.base_url, &server.url, &format!("{ONE_PROJECT}[target.keys]\n\"default/default\" = \"ENGRAM_TEST_REST_KEY\"\n"));
    let (out, _) = migrate(&named, None, &[], &["--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("ENGRAM_TEST_REST_KEY"), "{}", text(&out));
    let (out, plan) = migrate(&named, None, &[("ENGRAM_TEST_REST_KEY", KEY)], &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(total(&plan, "create") > 0);
    assert_no_secret(&out, &plan, &[KEY]);

    // A server that is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = workspace(&standin.base_url, &format!("http://127.0.0.1:{closed}"), ONE_PROJECT);
    let (out, _) = migrate(&down, Some(KEY), &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("is it running"), "{}", text(&out));

    // A URL that answers HTML.
    let (html_url, _handle) = html_server();
    let html = workspace(&standin.base_url, &html_url, ONE_PROJECT);
    let (out, _) = migrate(&html, Some(KEY), &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("HTML page") && stderr(&out).contains("[target] url"), "{}", text(&out));

    assert_eq!(server.pattern_count(KEY), 0, "nothing was written");
    assert_eq!(standin.stats().embedding_inputs, 0);
}

#[test]
fn a_reader_key_is_refused_with_what_role_is_needed() {
    let standin = Server::demo();
    let server = Engramia::start(&python_engramia07(), &standin.base_url, &[("ENGRAMIA_ENV_AUTH_ROLE", "reader")]);
    let ws = workspace(&standin.base_url, &server.url, ONE_PROJECT);
    let (out, _) = migrate(&ws, Some(KEY), &[], &["--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("admin or owner") && e.contains("default/default"), "{e}");
    assert_eq!(server.pattern_count(KEY), 0);
}

#[test]
fn quota_reached_mid_run_stops_the_project_and_says_what_was_stored() {
    let standin = Server::demo();
    // A project cap of 40 patterns (0.004 of the developer plan's 10,000).
    let server = Engramia::start(&python_engramia07(), &standin.base_url, &[("ENGRAMIA_PROJECT_QUOTA_PCT", "0.004")]);
    let ws = workspace(&standin.base_url, &server.url, &format!("{ONE_PROJECT}[target.server]\nmax_records_per_request = 10\n"));
    let (out, report) = migrate(&ws, Some(KEY), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(warning_kinds(&report).contains(&"project_quota_exceeded".to_string()), "{report:#}");
    let stored = server.pattern_count(KEY);
    assert!(stored > 0 && stored <= 40, "{stored}");
    let w = report["warnings"].as_array().unwrap().iter().find(|w| w["kind"] == "project_quota_exceeded").unwrap();
    let msg = w["message"].as_str().unwrap();
    assert!(msg.contains("default/default") && msg.contains(&format!("stored {stored} records")), "{msg}");
    let note = report["target_notes"].as_array().unwrap()[0].as_str().unwrap();
    assert!(note.contains(&format!("{stored} records imported")) && note.contains("NOT stored"), "{note}");
}

/// A directory holding only PyPI Engramia 0.6.6's package and metadata, for PYTHONPATH: the 0.7
/// venv's uvicorn and FastAPI then serve 0.6.6's code (its own venv has no server extras).
fn engramia_066_path() -> (tempfile::TempDir, PathBuf) {
    let out = Command::new(python()).args(["-c", "import engramia, os; print(os.path.dirname(engramia.__file__))"]).output().unwrap();
    let pkg = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(pkg.join("api/app.py").exists(), "no Engramia 0.6.6 package in .cache/venv: {}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&pkg, dir.path().join("engramia")).unwrap();
    // Its metadata too: Engramia reports the version of the distribution it finds first.
    let dist = pkg.parent().unwrap().join("engramia-0.6.6.dist-info");
    assert!(dist.exists(), "{}", dist.display());
    std::os::unix::fs::symlink(&dist, dir.path().join("engramia-0.6.6.dist-info")).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn engramia_066_is_refused_unless_the_user_opts_into_a_reindex() {
    let standin = Server::demo();
    let (_keep, path) = engramia_066_path();
    let server = Engramia::start_with(&python_engramia07(), &standin.base_url, &[], Some(&path));
    let version = http("GET", &format!("{}/v1/version", server.url), None, None).1;
    assert!(version.contains("\"0.6.6\""), "{version}");

    let ws = workspace(&standin.base_url, &server.url, ONE_PROJECT);
    let (out, _) = migrate(&ws, Some(KEY), &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("0.6.6") && e.contains("without embedding") && e.contains("unembedded_import = \"reindex\""), "{e}");
    assert_eq!(server.pattern_count(KEY), 0);

    let opted = workspace(&standin.base_url, &server.url, &format!("{ONE_PROJECT}[target.server]\nunembedded_import = \"reindex\"\n"));
    let (out, report) = migrate(&opted, Some(KEY), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(warning_kinds(&report).contains(&"server_does_not_embed".to_string()), "{report:#}");
    assert_eq!(server.pattern_count(KEY), total(&report, "create"));
    assert_eq!(standin.stats().embedding_inputs, 0, "0.6.6 stores without embedding");
}

#[test]
fn demo_migrates_into_a_postgres_server_with_a_database_key_per_project() {
    use sha2::Digest;
    let standin = Server::demo();
    let url = fresh_database("rest_target_pg");
    // Engramia's own schema, by its own alembic migrations.
    readback_with(&python_engramia07(), "engramia_schema.py", &standin.base_url, &["--url", &url]);
    // Tenant acme with a project and an admin key per assistant, as an operator makes them.
    let projects = [("Support Bot", "ENGRAM_T_KEY_SUPPORT"), ("Weather Helper", "ENGRAM_T_KEY_WEATHER"), ("Docs Assistant", "ENGRAM_T_KEY_DOCS")];
    let secret = |p: &str| format!("engramia_sk_{}", &hex::encode(sha2::Sha256::digest(p.as_bytes()))[..43]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')").execute(&mut c).await.unwrap();
        for (p, _) in projects {
            let key = secret(p);
            sqlx::query("INSERT INTO projects (id, tenant_id, name) VALUES ($1, 'acme', $1)").bind(p).execute(&mut c).await.unwrap();
            sqlx::query("INSERT INTO api_keys (id, tenant_id, project_id, name, key_prefix, key_hash, role, created_at) VALUES ($1, 'acme', $1, 'migration', $2, $3, 'admin', now()::text)")
                .bind(p)
                .bind(format!("{}...", &key[..20]))
                .bind(hex::encode(sha2::Sha256::digest(key.as_bytes())))
                .execute(&mut c)
                .await
                .unwrap();
        }
    });
    let db = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    let server = Engramia::start(
        &python_engramia07(),
        &standin.base_url,
        &[("ENGRAMIA_AUTH_MODE", "db"), ("ENGRAMIA_STORAGE", "postgres"), ("ENGRAMIA_DATABASE_URL", &db)],
    );
    // The three ways to name a scope's key: tenant/project, project, assistant id.
    let keys = "[target.keys]\n\"acme/Support Bot\" = \"ENGRAM_T_KEY_SUPPORT\"\n\"Weather Helper\" = \"ENGRAM_T_KEY_WEATHER\"\nasst_gfT7hPCldEznbzlOsrUzV0W0 = \"ENGRAM_T_KEY_DOCS\"\n";
    let ws = workspace(&standin.base_url, &server.url, &format!("[scope]\ntenant = \"acme\"\nproject = \"{{assistant.name}}\"\n{keys}"));
    let secrets: Vec<String> = projects.iter().map(|(p, _)| secret(p)).collect();
    let env: Vec<(&str, &str)> = projects.iter().zip(&secrets).map(|((_, var), s)| (*var, s.as_str())).collect();
    let (out, report) = migrate(&ws, None, &env, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), server.log());
    assert_no_secret(&out, &report, &secrets.iter().map(String::as_str).collect::<Vec<_>>());
    for ((p, _), key) in projects.iter().zip(&secrets) {
        let (create, _, _, _) = scope_counts(&report, p);
        assert!(create > 0, "{p}: {report:#}");
        let stored = server.export(key);
        assert_eq!(stored.len() as u64, create, "{p}");
        stored.iter().for_each(|(k, d)| assert_complete(k, d));
        assert_eq!(assert_recallable(&server, key, &stored, 1).0 as u64, create);
    }
    let (out, again) = migrate(&ws, None, &env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!((total(&again, "create"), total(&again, "update")), (0, 0), "{again:#}");
    assert_eq!(total(&again, "unchanged"), total(&report, "create"));
}

/// `kill -9` between two imports: the server holds what was acknowledged, the next run reads
/// it back (`/v1/governance/export`), creates only the rest, and everything is recallable.
#[test]
fn a_run_killed_between_imports_is_finished_by_the_next_without_creating_anything_twice() {
    let standin = Server::demo();
    let server = Engramia::start(&python_engramia07(), &standin.base_url, &[]);
    // Five records an import: the demo goes in about twenty, so the kill falls between two.
    let ws = workspace(&standin.base_url, &server.url, &format!("{ONE_PROJECT}[target.server]\nmax_records_per_request = 5\n"));
    let (out, plan) = migrate(&ws, Some(KEY), &[], &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let planned = total(&plan, "create");

    let mut child = engram()
        .env("ENGRAMIA_API_KEY", KEY)
        .args(["migrate", "--quiet", "--config"])
        .arg(ws.mapping())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !server.log().contains("\"POST /v1/import HTTP/1.1\" 200") {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first import was acknowledged");
        assert!(std::time::Instant::now() < deadline, "no import within 120 s:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // An import the server had begun may still finish after the client is gone: wait until the
    // count holds still.
    let mut partial = server.pattern_count(KEY);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = server.pattern_count(KEY);
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!(partial > 0 && partial < planned, "the kill came too late to test anything: {partial} of {planned}");

    let (out, resumed) = migrate(&ws, Some(KEY), &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // What the killed run stored is not created again: unchanged, or an update where it was
    // killed before registering the pattern's skills (skills go after their patterns).
    assert_eq!(total(&resumed, "unchanged") + total(&resumed, "update"), partial, "{resumed:#}");
    assert_eq!(total(&resumed, "create"), planned - partial, "{resumed:#}");
    let stored = server.export(KEY);
    assert_eq!(stored.len() as u64, planned);
    let (recalled, _) = assert_recallable(&server, KEY, &stored, 10);
    assert_eq!(recalled as u64, planned);
}
