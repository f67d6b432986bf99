//! Several engram runs into one Engramia at once: `--shard I/N` processes into one PostgreSQL
//! database end in exactly the state of one sequential run (schema created once, one HNSW index
//! with Engramia's definition, every registry and ledger update kept), also when one of them is
//! SIGKILLed and rerun; `engram status` tells from the database what ran; a JSON directory
//! takes one run at a time and a dead holder's lock is taken over.
//!
//! Needs ENGRAM_TEST_PG (scripts/test sets it); fails without it.

mod common;

use common::*;
use engram_standin::{Options, Timing};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn db<T>(url: &str, f: impl AsyncFnOnce(&mut PgConnection) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        f(&mut c).await
    })
}

fn rows(url: &str, sql: &'static str) -> Vec<String> {
    db(url, async |c| sqlx::query_scalar::<_, String>(sql).fetch_all(c).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// JSON text with every object's keys sorted, so that the order writes happened in (which
/// differs between concurrent runs, e.g. in a skills registry) does not count.
fn canonical(text: &str) -> String {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            v => v,
        }
    }
    sort(serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))).to_string()
}

/// Everything Engramia and engram read back, without what names a run or a time.
fn state(url: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut s = BTreeMap::new();
    s.insert(
        "memory_data",
        rows(url, "SELECT tenant_id || '/' || project_id || ' ' || key || ' ' || coalesce(run_id, '') || ' ' || coalesce(source, '') || ' ' || data::text FROM memory_data ORDER BY tenant_id, project_id, key")
            .into_iter()
            .map(|r| {
                let (head, json) = r.split_at(r.find(['{', '[']).unwrap_or(r.len()));
                format!("{head}{}", if json.is_empty() { String::new() } else { canonical(json) })
            })
            .collect(),
    );
    s.insert(
        "memory_embeddings",
        rows(url, "SELECT tenant_id || '/' || project_id || ' ' || key || ' ' || embedding::text FROM memory_embeddings ORDER BY tenant_id, project_id, key"),
    );
    s.insert(
        "engram_records",
        rows(url, "SELECT tenant_id || '/' || project_id || ' ' || key || ' ' || content_hash || ' ' || skills::text || ' ' || coalesce(origin, '') FROM engram_records ORDER BY tenant_id, project_id, key"),
    );
    s.insert("projects", rows(url, "SELECT id || ' ' || tenant_id || ' ' || coalesce(name, '') FROM projects ORDER BY id"));
    s.insert("tenants", rows(url, "SELECT id FROM tenants ORDER BY id"));
    s.insert("indexes", rows(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'memory_embeddings' ORDER BY indexname"));
    s.insert("dropped", rows(url, "SELECT index_name FROM engram_dropped_indexes"));
    s.insert("alembic", rows(url, "SELECT version_num::text FROM alembic_version"));
    s.insert("migrations", rows(url, "SELECT version::text FROM engram_migrations ORDER BY version"));
    s
}

/// Every file Engramia reads in a JSON directory, parsed, keys sorted: a run killed mid-batch
/// and finished by the next may leave the same entries in another order.
fn json_files(dir: &Path) -> BTreeMap<std::path::PathBuf, String> {
    storage(dir)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "json"))
        .map(|(p, bytes)| (p, canonical(&String::from_utf8_lossy(&bytes))))
        .collect()
}

/// The demo account, answering each request after 25-40 ms, so that runs overlap.
fn slow_server() -> Server {
    Server::start(
        demo_account(),
        Options { api_key: Some(TEST_KEY.into()), timing: Timing { latency_ms: 25, jitter_ms: 15, embed_us_per_input: 0 }, ..Options::default() },
    )
}

/// One request at a time and small batches: a shard's run takes a second or more and commits
/// several batches, and every run drops the index, so the runs meet at each step.
fn workspace(server: &Server) -> Workspace {
    Workspace::new(
        &server.base_url,
        "concurrency = 1",
        "[embedding]\nmodel = \"text-embedding-3-small\"\n[target]\nbatch_size = 4\nindex_strategy = \"rebuild\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n",
    )
}

