//! Engramia's JSON storage directory (`ENGRAMIA_STORAGE=json`), the embedded default.
//!
//! Layout (see spec/engramia-target.md): the default scope at the root, any other scope under
//! `<tenant>/<project>/` with each segment sanitised as Engramia does; per scope
//! `patterns/<id>.json`, `_embeddings.json` and `skills/_registry.json`; at the root
//! `metadata/embedding_config.json`.
//!
//! Invariants: every file is replaced atomically (temp file in the same directory, fsync,
//! rename); within a batch the embeddings (appended to the scope's log, see `embeddings_file`)
//! and the skill registry are made durable before the pattern files, so a crash leaves at worst
//! an embedding whose pattern is missing (invisible, and rewritten by the next run), never a
//! pattern file that is half written. The log is merged into `_embeddings.json` at the end of
//! every run (also an interrupted or failed one), so memory never holds a scope's index.
//! Entries already in the index or registry under other keys are kept byte for byte.
//!
//! engram's ledger of what it wrote into a scope, `_engram_records.json` (`{key: LedgerEntry}`,
//! read by `engram verify`), is kept the same way as the index: appended to its own log in each
//! batch (before the pattern files) and merged at the end of the run. Engramia skips it (its
//! name starts with `_`).

pub(crate) mod embeddings_file;
pub mod lock;

use super::{Embedded, Existing, Preflight, PreviousRun, RunInfo, RunProgress, Sink, SinkError, StoredPattern};
use crate::record::{Scope, content_hash};
use indexmap::IndexMap;
use serde_json::Value;
use embeddings_file::Log;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Engramia's `_sanitize_segment`: keep characters Python's `str.isalnum()` accepts (Unicode
/// letters and numbers), `-` and `_`; everything else becomes `_`; empty becomes `default`.
pub fn sanitize_segment(segment: &str) -> String {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    let out: String = segment
        .chars()
        .map(|c| {
            let alnum = matches!(
                get_general_category(c),
                G::UppercaseLetter
                    | G::LowercaseLetter
                    | G::TitlecaseLetter
                    | G::ModifierLetter
                    | G::OtherLetter
                    | G::DecimalNumber
                    | G::LetterNumber
                    | G::OtherNumber
            );
            if alnum || c == '-' || c == '_' { c } else { '_' }
        })
        .collect();
    if out.is_empty() { "default".to_string() } else { out }
}

/// The directory of a scope below the storage root.
pub fn scope_dir(root: &Path, scope: &Scope) -> PathBuf {
    if scope.is_default() {
        root.to_path_buf()
    } else {
        root.join(sanitize_segment(&scope.tenant)).join(sanitize_segment(&scope.project))
    }
}

/// engram's ledger of one scope and its log (see the module's header).
pub const LEDGER: &str = "_engram_records.json";
pub const LEDGER_LOG: &str = "_engram_records.wal";

/// What engram wrote under one key: enough for `engram verify` to know what to look for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    pub tenant: String,
    pub project: String,
    pub kind: crate::record::RecordKind,
    /// `record::content_hash` of the pattern and skills as written.
    pub hash: String,
    pub skills: Vec<String>,
    pub origin: String,
}

/// What the sink keeps of one scope: the keys that have an embedding (in the index or its
/// log), the skills registry, the vector size. Never the vectors themselves.
struct ScopeFiles {
    dir: PathBuf,
    embedded: HashSet<String>,
    registry: IndexMap<String, Value>,
    dims: Option<usize>,
    log: Log,
    ledger: Log,
}

impl ScopeFiles {
    fn load(dir: PathBuf) -> Result<ScopeFiles, SinkError> {
        let mut embedded = HashSet::new();
        let mut dims = None;
        let mut note = |key: String, raw: &RawValue| {
            if dims.is_none() {
                dims = embeddings_file::vector_len(raw.get());
            }
            embedded.insert(key);
        };
        embeddings_file::for_each(&dir.join(embeddings_file::INDEX), |key, raw| {
            note(key, &raw);
            embeddings_file::Step::Continue
        })?;
        // A log a killed run left: its vectors count (the next merge writes them).
        let log = Log::new(&dir);
        log.for_each(|key, raw| note(key, &raw))?;
        let registry: IndexMap<String, Value> = read_json_or_default(&dir.join("skills/_registry.json"))?;
        let ledger = Log::named(&dir, LEDGER_LOG);
        Ok(ScopeFiles { dir, embedded, registry, dims, log, ledger })
    }

