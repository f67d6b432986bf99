//! One suite of sink behaviour, run against every sink: the JSON directory (a temp dir) and
//! PostgreSQL in each shape it meets (an empty database engram sets up itself, Engramia
//! 0.6.6's own schema at head 015 with its bare `key` primary keys, and a schema keyed by
//! (tenant_id, project_id, key) as in later Engramia heads).
//!
//! The PostgreSQL backends need ENGRAM_TEST_PG (and ENGRAM_TEST_PYTHON for Engramia's schema);
//! without them they fail with a message saying so, never skip. Run through scripts/test.

mod common;

use engram::record::{Record, RecordKind, Scope};
use engram::sink::json_dir::{JsonDirSink, scope_dir};
use engram::sink::postgres::{PgSink, new_run_id};
use engram::sink::{Embedded, Existing, Preflight, RunInfo, RunProgress, Sink, SinkError, StoredPattern};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::path::PathBuf;

/// A target a sink writes into, plus native access to it for the checks.
#[allow(async_fn_in_trait)]
trait Backend {
    type S: Sink;
    /// The embedding size the target takes.
    fn dims(&self) -> usize;
    /// A new sink on the same target (a new run).
    async fn sink(&self) -> Self::S;
    /// The skills the target's registry holds for `key` in `scope` (None: not registered).
    async fn registered(&self, scope: &Scope, key: &str) -> Option<Vec<String>>;
    /// Stores a pattern, its embedding and a registry entry the way Engramia itself would.
    async fn seed_foreign(&self, scope: &Scope, key: &str);
    /// Everything stored that a rerun or a refused run must leave as it was.
    async fn footprint(&self) -> String;
}

fn support() -> Scope {
    Scope::new("acme", "Support Bot")
}

fn weather() -> Scope {
    Scope::new("acme", "weather-helper")
}

fn record(scope: &Scope, key: &str, task: &str, skills: &[&str]) -> Record {
    Record {
        scope: scope.clone(),
        key: key.into(),
        kind: RecordKind::MessagePair,
        // Unsorted keys, floats that text formatting could change, unicode: the stored form
        // must hash like this value.
        pattern: json!({
            "task": task,
            "design": {"code": format!("answer to {task}"), "source": "import", "classification": "internal",
                       "openai": {"thread_id": "thread_1", "kind": "message_pair"}, "note": "Ünïcode ✓"},
            "success_score": 5.0,
            "reuse_count": 0,
            "timestamp": 1795521115.96,
            "tiny": 1e-7,
        }),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        classification: "internal".into(),
        origin: "openai-thread:thread_1".into(),
    }
}

/// A deterministic unit vector per key.
fn vector(key: &str, dims: usize) -> Vec<f32> {
    let seed = key.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let raw: Vec<f32> = (0..dims).map(|i| ((seed.wrapping_add((i as u32).wrapping_mul(2654435761)) % 1000) as f32) / 1000.0 + 0.001).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.into_iter().map(|x| x / norm).collect()
}

fn embedded(records: &[Record], dims: usize) -> Vec<Embedded> {
    records.iter().map(|r| Embedded { record: r.clone(), embedding: vector(&r.key, dims) }).collect()
}

fn preflight(dims: Option<usize>) -> Preflight {
    Preflight { model: "text-embedding-3-small".into(), dimensions: dims }
}

fn done() -> RunInfo {
    RunInfo { run_id: String::new(), source: "contract test".into(), wrote_anything: true }
}

/// One run: preflight, write each batch, finish.
async fn run<B: Backend>(b: &B, batches: &[Vec<Record>]) {
    let mut sink = b.sink().await;
    sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
    for batch in batches {
        sink.write(&embedded(batch, b.dims())).await.expect("write");
    }
    sink.finish(&done()).await.expect("finish");
}

async fn existing<B: Backend>(b: &B, scope: &Scope, keys: &[&str]) -> HashMap<String, Existing> {
    let mut sink = b.sink().await;
    sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sink.existing(scope, &keys).await.expect("existing")
}

const A1: &str = "patterns/aaaa0001_1700000000001_k1";
const A2: &str = "patterns/aaaa0002_1700000000002_k2";
const W1: &str = "patterns/bbbb0001_1700000000003_k3";
const FOREIGN: &str = "patterns/cafe0001_1700000000004";

fn first_batch() -> Vec<Record> {
    vec![
        record(&support(), A1, "How do I rotate an API key?", &["rotate_key", "support"]),
        record(&support(), A2, "Where are my invoices?", &[]),
        record(&weather(), W1, "Will it rain in Prague tomorrow?", &["get_weather"]),
    ]
}