fn spawn_shard(ws: &Workspace, url: &str, shard: &str) -> Child {
    engram()
        .args(["migrate", "--quiet", "--config"])
        .arg(ws.mapping())
        .args(["--target", url, "--shard", shard, "--report"])
        .arg(ws.path(&format!("report-{}.json", shard.replace('/', "-"))))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engram starts")
}

fn report(ws: &Workspace, shard: &str) -> Value {
    serde_json::from_slice(&std::fs::read(ws.path(&format!("report-{}.json", shard.replace('/', "-")))).unwrap()).unwrap()
}

fn signal(child: &Child, which: &str) {
    let ok = std::process::Command::new("kill").arg(which).arg(child.id().to_string()).status().unwrap().success();
    assert!(ok, "kill {which} {}", child.id());
}

/// SIGSTOPs the run of `shard` at a moment its session is idle and holds none of engram's
/// shared locks (only its own liveness lock), so that the others are not blocked by it.
fn freeze_outside_a_transaction(child: &Child, url: &str, shard: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        signal(child, "-STOP");
        std::thread::sleep(Duration::from_millis(30));
        let (idle, shared_locks) = db(url, async |c| {
            let backend = "(SELECT l.pid FROM pg_locks l JOIN engram_runs r ON l.objid = r.lock_key::bigint::oid \
                 WHERE l.locktype = 'advisory' AND l.classid = 1701734259::bigint::oid AND l.granted AND r.shard = $1)";
            let state: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT state FROM pg_stat_activity WHERE pid = {backend}")))
                .bind(shard)
                .fetch_optional(&mut *c)
                .await
                .unwrap();
            let held: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM pg_locks WHERE pid = {backend} AND locktype = 'advisory' AND classid = 1701734258::bigint::oid"
            )))
            .bind(shard)
            .fetch_one(&mut *c)
            .await
            .unwrap();
            (state.as_deref() == Some("idle"), held)
        });
        if idle && shared_locks == 0 {
            return;
        }
        signal(child, "-CONT");
        assert!(Instant::now() < deadline, "shard {shard} was never idle outside a transaction");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn notes_of(report: &Value) -> Vec<String> {
    report["target_notes"].as_array().map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
}

/// The reference: one run of the whole account into a fresh database.
fn sequential(name: &str) -> BTreeMap<&'static str, Vec<String>> {
    let server = Server::demo();
    let ws = workspace(&server);
    let url = fresh_database(name);
    migrate_ok(&ws, Path::new(&url), &[]);
    let s = state(&url);
    assert_eq!(s["indexes"].iter().filter(|d| d.contains("USING hnsw")).count(), 1, "{s:#?}");
    assert!(s["dropped"].is_empty());
    assert!(s["memory_embeddings"].len() > 50, "the reference holds the demo: {s:#?}");
    s
}

