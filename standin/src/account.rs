//! The account a stand-in serves, loaded from one JSON file (format: `fixtures/README.md`).
//!
//! Objects are kept as given (unknown fields included, key order preserved) and completed with
//! the fields the real API always sends but a hand-written fixture would rather omit: `object`,
//! message `status`/`thread_id`/`attachments`, run defaults copied from its assistant, step
//! `type` from its `step_details`, file `bytes`, vector-store `file_counts`, and so on. A field
//! that is present is never changed. Every object needs an `id` and an integer `created_at`
//! (the sort key of every list); ids must be unique within their list.
//!
//! After loading everything is serialised once; requests only copy bytes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::pagination::{Collection, Item};

/// The data a stand-in serves: assistants, threads with messages, runs and steps, files with
/// their bytes, vector stores with their files and parsed text. Immutable once loaded; cheap
/// to clone.
#[derive(Clone, Debug)]
pub struct Account {
    pub(crate) data: Arc<Data>,
}

#[derive(Debug)]
pub(crate) struct Data {
    pub assistants: Collection,
    pub threads: HashMap<String, ThreadData>,
    thread_order: Vec<String>,
    pub files: Collection,
    /// Bytes of files given with `content_text`/`content_base64`.
    pub file_bytes: HashMap<String, Vec<u8>>,
    pub vector_stores: Collection,
    pub stores: HashMap<String, StoreData>,
    /// The Responses API's conversations (see `conversations`).
    pub conversations: super::conversations::Conversations,
}

#[derive(Debug)]
pub(crate) struct ThreadData {
    pub thread: Item,
    /// Tagged with their `run_id`.
    pub messages: Collection,
    pub runs: Collection,
    /// Steps by run id.
    pub steps: HashMap<String, Collection>,
}

