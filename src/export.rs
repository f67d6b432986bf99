//! `engram export`: everything the HTTP source can read, written to a directory that a later
//! `engram migrate` reads offline (`[source] kind = "export-dir"`).
//!
//! The layout is `assistants-thread-export/v1` (see `source::export_dir`): `assistants.json`,
//! `threads/<id>.json` with the raw thread, messages (ascending), runs with their steps, the
//! objects of the files it refers to and its `errors[]`, and `manifest.json` (written last, so
//! a manifest means a finished export) with `threads_failed`. engram adds, for the files stage
//! and for readers after the shutdown:
//!
//! - `manifest.thread_ids`: the threads in the order they were asked for;
//! - `files/<id>.json`: the object of every referenced file (threads, assistants' and threads'
//!   `tool_resources`, vector stores), and `files/<id>.content`, its bytes, where the API lets
//!   them be downloaded (not for `purpose=assistants`) and they fit `[files] max_bytes`;
//! - `vector_stores/<id>.json`: `{"vector_store", "files": [vector store file], "content":
//!   {file id: parsed-text page}}` for every store the assistants and threads searched.
//!
//! Every file is written atomically (temporary file, fsync, rename); `--out` must be new or
//! empty. A thread that cannot be read is recorded (its file has `"thread": null`, the manifest
//! lists it in `threads_failed`) and the export goes on; a rejected key stops it.

use crate::sync::lock;
use crate::cli::ExportArgs;
use crate::config::{Config, SourceKind};
use crate::model::{ToolResources, VectorStoreFile};
use crate::progress::Progress;
use crate::record::Warning;
use crate::app::{Env, RunError};
use crate::source::export_dir::{ExportError, FailedThread, MANIFEST_SCHEMA, THREAD_SCHEMA, ThreadFile};
use crate::source::openai::OpenAiSource;
use crate::http::transport::Transport;
use crate::files::refs::referenced_files;
use crate::source::{Source, SourceError};
use futures::StreamExt;
use indexmap::{IndexMap, IndexSet};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What an export did, for the summary (and `--report`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub out: String,
    pub source: String,
    pub assistants: usize,
    pub threads_requested: usize,
    pub threads_exported: usize,
    pub threads_failed: usize,
    pub files: usize,
    pub file_contents: usize,
    pub vector_stores: usize,
    pub warnings: Vec<Warning>,
    /// Ctrl-C stopped the export: the manifest lists the threads written before it, and no
    /// files were exported.
    pub interrupted: bool,
}

impl ExportReport {
    pub fn render_text(&self) -> String {
        let headline = if self.interrupted {
            "interrupted by Ctrl-C (the manifest lists the threads written so far; files were not exported; export again into a new directory for the rest)"
        } else {
            "done"
        };
        let mut out = format!(
            "engram export: {headline}\n  source   {}\n  out      {}\n  assistants {}\n  threads  {} requested, {} exported, {} failed\n  files    {} objects, {} with content; {} vector stores\n",
            self.source,
            self.out,
            self.assistants,
            self.threads_requested,
            self.threads_exported,
            self.threads_failed,
            self.files,
            self.file_contents,
            self.vector_stores
        );
        if !self.warnings.is_empty() {
            out.push_str(&format!("  {} warning{}:\n", self.warnings.len(), if self.warnings.len() == 1 { "" } else { "s" }));
            for w in &self.warnings {
                out.push_str(&format!("    {} {}: {}\n", w.kind, w.id, w.message));
            }
        }
        out
    }
}

