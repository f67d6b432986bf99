//! Source, `kind = "export-dir"`: a directory in the `assistants-thread-export/v1` layout, as
//! `redwoodworksco/assistants-api-export` writes it before the shutdown and `engram export`
//! writes it (with a few additions, below). Read offline, with the fidelity of the HTTP source:
//! the files hold the API's raw objects.
//!
//! ```text
//! manifest.json          {"export_schema": "assistants-export-manifest/v1", ...,
//!                         "threads_failed": [{"thread_id", "error"}]}
//! assistants.json        [assistant, ...]              (absent with the exporter's --no-assistants)
//! threads/<id>.json      {"export_schema": "assistants-thread-export/v1", "thread_id",
//!                         "thread": {...} | null, "messages": [...] (ascending),
//!                         "runs": [{...run, "steps": [...]}], "files": {id: file}, "errors": [...]}
//! ```
//!
//! `engram export` adds `manifest.thread_ids` (the order threads were asked for, which is the
//! order they are migrated in; without it threads are read in file-name order),
//! `files/<id>.json` and `files/<id>.content` (every referenced file's object, and its bytes
//! where the API served them) and `vector_stores/<id>.json` (`{"vector_store", "files",
//! "content": {file id: parsed-text page}}`).
//!
//! The files stage reads files through the API client; for an export it gets one whose
//! transport answers `GET /files/...` and `GET /vector_stores/...` from these files
//! ([`ExportAnswers`]), offline. What the export does not hold (an exporter that kept only
//! file metadata) answers 404, and the files stage reports the file as unavailable.
//!
//! A thread the exporter could not read (its file has `"thread": null`, or the manifest lists it
//! in `threads_failed`) is skipped with a warning, as the HTTP source skips a 404; each entry of
//! a thread's `errors[]` (a file that was gone, run steps that had aged out) is an
//! `export_error` warning.

use crate::sync::lock;
use super::openai::OpenAiSource;
use crate::http::transport::{ApiRequest, ApiResponse, Method, Offline, Transport};
use super::{SourceError, ThreadFetch, is_prefixed_id};
use crate::config::Config;
use crate::model::{Assistant, FileObject, Message, Run, RunStep, Thread, ThreadBundle};
use crate::record::Warning;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const THREAD_SCHEMA: &str = "assistants-thread-export/v1";
pub const MANIFEST_SCHEMA: &str = "assistants-export-manifest/v1";

/// `threads/<id>.json`. Objects stay raw JSON here: they are typed when a bundle is built, and
/// `engram export` writes them exactly as the API sent them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThreadFile {
    #[serde(default)]
    pub export_schema: String,
    #[serde(default)]
    pub thread_id: String,
    #[serde(default)]
    pub exported_at: Option<String>,
    /// Null when the thread could not be read (then `errors[0]` says why).
    #[serde(default)]
    pub thread: Option<Value>,
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Runs, each with its run steps under `"steps"`.
    #[serde(default)]
    pub runs: Vec<Value>,
    /// File id -> `GET /files/{id}` object, for every file the thread refers to.
    #[serde(default)]
    pub files: indexmap::IndexMap<String, Value>,
    #[serde(default)]
    pub errors: Vec<ExportError>,
}

/// One entry of a thread file's `errors[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExportError {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub detail: String,
}

/// One entry of the manifest's `threads_failed`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FailedThread {
    #[serde(default)]
    pub thread_id: String,
    #[serde(default)]
    pub error: String,
}

/// The parts of `manifest.json` engram reads (the rest is kept by whoever reads it next).
#[derive(Debug, Default, Deserialize)]
struct ManifestView {
    #[serde(default)]
    export_schema: String,
    #[serde(default)]
    threads_failed: Vec<FailedThread>,
    #[serde(default)]
    thread_ids: Option<Vec<String>>,
}

pub struct ExportDirSource {
    dir: PathBuf,
    /// Thread id -> the exporter's error, from `threads_failed`.
    failed: HashMap<String, String>,
    read_run_steps: bool,
    /// File objects seen in thread files so far (small: metadata only); `files/` has the rest.
    files: Arc<Mutex<HashMap<String, Value>>>,
}

