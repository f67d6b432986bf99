//! `engram verify` on Engramia's JSON storage directory: read-only, file by file, as Engramia
//! 0.6.6 reads it (`providers/json_storage.py`, `reuse/matcher.py`).
//!
//! - A pattern file that `json.load` cannot parse loads as None and is skipped by recall; one
//!   that parses but fails `Pattern.model_validate` is skipped as corrupt (see `pattern`).
//! - Search is `search_similar`: brute-force cosine over the scope's `_embeddings.json`, keys
//!   under `patterns/` only, zero vectors skipped, similarity clipped to 0..=1, sorted by
//!   similarity with ties in index order (Python's stable sort); then the matcher drops the
//!   keys whose pattern does not load. One vector of another size makes numpy raise for every
//!   query, and Engramia falls back to keyword search for the whole scope.
//! - Entries only in engram's logs (`*.wal`, left by a killed run) are invisible to Engramia.

use super::pattern::invalid_reason;
use super::report::Fault;
use super::{Found, Inspected, Ranked};
use crate::record::{Scope, content_hash};
use crate::sink::json_dir::embeddings_file::{self, Log, Step};
use crate::sink::json_dir::{LEDGER, LEDGER_LOG, LedgerEntry};
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub struct JsonStore {
    root: PathBuf,
    /// Every scope directory below the root (and the root), with engram's ledger, if any.
    dirs: Vec<Dir>,
}

struct Dir {
    path: PathBuf,
    /// engram's ledger of this directory, per scope (more than one: scopes whose names
    /// sanitise to the same directory, which then share their patterns).
    ledger: BTreeMap<Scope, IndexMap<String, LedgerEntry>>,
    /// The ledger has entries only in its log (a run killed before merging it).
    ledger_log: bool,
}

impl JsonStore {
    pub fn open(root: &Path) -> Result<JsonStore, String> {
        if !root.is_dir() {
            return Err(format!(
                "{} is not a directory: point --target (or [target] url) at the JSON directory engram migrate wrote",
                root.display()
            ));
        }
        let mut paths = vec![root.to_path_buf()];
        for tenant in read_dirs(root) {
            if tenant.file_name().is_some_and(|n| n == "metadata" || n == "patterns" || n == "skills") {
                continue;
            }
            paths.extend(read_dirs(&tenant));
        }
        let mut dirs = Vec::new();
        for path in paths {
            let mut entries: IndexMap<String, LedgerEntry> = read_json(&path.join(LEDGER))
                .map_err(|e| format!("{e}; engram's ledger cannot be read, so verify cannot know what was migrated"))?
                .unwrap_or_default();
            let log = Log::named(&path, LEDGER_LOG);
            let ledger_log = log.exists();
            let mut bad = None;
            log.for_each(|key, raw| match serde_json::from_str::<LedgerEntry>(raw.get()) {
                Ok(e) => {
                    entries.insert(key, e);
                }
                Err(e) => bad = Some(e.to_string()),
            })
            .map_err(|e| e.to_string())?;
            if let Some(e) = bad {
                return Err(format!("{}: {e}", path.join(LEDGER_LOG).display()));
            }
            let mut ledger: BTreeMap<Scope, IndexMap<String, LedgerEntry>> = BTreeMap::new();
            for (key, e) in entries {
                ledger.entry(Scope::new(e.tenant.clone(), e.project.clone())).or_default().insert(key, e);
            }
            dirs.push(Dir { path, ledger, ledger_log });
        }
        if dirs.iter().all(|d| d.ledger.is_empty()) {
            return Err(format!(
                "{} holds no engram ledger ({LEDGER}): nothing says what engram migrated there.\n  verify checks what `engram migrate` recorded in its ledger; a directory written by an engram without one (or not by engram) cannot be verified: migrate into a new directory with this engram, then verify that.",
                root.display()
            ));
        }
        Ok(JsonStore { root: root.to_path_buf(), dirs })
    }

    pub fn describe(&self) -> String {
        format!("JSON directory {}", self.root.display())
    }

    /// The model `metadata/embedding_config.json` records.
    pub fn model(&self) -> Result<Option<String>, String> {
        let meta: Option<Value> = read_json(&self.root.join("metadata/embedding_config.json"))?;
        Ok(meta.map(|m| m.get("model").and_then(Value::as_str).unwrap_or("").to_string()))
    }

    pub fn scopes(&self) -> Vec<Scope> {
        let mut out: Vec<Scope> = self.dirs.iter().flat_map(|d| d.ledger.keys().cloned()).collect();
        out.sort();
        out
    }

