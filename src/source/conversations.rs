//! Source, `kind = "conversations"`: the Responses API's Conversations, by id (the API cannot
//! list them). Each conversation is read with `GET /conversations/{id}` and its items with
//! `GET /conversations/{id}/items?order=asc&limit=100` (cursor pagination), then turned into a
//! `ThreadBundle`, so that pairing, scopes and skills work exactly as for threads:
//!
//! - the conversation is the thread (its `metadata` is `{thread.metadata.KEY}`);
//! - `message` items with role `user` / `assistant` are messages; their `input_text`,
//!   `output_text` (and plain `text`) parts are text parts. Other roles (`system`,
//!   `developer`) are kept but never paired; `refusal`, image and file parts carry no text.
//!   Responses' annotations point at offsets, not at markers in the text, so none are kept;
//! - `function_call` items (`name`, `arguments`, `call_id`) with their `function_call_output`
//!   belong to the next assistant message: they become one synthetic completed run (id: the
//!   first call item's id) with one `tool_calls` step holding those calls, and that message's
//!   `run_id` names it, so Map's skills logic tags the answer with the functions called. Calls
//!   followed by a user message before any answer are dropped with the turn they belonged to;
//! - other item types (reasoning, web search, file search, ...) are not migrated.
//!
//! Items carry no `created_at`; messages take the item's when a server sends one, else the
//! conversation's, never going back in time (so item order is message order).
//!
//! There is no assistant: scope templates use `{thread.id}`, `{thread.metadata.KEY}` or
//! `default_project` (checked when the mapping is loaded). The wire types live here, beside
//! their only reader.

use super::openai::OpenAiSource;
use super::transport::TransportError;
use super::{SourceError, ThreadFetch};
use crate::model::{
    ContentPart, FileObject, FunctionCall, Message, Metadata, Role, Run, RunStep, StepDetails, TextContent, Thread, ThreadBundle,
    Tool, ToolCall, null_as_default,
};
use crate::record::Warning;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `GET /conversations/{id}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Conversation {
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
}

/// One conversation item, of any type; only the fields engram reads are typed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Item {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ItemContent>,
    #[serde(default)]
    pub status: Option<String>,
    /// `function_call`: the function and its JSON arguments.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    /// `function_call` and `function_call_output`: what ties a call to its output.
    #[serde(default)]
    pub call_id: Option<String>,
    /// `function_call_output`: a string, or (newer servers) a list of content parts.
    #[serde(default)]
    pub output: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ItemContent {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

pub struct ConversationsSource {
    api: Arc<OpenAiSource>,
}

impl ConversationsSource {
    pub fn new(api: Arc<OpenAiSource>) -> Self {
        ConversationsSource { api }
    }

    /// A conversation as a bundle; 404 / 403 are warnings, a server that kept failing a
    /// `thread_failed` reject, as for threads.
    pub async fn fetch_thread(&self, id: &str) -> Result<ThreadFetch, SourceError> {
        match self.fetch(id).await {
            Ok(found) => Ok(found),
            // A server without the Conversations API answers every path with "Invalid URL".
            Err(SourceError::Http { request, status: 404, message }) if message.starts_with("Invalid URL") => Err(SourceError::Http {
                request,
                status: 404,
                message: format!("{message}: this server does not serve the Conversations API ([source] base_url)"),
            }),
            Err(SourceError::Http { status: 404, message, .. }) => Ok(ThreadFetch::Skipped(Warning::new(
                "conversation_not_found",
                id,
                format!("the conversation answered 404 ({message}); it was deleted, or belongs to another organization or project"),
            ))),
            Err(SourceError::Http { status: 403, message, .. }) => Ok(ThreadFetch::Skipped(Warning::new(
                "conversation_forbidden",
                id,
                format!("the key may not read this conversation (HTTP 403: {message})"),
            ))),
            Err(e @ (SourceError::Transport(TransportError::Exhausted { .. } | TransportError::Network { .. })
            | SourceError::Decode { .. }
            | SourceError::Http { .. })) => {
                let attempts = match &e {
                    SourceError::Transport(t) => t.attempts(),
                    _ => 1,
                };
                Ok(ThreadFetch::Failed {
                    warning: Warning::new(
                        "thread_failed",
                        id,
                        format!("{e}; it is listed in the rejects file: rerun with --retry-failed FILE to retry just the failed conversations"),
                    ),
                    attempts,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self, id: &str) -> Result<ThreadFetch, SourceError> {
        let conversation: Conversation = self.api.get_json(&format!("/conversations/{id}")).await?;
        let (items, warnings) = self.api.list_all::<Item>(&format!("/conversations/{id}/items"), id).await?;
        Ok(ThreadFetch::Found { bundle: to_bundle(&conversation, &items), warnings })
    }

    /// Files still answer after the Assistants shutdown: `GET /files/{id}`.
    pub async fn file(&self, id: &str) -> Result<Option<FileObject>, SourceError> {
        self.api.file(id).await
    }
}

/// A conversation-id file: one `conv_...` per line, `#` comments; bad lines and repeats are
/// `invalid_conversation_id` / `duplicate_conversation_id` warnings.
pub fn parse_ids(text: &str, file_name: &str) -> (Vec<String>, Vec<Warning>) {
    super::parse_prefixed_ids(text, file_name, "conv")
}

