//! A scope's `_embeddings.json` (Engramia's `{key: [floats]}` index), handled without ever
//! holding it in memory: a large scope's index runs to gigabytes of JSON.
//!
//! - Read: entries are streamed (`for_each`), values kept as raw JSON text, so what Engramia
//!   wrote is copied back byte for byte.
//! - Write: new vectors go first to an append-only log beside the index (`_embeddings.wal`,
//!   one `[key, vector]` JSON line each, fsynced per batch); `merge` streams the old index and
//!   the log into a new index (later entries win, in the position of the first), replaces the
//!   index atomically, then deletes the log. Engramia reads only `*.json` files and skips names
//!   starting with `_`, so the log is invisible to it.
//! - A log left by a killed run is merged by the next run before it reads the scope; a torn
//!   last line (the kill came mid-append, before that batch's pattern files) is dropped.

use super::SinkError;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

pub const INDEX: &str = "_embeddings.json";
pub const LOG: &str = "_embeddings.wal";

/// Whether `for_each` goes on.
pub enum Step {
    Continue,
    Stop,
}

const STOPPED: &str = "engram: stopped early";

/// Calls `f` with every entry of the JSON object in `path`, in file order. A missing file has
/// no entries.
pub fn for_each(path: &Path, f: impl FnMut(String, Box<RawValue>) -> Step) -> Result<(), SinkError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SinkError::Io(format!("{}: {e}", path.display()))),
    };
    struct Entries<F>(F);
    impl<'de, F: FnMut(String, Box<RawValue>) -> Step> Visitor<'de> for Entries<F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object of embeddings")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                if let Step::Stop = (self.0)(key, value) {
                    return Err(de::Error::custom(STOPPED));
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, file));
    match serde::Deserializer::deserialize_map(&mut de, Entries(f)) {
        Ok(()) => de.end().map_err(|e| not_json(path, e)),
        Err(e) if e.to_string().starts_with(STOPPED) => Ok(()),
        Err(e) => Err(not_json(path, e)),
    }
}

fn not_json(path: &Path, e: serde_json::Error) -> SinkError {
    SinkError::Io(format!("{}: not valid JSON ({e}); fix or move the file, then rerun", path.display()))
}

/// The length of the first vector in `path`, if it has one.
pub fn first_vector_len(path: &Path) -> Result<Option<usize>, SinkError> {
    let mut len = None;
    for_each(path, |_, raw| {
        len = vector_len(raw.get());
        Step::Stop
    })?;
    Ok(len)
}

pub fn vector_len(raw: &str) -> Option<usize> {
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(raw).ok().map(|v| v.len())
}

/// The append-only log of one scope.
pub struct Log {
    path: PathBuf,
}

impl Log {
    pub fn new(dir: &Path) -> Log {
        Log::named(dir, LOG)
    }

    /// The log `name` in `dir` (the records ledger has its own beside the embeddings').
    pub fn named(dir: &Path, name: &str) -> Log {
        Log { path: dir.join(name) }
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Appends one batch and makes it durable.
    pub fn append<'a>(&self, entries: impl IntoIterator<Item = (&'a str, &'a RawValue)>) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError::Io(format!("writing {}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for (key, raw) in entries {
            let key = serde_json::to_string(key).map_err(|e| SinkError::Io(e.to_string()))?;
            write!(w, "[{key},{}]\n", raw.get()).map_err(io)?;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)
    }

    /// The logged entries, in order (later ones win); a line that does not parse ends the log
    /// (a torn append of a killed run).
    pub fn for_each(&self, mut f: impl FnMut(String, Box<RawValue>)) -> Result<(), SinkError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SinkError::Io(format!("{}: {e}", self.path.display()))),
        };
        for line in BufReader::with_capacity(1 << 20, file).split(b'\n') {
            let line = line.map_err(|e| SinkError::Io(format!("{}: {e}", self.path.display())))?;
            match serde_json::from_slice::<(String, Box<RawValue>)>(&line) {
                Ok((key, raw)) => f(key, raw),
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Keys the log holds.
    #[cfg(test)]
    fn keys(&self) -> Result<Vec<String>, SinkError> {
        let mut keys = Vec::new();
        self.for_each(|k, _| keys.push(k))?;
        Ok(keys)
    }

    fn remove(&self) -> Result<(), SinkError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SinkError::Io(format!("removing {}: {e}", self.path.display()))),
        }
    }
}

/// Writes `dir/_embeddings.json` anew from the old index and the log, leaving out `removed`,
/// replaces it atomically and deletes the log. Old entries keep their place (one the log
/// replaces takes its last logged value there); new ones follow in the order they were
/// logged. The format is serde_json's pretty map, as Engramia's `json.dump(indent=2)` writes
/// one; values are copied as they were written. Memory: the log's keys, and the values of the
/// old entries it replaces.
pub fn merge(dir: &Path, removed: &HashSet<String>) -> Result<(), SinkError> {
    merge_named(dir, INDEX, LOG, removed)
}