// ------------------------------------------------------------------- the checks

mod checks {
    use super::*;

    /// What was written is reported back with the record's own content hash and an embedding.
    pub async fn write_then_existing<B: Backend>(b: B) {
        let batch = first_batch();
        run(&b, std::slice::from_ref(&batch)).await;
        let support = existing(&b, &support(), &[A1, A2, "patterns/none_1"]).await;
        assert_eq!(support.len(), 2, "{support:?}");
        for r in &batch[..2] {
            assert_eq!(support[&r.key], Existing { hash: r.content_hash(), has_embedding: true }, "{}", r.key);
        }
        let weather = existing(&b, &weather(), &[W1]).await;
        assert_eq!(weather[W1], Existing { hash: batch[2].content_hash(), has_embedding: true });
        // A key is never reported as held by another scope: it is absent there, or (where keys
        // are unique across scopes, Engramia 0.6.x) the sink refuses before anything is embedded.
        let mut sink = b.sink().await;
        sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        match sink.existing(&Scope::new("other", "p"), &[A1.to_string()]).await {
            Ok(found) => assert!(found.is_empty(), "{found:?}"),
            Err(e) => assert!(e.to_string().contains("acme/Support Bot"), "{e}"),
        }
    }

    /// Writing the same batch again changes nothing that is stored.
    pub async fn rewrite_is_idempotent<B: Backend>(b: B) {
        let batch = first_batch();
        run(&b, std::slice::from_ref(&batch)).await;
        let before = b.footprint().await;
        let hashes = existing(&b, &support(), &[A1, A2]).await;
        run(&b, std::slice::from_ref(&batch)).await;
        assert_eq!(b.footprint().await, before);
        assert_eq!(existing(&b, &support(), &[A1, A2]).await, hashes);
    }

    /// Writing some keys leaves every other key alone: ours from an earlier batch, and what
    /// Engramia itself stored in the same scope (pattern, embedding and registry entry).
    pub async fn other_keys_untouched<B: Backend>(b: B) {
        let batch = first_batch();
        run(&b, std::slice::from_ref(&batch)).await;
        b.seed_foreign(&support(), FOREIGN).await;
        let theirs = existing(&b, &support(), &[FOREIGN]).await;
        assert!(theirs[FOREIGN].has_embedding, "{theirs:?}");
        let their_skills = b.registered(&support(), FOREIGN).await;
        assert_eq!(their_skills, Some(vec!["legacy".to_string()]));

        let changed = record(&support(), A2, "Where can I download my invoices?", &["billing"]);
        run(&b, &[vec![changed.clone()]]).await;
        let now = existing(&b, &support(), &[A1, A2, FOREIGN]).await;
        assert_eq!(now[FOREIGN], theirs[FOREIGN]);
        assert_eq!(now[A1].hash, batch[0].content_hash());
        assert_eq!(now[A2].hash, changed.content_hash());
        assert_eq!(b.registered(&support(), FOREIGN).await, their_skills);
        assert_eq!(existing(&b, &weather(), &[W1]).await[W1].hash, batch[2].content_hash());
    }

    /// Skills land in the scope's registry; changed skills replace them, none unregister.
    pub async fn skills_registered<B: Backend>(b: B) {
        let batch = first_batch();
        run(&b, std::slice::from_ref(&batch)).await;
        assert_eq!(b.registered(&support(), A1).await, Some(vec!["rotate_key".into(), "support".into()]));
        assert_eq!(b.registered(&support(), A2).await, None);

        let retagged = record(&support(), A1, "How do I rotate an API key?", &["keys"]);
        let tagged = record(&support(), A2, "Where are my invoices?", &["billing"]);
        run(&b, &[vec![retagged.clone(), tagged.clone()]]).await;
        assert_eq!(b.registered(&support(), A1).await, Some(vec!["keys".into()]));
        assert_eq!(b.registered(&support(), A2).await, Some(vec!["billing".into()]));
        let now = existing(&b, &support(), &[A1, A2]).await;
        assert_eq!(now[A1].hash, retagged.content_hash());
        assert_eq!(now[A2].hash, tagged.content_hash());

        let untagged = record(&support(), A1, "How do I rotate an API key?", &[]);
        run(&b, &[vec![untagged.clone()]]).await;
        assert_eq!(b.registered(&support(), A1).await, None);
        assert_eq!(existing(&b, &support(), &[A1]).await[A1].hash, untagged.content_hash());
    }