/// Items (oldest first) -> a thread bundle; see the module header for the rules. Pure.
pub fn to_bundle(conversation: &Conversation, items: &[Item]) -> ThreadBundle {
    let conv_id = conversation.id.as_str();
    let mut messages = Vec::new();
    let mut runs = Vec::new();
    let mut steps = Vec::new();
    // Calls since the last message, with the id of the first call item.
    let mut calls: Vec<ToolCall> = Vec::new();
    let mut first_call: Option<String> = None;
    let mut clock = conversation.created_at;
    for item in items {
        clock = clock.max(item.created_at.unwrap_or(clock));
        match item.kind.as_str() {
            "message" => {
                let role = match item.role.as_deref() {
                    Some("user") => Role::User,
                    Some("assistant") => Role::Assistant,
                    _ => Role::Other,
                };
                let mut run_id = None;
                if role == Role::User {
                    calls.clear();
                    first_call = None;
                } else if role == Role::Assistant && let Some(id) = first_call.take() {
                    let tool_calls = std::mem::take(&mut calls);
                    runs.push(Run {
                        id: id.clone(),
                        created_at: clock,
                        thread_id: conv_id.to_string(),
                        assistant_id: None,
                        status: "completed".into(),
                        tools: vec![Tool { kind: "function".into(), function: None }],
                        required_action: None,
                    });
                    steps.push(RunStep {
                        id: id.clone(),
                        created_at: clock,
                        run_id: id.clone(),
                        kind: "tool_calls".into(),
                        status: "completed".into(),
                        step_details: StepDetails { kind: "tool_calls".into(), tool_calls, message_creation: None },
                    });
                    run_id = Some(id);
                }
                messages.push(Message {
                    id: item.id.clone(),
                    created_at: clock,
                    thread_id: conv_id.to_string(),
                    role,
                    content: item.content.iter().filter_map(text_part).collect(),
                    assistant_id: None,
                    run_id,
                    attachments: Vec::new(),
                    metadata: Metadata::new(),
                    status: item.status.clone(),
                    incomplete_details: None,
                });
            }
            "function_call" => {
                if first_call.is_none() {
                    first_call = Some(item.id.clone());
                }
                calls.push(ToolCall {
                    id: item.call_id.clone().unwrap_or_else(|| item.id.clone()),
                    kind: "function".into(),
                    function: Some(FunctionCall { name: item.name.clone().unwrap_or_default(), arguments: item.arguments.clone(), output: None }),
                });
            }
            "function_call_output" => {
                let call_id = item.call_id.as_deref().unwrap_or_default();
                if let Some(f) = calls.iter_mut().filter(|c| c.id == call_id).find_map(|c| c.function.as_mut()) {
                    f.output = item.output.as_ref().map(output_text);
                }
            }
            _ => {}
        }
    }
    let thread = Thread {
        id: conv_id.to_string(),
        created_at: conversation.created_at,
        metadata: conversation.metadata.clone(),
        tool_resources: None,
    };
    ThreadBundle { thread, messages, runs, steps }
}

