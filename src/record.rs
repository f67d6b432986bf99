//! The one value that flows from Map to Sink: a `Record` is a pattern ready to be planned,
//! embedded and written into one Engramia scope.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// An Engramia scope `(tenant_id, project_id)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub tenant: String,
    pub project: String,
}

impl Scope {
    pub fn new(tenant: impl Into<String>, project: impl Into<String>) -> Self {
        Scope { tenant: tenant.into(), project: project.into() }
    }

    /// Engramia maps `("default", "default")` to the storage root.
    pub fn is_default(&self) -> bool {
        self.tenant == "default" && self.project == "default"
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.project)
    }
}

/// What a record was made from; drives `design.openai.kind` and the sink's `run_id` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    MessagePair,
    FileChunk,
    Tool,
}

/// A pattern ready for the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub scope: Scope,
    /// Storage key, `patterns/<8 hex>_<ms>_<6 chars>`; unique across all scopes.
    pub key: String,
    pub kind: RecordKind,
    /// The Engramia pattern object: `{task, design, success_score, reuse_count, timestamp}`.
    pub pattern: Value,
    /// Skill tags (lower-cased, trimmed) this pattern is registered under; may be empty.
    pub skills: Vec<String>,
    /// `design.classification`, repeated for sinks with a column for it.
    pub classification: String,
    /// Where it came from, e.g. `openai-thread:thread_abc` (the Postgres `run_id` column).
    pub origin: String,
}

impl Record {
    /// The text Engramia embeds for this pattern: its `task`.
    pub fn task(&self) -> &str {
        self.pattern.get("task").and_then(Value::as_str).unwrap_or_default()
    }

    /// A stable hash of everything the sink stores for this record except the embedding
    /// (which is a function of the task): pattern JSON and skill tags.
    pub fn content_hash(&self) -> String {
        content_hash(&self.pattern, &self.skills)
    }
}

/// See [`Record::content_hash`]; sinks call this on what they read back so both sides agree.
pub fn content_hash(pattern: &Value, skills: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(canonical_json(pattern).as_bytes());
    h.update([0u8]);
    for s in skills {
        h.update(s.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// JSON with object keys sorted at every level, so that hashes do not depend on key order.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// A per-item problem: reported, counted, and the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Machine-readable kind, e.g. `thread_not_found`, `invalid_thread_id`.
    pub kind: String,
    /// The object it concerns (a thread id, a line of a file, a file id).
    pub id: String,
    pub message: String,
}

impl Warning {
    pub fn new(kind: &str, id: impl Into<String>, message: impl Into<String>) -> Self {
        Warning { kind: kind.to_string(), id: id.into(), message: message.into() }
    }
}

/// What a sink holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// `record::content_hash` of the stored pattern and its skills.
    pub hash: String,
    /// False when the pattern is there but its embedding is not (invisible to recall).
    pub has_embedding: bool,
}

/// A pattern already in a scope, as the near-duplicate check and the rerun's replace/retire
/// step see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPattern {
    pub key: String,
    pub task: String,
    pub success_score: f64,
    /// For a message pair engram wrote: the thread and messages it came from.
    pub origin: Option<PairOrigin>,
}

/// Where an engram-written message pair came from (`design.openai` of the pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairOrigin {
    pub thread_id: String,
    pub message_ids: Vec<String>,
}

impl PairOrigin {
    /// Reads `design.openai` of a stored pattern; None for anything but an engram message pair.
    pub fn of_pattern(pattern: &serde_json::Value) -> Option<PairOrigin> {
        Self::of_openai(pattern.pointer("/design/openai")?)
    }

    /// Reads a pattern's `design.openai` object.
    pub fn of_openai(openai: &serde_json::Value) -> Option<PairOrigin> {
        if openai.get("kind")?.as_str()? != "message_pair" {
            return None;
        }
        let thread_id = openai.get("thread_id")?.as_str()?.to_string();
        let message_ids: Vec<String> =
            openai.get("message_ids")?.as_array()?.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        (!message_ids.is_empty()).then_some(PairOrigin { thread_id, message_ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_hash_ignores_key_order_but_not_values() {
        let a = json!({"task": "t", "design": {"code": "c", "source": "import"}});
        let b = json!({"design": {"source": "import", "code": "c"}, "task": "t"});
        let c = json!({"design": {"source": "import", "code": "d"}, "task": "t"});
        assert_eq!(content_hash(&a, &[]), content_hash(&b, &[]));
        assert_ne!(content_hash(&a, &[]), content_hash(&c, &[]));
        assert_ne!(content_hash(&a, &[]), content_hash(&a, &["x".into()]));
    }
}