    fn dir_of(&self, scope: &Scope) -> Option<&Dir> {
        self.dirs.iter().find(|d| d.ledger.contains_key(scope))
    }

    /// Store-wide faults: scopes sharing a directory, records found outside their scope.
    pub fn isolation(&self) -> Result<Vec<Fault>, String> {
        let mut faults = Vec::new();
        let mut home: HashMap<&str, (&Scope, &Path)> = HashMap::new();
        for d in &self.dirs {
            if d.ledger.len() > 1 {
                let scopes: Vec<String> = d.ledger.keys().map(ToString::to_string).collect();
                faults.push(Fault::store(
                    "shared_directory",
                    format!(
                        "scopes {} all map to {} (Engramia keeps letters, digits, - and _ of each name): each is served the others' patterns; give them project names that differ in those characters",
                        scopes.join(", "),
                        d.path.display(),
                    ),
                ));
            }
            for (scope, entries) in &d.ledger {
                for key in entries.keys() {
                    home.insert(key.as_str(), (scope, d.path.as_path()));
                }
            }
        }
        for d in &self.dirs {
            let mut seen: Vec<(String, &str)> = pattern_files(&d.path).into_iter().map(|k| (k, "its patterns/")).collect();
            embeddings_file::for_each(&d.path.join(embeddings_file::INDEX), |key, _| {
                seen.push((key, "its _embeddings.json"));
                Step::Continue
            })
            .map_err(|e| e.to_string())?;
            for (key, what) in seen {
                let Some((scope, path)) = home.get(key.as_str()) else { continue };
                if *path == d.path.as_path() {
                    continue;
                }
                let here: Vec<String> = d.ledger.keys().map(ToString::to_string).collect();
                let here = if here.is_empty() { d.path.display().to_string() } else { format!("{} ({})", here.join(", "), d.path.display()) };
                faults.push(Fault::record(
                    "misplaced",
                    scope,
                    &key,
                    format!("{key} was migrated into {scope}, but {here} has it in {what}: recall in that scope returns another scope's record"),
                ));
            }
        }
        Ok(faults)
    }

    /// Presence and validity of every record the ledger lists for `scope`.
    pub fn inspect(&self, scope: &Scope, dims: Option<usize>) -> Result<Inspected, String> {
        let dir = self.dir_of(scope).ok_or_else(|| format!("no ledger for scope {scope}"))?;
        let ledger = &dir.ledger[scope];
        let mut faults = Vec::new();
        if dir.ledger_log {
            faults.push(Fault::store(
                "unmerged_log",
                format!("{}: engram's ledger log was not merged (a run was killed); rerun engram migrate to finish it", dir.path.join(LEDGER_LOG).display()),
            ));
        }
        let log = Log::new(&dir.path);
        if log.exists() {
            let mut n = 0usize;
            log.for_each(|_, _| n += 1).map_err(|e| e.to_string())?;
            faults.push(Fault::store(
                "unmerged_log",
                format!(
                    "{}: {n} embedding(s) in engram's log, which Engramia does not read (a run was killed before merging it); rerun engram migrate to merge it",
                    dir.path.join(embeddings_file::LOG).display()
                ),
            ));
        }
        let mut lens: HashMap<String, usize> = HashMap::new();
        embeddings_file::for_each(&dir.path.join(embeddings_file::INDEX), |key, raw| {
            lens.insert(key, embeddings_file::vector_len(raw.get()).unwrap_or(0));
            Step::Continue
        })
        .map_err(|e| format!("{e} (Engramia starts such a scope with an empty index: nothing is found by vector search)"))?;
        // The size a vector must have: the model's, else the one most vectors have.
        let dims = dims.or_else(|| {
            let mut counts: HashMap<usize, usize> = HashMap::new();
            lens.values().for_each(|l| *counts.entry(*l).or_default() += 1);
            counts.into_iter().max_by_key(|(l, n)| (*n, *l)).map(|(l, _)| l)
        });
        let registry: IndexMap<String, Value> = read_json(&dir.path.join("skills/_registry.json"))?.unwrap_or_default();

        // Every pattern Engramia can load here (also those engram did not write): recall skips the rest.
        let mut tasks: HashMap<String, String> = HashMap::new();
        for key in pattern_files(&dir.path) {
            if let Ok(Some(p)) = read_json::<Value>(&key_path(&dir.path, &key))
                && invalid_reason(&p).is_none()
            {
                tasks.insert(key, p["task"].as_str().unwrap_or_default().to_string());
            }
        }

        let mut found = Vec::with_capacity(ledger.len());
        for (key, entry) in ledger {
            let fault = |kind: &str, msg: String| Fault::record(kind, scope, key, format!("{scope} {key}: {msg}"));
            let path = key_path(&dir.path, key);
            let mut f = Found { key: key.clone(), kind: entry.kind, pattern: None, searchable: false, changed: false };
            match read_json::<Value>(&path) {
                Ok(None) => faults.push(fault("missing_pattern", format!("no pattern file {}", path.display()))),
                Err(e) => faults.push(fault("unreadable_pattern", format!("{e}; Engramia skips it as corrupted"))),
                Ok(Some(p)) => match invalid_reason(&p) {
                    Some(why) => faults.push(fault("invalid_pattern", format!("{why}; Engramia's recall skips it as a corrupted pattern"))),
                    None => {
                        let skills: Vec<String> = registry.get(key).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
                        f.changed = content_hash(&p, &skills) != entry.hash;
                        if let Some(missing) = entry.skills.iter().find(|s| !skills.contains(s)) {
                            faults.push(fault("missing_skills", format!("skill {missing:?} is not in skills/_registry.json; find_by_skills will not return it")));
                        }
                        f.pattern = Some(p);
                    }
                },
            }
            match (lens.get(key), dims) {
                (None, _) => faults.push(fault("missing_embedding", "no embedding in _embeddings.json: invisible to Engramia's vector search".into())),
                (Some(&l), Some(d)) if l != d => faults.push(fault(
                    "wrong_dimension",
                    format!("its embedding has {l} dimensions, the scope's model gives {d}: numpy fails on it, and Engramia's recall falls back to keyword search for every query in this scope"),
                )),
                _ => f.searchable = f.pattern.is_some(),
            }
            found.push(f);
        }
        Ok(Inspected { found, faults, tasks })
    }