    /// A target holding D-dimensional embeddings refuses another size at preflight (exit 2,
    /// before any embedding) and at write, and nothing changes.
    pub async fn dims_mismatch_refused<B: Backend>(b: B) {
        run(&b, &[first_batch()]).await;
        let before = b.footprint().await;
        let d = b.dims();

        let mut sink = b.sink().await;
        let err = sink.preflight(&preflight(Some(d + 1))).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SinkError::Config(_)), "{err:?}");
        assert!(msg.contains(&d.to_string()) && msg.contains(&(d + 1).to_string()), "{msg}");
        assert!(msg.contains("dimensions"), "{msg}");

        // With the size unknown up front, the write itself refuses.
        let mut sink = b.sink().await;
        sink.preflight(&preflight(None)).await.expect("preflight without a size");
        let wrong = vec![Embedded { record: record(&support(), A1, "changed", &[]), embedding: vector(A1, d + 1) }];
        let err = sink.write(&wrong).await.unwrap_err();
        assert!(err.to_string().contains(&(d + 1).to_string()), "{err}");
        assert_eq!(b.footprint().await, before);
    }

    /// Every pattern of a scope, with task and score, for the near-duplicate check; only that
    /// scope's.
    pub async fn scope_patterns_lists_the_scope<B: Backend>(b: B) {
        let mut sink = b.sink().await;
        sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        assert!(sink.scope_patterns(&support()).await.expect("scope_patterns").is_empty());
        run(&b, &[first_batch()]).await;
        let mut sink = b.sink().await;
        sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        let listed = sink.scope_patterns(&support()).await.expect("scope_patterns");
        let expected = vec![
            StoredPattern { key: A1.into(), task: "How do I rotate an API key?".into(), success_score: 5.0, origin: None },
            StoredPattern { key: A2.into(), task: "Where are my invoices?".into(), success_score: 5.0, origin: None },
        ];
        assert_eq!(listed, expected);
    }

    /// A replaced near-duplicate goes with its embedding and registry entry, in the batch that
    /// writes its replacement; nothing else changes.
    pub async fn replaced_pattern_is_removed<B: Backend>(b: B) {
        run(&b, &[first_batch()]).await;
        let better = record(&support(), "patterns/aaaa0003_1700000000005_k5", "How do I rotate an API key safely?", &["support"]);
        let mut sink = b.sink().await;
        sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        sink.remove(&support(), &[A1.to_string()]).await.expect("remove");
        sink.write(&embedded(std::slice::from_ref(&better), b.dims())).await.expect("write");
        sink.finish(&done()).await.expect("finish");
        let now = existing(&b, &support(), &[A1, A2, &better.key]).await;
        assert!(!now.contains_key(A1), "{now:?}");
        assert_eq!(now[&better.key].hash, better.content_hash());
        assert_eq!(now[A2].hash, first_batch()[1].content_hash());
        assert_eq!(b.registered(&support(), A1).await, None);
        assert_eq!(b.registered(&support(), &better.key).await, Some(vec!["support".into()]));
    }

    /// A run that wrote and stopped before `finish` is reported to the next run, with its
    /// progress; once a later run finishes, it no longer is.
    pub async fn unfinished_run_is_reported<B: Backend>(b: B) {
        let mut sink = b.sink().await;
        sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        assert_eq!(sink.previous_run().await.expect("previous_run"), None);
        sink.write(&embedded(&first_batch(), b.dims())).await.expect("write");
        let progress = RunProgress { run_id: "killed-run".into(), batches: 1, records: 3, last_thread: Some("thread_1".into()) };
        sink.mark_progress(&progress).await.expect("mark_progress");
        drop(sink); // killed: no finish

        let mut next = b.sink().await;
        next.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        let previous = next.previous_run().await.expect("previous_run").expect("the killed run is reported");
        assert_eq!((previous.batches, previous.records, previous.last_thread.as_deref()), (1, 3, Some("thread_1")));
        next.finish(&RunInfo { wrote_anything: false, ..done() }).await.expect("finish");

        let mut after = b.sink().await;
        after.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        assert_eq!(after.previous_run().await.expect("previous_run"), None);
    }

    /// A dry run's sink calls (preflight, check_scopes, existing) write nothing, even on a
    /// target that does not exist yet or holds no tables.
    pub async fn dry_run_writes_nothing<B: Backend>(b: B) {
        let before = b.footprint().await;
        let mut sink = b.sink().await;
        sink.preflight(&preflight(Some(b.dims()))).await.expect("preflight");
        sink.check_scopes(&[support(), weather()]).await.expect("check_scopes");
        let keys: Vec<String> = vec![A1.into(), W1.into()];
        assert!(sink.existing(&support(), &keys).await.expect("existing").is_empty());
        drop(sink);
        assert_eq!(b.footprint().await, before);
    }
}