#[derive(Debug)]
pub(crate) struct StoreData {
    /// Tagged with their `status`.
    pub files: Collection,
    pub parsed_text: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    /// Free text for the reader of the file; ignored.
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<Value>,
    #[serde(default)]
    assistants: Vec<Value>,
    #[serde(default)]
    threads: Vec<ThreadFile>,
    #[serde(default)]
    files: Vec<FileFile>,
    #[serde(default)]
    vector_stores: Vec<StoreFile>,
    #[serde(default)]
    conversations: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadFile {
    thread: Value,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    runs: Vec<RunFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    run: Value,
    #[serde(default)]
    steps: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFile {
    file: Value,
    content_text: Option<String>,
    content_base64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    vector_store: Value,
    #[serde(default)]
    files: Vec<StoreFileFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFileFile {
    vector_store_file: Value,
    parsed_text: Option<String>,
}

impl Account {
    /// Reads an account file (JSON; errors carry line and column).
    pub fn load(path: &Path) -> anyhow::Result<Account> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading account file {}", path.display()))?;
        let file: AccountFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing account file {}", path.display()))?;
        build(file).with_context(|| format!("in account file {}", path.display()))
    }

    /// Builds an account from a JSON value in the account-file format.
    pub fn from_json(v: Value) -> anyhow::Result<Account> {
        build(serde_json::from_value(v).context("parsing account JSON")?)
    }

    /// Thread ids in the order the file lists them (there is no list-threads route to ask).
    pub fn thread_ids(&self) -> Vec<String> {
        self.data.thread_order.clone()
    }
}

fn build(file: AccountFile) -> anyhow::Result<Account> {
    let mut assistant_objs = HashMap::new();
    let mut assistants = Vec::new();
    for (k, v) in file.assistants.into_iter().enumerate() {
        let at = format!("assistants[{k}]");
        let obj = assistant(v, &at)?;
        let item = item(&obj, None, &at)?;
        assistant_objs.insert(item.id.clone(), obj);
        assistants.push(item);
    }

    let mut threads = HashMap::new();
    let mut thread_order = Vec::new();
    for (k, t) in file.threads.into_iter().enumerate() {
        let at = format!("threads[{k}]");
        let data = thread(t, &assistant_objs, &at)?;
        let id = data.thread.id.clone();
        if threads.insert(id.clone(), data).is_some() {
            bail!("{at}: duplicate thread id {id:?}");
        }
        thread_order.push(id);
    }

    let mut files = Vec::new();
    let mut file_bytes = HashMap::new();
    let mut file_sizes = HashMap::new();
    for (k, f) in file.files.into_iter().enumerate() {
        let at = format!("files[{k}]");
        let (item, size, bytes) = file_entry(f, &at)?;
        file_sizes.insert(item.id.clone(), size);
        if let Some(bytes) = bytes {
            file_bytes.insert(item.id.clone(), bytes);
        }
        files.push(item);
    }
    let files = Collection::new(files).map_err(|e| anyhow!("files: {e}"))?;

    let mut vector_stores = Vec::new();
    let mut stores = HashMap::new();
    for (k, s) in file.vector_stores.into_iter().enumerate() {
        let at = format!("vector_stores[{k}]");
        let (item, data) = store(s, &file_sizes, &at)?;
        stores.insert(item.id.clone(), data);
        vector_stores.push(item);
    }

    Ok(Account {
        data: Arc::new(Data {
            assistants: Collection::new(assistants).map_err(|e| anyhow!("assistants: {e}"))?,
            threads,
            thread_order,
            files,
            file_bytes,
            vector_stores: Collection::new(vector_stores)
                .map_err(|e| anyhow!("vector_stores: {e}"))?,
            stores,
            conversations: super::conversations::Conversations::load(file.conversations)?,
        }),
    })
}

fn assistant(v: Value, at: &str) -> anyhow::Result<Map<String, Value>> {
    let mut o = object(v, "assistant", at)?;
    for (key, default) in [
        ("name", Value::Null),
        ("description", Value::Null),
        ("model", json!("gpt-4o")),
        ("instructions", Value::Null),
        ("tools", json!([])),
        ("tool_resources", json!({})),
        ("metadata", json!({})),
        ("temperature", json!(1.0)),
        ("top_p", json!(1.0)),
        ("response_format", json!("auto")),
    ] {
        fill(&mut o, key, default);
    }
    Ok(o)
}

fn thread(
    t: ThreadFile,
    assistants: &HashMap<String, Map<String, Value>>,
    at: &str,
) -> anyhow::Result<ThreadData> {
    let mut o = object(t.thread, "thread", &format!("{at}.thread"))?;
    fill(&mut o, "tool_resources", json!({}));
    fill(&mut o, "metadata", json!({}));
    let thread = item(&o, None, &format!("{at}.thread"))?;
    let tid = thread.id.clone();

    let mut messages = Vec::new();
    for (k, m) in t.messages.into_iter().enumerate() {
        let at = format!("{at}.messages[{k}]");
        let o = message(m, &tid, &at)?;
        let run_id = o.get("run_id").and_then(Value::as_str).map(str::to_string);
        messages.push(item(&o, run_id, &at)?);
    }

    let mut runs = Vec::new();
    let mut steps = HashMap::new();
    for (k, r) in t.runs.into_iter().enumerate() {
        let at = format!("{at}.runs[{k}]");
        let o = run(r.run, &tid, assistants, &at)?;
        let run_item = item(&o, None, &at)?;
        let mut run_steps = Vec::new();
        for (s, v) in r.steps.into_iter().enumerate() {
            let at = format!("{at}.steps[{s}]");
            run_steps.push(item(&step(v, &o, &at)?, None, &at)?);
        }
        let run_steps = Collection::new(run_steps).map_err(|e| anyhow!("{at}.steps: {e}"))?;
        steps.insert(run_item.id.clone(), run_steps);
        runs.push(run_item);
    }

    Ok(ThreadData {
        thread,
        messages: Collection::new(messages).map_err(|e| anyhow!("{at}.messages: {e}"))?,
        runs: Collection::new(runs).map_err(|e| anyhow!("{at}.runs: {e}"))?,
        steps,
    })
}

fn message(v: Value, thread_id: &str, at: &str) -> anyhow::Result<Map<String, Value>> {
    let mut o = object(v, "thread.message", at)?;
    belongs_to(&mut o, "thread_id", thread_id, at)?;
    if !o.get("role").is_some_and(Value::is_string) {
        bail!("{at}: missing string \"role\"");
    }
    // Shorthands: `"content": "text"` and `{"type":"text","text":"..."}` parts.
    match o.get_mut("content") {
        Some(Value::String(s)) => {
            let text = std::mem::take(s);
            o["content"] = json!([{"type": "text", "text": {"value": text, "annotations": []}}]);
        }
        Some(Value::Array(parts)) => {
            for part in parts.iter_mut().filter(|p| p["type"] == "text") {
                let text = &mut part["text"];
                match text {
                    Value::String(s) => {
                        let value = std::mem::take(s);
                        *text = json!({"value": value, "annotations": []});
                    }
                    Value::Object(t) => fill(t, "annotations", json!([])),
                    _ => {}
                }
            }
        }
        _ => fill(&mut o, "content", json!([])),
    }
    let from_run = o.get("run_id").is_some_and(Value::is_string);
    let completed_at = if from_run {
        o["created_at"].clone()
    } else {
        Value::Null
    };
    for (key, default) in [
        ("status", json!("completed")),
        ("incomplete_details", Value::Null),
        ("completed_at", completed_at),
        ("incomplete_at", Value::Null),
        ("assistant_id", Value::Null),
        ("run_id", Value::Null),
        ("attachments", json!([])),
        ("metadata", json!({})),
    ] {
        fill(&mut o, key, default);
    }
    Ok(o)
}

fn run(
    v: Value,
    thread_id: &str,
    assistants: &HashMap<String, Map<String, Value>>,
    at: &str,
) -> anyhow::Result<Map<String, Value>> {
    let mut o = object(v, "thread.run", at)?;
    belongs_to(&mut o, "thread_id", thread_id, at)?;
    fill(&mut o, "assistant_id", Value::Null);
    fill(&mut o, "status", json!("completed"));
    let created = o["created_at"].clone();
    let completed = if o["status"] == "completed" {
        created.clone()
    } else {
        Value::Null
    };
    let asst = o["assistant_id"].as_str().and_then(|id| assistants.get(id));
    let from_asst = |key: &str, default: Value| {
        asst.and_then(|a| a.get(key))
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    for (key, default) in [
        ("required_action", Value::Null),
        ("last_error", Value::Null),
        ("expires_at", Value::Null),
        ("started_at", created),
        ("cancelled_at", Value::Null),
        ("failed_at", Value::Null),
        ("completed_at", completed),
        ("incomplete_details", Value::Null),
        ("model", from_asst("model", json!("gpt-4o"))),
        ("instructions", from_asst("instructions", json!(""))),
        ("tools", from_asst("tools", json!([]))),
        ("metadata", json!({})),
        ("usage", Value::Null),
        ("temperature", json!(1.0)),
        ("top_p", json!(1.0)),
        ("max_prompt_tokens", Value::Null),
        ("max_completion_tokens", Value::Null),
        (
            "truncation_strategy",
            json!({"type": "auto", "last_messages": null}),
        ),
        ("tool_choice", json!("auto")),
        ("parallel_tool_calls", json!(true)),
        ("response_format", json!("auto")),
    ] {
        fill(&mut o, key, default);
    }
    Ok(o)
}

fn step(v: Value, run: &Map<String, Value>, at: &str) -> anyhow::Result<Map<String, Value>> {
    let mut o = object(v, "thread.run.step", at)?;
    belongs_to(&mut o, "run_id", run["id"].as_str().unwrap_or_default(), at)?;
    belongs_to(
        &mut o,
        "thread_id",
        run["thread_id"].as_str().unwrap_or_default(),
        at,
    )?;
    fill(&mut o, "assistant_id", run["assistant_id"].clone());
    let Some(details) = o.get_mut("step_details").and_then(Value::as_object_mut) else {
        bail!("{at}: missing object \"step_details\"");
    };
    let Some(kind) = details
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        bail!("{at}: missing string \"step_details.type\"");
    };
    if let Some(calls) = details.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for function in calls
            .iter_mut()
            .filter_map(|c| c.get_mut("function"))
            .filter_map(Value::as_object_mut)
        {
            fill(function, "output", Value::Null);
        }
    }
    fill(&mut o, "type", json!(kind));
    fill(&mut o, "status", json!("completed"));
    let completed = if o["status"] == "completed" {
        o["created_at"].clone()
    } else {
        Value::Null
    };
    for (key, default) in [
        ("last_error", Value::Null),
        ("expired_at", Value::Null),
        ("cancelled_at", Value::Null),
        ("failed_at", Value::Null),
        ("completed_at", completed),
        ("metadata", json!({})),
        ("usage", Value::Null),
    ] {
        fill(&mut o, key, default);
    }
    Ok(o)
}

/// The file's item, its `bytes` and its content (when given).
fn file_entry(f: FileFile, at: &str) -> anyhow::Result<(Item, u64, Option<Vec<u8>>)> {
    let mut o = object(f.file, "file", &format!("{at}.file"))?;
    let bytes = match (f.content_text, f.content_base64) {
        (Some(_), Some(_)) => bail!("{at}: give content_text or content_base64, not both"),
        (Some(text), None) => Some(text.into_bytes()),
        (None, Some(b64)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .with_context(|| format!("{at}.content_base64 is not valid base64"))?,
        ),
        (None, None) => None,
    };
    for key in ["filename", "purpose"] {
        if !o.get(key).is_some_and(Value::is_string) {
            bail!("{at}.file: missing string {key:?}");
        }
    }
    fill(&mut o, "bytes", json!(bytes.as_ref().map_or(0, Vec::len)));
    fill(&mut o, "status", json!("processed"));
    let purpose = o["purpose"].as_str().map(str::to_string);
    let size = o["bytes"].as_u64().unwrap_or(0);
    Ok((item(&o, purpose, &format!("{at}.file"))?, size, bytes))
}

fn store(
    s: StoreFile,
    file_sizes: &HashMap<String, u64>,
    at: &str,
) -> anyhow::Result<(Item, StoreData)> {
    let mut o = object(
        s.vector_store,
        "vector_store",
        &format!("{at}.vector_store"),
    )?;
    let vs_id = o
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut items = Vec::new();
    let mut parsed_text = HashMap::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut usage_bytes = 0;
    for (k, f) in s.files.into_iter().enumerate() {
        let at = format!("{at}.files[{k}].vector_store_file");
        let mut fo = object(f.vector_store_file, "vector_store.file", &at)?;
        belongs_to(&mut fo, "vector_store_id", &vs_id, &at)?;
        let id = fo.get("id").and_then(Value::as_str).unwrap_or_default();
        let size = f
            .parsed_text
            .as_ref()
            .map(|t| t.len() as u64)
            .or(file_sizes.get(id).copied())
            .unwrap_or(0);
        for (key, default) in [
            ("usage_bytes", json!(size)),
            ("status", json!("completed")),
            ("last_error", Value::Null),
            (
                "chunking_strategy",
                json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}),
            ),
            ("attributes", json!({})),
        ] {
            fill(&mut fo, key, default);
        }
        usage_bytes += fo["usage_bytes"].as_u64().unwrap_or(0);
        let status = fo["status"].as_str().unwrap_or_default().to_string();
        *counts.entry(status.clone()).or_default() += 1;
        let item = item(&fo, Some(status), &at)?;
        if let Some(text) = f.parsed_text {
            parsed_text.insert(item.id.clone(), text);
        }
        items.push(item);
    }
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    let created = o.get("created_at").cloned().unwrap_or(Value::Null);
    for (key, default) in [
        ("name", json!("")),
        ("usage_bytes", json!(usage_bytes)),
        (
            "file_counts",
            json!({
                "in_progress": count("in_progress"), "completed": count("completed"), "failed": count("failed"),
                "cancelled": count("cancelled"), "total": items.len(),
            }),
        ),
        ("status", json!("completed")),
        ("expires_at", Value::Null),
        ("last_active_at", created),
        ("metadata", json!({})),
    ] {
        fill(&mut o, key, default);
    }
    let store_item = item(&o, None, &format!("{at}.vector_store"))?;
    let files = Collection::new(items).map_err(|e| anyhow!("{at}.files: {e}"))?;
    Ok((store_item, StoreData { files, parsed_text }))
}