    /// Folds the logs into `_embeddings.json` and the ledger (and drops `removed`).
    fn merge(&mut self, removed: &HashSet<String>) -> Result<(), SinkError> {
        embeddings_file::merge(&self.dir, removed)?;
        embeddings_file::merge_named(&self.dir, LEDGER, LEDGER_LOG, removed)
    }

    fn has_logs(&self) -> bool {
        self.log.exists() || self.ledger.exists()
    }
}

pub struct JsonDirSink {
    root: PathBuf,
    model: String,
    scopes: HashMap<Scope, ScopeFiles>,
    /// Take the directory's lock file in preflight (a real run; a dry run only reads).
    exclusive: bool,
    /// Held from preflight to the end of the run (released when the sink is dropped).
    lock: Option<lock::DirLock>,
}

/// engram's run marker at the root. Engramia skips files whose name starts with `_`.
const RUN_MARKER: &str = "_engram_run.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct RunMarker {
    status: String,
    #[serde(flatten)]
    progress: RunProgress,
}

impl JsonDirSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        JsonDirSink { root: root.into(), model: String::new(), scopes: HashMap::new(), exclusive: false, lock: None }
    }

    /// A run that writes: preflight takes `_engram.lock` (see `lock`), so a second run into
    /// the same directory stops before it writes anything.
    pub fn exclusive(mut self, on: bool) -> Self {
        self.exclusive = on;
        self
    }

    /// Takes the lock file (creating the directory) unless this run holds it or only reads;
    /// returns the stale holder it took over, if any.
    fn ensure_locked(&mut self) -> Result<Option<lock::Stale>, SinkError> {
        if !self.exclusive || self.lock.is_some() {
            return Ok(None);
        }
        std::fs::create_dir_all(&self.root).map_err(|e| SinkError::Io(format!("creating {}: {e}", self.root.display())))?;
        let taken = lock::take(&self.root)?;
        self.lock = Some(taken.lock);
        if taken.took_over.is_some() {
            // The dead run may have been killed inside an atomic write: its temporary files
            // (never read by Engramia, which reads *.json) are garbage now that no run writes.
            lock::sweep_temporaries(&self.root);
        }
        Ok(taken.took_over)
    }

    fn scope_files(&mut self, scope: &Scope) -> Result<&mut ScopeFiles, SinkError> {
        if !self.scopes.contains_key(scope) {
            let files = ScopeFiles::load(scope_dir(&self.root, scope))?;
            self.scopes.insert(scope.clone(), files);
        }
        Ok(self.scopes.get_mut(scope).expect("inserted above"))
    }
}

/// What `engram status` shows of a JSON directory: who holds its lock (and whether that
/// process is alive) and engram's run marker (the last run's status and progress).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DirStatus {
    pub lock: Option<(lock::Holder, bool)>,
    pub last_run: Option<(String, RunProgress)>,
}

pub fn dir_status(root: &Path) -> DirStatus {
    let lock = lock::read(&root.join(lock::LOCK_FILE)).map(|h| {
        let alive = h.alive();
        (h, alive)
    });
    let marker: Option<RunMarker> = read_json_opt(&root.join(RUN_MARKER)).unwrap_or(None);
    DirStatus { lock, last_run: marker.map(|m| (m.status, m.progress)) }
}

impl Sink for JsonDirSink {
    fn describe(&self) -> String {
        format!("JSON directory {}", self.root.display())
    }

    async fn preflight(&mut self, check: &Preflight) -> Result<Vec<String>, SinkError> {
        self.model = check.model.clone();
        let mut notes = Vec::new();
        if self.root.exists() {
            if !self.root.is_dir() {
                return Err(SinkError::Io(format!(
                    "target {} exists and is not a directory; point [target] url or --target at a directory",
                    self.root.display()
                )));
            }
            probe_writable(&self.root)?;
        } else {
            let ancestor = self.root.ancestors().skip(1).find(|a| a.as_os_str().is_empty() || a.exists());
            let ancestor = match ancestor {
                Some(a) if a.as_os_str().is_empty() => Path::new("."),
                Some(a) => a,
                None => Path::new("/"),
            };
            probe_writable(ancestor)?;
            notes.push(format!("will create the directory {}", self.root.display()));
        }
        let meta_path = self.root.join("metadata/embedding_config.json");
        if let Some(meta) = read_json_opt::<Value>(&meta_path)? {
            let stored = meta.get("model").and_then(Value::as_str).unwrap_or("unknown");
            if stored != check.model {
                return Err(SinkError::Config(format!(
                    "{} holds embeddings made with {stored:?}, but [embedding] model is {:?}; vectors of two models cannot be compared.\n  Use model = {stored:?} in mapping.toml, or migrate into a new directory (and run `engramia reindex` there if you change models later).",
                    self.root.display(),
                    check.model
                )));
            }
        }
        if let Some(expected) = check.dimensions {
            for index in embedding_indexes(&self.root) {
                if let Some(found) = embeddings_file::first_vector_len(&index)?
                    && found != expected
                {
                    return Err(SinkError::Config(format!(
                        "{} holds {found}-dimensional embeddings, but {} gives {expected}-dimensional ones.\n  Ways out: set [embedding] dimensions = {found} (text-embedding-3-* models), or use the model the directory was built with.",
                        index.display(),
                        check.model
                    )));
                }
            }
        }
        // A directory that is not there yet is locked when the first write creates it (a run
        // that fails before then leaves nothing behind).
        if self.root.is_dir()
            && let Some(stale) = self.ensure_locked()?
        {
            notes.push(format!("took over the lock file {} left by {}", lock::LOCK_FILE, stale.describe()));
        }
        Ok(notes)
    }