macro_rules! contract {
    ($module:ident, $make:path) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn write_then_existing() {
                checks::write_then_existing($make(concat!(stringify!($module), "_wte")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn rewrite_is_idempotent() {
                checks::rewrite_is_idempotent($make(concat!(stringify!($module), "_rii")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn other_keys_untouched() {
                checks::other_keys_untouched($make(concat!(stringify!($module), "_oku")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn skills_registered() {
                checks::skills_registered($make(concat!(stringify!($module), "_sr")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn dims_mismatch_refused() {
                checks::dims_mismatch_refused($make(concat!(stringify!($module), "_dmr")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn scope_patterns_lists_the_scope() {
                checks::scope_patterns_lists_the_scope($make(concat!(stringify!($module), "_spl")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn replaced_pattern_is_removed() {
                checks::replaced_pattern_is_removed($make(concat!(stringify!($module), "_rpr")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn unfinished_run_is_reported() {
                checks::unfinished_run_is_reported($make(concat!(stringify!($module), "_urr")).await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn dry_run_writes_nothing() {
                checks::dry_run_writes_nothing($make(concat!(stringify!($module), "_dry")).await).await
            }
        }
    };
}

contract!(json_dir, json_backend);
contract!(postgres_empty_database, pg_empty);
contract!(postgres_engramia_015, pg_engramia_015);
contract!(postgres_scoped_keys, pg_scoped_keys);

// ------------------------------------------------------------------- JSON directory

struct JsonDir {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

async fn json_backend(_name: &str) -> JsonDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("engramia_data");
    JsonDir { _dir: dir, root }
}

impl JsonDir {
    fn read(&self, scope: &Scope, rel: &str) -> Value {
        let path = scope_dir(&self.root, scope).join(rel);
        std::fs::read(&path).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(json!({}))
    }

    fn put(&self, scope: &Scope, rel: &str, v: &Value) {
        let path = scope_dir(&self.root, scope).join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }
}

impl Backend for JsonDir {
    type S = JsonDirSink;

    fn dims(&self) -> usize {
        8
    }

    async fn sink(&self) -> JsonDirSink {
        JsonDirSink::new(&self.root)
    }

    async fn registered(&self, scope: &Scope, key: &str) -> Option<Vec<String>> {
        self.read(scope, "skills/_registry.json").get(key).map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    async fn seed_foreign(&self, scope: &Scope, key: &str) {
        self.put(scope, &format!("{key}.json"), &json!({"task": "theirs", "design": {"code": "x"}, "success_score": 7.5, "reuse_count": 3, "timestamp": 1.5}));
        let mut index = self.read(scope, "_embeddings.json");
        index[key] = json!(vector(key, self.dims()));
        self.put(scope, "_embeddings.json", &index);
        let mut registry = self.read(scope, "skills/_registry.json");
        registry[key] = json!(["legacy"]);
        self.put(scope, "skills/_registry.json", &registry);
    }

    async fn footprint(&self) -> String {
        format!("{:?}", common::snapshot(&self.root))
    }
}

// ------------------------------------------------------------------- PostgreSQL

struct Pg {
    url: String,
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn exec(url: &str, sql: &'static str) {
    let mut c = connect(url).await;
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A fresh empty database (scripts/pg createdb); fails, with the reason, without ENGRAM_TEST_PG.
async fn fresh(name: &str) -> String {
    let name = format!("contract_{name}");
    tokio::task::block_in_place(|| common::fresh_database(&name))
}

/// Engramia 0.6.6's schema, made by its own alembic migrations (tests/support/engramia_schema.py).
async fn engramia_schema(url: &str) {
    tokio::task::block_in_place(|| {
        let out = std::process::Command::new(common::python())
            .arg(common::repo_root().join("tests/support/engramia_schema.py"))
            .args(["--url", url])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "engramia_schema.py failed:\n{}", common::text(&out));
    });
}

async fn pg_empty(name: &str) -> Pg {
    Pg { url: fresh(name).await }
}

async fn pg_engramia_015(name: &str) -> Pg {
    let url = fresh(name).await;
    engramia_schema(&url).await;
    Pg { url }
}

/// Engramia's schema with (tenant_id, project_id, key) primary keys, as later heads have.
async fn pg_scoped_keys(name: &str) -> Pg {
    let url = fresh(name).await;
    engramia_schema(&url).await;
    exec(&url, SCOPED_KEYS_SQL).await;
    Pg { url }
}

pub const SCOPED_KEYS_SQL: &str = "
    ALTER TABLE memory_data DROP CONSTRAINT brain_data_pkey, DROP CONSTRAINT uq_memory_data_scope_key,
        ADD CONSTRAINT memory_data_pkey PRIMARY KEY (tenant_id, project_id, key);
    ALTER TABLE memory_embeddings DROP CONSTRAINT brain_embeddings_pkey, DROP CONSTRAINT uq_memory_embeddings_scope_key,
        ADD CONSTRAINT memory_embeddings_pkey PRIMARY KEY (tenant_id, project_id, key);";

impl Backend for Pg {
    type S = PgSink;

    fn dims(&self) -> usize {
        1536
    }

    async fn sink(&self) -> PgSink {
        PgSink::open(&self.url, new_run_id()).await.expect("PgSink opens")
    }

    async fn registered(&self, scope: &Scope, key: &str) -> Option<Vec<String>> {
        let mut c = connect(&self.url).await;
        let raw: Option<Option<String>> = sqlx::query_scalar(
            "SELECT (data::jsonb -> $3)::text FROM memory_data WHERE tenant_id = $1 AND project_id = $2 AND key = 'skills/_registry'",
        )
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(key)
        .fetch_optional(&mut c)
        .await
        .unwrap();
        raw.flatten().map(|s| serde_json::from_str(&s).unwrap())
    }

    async fn seed_foreign(&self, scope: &Scope, key: &str) {
        // The statements of Engramia's PostgresStorage.save / save_embedding (fixed bind).
        let mut c = connect(&self.url).await;
        let pattern = json!({"task": "theirs", "design": {"code": "x"}, "success_score": 7.5, "reuse_count": 3, "timestamp": 1.5});
        let save = "INSERT INTO memory_data (key, tenant_id, project_id, data, updated_at) \
                    VALUES ($1, $2, $3, CAST($4 AS jsonb), now()::text) \
                    ON CONFLICT (tenant_id, project_id, key) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at";
        for q in [
            sqlx::query(save).bind(key).bind(&scope.tenant).bind(&scope.project).bind(pattern.to_string()),
            sqlx::query(
                "INSERT INTO memory_embeddings (key, tenant_id, project_id, embedding) VALUES ($1, $2, $3, CAST($4 AS vector))",
            )
            .bind(key)
            .bind(&scope.tenant)
            .bind(&scope.project)
            .bind(format!("{:?}", vector(key, self.dims()))),
        ] {
            q.execute(&mut c).await.unwrap();
        }
        let registry: Option<String> = sqlx::query_scalar(
            "SELECT data::text FROM memory_data WHERE tenant_id = $1 AND project_id = $2 AND key = 'skills/_registry'",
        )
        .bind(&scope.tenant)
        .bind(&scope.project)
        .fetch_optional(&mut c)
        .await
        .unwrap();
        let mut registry: Value = registry.map(|s| serde_json::from_str(&s).unwrap()).unwrap_or(json!({}));
        registry[key] = json!(["legacy"]);
        sqlx::query(save).bind("skills/_registry").bind(&scope.tenant).bind(&scope.project).bind(registry.to_string()).execute(&mut c).await.unwrap();
    }

    async fn footprint(&self) -> String {
        footprint(&self.url).await
    }
}

/// Tables, the extension, and every row of memory_data / memory_embeddings / tenants /
/// projects (not updated_at, nor the append-only audit_log and engram_runs).
pub async fn footprint(url: &str) -> String {
    let mut c = connect(url).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let ext: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetch_one(&mut c).await.unwrap();
    let mut out = format!("tables {tables:?}\nvector extension {ext}\n");
    let dumps: [(&str, &'static str); 4] = [
        ("memory_data", "SELECT tenant_id || '/' || project_id || ' ' || key || ' ' || data::text || ' ' || coalesce(source, '-') || ' ' || coalesce(run_id, '-') FROM memory_data ORDER BY key, tenant_id, project_id"),
        ("memory_embeddings", "SELECT tenant_id || '/' || project_id || ' ' || key || ' ' || md5(embedding::text) FROM memory_embeddings ORDER BY key, tenant_id, project_id"),
        ("tenants", "SELECT id FROM tenants ORDER BY id"),
        ("projects", "SELECT tenant_id || '/' || id FROM projects ORDER BY id"),
    ];
    for (table, sql) in dumps {
        if tables.iter().any(|t| t == table) {
            let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
            out.push_str(&format!("{table}:\n  {}\n", rows.join("\n  ")));
        }
    }
    out
}