/// `merge` for another object file and its log (the records ledger).
pub fn merge_named(dir: &Path, index: &str, log: &str, removed: &HashSet<String>) -> Result<(), SinkError> {
    let log = Log::named(dir, log);
    if !log.exists() && removed.is_empty() {
        return Ok(());
    }
    let index = dir.join(index);
    // The log's keys, each with the position of its last entry.
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut n = 0usize;
    log.for_each(|key, _| {
        last.insert(key, n);
        n += 1;
    })?;
    // Old keys the log replaces, and their new values.
    let mut replaced: HashSet<String> = HashSet::new();
    if !last.is_empty() {
        for_each(&index, |key, _| {
            if last.contains_key(&key) {
                replaced.insert(key);
            }
            Step::Continue
        })?;
    }
    let mut replacement: HashMap<String, Box<RawValue>> = HashMap::new();
    if !replaced.is_empty() {
        let mut i = 0usize;
        log.for_each(|key, raw| {
            if last.get(&key) == Some(&i) && replaced.contains(&key) {
                replacement.insert(key, raw);
            }
            i += 1;
        })?;
    }

    let io = |e: std::io::Error| SinkError::Io(format!("writing {}: {e}", index.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = tempfile::Builder::new().prefix(".engram-").suffix(".tmp").tempfile_in(dir).map_err(io)?;
    let mut out = Entries { w: BufWriter::with_capacity(1 << 20, tmp), first: true, error: None };
    for_each(&index, |key, raw| {
        if !removed.contains(&key) {
            let value = replacement.remove(&key).unwrap_or(raw);
            out.entry(&key, value.get());
        }
        if out.error.is_some() { Step::Stop } else { Step::Continue }
    })?;
    let mut i = 0usize;
    log.for_each(|key, raw| {
        if last.get(&key) == Some(&i) && !replaced.contains(&key) && !removed.contains(&key) {
            out.entry(&key, raw.get());
        }
        i += 1;
    })?;
    if let Some(e) = out.error.take() {
        return Err(io(e));
    }
    let Entries { mut w, first, .. } = out;
    w.write_all(if first { b"{}\n" } else { b"\n}\n" }).map_err(io)?;
    let tmp = w.into_inner().map_err(|e| io(e.into_error()))?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(&index).map_err(|e| io(e.error))?;
    log.remove()
}

/// The pretty map's entries, written one by one; the first error is kept.
struct Entries {
    w: BufWriter<tempfile::NamedTempFile>,
    first: bool,
    error: Option<std::io::Error>,
}

impl Entries {
    fn entry(&mut self, key: &str, raw: &str) {
        if self.error.is_some() {
            return;
        }
        let result = (|| {
            self.w.write_all(if self.first { b"{\n  " } else { b",\n  " })?;
            serde_json::to_writer(&mut self.w, key).map_err(std::io::Error::other)?;
            self.w.write_all(b": ")?;
            self.w.write_all(raw.as_bytes())
        })();
        self.first = false;
        self.error = result.err();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: &str) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn entries(path: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for_each(path, |k, v| {
            out.push((k, v.get().to_string()));
            Step::Continue
        })
        .unwrap();
        out
    }

    #[test]
    fn merge_keeps_old_entries_in_place_and_appends_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(INDEX), "{\"a\": [1.0, 2.0], \"b\": [0.123456789012345, 1e-7], \"c\": [5]}").unwrap();
        let log = Log::new(dir.path());
        let (x1, b2, x2, d) = (raw("[9]"), raw("[7,7]"), raw("[10]"), raw("[4]"));
        log.append([("x", &*x1), ("b", &*b2)]).unwrap();
        log.append([("x", &*x2), ("d", &*d)]).unwrap();
        assert_eq!(log.keys().unwrap(), ["x", "b", "x", "d"]);
        merge(dir.path(), &HashSet::from(["c".to_string()])).unwrap();
        assert!(!log.exists());
        assert_eq!(
            entries(&dir.path().join(INDEX)),
            [("a", "[1.0, 2.0]"), ("b", "[7,7]"), ("x", "[10]"), ("d", "[4]")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let text = std::fs::read_to_string(dir.path().join(INDEX)).unwrap();
        assert!(text.starts_with("{\n  \"a\": [1.0, 2.0],\n  \"b\""), "{text}");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["x"], serde_json::json!([10]));
        assert_eq!(first_vector_len(&dir.path().join(INDEX)).unwrap(), Some(2));
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_empty_results_are_an_empty_object() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::new(dir.path());
        let v = raw("[1]");
        log.append([("k", &*v)]).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join(LOG)).unwrap();
        f.write_all(b"[\"torn\",[0.1,0.").unwrap();
        assert_eq!(log.keys().unwrap(), ["k"]);
        merge(dir.path(), &HashSet::from(["k".to_string()])).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(INDEX)).unwrap(), "{}\n");
        assert_eq!(first_vector_len(&dir.path().join(INDEX)).unwrap(), None);
        assert_eq!(first_vector_len(&dir.path().join("missing.json")).unwrap(), None);
    }
}