    /// Engramia's ranking for each query: the top `k` keys whose patterns load. `Err` when
    /// Engramia's vector search fails in this scope (then it answers by keyword search).
    pub fn search(&self, scope: &Scope, queries: &[Vec<f32>], k: usize, loadable: &HashSet<&str>) -> Result<Result<Vec<Ranked>, String>, String> {
        let dir = self.dir_of(scope).ok_or_else(|| format!("no ledger for scope {scope}"))?;
        let norms: Vec<f64> = queries.iter().map(|q| norm(q)).collect();
        // Per query: (similarity, position in the index, key), best first, at most k.
        let mut tops: Vec<Vec<(f32, usize, String)>> = vec![Vec::new(); queries.len()];
        let mut failure: Option<String> = None;
        let mut position = 0usize;
        embeddings_file::for_each(&dir.path.join(embeddings_file::INDEX), |key, raw| {
            let vector: Vec<f32> = match serde_json::from_str(raw.get()) {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(format!("the embedding of {key} is not a list of numbers ({e})"));
                    return Step::Stop;
                }
            };
            position += 1;
            if let Some(q) = queries.iter().find(|q| q.len() != vector.len()) {
                failure = Some(format!(
                    "the index holds a {}-dimensional vector under {key} and the query has {}: Engramia's vector search raises, and recall falls back to keyword search",
                    vector.len(),
                    q.len()
                ));
                return Step::Stop;
            }
            if !key.starts_with("patterns/") {
                return Step::Continue;
            }
            let vn = norm(&vector);
            if vn == 0.0 || !loadable.contains(key.as_str()) {
                return Step::Continue;
            }
            for ((q, qn), top) in queries.iter().zip(&norms).zip(tops.iter_mut()) {
                if *qn == 0.0 {
                    continue;
                }
                let dot: f64 = q.iter().zip(&vector).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                let sim = ((dot / (qn * vn)) as f32).clamp(0.0, 1.0);
                // Stable: an equal similarity ranks after the ones already there.
                let at = top.partition_point(|(s, _, _)| *s >= sim);
                if at < k {
                    top.insert(at, (sim, position, key.clone()));
                    top.truncate(k);
                }
            }
            Step::Continue
        })
        .map_err(|e| e.to_string())?;
        if let Some(why) = failure {
            return Ok(Err(why));
        }
        Ok(Ok(tops.into_iter().map(|t| Ranked { keys: t.into_iter().map(|(_, _, k)| k).collect() }).collect()))
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt()
}

fn key_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// Keys of the pattern files in a scope directory (`patterns/<id>`), sorted.
fn pattern_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join("patterns"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            (!name.starts_with('_')).then(|| format!("patterns/{stem}"))
        })
        .collect();
    out.sort();
    out
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    out.sort();
    out
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: not valid JSON ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