impl ExportDirSource {
    /// Reads the manifest and lists the threads. Returns the thread ids in migration order.
    pub fn open(config: &Config) -> Result<(ExportDirSource, Vec<String>, Vec<Warning>), String> {
        let dir = config.source_path.clone().ok_or("[source] path is required for kind \"export-dir\"")?;
        if !dir.is_dir() {
            return Err(format!(
                "[source] path {}: not a directory; kind \"export-dir\" reads an export directory (manifest.json, assistants.json, threads/)",
                dir.display()
            ));
        }
        let mut warnings = Vec::new();
        let manifest: ManifestView = match std::fs::read(dir.join("manifest.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: not an export manifest: {e}", dir.join("manifest.json").display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                warnings.push(Warning::new(
                    "export_incomplete",
                    dir.display().to_string(),
                    "the export has no manifest.json (the exporter writes it last: did it finish?); reading the thread files that are there",
                ));
                ManifestView::default()
            }
            Err(e) => return Err(format!("reading {}: {e}", dir.join("manifest.json").display())),
        };
        if !manifest.export_schema.is_empty() && manifest.export_schema != MANIFEST_SCHEMA {
            warnings.push(Warning::new(
                "export_schema",
                "manifest.json",
                format!("the manifest says {:?}; engram reads {MANIFEST_SCHEMA}, and reads this one as such", manifest.export_schema),
            ));
        }
        let listed = list_thread_files(&dir.join("threads"))?;
        let mut ids: Vec<String> = match manifest.thread_ids {
            Some(ids) => {
                let named: std::collections::HashSet<&String> = ids.iter().collect();
                let extra: Vec<String> = listed.iter().filter(|id| !named.contains(id)).cloned().collect();
                for id in &extra {
                    warnings.push(Warning::new(
                        "export_unlisted_thread",
                        id.clone(),
                        format!("threads/{id}.json is in the export but not in manifest.json's thread_ids; read after the listed ones"),
                    ));
                }
                ids.into_iter().chain(extra).collect()
            }
            None => listed,
        };
        ids.extend(manifest.threads_failed.iter().map(|f| f.thread_id.clone()));
        let mut seen = std::collections::HashSet::new();
        let mut thread_ids = Vec::new();
        for id in ids {
            if !is_prefixed_id(&id, "thread") {
                warnings.push(Warning::new("invalid_thread_id", id.clone(), format!("{id:?} in the export is not a thread id; skipped")));
            } else if seen.insert(id.clone()) {
                thread_ids.push(id);
            }
        }
        let failed = manifest.threads_failed.into_iter().map(|f| (f.thread_id, f.error)).collect();
        let source = ExportDirSource { dir, failed, read_run_steps: config.mapping.skills.from_run_steps, files: Arc::default() };
        Ok((source, thread_ids, warnings))
    }

    pub fn describe(&self) -> String {
        format!("export directory {}", self.dir.display())
    }

    /// An API client for the files stage that reads files and vector stores from the export.
    pub fn files_api(&self, read_run_steps: bool) -> Arc<OpenAiSource> {
        let answers = ExportAnswers { dir: self.dir.clone(), files: self.files.clone() };
        Arc::new(OpenAiSource::new(Arc::new(Transport::offline(Box::new(answers))), String::new(), read_run_steps))
    }