fn text_part(c: &ItemContent) -> Option<ContentPart> {
    matches!(c.kind.as_str(), "input_text" | "output_text" | "text").then(|| ContentPart {
        kind: "text".into(),
        text: Some(TextContent { value: c.text.clone().unwrap_or_default(), annotations: Vec::new() }),
        image_file: None,
    })
}

fn output_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::skills::functions_called;
    use serde_json::json;

    fn items(v: Value) -> Vec<Item> {
        serde_json::from_value(v).unwrap()
    }

    fn conv() -> Conversation {
        serde_json::from_value(json!({"id": "conv_1", "object": "conversation", "created_at": 100, "metadata": {"team": "ops"}})).unwrap()
    }

    #[test]
    fn function_calls_become_a_run_of_the_next_answer() {
        let b = to_bundle(
            &conv(),
            &items(json!([
                {"type": "message", "id": "msg_sys", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
                {"type": "message", "id": "msg_u1", "role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}", "status": "completed"},
                {"type": "function_call_output", "id": "fco_1", "call_id": "call_a", "output": "{\"temp\":4}"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "Get_Forecast", "arguments": "{}"},
                {"type": "message", "id": "msg_a1", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": "4 degrees.", "annotations": [{"type": "url_citation"}]}, {"type": "refusal", "refusal": "no"}]},
                {"type": "message", "id": "msg_u2", "role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
                {"type": "function_call", "id": "fc_3", "call_id": "call_c", "name": "dropped"},
                {"type": "message", "id": "msg_u3", "role": "user", "content": [{"type": "input_text", "text": "And tomorrow?"}]},
                {"type": "message", "id": "msg_a2", "role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]}
            ])),
        );
        assert_eq!(b.thread.id, "conv_1");
        assert_eq!(b.thread.metadata["team"], json!("ops"));
        let roles: Vec<(&str, Role, Option<&str>)> = b.messages.iter().map(|m| (m.id.as_str(), m.role, m.run_id.as_deref())).collect();
        assert_eq!(
            roles,
            [
                ("msg_sys", Role::Other, None),
                ("msg_u1", Role::User, None),
                ("msg_a1", Role::Assistant, Some("fc_1")),
                ("msg_u2", Role::User, None),
                ("msg_u3", Role::User, None),
                ("msg_a2", Role::Assistant, None),
            ]
        );
        assert_eq!(b.messages[2].content.len(), 1, "the refusal part carries no text");
        assert_eq!(b.runs.len(), 1);
        let call = &b.steps[0].step_details.tool_calls[0];
        assert_eq!((call.id.as_str(), call.function.as_ref().unwrap().output.as_deref()), ("call_a", Some("{\"temp\":4}")));
        assert_eq!(functions_called(&b, &["fc_1"]), ["get_forecast", "get_weather"]);
        assert!(b.messages.iter().all(|m| m.created_at == 100));
    }

    #[test]
    fn item_times_never_go_back() {
        let b = to_bundle(
            &conv(),
            &items(json!([
                {"type": "message", "id": "m1", "role": "user", "created_at": 150, "content": []},
                {"type": "message", "id": "m2", "role": "assistant", "content": []},
                {"type": "message", "id": "m3", "role": "user", "created_at": 120, "content": []}
            ])),
        );
        let times: Vec<i64> = b.messages.iter().map(|m| m.created_at).collect();
        assert_eq!(times, [150, 150, 150]);
    }

    #[test]
    fn conversation_id_file() {
        let (ids, w) = parse_ids("conv_a\nthread_b\nconv_a\n", "c.txt");
        assert_eq!(ids, ["conv_a"]);
        let kinds: Vec<&str> = w.iter().map(|w| w.kind.as_str()).collect();
        assert_eq!(kinds, ["invalid_conversation_id", "duplicate_conversation_id"]);
    }
}