/// Runs `engram export`.
pub async fn export(args: &ExportArgs, env: &Env) -> Result<ExportReport, RunError> {
    let config = Config::load(&args.config, env.base_url.clone()).map_err(|e| RunError::Config(e.0))?;
    if config.source_kind != SourceKind::OpenAi {
        return Err(RunError::Config(format!(
            "engram export reads the Assistants API: [source] kind must be \"openai\" (it is {:?}); an export is already offline",
            config.source_kind.as_str()
        )));
    }
    check_out_dir(&args.out)?;
    let api = Arc::new(OpenAiSource::new(Arc::new(live_transport(&config, env)?), String::new(), true));
    let opened = Source::open(&config, api.clone()).map_err(RunError::Config)?;
    std::fs::create_dir_all(args.out.join("threads")).map_err(|e| RunError::Failed(format!("creating {}: {e}", args.out.display())))?;
    let mut ex = Exporter { api, out: args.out.clone(), report: ExportReport::default(), file_cache: Mutex::default(), max_bytes: config.mapping.files.max_bytes };
    ex.report.out = args.out.display().to_string();
    ex.report.source = config.base_url.clone();
    ex.report.warnings = opened.warnings;

    let assistants = match ex.api.list_all::<Value>("/assistants", "assistants").await {
        Err(SourceError::Http { request, status: 404 | 410, .. }) => return Err(SourceError::AssistantsShutDown { request }.into()),
        other => other?,
    };
    ex.report.warnings.extend(assistants.1);
    let assistants = assistants.0;
    ex.report.assistants = assistants.len();
    ex.write("assistants.json", &assistants)?;
    let mut used = Uses::default();
    for a in &assistants {
        used.resources(a.get("tool_resources"));
    }

    let ids = opened.thread_ids;
    ex.report.threads_requested = ids.len();
    let progress = Progress::threads(ids.len(), !args.quiet);
    let mut failed = Vec::new();
    let mut thread_warnings = Vec::new();
    let mut exported_ids = Vec::new();
    {
        let ex_ref = &ex;
        let mut threads = futures::stream::iter(ids.iter().cloned())
            .map(|id| async move { ex_ref.thread(&id).await })
            .buffered(config.mapping.source.concurrency.width());
        // Ctrl-C: stop taking threads; the manifest then lists the threads written so far.
        while let Some(Some(result)) = env.interrupt.unless_set(threads.next()).await {
            let (file, warnings) = result?;
            used.resources(file.thread.as_ref().and_then(|t| t.get("tool_resources")));
            used.files.extend(file.files.keys().cloned());
            if file.thread.is_none() {
                failed.push(FailedThread { thread_id: file.thread_id.clone(), error: file.errors.first().map(|e| e.error.clone()).unwrap_or_default() });
            }
            ex.write(&format!("threads/{}.json", file.thread_id), &file)?;
            exported_ids.push(file.thread_id.clone());
            thread_warnings.extend(warnings);
            progress.thread_done(0);
        }
    }
    progress.finish();
    ex.report.warnings.extend(thread_warnings);
    ex.report.interrupted = env.interrupt.is_set();
    ex.report.threads_failed = failed.len();
    ex.report.threads_exported = exported_ids.len() - failed.len();
    if config.mapping.files.enabled && !ex.report.interrupted {
        ex.files(used).await?;
    }
    let manifest = json!({
        "export_schema": MANIFEST_SCHEMA,
        "script_version": format!("engram {}", env!("CARGO_PKG_VERSION")),
        "exported_at": crate::clock::now_iso8601(),
        "endpoint": "openai",
        "base_url": config.base_url,
        "assistants_count": ex.report.assistants,
        "threads_requested": ex.report.threads_requested,
        "threads_exported": ex.report.threads_exported,
        "threads_failed": failed,
        "notes": [
            "The Assistants API cannot enumerate threads; only the thread ids supplied were exported.",
            "files/<id>.content holds a file's bytes only where the API allowed the download (never for purpose=assistants); vector_stores/<id>.json holds the parsed text OpenAI kept.",
        ],
        "thread_ids": exported_ids,
        "interrupted": ex.report.interrupted,
        "threads_not_reached": ids.len() - exported_ids.len(),
        "files_count": ex.report.files,
        "vector_stores_count": ex.report.vector_stores,
    });
    ex.write("manifest.json", &manifest)?;
    Ok(ex.report)
}

/// `--out` must not exist, or be an empty directory: an export is never mixed with another.
fn check_out_dir(out: &Path) -> Result<(), RunError> {
    match std::fs::read_dir(out).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(RunError::Config(format!(
            "--out {}: the directory is not empty; remove it or pick a new one (exports are never mixed)",
            out.display()
        ))),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RunError::Config(format!("--out {}: {e}", out.display()))),
    }
}

fn live_transport(config: &Config, env: &Env) -> Result<Transport, RunError> {
    let live = crate::app::live_client(config, env, "OPENAI_API_KEY is not set: engram reads the API key from that variable only (never from mapping.toml)")?;
    Ok(Transport::live(live))
}