    /// `assistants.json`: a JSON array of assistant objects (a list page is read too).
    pub async fn assistants(&self) -> Result<(Vec<Assistant>, Vec<Warning>), SourceError> {
        let path = self.dir.join("assistants.json");
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let w = Warning::new(
                    "export_no_assistants",
                    "assistants.json",
                    "the export has no assistants.json (exported with --no-assistants?): assistants are known by id only; name them in [scope.assistants]",
                );
                return Ok((Vec::new(), vec![w]));
            }
            Err(e) => return Err(input_error(&path, e)),
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| input_error(&path, e))?;
        let list = match v {
            Value::Object(mut page) => page.remove("data").unwrap_or(Value::Array(vec![])),
            other => other,
        };
        let assistants: Vec<Assistant> = serde_json::from_value(list).map_err(|e| input_error(&path, e))?;
        Ok((assistants, Vec::new()))
    }

    pub async fn fetch_thread(&self, thread_id: &str) -> Result<ThreadFetch, SourceError> {
        let path = self.dir.join("threads").join(format!("{thread_id}.json"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let why = match self.failed.get(thread_id) {
                    Some(error) => format!("the exporter could not read it ({error})"),
                    None => format!("the export has no threads/{thread_id}.json"),
                };
                return Ok(ThreadFetch::Skipped(Warning::new(failed_kind(self.failed.get(thread_id)), thread_id, why)));
            }
            Err(e) => return Ok(unreadable(thread_id, &path, &e.to_string())),
        };
        let file: ThreadFile = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => return Ok(unreadable(thread_id, &path, &e.to_string())),
        };
        let mut warnings = Vec::new();
        if !file.export_schema.is_empty() && file.export_schema != THREAD_SCHEMA {
            warnings.push(Warning::new(
                "export_schema",
                thread_id,
                format!("threads/{thread_id}.json says {:?}; read as {THREAD_SCHEMA}", file.export_schema),
            ));
        }
        if file.thread.as_ref().is_none_or(Value::is_null) {
            let first = file.errors.first().cloned().unwrap_or_default();
            let error = self.failed.get(thread_id).cloned().unwrap_or(first.error);
            let detail = if first.detail.is_empty() { String::new() } else { format!(": {}", first.detail) };
            return Ok(ThreadFetch::Skipped(Warning::new(
                failed_kind(Some(&error)),
                thread_id,
                format!("the exporter could not read this thread ({error}{detail}); it was deleted, expired, or belonged to another organization or project"),
            )));
        }
        for e in &file.errors {
            warnings.push(Warning::new(
                "export_error",
                if e.id.is_empty() { thread_id.to_string() } else { e.id.clone() },
                format!("thread {thread_id}: the exporter recorded {} {}: {}{}", e.object, e.id, e.error, if e.detail.is_empty() { String::new() } else { format!(" ({})", e.detail) }),
            ));
        }
        {
            let mut files = lock(&self.files);
            for (id, v) in file.files.iter().filter(|(_, v)| v.is_object()) {
                files.insert(id.clone(), v.clone());
            }
        }
        match to_bundle(file, self.read_run_steps) {
            Ok(bundle) => Ok(ThreadFetch::Found { bundle, warnings }),
            Err(e) => Ok(unreadable(thread_id, &path, &e)),
        }
    }

    /// A file object from `files/<id>.json`, else from the thread files read so far.
    pub async fn file(&self, id: &str) -> Option<FileObject> {
        let v = file_object(&self.dir, &self.files, id)?;
        serde_json::from_value(v).ok()
    }
}

fn file_object(dir: &Path, seen: &Mutex<HashMap<String, Value>>, id: &str) -> Option<Value> {
    if !crate::model::is_safe_id(id) {
        return None;
    }
    if let Ok(bytes) = std::fs::read(dir.join("files").join(format!("{id}.json")))
        && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
    {
        return Some(v);
    }
    lock(seen).get(id).cloned()
}

/// The export's files and vector stores, served as the API serves them (see the module
/// header). Reads are small and local, so they are done in place.
pub struct ExportAnswers {
    dir: PathBuf,
    files: Arc<Mutex<HashMap<String, Value>>>,
}

impl Offline for ExportAnswers {
    fn answer(&self, req: &ApiRequest) -> ApiResponse {
        let path = req.path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if req.method != Method::Get || !segments.iter().skip(1).step_by(2).all(|id| crate::model::is_safe_id(id)) {
            return not_found(&format!("{} is not in the export", req.describe()));
        }
        let store = |vs: &str| -> Option<Value> { serde_json::from_slice(&std::fs::read(self.dir.join("vector_stores").join(format!("{vs}.json"))).ok()?).ok() };
        let answer = match segments.as_slice() {
            ["files", id] => file_object(&self.dir, &self.files, id).map(|f| json_body(&f)),
            ["files", id, "content"] => match std::fs::read(self.dir.join("files").join(format!("{id}.content"))) {
                Ok(b) => Some(ok(b.into())),
                // What the API itself refuses, as it refuses it.
                Err(_) => file_object(&self.dir, &self.files, id)
                    .and_then(|f| f["purpose"].as_str().filter(|p| matches!(*p, "assistants" | "user_data")).map(str::to_string))
                    .map(|p| error(400, &format!("Not allowed to download files of purpose: {p}"))),
            },
            ["vector_stores", vs] => store(vs).map(|s| json_body(&s["vector_store"])),
            ["vector_stores", vs, "files"] => store(vs).map(|s| {
                let data = s["files"].as_array().cloned().unwrap_or_default();
                json_body(&serde_json::json!({"object": "list", "data": data, "has_more": false}))
            }),
            ["vector_stores", vs, "files", id] => store(vs).and_then(|s| {
                let files = s["files"].as_array().cloned().unwrap_or_default();
                files.into_iter().find(|f| f["id"] == *id).map(|f| json_body(&f))
            }),
            ["vector_stores", vs, "files", id, "content"] => store(vs).and_then(|s| s["content"].get(*id).map(json_body)),
            _ => None,
        };
        answer.unwrap_or_else(|| {
            not_found(&format!("{} is not in the export (engram export writes files/ and vector_stores/; other exporters keep file metadata only)", req.describe()))
        })
    }
}

