//! OpenAI wire objects (Assistants API v2, Files, Vector stores), as the API returns them.
//!
//! Every struct tolerates unknown fields and missing optional ones: real accounts carry fields
//! the spec omits, and compatible servers omit fields the spec requires. Only what engram reads
//! is typed; the rest is ignored here (exports keep raw JSON elsewhere).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `metadata` on assistants, threads, messages: string keys to string values (null allowed).
pub type Metadata = BTreeMap<String, Value>;

/// One page of a cursor-paginated list (`{"object":"list","data":[...],"has_more":..}`).
#[derive(Debug, Clone, Deserialize)]
pub struct ListPage<T> {
    #[serde(default)]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub last_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Assistant {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub tool_resources: Option<ToolResources>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// Model settings, for the generated agent (`[agents]`); the API's default is 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// `"auto"`, `{"type": "text" | "json_object"}` or `{"type": "json_schema", "json_schema": {..}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}

/// A tool definition (`assistant.tools[]`, `run.tools[]`). Only `function` tools carry a body
/// engram maps; `code_interpreter` and `file_search` are recognised by `kind` alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub function: Option<FunctionDef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolResources {
    #[serde(default)]
    pub code_interpreter: Option<CodeInterpreterResources>,
    #[serde(default)]
    pub file_search: Option<FileSearchResources>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CodeInterpreterResources {
    #[serde(default, deserialize_with = "null_as_default")]
    pub file_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileSearchResources {
    #[serde(default, deserialize_with = "null_as_default")]
    pub vector_store_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Thread {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    #[serde(default)]
    pub tool_resources: Option<ToolResources>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// Any other role a compatible server may send; never paired.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub thread_id: String,
    pub role: Role,
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ContentPart>,
    #[serde(default)]
    pub assistant_id: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: Vec<Attachment>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    #[serde(default)]
    pub status: Option<String>,
    /// Why a message with `status: "incomplete"` stopped (`content_filter`, `max_tokens`,
    /// `run_cancelled`, `run_expired`, `run_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_details: Option<IncompleteDetails>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IncompleteDetails {
    #[serde(default)]
    pub reason: Option<String>,
}

/// One part of `message.content[]`, discriminated by `type`. Parts engram does not map
/// (`image_url`, `refusal`, future kinds) keep only their `type`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContentPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<TextContent>,
    #[serde(default)]
    pub image_file: Option<FileRef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TextContent {
    #[serde(default)]
    pub value: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: Vec<Annotation>,
}

/// `file_citation` / `file_path` annotation: `text` is the marker as it appears in `value`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Annotation {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub start_index: Option<usize>,
    #[serde(default)]
    pub end_index: Option<usize>,
    #[serde(default)]
    pub file_citation: Option<FileRef>,
    #[serde(default)]
    pub file_path: Option<FileRef>,
}

impl Annotation {
    /// The file this annotation points at, whichever kind it is.
    pub fn file_id(&self) -> Option<&str> {
        self.file_citation
            .as_ref()
            .or(self.file_path.as_ref())
            .map(|f| f.file_id.as_str())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    #[serde(default)]
    pub file_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tools: Vec<Tool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub thread_id: String,
    #[serde(default)]
    pub assistant_id: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub required_action: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStep {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub run_id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub step_details: StepDetails,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepDetails {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default)]
    pub message_creation: Option<MessageCreation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MessageCreation {
    #[serde(default)]
    pub message_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub function: Option<FunctionCall>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
}

/// `GET /files/{id}` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileObject {
    pub id: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub created_at: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VectorStore {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET /vector_stores/{vs}/files` item; its `id` is the File id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VectorStoreFile {
    pub id: String,
    #[serde(default)]
    pub vector_store_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub last_error: Option<Value>,
}

/// Everything the source knows about one thread, handed to Map as one value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ThreadBundle {
    pub thread: Thread,
    /// In chronological order (oldest first).
    pub messages: Vec<Message>,
    pub runs: Vec<Run>,
    pub steps: Vec<RunStep>,
}

/// Treats an explicit JSON `null` like a missing field (servers send both).
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The content-part kind of text that is kept exactly as written: no citation markers are
/// looked for in it (the Conversations source, whose annotations are resolved by offset).
pub const VERBATIM_TEXT: &str = "output_text";

/// An object id that is safe as a file name and in a path (`file-abc`, Azure's
/// `assistant-abc`, `vs_abc`): ASCII letters, digits, `-` and `_`, at most 200 characters.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_tolerates_nulls_and_unknown_fields() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "id": "msg_1", "object": "thread.message", "created_at": 1, "thread_id": "thread_1",
            "role": "assistant", "content": null, "attachments": null, "metadata": null,
            "brand_new_field": {"x": 1}
        }))
        .unwrap();
        assert!(m.content.is_empty());
        assert_eq!(m.role, Role::Assistant);
    }

    #[test]
    fn unknown_role_is_other() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "id": "msg_1", "role": "system", "content": []
        }))
        .unwrap();
        assert_eq!(m.role, Role::Other);
    }
}