/// File and vector-store ids referred to anywhere, in order of first use.
#[derive(Default)]
struct Uses {
    files: IndexSet<String>,
    stores: IndexSet<String>,
}

impl Uses {
    fn resources(&mut self, v: Option<&Value>) {
        let Some(r) = v.and_then(|v| serde_json::from_value::<ToolResources>(v.clone()).ok()) else { return };
        if let Some(ci) = r.code_interpreter {
            self.files.extend(ci.file_ids);
        }
        if let Some(fs) = r.file_search {
            self.stores.extend(fs.vector_store_ids);
        }
    }
}

struct Exporter {
    api: Arc<OpenAiSource>,
    out: PathBuf,
    report: ExportReport,
    /// `GET /files/{id}` answers (None: 404/403), shared by the threads that cite a file.
    file_cache: Mutex<IndexMap<String, Option<Value>>>,
    max_bytes: u64,
}

impl Exporter {
    fn write(&self, rel: &str, v: &impl Serialize) -> Result<(), RunError> {
        let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| RunError::Failed(e.to_string()))?;
        bytes.push(b'\n');
        self.write_bytes(rel, &bytes)
    }

    fn write_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), RunError> {
        crate::fs_atomic::write_atomic(&self.out.join(rel), bytes).map_err(RunError::Failed)
    }

    /// One thread with everything it refers to, as a thread file; never fails for the thread's
    /// own sake (that is recorded in the file), only for what stops the export.
    async fn thread(&self, id: &str) -> Result<(ThreadFile, Vec<Warning>), RunError> {
        let mut file = ThreadFile { export_schema: THREAD_SCHEMA.into(), thread_id: id.into(), exported_at: Some(crate::clock::now_iso8601()), ..Default::default() };
        let mut warnings = Vec::new();
        match self.api.get_json::<Value>(&format!("/threads/{id}")).await {
            Ok(t) => file.thread = Some(t),
            Err(e) => {
                let (code, detail) = e.per_item().map(|f| (f.code, f.message))?;
                let code = if code == "not_found_or_expired" { "not_found_or_deleted" } else { code };
                file.errors.push(ExportError { object: "thread".into(), id: id.into(), error: code.into(), detail: detail.clone() });
                warnings.push(Warning::new("thread_not_exported", id, format!("{code}: {detail}")));
                return Ok((file, warnings));
            }
        }
        let lists = async {
            let (messages, w1) = self.api.list_all::<Value>(&format!("/threads/{id}/messages"), id).await?;
            let (runs, w2) = self.api.list_all::<Value>(&format!("/threads/{id}/runs"), id).await?;
            Ok::<_, SourceError>((messages, runs, [w1, w2].concat()))
        };
        let (messages, mut runs, w) = match lists.await {
            Ok(l) => l,
            Err(e) => {
                // Half a thread would migrate as a different thread: record it as failed.
                let (code, detail) = e.per_item().map(|f| (f.code, f.message))?;
                file.thread = None;
                file.errors.push(ExportError { object: "thread".into(), id: id.into(), error: code.into(), detail: detail.clone() });
                warnings.push(Warning::new("thread_not_exported", id, format!("{code}: {detail}")));
                return Ok((file, warnings));
            }
        };
        warnings.extend(w);
        for run in &mut runs {
            let run_id = run.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let steps = match self.api.list_all::<Value>(&format!("/threads/{id}/runs/{run_id}/steps"), &run_id).await {
                Ok((steps, w)) => {
                    warnings.extend(w);
                    steps
                }
                Err(e) => {
                    let (code, detail) = e.per_item().map(|f| (f.code, f.message))?;
                    file.errors.push(ExportError { object: "run_steps".into(), id: run_id.clone(), error: code.into(), detail });
                    Vec::new()
                }
            };
            if let Some(o) = run.as_object_mut() {
                o.insert("steps".into(), Value::Array(steps));
            }
        }
        for fid in referenced_files(&messages, &runs) {
            match self.file_object(&fid).await? {
                Ok(f) => {
                    file.files.insert(fid, f);
                }
                Err((code, detail)) => file.errors.push(ExportError { object: "file".into(), id: fid, error: code.into(), detail }),
            }
        }
        file.messages = messages;
        file.runs = runs;
        Ok((file, warnings))
    }

    /// `GET /files/{id}`, once per file; the inner `Err` is an `errors[]` code and detail.
    async fn file_object(&self, id: &str) -> Result<Result<Value, (&'static str, String)>, RunError> {
        if let Some(cached) = lock(&self.file_cache).get(id).cloned() {
            return Ok(cached.ok_or(("not_found_or_expired", format!("GET /files/{id} did not answer it"))));
        }
        let answer = match self.api.get_json::<Value>(&format!("/files/{id}")).await {
            Ok(f) => Ok(f),
            Err(e) => Err(e.per_item().map(|f| (f.code, f.message))?),
        };
        lock(&self.file_cache).insert(id.to_string(), answer.as_ref().ok().cloned());
        Ok(answer)
    }

    /// The files stage's inputs: vector stores with their files and parsed text, every
    /// referenced file's object, and the bytes the API lets us download.
    async fn files(&mut self, mut used: Uses) -> Result<(), RunError> {
        for vs in used.stores.clone() {
            let store = match self.api.get_json::<Value>(&format!("/vector_stores/{vs}")).await {
                Ok(s) => s,
                Err(e) => {
                    let (code, detail) = e.per_item().map(|f| (f.code, f.message))?;
                    self.report.warnings.push(Warning::new("vector_store_not_exported", vs.clone(), format!("{code}: {detail}")));
                    continue;
                }
            };
            let (files, w) = match self.api.list_all::<Value>(&format!("/vector_stores/{vs}/files"), &vs).await {
                Ok(l) => l,
                Err(e) => (Vec::new(), vec![Warning::new("vector_store_not_exported", vs.clone(), e.per_item().map(|f| (f.code, f.message))?.1)]),
            };
            self.report.warnings.extend(w);
            let mut content = serde_json::Map::new();
            for f in &files {
                let Ok(vf) = serde_json::from_value::<VectorStoreFile>(f.clone()) else { continue };
                used.files.insert(vf.id.clone());
                if vf.status != "completed" {
                    continue;
                }
                match self.api.get_json::<Value>(&format!("/vector_stores/{vs}/files/{}/content", vf.id)).await {
                    Ok(page) => {
                        content.insert(vf.id.clone(), page);
                    }
                    Err(e) => {
                        let (code, detail) = e.per_item().map(|f| (f.code, f.message))?;
                        self.report.warnings.push(Warning::new("file_content_not_exported", vf.id.clone(), format!("vector store {vs}: {code}: {detail}")));
                    }
                }
            }
            self.write(&format!("vector_stores/{vs}.json"), &json!({"vector_store": store, "files": files, "content": content}))?;
            self.report.vector_stores += 1;
        }
        for id in used.files {
            if !crate::model::is_safe_id(&id) {
                continue;
            }
            let object = match self.file_object(&id).await? {
                Ok(f) => f,
                Err((code, detail)) => {
                    self.report.warnings.push(Warning::new("file_not_exported", id.clone(), format!("{code}: {detail}")));
                    continue;
                }
            };
            self.write(&format!("files/{id}.json"), &object)?;
            self.report.files += 1;
            let purpose = object.get("purpose").and_then(Value::as_str).unwrap_or_default();
            let size = object.get("bytes").and_then(Value::as_u64).unwrap_or(0);
            // OpenAI never serves these bytes; asking would only add a 400 per file.
            if matches!(purpose, "assistants" | "user_data") || size > self.max_bytes {
                continue;
            }
            match self.api.get(&format!("/files/{id}/content")).await {
                Ok(resp) if resp.body.len() as u64 <= self.max_bytes => {
                    self.write_bytes(&format!("files/{id}.content"), &resp.body)?;
                    self.report.file_contents += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    let (code, detail) = e.per_item().map(|f| (f.code, f.message))?;
                    self.report.warnings.push(Warning::new("file_content_not_exported", id.clone(), format!("{code}: {detail}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_or_new_out_dirs() {
        let dir = tempfile::tempdir().unwrap();
        check_out_dir(&dir.path().join("new")).unwrap();
        check_out_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        assert!(matches!(check_out_dir(dir.path()), Err(RunError::Config(m)) if m.contains("not empty")));
    }
}