fn ok(body: bytes::Bytes) -> ApiResponse {
    ApiResponse { status: 200, headers: Vec::new(), body }
}

fn json_body(v: &Value) -> ApiResponse {
    ok(serde_json::to_vec(v).unwrap_or_default().into())
}

fn not_found(message: &str) -> ApiResponse {
    error(404, message)
}

fn error(status: u16, message: &str) -> ApiResponse {
    let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    ApiResponse { status, headers: Vec::new(), body: serde_json::to_vec(&body).unwrap_or_default().into() }
}

/// The bundle of a thread file: typed objects, run steps flattened out of their runs.
pub fn to_bundle(file: ThreadFile, read_run_steps: bool) -> Result<ThreadBundle, String> {
    let typed = |what: &str, v: Value| -> Result<Value, String> { if v.is_object() { Ok(v) } else { Err(format!("a {what} is not a JSON object")) } };
    let thread: Thread = serde_json::from_value(file.thread.unwrap_or_default()).map_err(|e| format!("thread: {e}"))?;
    let mut messages = Vec::with_capacity(file.messages.len());
    for m in file.messages {
        messages.push(serde_json::from_value::<Message>(typed("message", m)?).map_err(|e| format!("message: {e}"))?);
    }
    let mut runs = Vec::with_capacity(file.runs.len());
    let mut steps = Vec::new();
    for r in file.runs {
        let mut r = typed("run", r)?;
        let run_steps = r.as_object_mut().and_then(|o| o.shift_remove("steps")).unwrap_or(Value::Null);
        let run: Run = serde_json::from_value(r).map_err(|e| format!("run: {e}"))?;
        if read_run_steps && let Value::Array(list) = run_steps {
            for s in list {
                let mut step: RunStep = serde_json::from_value(typed("run step", s)?).map_err(|e| format!("run step: {e}"))?;
                if step.run_id.is_empty() {
                    step.run_id = run.id.clone();
                }
                steps.push(step);
            }
        }
        runs.push(run);
    }
    Ok(ThreadBundle { thread, messages, runs, steps })
}

/// `<id>` of every `threads/<id>.json`, in name order.
fn list_thread_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{}: no threads/ directory; is [source] path an assistants-thread-export/v1 directory?", dir.display()));
        }
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// `thread_not_found` for what the exporter met as a 404 (as the HTTP source reports it).
fn failed_kind(error: Option<&String>) -> &'static str {
    match error.map(String::as_str) {
        Some(e) if e.contains("not_found") => "thread_not_found",
        Some(e) if e.contains("forbidden") => "thread_forbidden",
        _ => "thread_not_exported",
    }
}

fn unreadable(thread_id: &str, path: &Path, why: &str) -> ThreadFetch {
    ThreadFetch::Skipped(Warning::new(
        "export_unreadable",
        thread_id,
        format!("{} is not a readable {THREAD_SCHEMA} file ({why}); thread skipped", path.display()),
    ))
}

fn input_error(path: &Path, e: impl std::fmt::Display) -> SourceError {
    SourceError::Decode { request: path.display().to_string(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_carry_their_steps_and_steps_can_be_left_out() {
        let file: ThreadFile = serde_json::from_value(json!({
            "export_schema": THREAD_SCHEMA, "thread_id": "thread_1",
            "thread": {"id": "thread_1", "object": "thread", "created_at": 1, "metadata": {}},
            "messages": [{"id": "msg_1", "created_at": 2, "role": "user", "content": []}],
            "runs": [{"id": "run_1", "created_at": 3, "status": "completed", "tools": [],
                      "steps": [{"id": "step_1", "created_at": 4, "type": "tool_calls",
                                 "step_details": {"type": "tool_calls", "tool_calls": [
                                     {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}],
            "files": {}, "errors": []
        }))
        .unwrap();
        let b = to_bundle(file.clone(), true).unwrap();
        assert_eq!(b.runs[0].id, "run_1");
        assert_eq!(b.steps.len(), 1);
        assert_eq!(b.steps[0].run_id, "run_1", "a step without run_id belongs to the run it is listed under");
        assert!(to_bundle(file, false).unwrap().steps.is_empty());
    }

    #[test]
    fn failed_threads_are_named_like_the_http_source() {
        assert_eq!(failed_kind(Some(&"not_found_or_deleted".to_string())), "thread_not_found");
        assert_eq!(failed_kind(None), "thread_not_exported");
    }
}