/// Checks `v` is an object with a string `id` and an integer `created_at`, and puts `object`
/// (given or `kind`) right after `id`, as the API does.
fn object(v: Value, kind: &str, at: &str) -> anyhow::Result<Map<String, Value>> {
    let Value::Object(mut given) = v else {
        bail!("{at}: expected a JSON object")
    };
    if given
        .get("id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        bail!("{at}: missing string \"id\"");
    }
    if given.get("created_at").and_then(Value::as_i64).is_none() {
        bail!("{at}: missing integer \"created_at\" (Unix seconds)");
    }
    let mut o = Map::new();
    o.insert("id".into(), given.shift_remove("id").unwrap_or_default());
    o.insert(
        "object".into(),
        given.shift_remove("object").unwrap_or_else(|| json!(kind)),
    );
    o.extend(given);
    Ok(o)
}

/// Fills `key` with the parent's id, or fails if the object names another parent.
fn belongs_to(o: &mut Map<String, Value>, key: &str, parent: &str, at: &str) -> anyhow::Result<()> {
    match o.get(key) {
        None | Some(Value::Null) => {
            o.insert(key.into(), json!(parent));
            Ok(())
        }
        Some(v) if v == parent => Ok(()),
        Some(v) => bail!("{at}: {key} is {v} but the object is listed under {parent:?}"),
    }
}

fn fill(o: &mut Map<String, Value>, key: &str, default: Value) {
    o.entry(key).or_insert(default);
}

fn item(o: &Map<String, Value>, tag: Option<String>, at: &str) -> anyhow::Result<Item> {
    let id = o["id"]
        .as_str()
        .ok_or_else(|| anyhow!("{at}: missing string \"id\""))?
        .to_string();
    let created_at = o["created_at"]
        .as_i64()
        .ok_or_else(|| anyhow!("{at}: missing integer \"created_at\""))?;
    Ok(Item {
        id,
        created_at,
        json: serde_json::to_string(o)?,
        tag,
    })
}