fn status(ws: &Workspace, url: &str) -> Value {
    let out = run(engram().args(["status", "--json", "--config"]).arg(ws.mapping()).args(["--target", url]));
    assert!(out.status.success(), "engram status failed:\n{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("engram status --json ({e}):\n{}", text(&out)))
}

#[test]
fn three_concurrent_shards_end_in_the_state_of_one_sequential_run() {
    let reference = sequential("conc_reference");
    let server = slow_server();
    let ws = workspace(&server);
    let url = fresh_database("conc_three_shards");
    // Into an empty database: each run finds no schema, and exactly one creates it.
    let children: Vec<(String, Child)> = ["1/3", "2/3", "3/3"].iter().map(|s| (s.to_string(), spawn_shard(&ws, &url, s))).collect();
    for (shard, child) in children {
        wait_ok(child, &format!("shard {shard}"));
    }
    let got = state(&url);
    for (table, rows) in &reference {
        assert_eq!(&got[table], rows, "{table} differs from the sequential run's");
    }

    let reports: Vec<Value> = ["1/3", "2/3", "3/3"].iter().map(|s| report(&ws, s)).collect();
    assert_eq!(reports.iter().map(|r| r["shard"].as_str().unwrap()).collect::<Vec<_>>(), ["1/3", "2/3", "3/3"]);
    let read: u64 = reports.iter().map(|r| r["threads"]["read"].as_u64().unwrap()).sum();
    assert_eq!(read, 7, "the shards read the demo's 7 readable threads between them, each once");
    let listed: Vec<u64> = reports.iter().map(|r| r["threads"]["listed"].as_u64().unwrap()).collect();
    assert_eq!(listed.iter().sum::<u64>(), 8, "the 8 listed threads split without overlap: {listed:?}");
    let notes: Vec<String> = reports.iter().flat_map(notes_of).collect();
    assert!(notes.iter().any(|n| n.contains("rebuilt the HNSW index")), "some run rebuilt the index: {notes:?}");

    let st = status(&ws, &url);
    let runs = st["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{st:#}");
    assert!(runs.iter().all(|r| r["state"] == "done" && r["pid"].as_i64().is_some()), "{st:#}");
    let mut shards: Vec<&str> = runs.iter().map(|r| r["shard"].as_str().unwrap()).collect();
    shards.sort();
    assert_eq!(shards, ["1/3", "2/3", "3/3"]);
    assert_eq!(st["shards"]["3"], serde_json::json!({"1/3": "done", "2/3": "done", "3/3": "done"}), "{st:#}");

    // A rerun of any shard resumes nothing and writes nothing.
    let again = migrate_ok(&ws, Path::new(&url), &["--shard", "2/3"]);
    assert_eq!(again["resumed"], Value::Null, "{again:#}");
    assert_eq!(state(&url), got);
}

/// A run that finishes while another is still loading into the unindexed table leaves the
/// rebuild to it (rebuilding under it would make every later insert walk the graph, and two
/// rebuilds at once collide); the one still loading rebuilds when it ends.
#[test]
fn a_run_that_finishes_first_leaves_the_rebuild_to_the_one_still_loading() {
    let reference = sequential("conc_leave_reference");
    let slow = slow_server();
    let fast = Server::demo();
    let (slow_ws, fast_ws) = (workspace(&slow), workspace(&fast));
    let url = fresh_database("conc_leave");
    let slow_run = spawn_shard(&slow_ws, &url, "1/2");
    // Once the slow run has dropped the index for its load, it is frozen (SIGSTOP: alive, its
    // session and locks held, loading nothing) until the fast one has finished.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let dropped = db(&url, async |c| {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM engram_dropped_indexes").fetch_one(c).await.unwrap_or(0)
        });
        if dropped > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the slow run dropped no index within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    freeze_outside_a_transaction(&slow_run, &url, "1/2");
    let st = status(&fast_ws, &url);
    assert_eq!(st["shards"]["2"], serde_json::json!({"1/2": "running", "2/2": "not started"}), "{st:#}");
    // ... the fast one starts, joins the load, finishes first and leaves the index to it.
    let fast_run = spawn_shard(&fast_ws, &url, "2/2");
    wait_ok(fast_run, "the fast shard");
    let fast_report = report(&fast_ws, "2/2");
    let notes = notes_of(&fast_report);
    assert!(notes.iter().any(|n| n.contains("its rebuild is left to the last of them")), "{fast_report:#}");
    assert!(!notes.iter().any(|n| n.contains("rebuilt")), "{fast_report:#}");
    assert!(fast_report["index"]["reason"].as_str().unwrap().contains("still going"), "{fast_report:#}");
    let slow_still_going = db(&url, async |c| {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM engram_dropped_indexes").fetch_one(c).await.unwrap()
    });
    assert_eq!(slow_still_going, 1, "the index stays dropped while the slow run loads");

    signal(&slow_run, "-CONT");
    wait_ok(slow_run, "the slow shard");
    let slow_notes = notes_of(&report(&slow_ws, "1/2"));
    assert!(slow_notes.iter().any(|n| n.contains("rebuilt the HNSW index idx_memory_embeddings_hnsw")), "{slow_notes:?}");
    let got = state(&url);
    for (table, rows) in &reference {
        assert_eq!(&got[table], rows, "{table} differs from the sequential run's");
    }
}

