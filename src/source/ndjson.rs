//! Source, `kind = "ndjson"`: the export format of Engramia's migration guide, one message per
//! line (`thread_id`, `assistant_id`, `message_id`, `role`, `text`, `created_at`), in one file or
//! several (a glob).
//!
//! Two passes, so that memory does not grow with the export: `open` reads every line once,
//! checks it, and keeps only where each thread's lines are (file, byte offset, length: 24 bytes
//! per message, plus each thread id once); `fetch_thread` then reads back just that thread's
//! lines. A thread's lines may be anywhere, in any order, interleaved with other threads and
//! spread over several files: its messages are sorted by `created_at`, stably, so messages of
//! the same second keep the order in which they appear (files in name order, then line order).
//!
//! Malformed lines are `ndjson_invalid_line` warnings naming `file:line` (at most
//! [`MAX_LINE_WARNINGS`] per file, then one summary); the rest of the file is migrated. A
//! message id seen twice in a thread (an export appended to after a restart) is read once.
//!
//! The export holds no assistant objects, only ids: `[scope.assistants]` names them, and a
//! `{assistant.name}` template with an id it does not name stops the run at start-up.

use super::{SourceError, ThreadFetch};
use crate::config::Config;
use crate::model::{Assistant, ContentPart, Message, Role, TextContent, Thread, ThreadBundle};
use crate::record::Warning;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Malformed-line warnings listed per file before the rest are summed up in one.
pub const MAX_LINE_WARNINGS: usize = 100;

/// Longest line read (a message of 8 MB is far beyond any model's output).
const MAX_LINE_BYTES: usize = 8 << 20;

pub struct NdjsonSource {
    index: Arc<Index>,
    label: String,
}

/// Where every thread's lines are.
#[derive(Debug, Default)]
struct Index {
    files: Vec<PathBuf>,
    threads: HashMap<String, Vec<LineRef>>,
    /// Assistant ids in order of first appearance.
    assistants: Vec<String>,
}

/// One line of one file.
#[derive(Debug, Clone, Copy)]
struct LineRef {
    file: u32,
    /// 1-based, for messages.
    line: u32,
    offset: u64,
    len: u32,
}

/// One line as the guide's `export_threads.py` writes it. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Line {
    thread_id: String,
    #[serde(default)]
    assistant_id: Option<String>,
    message_id: String,
    role: String,
    /// The message's text parts joined by a newline; required, but `null` is an empty message.
    #[serde(deserialize_with = "required_nullable")]
    text: Option<String>,
    created_at: Seconds,
}

/// A field that must be present but may be `null` (serde makes a plain `Option` optional).
fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// `created_at` in Unix seconds; a float (some exporters write one) is truncated.
#[derive(Debug, Clone, Copy)]
struct Seconds(i64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Number::deserialize(d)? {
            n if n.is_i64() => Ok(Seconds(n.as_i64().unwrap_or_default())),
            n => n
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| Seconds(f as i64))
                .ok_or_else(|| serde::de::Error::custom(format!("created_at {n} is not Unix seconds"))),
        }
    }
}

impl Line {
    /// The checks serde cannot express; `Err` says what is wrong.
    fn check(&self) -> Result<(), String> {
        if self.thread_id.trim().is_empty() {
            return Err("empty thread_id".into());
        }
        if self.message_id.trim().is_empty() {
            return Err("empty message_id".into());
        }
        Ok(())
    }

    fn role(&self) -> Role {
        match self.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => Role::Other,
        }
    }
}

impl NdjsonSource {
    /// Indexes the files `[source] path` names (first pass). Returns the thread ids in order
    /// of first appearance and the malformed-line warnings.
    pub fn open(config: &Config) -> Result<(NdjsonSource, Vec<String>, Vec<Warning>), String> {
        let pattern = config.source_path.as_deref().ok_or("[source] path is required for kind \"ndjson\"")?;
        let files = expand(pattern)?;
        let (index, order, warnings) = build_index(files)?;
        // Whitespace inside braces is allowed in templates: `{ assistant.name }`.
        let needs_name = config.project_template.as_str().replace(char::is_whitespace, "").contains("{assistant.name}");
        let missing: Vec<&str> = if needs_name && config.mapping.scope.default_project.is_none() {
            index.assistants.iter().filter(|id| !config.mapping.scope.assistants.contains_key(*id)).map(String::as_str).collect()
        } else {
            Vec::new()
        };
        if !missing.is_empty() {
            return Err(format!(
                "[scope] project = {:?} needs each assistant's name, and an NDJSON export holds only assistant ids; {} {} no name.\n  Name them in {}:\n    [scope.assistants]\n{}\n  or set [scope] default_project, or use {{assistant.id}}. Nothing was written.",
                config.project_template.as_str(),
                missing.len(),
                if missing.len() == 1 { "assistant has" } else { "assistants have" },
                config.mapping_path.display(),
                missing.iter().map(|id| format!("    {id:?} = \"project name\"")).collect::<Vec<_>>().join("\n")
            ));
        }
        let label = match index.files.as_slice() {
            [one] => format!("NDJSON export {}", one.display()),
            many => format!("NDJSON export {} ({} files)", pattern.display(), many.len()),
        };
        Ok((NdjsonSource { index: Arc::new(index), label }, order, warnings))
    }

