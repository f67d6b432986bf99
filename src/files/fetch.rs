//! Fetching files: the documents the account's assistants searched or used, and their text.
//!
//! Content comes from the first of these that has it:
//! 1. for a file in a vector store, `GET /vector_stores/{vs}/files/{id}/content` (the parsed
//!    text; the only route OpenAI still serves for `purpose=assistants` files);
//! 2. the raw bytes, `GET /files/{id}/content` (allowed for e.g. `assistants_output`, `vision`);
//! 3. the user's own copy in `[files] local_dir`, named by file id (`file-abc`, `file-abc.pdf`)
//!    or by the original filename (when no other referenced file has the same name).
//!
//! A file none of them provides is a `file_unavailable` warning; one the API no longer knows
//! (404) is `file_missing`; a vector-store file whose ingestion failed is `file_failed` with its
//! `last_error`; a file over `[files] max_bytes` is `file_too_large` (checked against the
//! File's `bytes` before downloading and against what arrived). Files are fetched one at a
//! time per worker and dropped once chunked, so memory holds a handful of files at most.


use super::refs::FileRefs;

use crate::sync::lock;
use crate::source::SourceError;
use crate::source::openai::OpenAiSource;
use crate::extract::{self, ExtractError, Extracted, Format, isolate::Isolation};
use crate::map::chunk::FileDoc;
use crate::model::{FileObject, VectorStoreFile};
use crate::record::{Scope, Warning};
use futures::StreamExt;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Counts for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    /// Distinct files referenced (directly or through a vector store).
    pub referenced: usize,
    /// Files whose text was extracted and chunked.
    pub extracted: usize,
    /// Files skipped with a warning.
    pub skipped: usize,
}

/// One file to migrate: where it is used and, if it is in a vector store, which one.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    pub id: String,
    pub scopes: Vec<Scope>,
    pub store: Option<StoreEntry>,
}

/// The file as a vector store lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreEntry {
    pub vector_store_id: String,
    pub status: String,
    pub last_error: Option<Value>,
}

/// A file's text, ready to chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub doc: FileDoc,
    pub text: Extracted,
}

/// `GET /files/{id}`, remembered: the thread stage looks cited files up for their names and the
/// file stage reads the same objects, with one request per file.
#[derive(Debug, Clone)]
enum Meta {
    Found(FileObject),
    /// 404, with the server's message.
    Missing(String),
    /// 403, with the server's message.
    Hidden(String),
}

pub struct FileSource {
    api: Arc<OpenAiSource>,
    local_dir: Option<PathBuf>,
    max_bytes: u64,
    meta: Mutex<HashMap<String, Meta>>,
}

/// Where content came from (for messages).
enum Raw {
    Bytes(Vec<u8>),
    Text(String),
}

impl FileSource {
    pub fn new(api: Arc<OpenAiSource>, local_dir: Option<PathBuf>, max_bytes: u64) -> Self {
        FileSource { api, local_dir, max_bytes, meta: Mutex::new(HashMap::new()) }
    }

    /// `GET /files/{id}` as `OpenAiSource::file` answers it (None when gone or hidden), cached.
    pub async fn file(&self, id: &str) -> Result<Option<FileObject>, SourceError> {
        Ok(match self.metadata(id).await? {
            Meta::Found(f) => Some(f),
            Meta::Missing(_) | Meta::Hidden(_) => None,
        })
    }

    async fn metadata(&self, id: &str) -> Result<Meta, SourceError> {
        if let Some(m) = lock(&self.meta).get(id) {
            return Ok(m.clone());
        }
        let meta = match self.api.get_json::<FileObject>(&format!("/files/{id}")).await {
            Ok(f) => Meta::Found(f),
            Err(SourceError::Http { status: 404, message, .. }) => Meta::Missing(message),
            Err(SourceError::Http { status: 403, message, .. }) => Meta::Hidden(message),
            Err(e) => return Err(e),
        };
        lock(&self.meta).insert(id.to_string(), meta.clone());
        Ok(meta)
    }