#[test]
fn a_shard_killed_mid_run_is_rerun_and_the_end_state_is_the_same() {
    let reference = sequential("conc_kill_reference");
    let server = slow_server();
    let ws = workspace(&server);
    let url = fresh_database("conc_kill");
    let mut victim = spawn_shard(&ws, &url, "2/3");
    let others: Vec<(String, Child)> = ["1/3", "3/3"].iter().map(|s| (s.to_string(), spawn_shard(&ws, &url, s))).collect();

    // Kill shard 2 once it has committed a batch (and so dropped or joined the drop of the index).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let batches = db(&url, async |c| {
            sqlx::query_scalar::<_, i64>("SELECT coalesce(max(batches), 0) FROM engram_runs WHERE shard = '2/3'").fetch_one(c).await.unwrap_or(0)
        });
        if batches >= 1 {
            break;
        }
        assert!(victim.try_wait().unwrap().is_none(), "shard 2/3 finished before it could be killed");
        assert!(Instant::now() < deadline, "shard 2/3 made no progress within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    for (shard, child) in others {
        wait_ok(child, &format!("shard {shard}"));
    }
    // The others never leave the index missing for a dead run: the last live one rebuilt it.
    let mid = state(&url);
    assert!(mid["dropped"].is_empty(), "{mid:#?}");
    assert_eq!(mid["indexes"], reference["indexes"]);
    let st = status(&ws, &url);
    assert_eq!(st["shards"]["3"]["2/3"], "stopped", "{st:#}");
    assert_eq!(st["shards"]["3"]["1/3"], "done", "{st:#}");

    let rerun = migrate_ok(&ws, Path::new(&url), &["--shard", "2/3"]);
    assert!(rerun["resumed"]["run_id"].is_string(), "the rerun resumes the killed run of its shard: {rerun:#}");
    let got = state(&url);
    for (table, rows) in &reference {
        assert_eq!(&got[table], rows, "{table} differs from the sequential run's");
    }
    let st = status(&ws, &url);
    assert_eq!(st["shards"]["3"], serde_json::json!({"1/3": "done", "2/3": "done", "3/3": "done"}), "{st:#}");
    let text_out = run(engram().args(["status", "--config"]).arg(ws.mapping()).args(["--target", &url]));
    let text_out = String::from_utf8_lossy(&text_out.stdout).into_owned();
    assert!(text_out.contains("all 3 shards are done") && text_out.contains("completed"), "{text_out}");
}

#[test]
fn a_json_directory_takes_one_run_at_a_time_and_a_dead_holders_lock_is_taken_over() {
    let server = Server::with_faults(engram_standin::Faults { delay_ms: 40, ..Default::default() });
    let ws = Workspace::new(&server.base_url, "concurrency = 1", "[target]\nbatch_size = 4\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n");
    let dir = ws.path("data");
    let lock = dir.join("_engram.lock");
    let spawn = |target: &Path| {
        engram()
            .args(["migrate", "--quiet", "--config"])
            .arg(ws.mapping())
            .arg("--target")
            .arg(target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_for_lock = |child: &mut Child, lock: &Path| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !lock.exists() {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it took the lock");
            assert!(Instant::now() < deadline, "no lock file within 60 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    let mut first = spawn(&dir);
    wait_for_lock(&mut first, &lock);
    let holder: Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(holder["pid"], first.id());
    let second = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(&dir));
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another engram run") && err.contains(&format!("pid {}", first.id())) && err.contains("_engram.lock"), "{err}");
    wait_ok(first, "the first run");
    assert!(!lock.exists(), "the lock is released at the end of the run");

    // Killed while holding the lock: the next run finds the process gone and takes over.
    let other = ws.path("data2");
    let mut killed = spawn(&other);
    let other_lock = other.join("_engram.lock");
    wait_for_lock(&mut killed, &other_lock);
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(other_lock.exists(), "SIGKILL leaves the lock behind");
    let st = run(engram().args(["status", "--config"]).arg(ws.mapping()).arg("--target").arg(&other));
    assert!(String::from_utf8_lossy(&st.stdout).contains("stale lock"), "{}", text(&st));
    let out = run(engram().args(["migrate", "--config"]).arg(ws.mapping()).arg("--target").arg(&other));
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("took over the lock file _engram.lock"), "{}", text(&out));
    assert!(!other_lock.exists());
    assert_eq!(json_files(&other), json_files(&dir), "the run after the takeover ends where an uninterrupted one does");
}