    pub fn describe(&self) -> String {
        self.label.clone()
    }

    /// The assistants the export names, by id only (`[scope.assistants]` names them).
    pub fn assistants(&self) -> Vec<Assistant> {
        self.index.assistants.iter().map(|id| Assistant { id: id.clone(), ..Default::default() }).collect()
    }

    /// Reads one thread's lines back (second pass) and builds its bundle.
    pub async fn fetch_thread(&self, thread_id: &str) -> Result<ThreadFetch, SourceError> {
        let Some(refs) = self.index.threads.get(thread_id).cloned() else {
            return Ok(ThreadFetch::Skipped(Warning::new(
                "thread_not_found",
                thread_id,
                format!("{} has no message of thread {thread_id}", self.label),
            )));
        };
        let index = self.index.clone();
        let id = thread_id.to_string();
        let read = tokio::task::spawn_blocking(move || read_lines(&index, &refs)).await;
        let lines = match read {
            Ok(Ok(lines)) => lines,
            Ok(Err(e)) => {
                return Ok(ThreadFetch::Failed {
                    warning: Warning::new("thread_failed", thread_id, format!("reading thread {thread_id} back from the export: {e}")),
                    attempts: 1,
                });
            }
            Err(e) => {
                return Ok(ThreadFetch::Failed {
                    warning: Warning::new("thread_failed", thread_id, format!("reading thread {thread_id}: {e}")),
                    attempts: 1,
                });
            }
        };
        let (bundle, warnings) = bundle(&id, lines);
        Ok(ThreadFetch::Found { bundle, warnings })
    }
}

/// The files a path or glob names, in name order. A path that is not a glob must exist.
fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    let is_glob = text.contains(['*', '?', '[']);
    if !is_glob {
        if pattern.is_dir() {
            return Err(format!(
                "[source] path {} is a directory; for kind \"ndjson\" give a file or a glob such as \"{}/*.ndjson\" (kind \"export-dir\" reads export directories)",
                pattern.display(),
                pattern.display()
            ));
        }
        if !pattern.is_file() {
            return Err(format!(
                "[source] path {}: no such file (relative paths are relative to the mapping file)",
                pattern.display()
            ));
        }
        return Ok(vec![pattern.to_path_buf()]);
    }
    let paths = glob::glob(&text).map_err(|e| format!("[source] path {text:?} is not a valid glob: {e}"))?;
    let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("[source] path {text:?} matches no file (relative paths are relative to the mapping file)"));
    }
    Ok(files)
}