    /// Lists the referenced vector stores' files and orders every referenced file: store files
    /// first (stores in order of use, files as listed), then direct references, each once with
    /// the union of its scopes. Also looks every file up (`GET /files/{id}`), so that a
    /// filename shared by two files is known before a local copy is matched by name.
    pub async fn plan(&self, refs: &FileRefs, concurrency: usize) -> Result<(Vec<PlannedFile>, Vec<Warning>), SourceError> {
        let mut warnings = Vec::new();
        let mut planned: IndexMap<String, PlannedFile> = IndexMap::new();
        for (vs, scopes) in &refs.stores {
            let files = match self.api.list_all::<VectorStoreFile>(&format!("/vector_stores/{vs}/files"), vs).await {
                Ok((files, w)) => {
                    warnings.extend(w);
                    files
                }
                Err(e) => {
                    warnings.push(store_warning(vs, e.per_item()?.message));
                    continue;
                }
            };
            for f in files {
                let entry = planned.entry(f.id.clone()).or_insert_with(|| PlannedFile { id: f.id.clone(), scopes: vec![], store: None });
                merge_scopes(&mut entry.scopes, scopes.iter());
                // The first store that holds it usably wins (a completed one over a failed one).
                let usable = |s: &Option<StoreEntry>| s.as_ref().is_some_and(|s| has_parsed_text(&s.status));
                if !usable(&entry.store) {
                    let store_id = if f.vector_store_id.is_empty() { vs.clone() } else { f.vector_store_id.clone() };
                    entry.store = Some(StoreEntry { vector_store_id: store_id, status: f.status, last_error: f.last_error });
                }
            }
        }
        for (id, scopes) in &refs.files {
            let entry = planned.entry(id.clone()).or_insert_with(|| PlannedFile { id: id.clone(), scopes: vec![], store: None });
            merge_scopes(&mut entry.scopes, scopes.iter());
        }
        let planned: Vec<PlannedFile> = planned.into_values().filter(|f| !f.scopes.is_empty()).collect();
        let mut lookups = futures::stream::iter(&planned).map(|f| self.metadata(&f.id)).buffer_unordered(concurrency.max(1));
        while let Some(result) = lookups.next().await {
            if let Err(e) = result {
                // A per-file failure is reported (once) when the file is fetched.
                e.per_item()?;
            }
        }
        drop(lookups);
        Ok((planned, warnings))
    }