    async fn existing(&mut self, scope: &Scope, keys: &[String]) -> Result<HashMap<String, Existing>, SinkError> {
        let files = self.scope_files(scope)?;
        let mut out = HashMap::new();
        for key in keys {
            let path = files.dir.join(format!("{}.json", checked_key(key)?));
            // A file that does not parse is treated as absent: it is ours by key and is rewritten.
            let Ok(Some(pattern)) = read_json_opt::<Value>(&path) else { continue };
            let skills: Vec<String> = files
                .registry
                .get(key)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            out.insert(
                key.clone(),
                Existing { hash: content_hash(&pattern, &skills), has_embedding: files.embedded.contains(key) },
            );
        }
        Ok(out)
    }

    async fn write(&mut self, batch: &[Embedded]) -> Result<(), SinkError> {
        self.ensure_locked()?;
        let mut by_scope: IndexMap<&Scope, Vec<&Embedded>> = IndexMap::new();
        for e in batch {
            by_scope.entry(&e.record.scope).or_default().push(e);
        }
        for (scope, items) in by_scope {
            let files = self.scope_files(scope)?;
            let mut raws = Vec::with_capacity(items.len());
            let mut paths = Vec::with_capacity(items.len());
            for e in &items {
                let len = e.embedding.len();
                match files.dims {
                    Some(d) if d != len => {
                        return Err(SinkError::Config(format!(
                            "scope {scope} holds {d}-dimensional embeddings; refusing to add {len}-dimensional ones"
                        )));
                    }
                    _ => files.dims = Some(len),
                }
                paths.push(files.dir.join(format!("{}.json", checked_key(&e.record.key)?)));
                raws.push(serde_json::value::to_raw_value(&e.embedding).map_err(|err| SinkError::Io(err.to_string()))?);
            }
            // Embeddings, then the registry, then the patterns: see the module's invariants.
            files.log.append(items.iter().zip(&raws).map(|(e, raw)| (e.record.key.as_str(), &**raw)))?;
            let entries = items
                .iter()
                .map(|e| {
                    let r = &e.record;
                    let entry = LedgerEntry {
                        tenant: r.scope.tenant.clone(),
                        project: r.scope.project.clone(),
                        kind: r.kind,
                        hash: r.content_hash(),
                        skills: r.skills.clone(),
                        origin: r.origin.clone(),
                    };
                    serde_json::value::to_raw_value(&entry).map_err(|err| SinkError::Io(err.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            files.ledger.append(items.iter().zip(&entries).map(|(e, raw)| (e.record.key.as_str(), &**raw)))?;
            let mut registry_changed = false;
            for e in &items {
                files.embedded.insert(e.record.key.clone());
                let skills = Value::from(e.record.skills.clone());
                if e.record.skills.is_empty() {
                    registry_changed |= files.registry.shift_remove(&e.record.key).is_some();
                } else if files.registry.get(&e.record.key) != Some(&skills) {
                    files.registry.insert(e.record.key.clone(), skills);
                    registry_changed = true;
                }
            }
            if registry_changed {
                write_atomic(&files.dir.join("skills/_registry.json"), &to_json(&files.registry)?)?;
            }
            for (e, path) in items.iter().zip(&paths) {
                write_atomic(path, &to_json(&e.record.pattern)?)?;
            }
        }
        Ok(())
    }

    async fn scope_patterns(&mut self, scope: &Scope) -> Result<Vec<StoredPattern>, SinkError> {
        let dir = scope_dir(&self.root, scope).join("patterns");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            // Engramia skips files it cannot parse; so does the duplicate check.
            let Ok(Some(v)) = read_json_opt::<Value>(&path) else { continue };
            let Some(task) = v.get("task").and_then(Value::as_str) else { continue };
            out.push(StoredPattern {
                key: format!("patterns/{stem}"),
                task: task.to_string(),
                success_score: v.get("success_score").and_then(Value::as_f64).unwrap_or(0.0),
                origin: super::PairOrigin::of_pattern(&v),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn remove(&mut self, scope: &Scope, keys: &[String]) -> Result<(), SinkError> {
        self.ensure_locked()?;
        let files = self.scope_files(scope)?;
        let removed: HashSet<String> = keys.iter().cloned().collect();
        // Index first, then the files: a crash in between leaves a pattern without embedding,
        // which the next run's plan sees and repairs.
        files.merge(&removed)?;
        let mut registry_changed = false;
        for key in keys {
            files.embedded.remove(key);
            registry_changed |= files.registry.shift_remove(key).is_some();
        }
        if registry_changed {
            write_atomic(&files.dir.join("skills/_registry.json"), &to_json(&files.registry)?)?;
        }
        for key in keys {
            let path = files.dir.join(format!("{}.json", checked_key(key)?));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SinkError::Io(format!("removing {}: {e}", path.display()))),
            }
        }
        Ok(())
    }

    async fn previous_run(&mut self) -> Result<Option<PreviousRun>, SinkError> {
        let marker: Option<RunMarker> = read_json_opt(&self.root.join(RUN_MARKER)).unwrap_or(None);
        Ok(marker.filter(|m| m.status == "running").map(|m| PreviousRun {
            run_id: m.progress.run_id,
            batches: m.progress.batches,
            records: m.progress.records,
            last_thread: m.progress.last_thread,
        }))
    }

    async fn mark_progress(&mut self, progress: &RunProgress) -> Result<(), SinkError> {
        self.ensure_locked()?;
        // Everything of the batch is on disk (the embeddings in the log): the marker may say so.
        let marker = RunMarker { status: "running".into(), progress: progress.clone() };
        write_atomic(&self.root.join(RUN_MARKER), &to_json(&marker)?)
    }

    async fn settle(&mut self) -> Result<Vec<String>, SinkError> {
        for files in self.scopes.values_mut() {
            if files.has_logs() {
                files.merge(&HashSet::new())?;
            }
        }
        Ok(Vec::new())
    }

    async fn finish(&mut self, run: &RunInfo) -> Result<(), SinkError> {
        self.settle().await?;
        let marker_path = self.root.join(RUN_MARKER);
        if let Some(mut marker) = read_json_opt::<RunMarker>(&marker_path).unwrap_or(None) {
            marker.status = "completed".into();
            write_atomic(&marker_path, &to_json(&marker)?)?;
        }
        let meta_path = self.root.join("metadata/embedding_config.json");
        if run.wrote_anything && !meta_path.exists() {
            let meta = serde_json::json!({
                "provider": "OpenAIEmbeddings",
                "model": self.model,
                "created_at": crate::clock::now_iso8601(),
            });
            write_atomic(&meta_path, &to_json(&meta)?)?;
        }
        Ok(())
    }
}

/// Our keys are `patterns/<[0-9a-z_]>`; anything else must never become a path.
fn checked_key(key: &str) -> Result<&str, SinkError> {
    let ok = key
        .strip_prefix("patterns/")
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    if ok { Ok(key) } else { Err(SinkError::Io(format!("refusing to write the unsafe key {key:?}"))) }
}

/// `_embeddings.json` of the root scope and of every `<tenant>/<project>/` below it.
fn embedding_indexes(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root_index = root.join("_embeddings.json");
    if root_index.exists() {
        out.push(root_index);
    }
    let Ok(tenants) = std::fs::read_dir(root) else { return out };
    for tenant in tenants.flatten().filter(|e| e.path().is_dir()) {
        let Ok(projects) = std::fs::read_dir(tenant.path()) else { continue };
        for project in projects.flatten() {
            let index = project.path().join("_embeddings.json");
            if index.exists() {
                out.push(index);
            }
        }
    }
    out
}

fn probe_writable(dir: &Path) -> Result<(), SinkError> {
    tempfile::Builder::new()
        .prefix(".engram-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| SinkError::Io(format!("cannot write to {}: {e}; check its permissions and free space", dir.display())))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, SinkError> {
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| SinkError::Io(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, SinkError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SinkError::Io(format!("{}: not valid JSON ({e}); fix or move the file, then rerun", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SinkError::Io(format!("{}: {e}", path.display()))),
    }
}

fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, SinkError> {
    Ok(read_json_opt(path)?.unwrap_or_default())
}

/// Replaces `path` atomically (see `fs_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    crate::fs_atomic::write_atomic(path, bytes).map_err(SinkError::Io)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordKind};
    use serde_json::json;

    fn record(scope: &Scope, key: &str, task: &str, skills: &[&str]) -> Embedded {
        Embedded {
            record: Record {
                scope: scope.clone(),
                key: key.into(),
                kind: RecordKind::MessagePair,
                pattern: json!({"task": task, "design": {"code": "c"}, "success_score": 5.0, "reuse_count": 0, "timestamp": 1.0}),
                skills: skills.iter().map(|s| s.to_string()).collect(),
                classification: "internal".into(),
                origin: "openai-thread:thread_1".into(),
            },
            embedding: vec![0.6, 0.8],
        }
    }

    #[test]
    fn sanitises_like_engramia() {
        assert_eq!(sanitize_segment("Support Bot"), "Support_Bot");
        assert_eq!(sanitize_segment("../../etc"), "______etc");
        assert_eq!(sanitize_segment(""), "default");
        assert_eq!(sanitize_segment("Über-助手_2"), "Über-助手_2");
        assert_eq!(sanitize_segment("a/b\\c.d"), "a_b_c_d");
        assert_eq!(sanitize_segment("🙂"), "_");
    }

    #[test]
    fn iso_dates() {
        assert_eq!(crate::clock::iso8601(1_795_521_115), "2026-11-24T11:51:55Z");
    }

    #[tokio::test]
    async fn writes_layout_and_reads_back_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        // Something Engramia wrote itself stays untouched, byte for byte.
        let scope = Scope::new("acme", "Support Bot");
        let sdir = scope_dir(&root, &scope);
        std::fs::create_dir_all(&sdir).unwrap();
        std::fs::write(sdir.join("_embeddings.json"), r#"{"patterns/theirs_1": [0.123456789012345, 1e-7]}"#).unwrap();

        let mut sink = JsonDirSink::new(&root);
        let notes = sink.preflight(&Preflight { model: "m".into(), dimensions: Some(2) }).await.unwrap();
        assert!(notes.is_empty());
        let batch = vec![record(&scope, "patterns/aaaa_1_x", "t1", &["get_weather"]), record(&scope, "patterns/bbbb_2_y", "t2", &[])];
        sink.write(&batch).await.unwrap();
        sink.finish(&RunInfo { wrote_anything: true, ..Default::default() }).await.unwrap();

        assert!(sdir.join("patterns/aaaa_1_x.json").exists());
        let index = std::fs::read_to_string(sdir.join("_embeddings.json")).unwrap();
        assert!(index.contains("0.123456789012345"), "{index}");
        let registry: Value = serde_json::from_str(&std::fs::read_to_string(sdir.join("skills/_registry.json")).unwrap()).unwrap();
        assert_eq!(registry, json!({"patterns/aaaa_1_x": ["get_weather"]}));
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(root.join("metadata/embedding_config.json")).unwrap()).unwrap();
        assert_eq!(meta["model"], "m");
        // No temporary files are left behind.
        let leftovers: Vec<_> = walk(&root).into_iter().filter(|p| p.to_string_lossy().contains(".engram-")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // A fresh sink sees exactly what was written, with matching hashes.
        let mut again = JsonDirSink::new(&root);
        let keys = vec!["patterns/aaaa_1_x".to_string(), "patterns/bbbb_2_y".to_string(), "patterns/none_3_z".to_string()];
        let existing = again.existing(&scope, &keys).await.unwrap();
        assert_eq!(existing.len(), 2);
        assert_eq!(existing["patterns/aaaa_1_x"].hash, batch[0].record.content_hash());
        assert!(existing["patterns/aaaa_1_x"].has_embedding);
    }

    #[tokio::test]
    async fn preflight_refuses_other_dimensions_and_models() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = dir.path().join("acme/bot");
        std::fs::create_dir_all(&sdir).unwrap();
        std::fs::write(sdir.join("_embeddings.json"), r#"{"patterns/x_1": [0.1, 0.2, 0.3]}"#).unwrap();
        let mut sink = JsonDirSink::new(dir.path());
        let e = sink.preflight(&Preflight { model: "m".into(), dimensions: Some(1536) }).await.unwrap_err();
        assert!(matches!(e, SinkError::Config(ref m) if m.contains("3-dimensional") && m.contains("1536")), "{e}");

        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        std::fs::write(dir.path().join("metadata/embedding_config.json"), r#"{"model": "text-embedding-3-large"}"#).unwrap();
        let e = sink.preflight(&Preflight { model: "text-embedding-3-small".into(), dimensions: None }).await.unwrap_err();
        assert!(e.to_string().contains("text-embedding-3-large"), "{e}");
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(p).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