/// First pass over every file: checks each line, records where each thread's lines are.
fn build_index(files: Vec<PathBuf>) -> Result<(Index, Vec<String>, Vec<Warning>), String> {
    let mut index = Index::default();
    let mut order = Vec::new();
    let mut warnings = Vec::new();
    let mut known_assistants = HashSet::new();
    for (k, path) in files.iter().enumerate() {
        let file = std::fs::File::open(path).map_err(|e| format!("[source] path: reading {}: {e}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        let (mut offset, mut line_no, mut bad) = (0u64, 0u32, 0usize);
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| format!("reading {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let start = offset;
            offset += n as u64;
            let raw = trim_line(&buf);
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let place = format!("{name}:{line_no}");
            let parsed = if raw.len() > MAX_LINE_BYTES {
                Err(format!("the line is longer than {MAX_LINE_BYTES} bytes"))
            } else {
                parse_line(raw)
            };
            match parsed {
                Ok(line) => {
                    let refs = index.threads.entry(line.thread_id.clone()).or_insert_with(|| {
                        order.push(line.thread_id.clone());
                        Vec::new()
                    });
                    refs.push(LineRef { file: k as u32, line: line_no, offset: start, len: n as u32 });
                    if let Some(a) = line.assistant_id.filter(|a| !a.trim().is_empty())
                        && known_assistants.insert(a.clone())
                    {
                        index.assistants.push(a);
                    }
                }
                Err(reason) => {
                    bad += 1;
                    if bad <= MAX_LINE_WARNINGS {
                        warnings.push(Warning::new("ndjson_invalid_line", place, format!("{reason}; line skipped")));
                    }
                }
            }
        }
        if bad > MAX_LINE_WARNINGS {
            warnings.push(Warning::new(
                "ndjson_invalid_line",
                name.clone(),
                format!("{} more malformed lines in {name} were skipped (the first {MAX_LINE_WARNINGS} are listed)", bad - MAX_LINE_WARNINGS),
            ));
        }
    }
    index.files = files;
    Ok((index, order, warnings))
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut s = buf;
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    // A UTF-8 byte-order mark (Windows editors write one at the start of a file).
    s.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(s)
}

fn parse_line(raw: &[u8]) -> Result<Line, String> {
    let line: Line = serde_json::from_slice(raw).map_err(|e| {
        let m = e.to_string();
        // serde_json appends " at line 1 column N": the line is ours to name.
        let m = m.split(" at line ").next().unwrap_or(&m).to_string();
        format!("not a message line of Engramia's NDJSON export: {m}")
    })?;
    line.check().map_err(|m| format!("not a message line of Engramia's NDJSON export: {m}"))?;
    Ok(line)
}

/// Second pass for one thread: its lines, in the order they appear.
fn read_lines(index: &Index, refs: &[LineRef]) -> std::io::Result<Vec<(LineRef, Result<Line, String>)>> {
    let mut open: HashMap<u32, std::fs::File> = HashMap::new();
    let mut out = Vec::with_capacity(refs.len());
    let mut buf = Vec::new();
    for r in refs {
        let file = match open.entry(r.file) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(std::fs::File::open(&index.files[r.file as usize])?),
        };
        file.seek(SeekFrom::Start(r.offset))?;
        buf.resize(r.len as usize, 0);
        file.read_exact(&mut buf)?;
        out.push((*r, parse_line(trim_line(&buf))));
    }
    Ok(out)
}

/// Builds a thread's bundle from its lines (pure; the lines in order of appearance).
fn bundle(thread_id: &str, lines: Vec<(LineRef, Result<Line, String>)>) -> (ThreadBundle, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut seen = HashSet::new();
    let mut kept: Vec<Line> = Vec::with_capacity(lines.len());
    for (r, line) in lines {
        match line {
            Ok(l) if l.thread_id == thread_id => {
                if seen.insert(l.message_id.clone()) {
                    kept.push(l);
                } else {
                    warnings.push(Warning::new(
                        "ndjson_duplicate_message",
                        l.message_id.clone(),
                        format!("message {} of thread {thread_id} appears again at line {}; the first one was read", l.message_id, r.line),
                    ));
                }
            }
            // The file changed since it was indexed.
            _ => warnings.push(Warning::new(
                "ndjson_invalid_line",
                format!("line {}", r.line),
                format!("a line of thread {thread_id} changed while engram was reading the export; skipped"),
            )),
        }
    }
    // Stable: messages of the same second keep their order of appearance.
    kept.sort_by_key(|l| l.created_at.0);
    let thread_assistant = kept.iter().find_map(|l| l.assistant_id.clone().filter(|a| !a.trim().is_empty()));
    let created_at = kept.first().map_or(0, |l| l.created_at.0);
    let messages = kept
        .into_iter()
        .map(|l| {
            let role = l.role();
            // Only answers carry an assistant (as the API has it); a line without one takes
            // the thread's.
            let assistant_id = (role == Role::Assistant)
                .then(|| l.assistant_id.clone().filter(|a| !a.trim().is_empty()).or_else(|| thread_assistant.clone()))
                .flatten();
            Message {
                id: l.message_id,
                created_at: l.created_at.0,
                thread_id: thread_id.to_string(),
                role,
                content: vec![ContentPart {
                    kind: "text".into(),
                    text: Some(TextContent { value: l.text.unwrap_or_default(), annotations: Vec::new() }),
                    image_file: None,
                }],
                assistant_id,
                run_id: None,
                attachments: Vec::new(),
                metadata: BTreeMap::new(),
                status: Some("completed".into()),
                incomplete_details: None,
            }
        })
        .collect();
    let thread = Thread { id: thread_id.to_string(), created_at, metadata: BTreeMap::new(), tool_resources: None };
    (ThreadBundle { thread, messages, runs: Vec::new(), steps: Vec::new() }, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn fetch(index: &Index, id: &str) -> (ThreadBundle, Vec<Warning>) {
        let refs = index.threads[id].clone();
        bundle(id, read_lines(index, &refs).unwrap())
    }

    #[test]
    fn lines_are_indexed_sorted_and_malformed_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.ndjson",
            concat!(
                r#"{"thread_id": "thread_1", "assistant_id": "asst_x", "message_id": "msg_2", "role": "assistant", "text": "A1", "created_at": 20}"#,
                "\n",
                r#"{"thread_id": "thread_2", "assistant_id": "asst_y", "message_id": "msg_9", "role": "user", "text": "Q", "created_at": 5}"#,
                "\n\n",
                "{not json\n",
                r#"{"thread_id": "thread_1", "assistant_id": "asst_x", "message_id": "msg_1", "role": "user", "text": "Q1", "created_at": 10}"#,
                "\r\n",
                r#"{"thread_id": "thread_1", "message_id": "msg_3", "role": "user", "created_at": 30}"#,
                "\n",
            ),
        );
        let b = write(
            dir.path(),
            "b.ndjson",
            concat!(
                r#"{"thread_id": "thread_1", "assistant_id": null, "message_id": "msg_4", "role": "assistant", "text": "A2", "created_at": 30.7, "extra": 1}"#,
                "\n",
                r#"{"thread_id": "thread_1", "assistant_id": "asst_x", "message_id": "msg_1", "role": "user", "text": "Q1 again", "created_at": 10}"#,
            ),
        );
        let (index, order, warnings) = build_index(vec![a, b]).unwrap();
        assert_eq!(order, ["thread_1", "thread_2"]);
        assert_eq!(index.assistants, ["asst_x", "asst_y"]);
        let places: Vec<(&str, &str)> = warnings.iter().map(|w| (w.kind.as_str(), w.id.as_str())).collect();
        assert_eq!(places, [("ndjson_invalid_line", "a.ndjson:4"), ("ndjson_invalid_line", "a.ndjson:6")]);
        assert!(warnings[1].message.contains("missing field `text`"), "{}", warnings[1].message);

        let (b, w) = fetch(&index, "thread_1");
        let ids: Vec<&str> = b.messages.iter().map(|m| m.id.as_str()).collect();
        // Sorted by time across files; the 30 s tie keeps appearance order (msg_3's line is
        // malformed, so msg_4 stands alone there).
        assert_eq!(ids, ["msg_1", "msg_2", "msg_4"]);
        assert_eq!(b.messages[0].assistant_id, None, "questions carry no assistant");
        assert_eq!(b.messages[2].assistant_id.as_deref(), Some("asst_x"), "an answer without one takes the thread's");
        assert_eq!(b.messages[2].created_at, 30);
        assert_eq!(b.thread.created_at, 10);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, "ndjson_duplicate_message");
    }

    #[test]
    fn ties_keep_the_order_of_appearance() {
        let dir = tempfile::tempdir().unwrap();
        let line = |id: &str, role: &str, at: i64| {
            format!(r#"{{"thread_id":"thread_t","assistant_id":"asst_1","message_id":"{id}","role":"{role}","text":"{id}","created_at":{at}}}"#)
        };
        let text = [line("m_c", "assistant", 7), line("m_a", "user", 5), line("m_b", "user", 7), line("m_d", "assistant", 7)].join("\n");
        let f = write(dir.path(), "t.ndjson", &text);
        let (index, _, _) = build_index(vec![f]).unwrap();
        let (b, _) = fetch(&index, "thread_t");
        let ids: Vec<&str> = b.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m_a", "m_c", "m_b", "m_d"]);
    }

    #[test]
    fn warnings_per_file_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "bad.ndjson", &"[]\n".repeat(MAX_LINE_WARNINGS + 5));
        let (_, order, warnings) = build_index(vec![f]).unwrap();
        assert!(order.is_empty());
        assert_eq!(warnings.len(), MAX_LINE_WARNINGS + 1);
        assert!(warnings.last().unwrap().message.starts_with("5 more malformed lines"), "{:?}", warnings.last());
    }

    #[test]
    fn globs_expand_in_name_order_and_misses_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "2.ndjson", "");
        write(dir.path(), "1.ndjson", "");
        write(dir.path(), "x.txt", "");
        let files = expand(&dir.path().join("*.ndjson")).unwrap();
        assert_eq!(files, [dir.path().join("1.ndjson"), dir.path().join("2.ndjson")]);
        assert!(expand(&dir.path().join("*.jsonl")).unwrap_err().contains("matches no file"));
        assert!(expand(&dir.path().join("none.ndjson")).unwrap_err().contains("no such file"));
        assert!(expand(dir.path()).unwrap_err().contains("is a directory"));
    }
}