    /// How many planned files carry each filename (a local copy is matched by name only when
    /// its name is unique).
    pub fn filename_counts(&self, planned: &[PlannedFile]) -> HashMap<String, usize> {
        let meta = lock(&self.meta);
        let mut counts = HashMap::new();
        for f in planned {
            if let Some(Meta::Found(o)) = meta.get(&f.id) {
                *counts.entry(o.filename.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Fetches and extracts one file: its text, or the warning that says why it was skipped.
    /// `Err` only for what stops the run (a rejected key, a replay without this request).
    pub async fn document(
        &self,
        file: &PlannedFile,
        names: &HashMap<String, usize>,
        iso: &Isolation,
    ) -> Result<Result<Document, Warning>, SourceError> {
        let id = file.id.as_str();
        let meta = match self.metadata(id).await {
            Ok(Meta::Found(f)) => f,
            Ok(Meta::Missing(m)) => {
                return Ok(Err(Warning::new(
                    "file_missing",
                    id,
                    format!("file {id}: GET /files/{id} answered 404 ({m}); it was deleted (its filename is unknown)"),
                )));
            }
            Ok(Meta::Hidden(m)) => {
                return Ok(Err(Warning::new(
                    "file_unavailable",
                    id,
                    format!("file {id}: this key may not read it (HTTP 403: {m}); its filename is unknown"),
                )));
            }
            Err(e) => {
                let m = e.per_item()?.message;
                return Ok(Err(Warning::new("file_unavailable", id, format!("file {id}: looking it up failed: {m}"))));
            }
        };
        let name = if meta.filename.is_empty() { id.to_string() } else { meta.filename.clone() };
        let doc = FileDoc {
            file_id: id.to_string(),
            filename: name.clone(),
            created_at: meta.created_at,
            vector_store_id: file.store.as_ref().map(|s| s.vector_store_id.clone()),
        };
        let raw = match self.content(file, &meta, &name, names).await? {
            Ok(raw) => raw,
            Err(w) => return Ok(Err(w)),
        };
        let extracted = match raw {
            Raw::Text(text) => Ok(parsed_text(text, &name)),
            Raw::Bytes(bytes) => extract::isolate::extract(bytes, &name, iso).await,
        };
        Ok(match extracted {
            Ok(text) => Ok(Document { doc, text }),
            Err(e) => Err(extract_warning(id, &name, &e)),
        })
    }

    /// The file's content from the first source that has it, or the warning for none.
    async fn content(
        &self,
        file: &PlannedFile,
        meta: &FileObject,
        name: &str,
        names: &HashMap<String, usize>,
    ) -> Result<Result<Raw, Warning>, SourceError> {
        let id = file.id.as_str();
        let mut tried: Vec<String> = Vec::new();
        if let Some(store) = &file.store {
            let vs = &store.vector_store_id;
            if has_parsed_text(&store.status) {
                match self.store_text(vs, id).await {
                    Ok(Some(text)) if text.len() as u64 > self.max_bytes => return Ok(Err(self.too_large(id, name, text.len() as u64))),
                    Ok(Some(text)) => return Ok(Ok(Raw::Text(text))),
                    Ok(None) => tried.push(format!("vector store {vs} has no parsed text for it")),
                    Err(e) => tried.push(format!("vector store {vs}: {}", e.per_item()?.message)),
                }
            } else if store.status != "failed" {
                // A failed ingestion is the warning's headline (below), not one attempt of many.
                tried.push(format!("its ingestion into vector store {vs} is {:?}", store.status));
            }
        }
        if let Some(size) = meta.bytes.filter(|&b| b > self.max_bytes) {
            return Ok(Err(self.too_large(id, name, size)));
        }
        match self.api.get(&format!("/files/{id}/content")).await {
            Ok(resp) if resp.body.len() as u64 > self.max_bytes => return Ok(Err(self.too_large(id, name, resp.body.len() as u64))),
            Ok(resp) => return Ok(Ok(Raw::Bytes(resp.body.into()))),
            Err(SourceError::Http { status: 400, message, .. }) => tried.push(format!("its bytes are not downloadable ({message})")),
            Err(e) => tried.push(format!("downloading it: {}", e.per_item()?.message)),
        }
        match self.local_copy(id, name, names) {
            Ok(Some(path)) => return Ok(self.read_local(id, name, &path)),
            Ok(None) => {}
            Err(m) => tried.push(m),
        }
        let purpose = meta.purpose.as_deref().unwrap_or("unknown");
        if let Some(store) = file.store.as_ref().filter(|s| s.status == "failed") {
            let error = store.last_error.as_ref().map(describe_error).unwrap_or_else(|| "no last_error given".into());
            return Ok(Err(Warning::new(
                "file_failed",
                id,
                format!(
                    "{name} ({id}): OpenAI could not ingest it into vector store {} ({error}); {}. {}",
                    store.vector_store_id,
                    tried.join("; "),
                    self.local_hint(id, name)
                ),
            )));
        }
        Ok(Err(Warning::new(
            "file_unavailable",
            id,
            format!("{name} ({id}, purpose {purpose}): {}. {}", tried.join("; "), self.local_hint(id, name)),
        )))
    }

    /// The vector-store file's parsed text: `{data: [{type, text}]}` per the API schema, or
    /// `{content: [...]}` as its example shows. `None` when it is empty or the store no longer
    /// has the file (404).
    async fn store_text(&self, vs: &str, id: &str) -> Result<Option<String>, SourceError> {
        let path = format!("/vector_stores/{vs}/files/{id}/content");
        match self.api.get_json::<Value>(&path).await {
            Ok(page) => Ok(parsed_content(&page)),
            Err(SourceError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn local_copy(&self, id: &str, name: &str, names: &HashMap<String, usize>) -> Result<Option<PathBuf>, String> {
        match &self.local_dir {
            Some(dir) => find_local(dir, id, name, names),
            None => Ok(None),
        }
    }

    fn read_local(&self, id: &str, name: &str, path: &Path) -> Result<Raw, Warning> {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > self.max_bytes {
            return Err(self.too_large(id, name, size));
        }
        std::fs::read(path)
            .map(Raw::Bytes)
            .map_err(|e| Warning::new("file_unavailable", id, format!("{name} ({id}): reading the local copy {}: {e}", path.display())))
    }

    fn too_large(&self, id: &str, name: &str, size: u64) -> Warning {
        Warning::new(
            "file_too_large",
            id,
            format!("{name} ({id}) is {size} bytes, over [files] max_bytes = {}; raise it to migrate this file", self.max_bytes),
        )
    }

    fn local_hint(&self, id: &str, name: &str) -> String {
        let copy = format!("a copy named {id} or {:?}", safe_name(name));
        match &self.local_dir {
            Some(dir) => format!("Put {copy} in [files] local_dir ({}) to migrate it", dir.display()),
            None => format!("Set [files] local_dir to a directory holding {copy} to migrate it"),
        }
    }
}

/// Parsed text as a document: Markdown when the original was (the splitter uses its structure).
fn parsed_text(text: String, name: &str) -> Extracted {
    let md = Path::new(name).extension().is_some_and(|e| matches!(e.to_string_lossy().to_ascii_lowercase().as_str(), "md" | "markdown"));
    Extracted { text: text.trim().to_string(), format: if md { Format::Markdown } else { Format::Text } }
}

/// The text parts of a vector-store content page, in either documented shape.
fn parsed_content(page: &Value) -> Option<String> {
    let parts = page.get("data").or_else(|| page.get("content")).and_then(Value::as_array)?;
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str).is_none_or(|t| t == "text"))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .filter(|t| !t.trim().is_empty())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// The local copy for a file: `<id>`, `<id>.<ext>`, else `<filename>` when that name is unique
/// among the referenced files (`names`). `Err` says why a copy was passed over.
fn find_local(dir: &Path, id: &str, name: &str, names: &HashMap<String, usize>) -> Result<Option<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("[files] local_dir {}: {e}", dir.display()))?;
    let mut by_name = None;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if file_name == id || stem == id {
            return Ok(Some(path));
        }
        if file_name == safe_name(name) {
            by_name = Some(path);
        }
    }
    match by_name {
        Some(path) if names.get(name).copied().unwrap_or(1) <= 1 => Ok(Some(path)),
        Some(path) => Err(format!(
            "{} in [files] local_dir was not used: {} referenced files are named {name:?}; name the copy {id}",
            path.display(),
            names[name]
        )),
        None => Ok(None),
    }
}

/// A filename as a single path component (a name from the API never reaches outside local_dir).
fn safe_name(name: &str) -> String {
    name.rsplit(['/', '\\']).next().unwrap_or_default().to_string()
}

fn describe_error(e: &Value) -> String {
    let code = e.get("code").and_then(Value::as_str).unwrap_or("error");
    let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
    if message.is_empty() { code.to_string() } else { format!("{code}: {message}") }
}

fn extract_warning(id: &str, name: &str, e: &ExtractError) -> Warning {
    Warning::new(e.warning_kind(), id, format!("{name} ({id}): {e}"))
}

fn store_warning(vs: &str, message: String) -> Warning {
    Warning::new(
        "vector_store_unavailable",
        vs,
        format!("listing the files of vector store {vs}: {message}; its files were not migrated (expired or deleted?)"),
    )
}

fn merge_scopes<'a>(into: &mut Vec<Scope>, scopes: impl Iterator<Item = &'a Scope>) {
    for s in scopes {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
}

/// Whether a vector-store file may have parsed text to ask for. `VectorStoreFileObject.status`
/// (openai/openai-openapi, openapi.yaml) documents `in_progress`, `completed`, `cancelled` and
/// `failed`; only the three non-completed ones say there is none. A missing status (OpenAI's
/// own list example omits it) or one added later is asked: the answer tells.
pub fn has_parsed_text(status: &str) -> bool {
    !matches!(status, "in_progress" | "cancelled" | "failed")
}

#[cfg(test)]
mod status_tests {
    use super::has_parsed_text;

    /// Every `VectorStoreFileObject.status` of openai/openai-openapi (openapi.yaml), plus the
    /// missing field of its list example and an undocumented value.
    #[test]
    fn only_documented_non_completed_statuses_skip_the_parsed_text() {
        assert!(has_parsed_text("completed"));
        assert!(has_parsed_text(""), "missing status: ask");
        assert!(has_parsed_text("archived"), "unknown status: ask");
        for s in ["in_progress", "cancelled", "failed"] {
            assert!(!has_parsed_text(s), "{s}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_content_shapes_are_read() {
        let schema = json!({"object": "vector_store.file_content.page", "data": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}], "has_more": false});
        assert_eq!(parsed_content(&schema).unwrap(), "one\n\ntwo");
        let example = json!({"file_id": "file-1", "filename": "a.txt", "content": [{"type": "text", "text": "body"}]});
        assert_eq!(parsed_content(&example).unwrap(), "body");
        assert_eq!(parsed_content(&json!({"data": []})), None);
        assert_eq!(parsed_content(&json!({"data": [{"type": "text", "text": "  "}]})), None);
        assert_eq!(parsed_content(&json!({"data": [{"type": "image", "text": "x"}]})), None);
    }

    #[test]
    fn parsed_markdown_keeps_its_format() {
        assert_eq!(parsed_text("# T\n".into(), "manual.md").format, Format::Markdown);
        assert_eq!(parsed_text("T".into(), "guide.pdf").format, Format::Text);
    }

    #[test]
    fn names_from_the_api_stay_inside_local_dir() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\docs\\a.pdf"), "a.pdf");
        assert_eq!(safe_name("plain.txt"), "plain.txt");
    }

    #[test]
    fn local_copies_by_id_then_by_unique_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file-byid.pdf"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("shared.txt"), b"x").unwrap();
        let names: HashMap<String, usize> = [("shared.txt".to_string(), 2)].into();
        let found = |id: &str, name: &str| find_local(dir.path(), id, name, &names);
        assert_eq!(found("file-byid", "original.pdf").unwrap().unwrap(), dir.path().join("file-byid.pdf"));
        assert_eq!(found("file-other", "notes.txt").unwrap().unwrap(), dir.path().join("notes.txt"));
        assert_eq!(found("file-other", "../notes.txt").unwrap().unwrap(), dir.path().join("notes.txt"));
        assert_eq!(found("file-other", "absent.txt").unwrap(), None);
        let e = found("file-x", "shared.txt").unwrap_err();
        assert!(e.contains("2 referenced files") && e.contains("name the copy file-x"), "{e}");
    }
}
