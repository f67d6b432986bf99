//! Source, `kind = "conversations"`: the Responses API's Conversations, by id (the API cannot
//! list them). Each conversation is read with `GET /conversations/{id}` and its items with
//! `GET /conversations/{id}/items?order=asc&limit=100` (cursor pagination), then turned into a
//! `ThreadBundle`, so that pairing, scopes and skills work exactly as for threads:
//!
//! - the conversation is the thread (its `metadata` is `{thread.metadata.KEY}`);
//! - items are read by their `type`, as raw JSON: a type engram does not know (or an item
//!   without `type`/`id`) is skipped with one counted `conversation_item_skipped` warning per
//!   type, never a failed conversation;
//! - `message` items with role `user` / `assistant` are messages; `input_text`, `output_text`
//!   and `text` parts are their text, kept exactly as written (Responses annotations point at
//!   offsets: `resolve_annotations` adds cited file names and URLs there). `refusal` parts make
//!   the answer a refusal, `input_image` / `computer_screenshot` parts are images (an image-only
//!   question pairs with nothing), `input_file`, `summary_text` and `reasoning_text` carry no
//!   answer. An assistant message with `phase: "commentary"` is not the answer (only
//!   `final_answer`, or no phase, is); `system` / `developer` messages are never paired;
//! - tool calls — `function_call`, `custom_tool_call`, `mcp_call` (`<server_label>.<name>`) and
//!   the built-in ones (`web_search_call` -> `web_search`, …, see `BUILTIN_TOOLS`) — belong to the
//!   next assistant message: they become one synthetic completed run (id: the first call item's
//!   id) with one `tool_calls` step, and that message's `run_id` names it, so Map tags the answer
//!   with those skills (`[skills] custom_tools`, `mcp_tools`, `builtin_tools`). Calls followed by
//!   a user message before any answer (interrupted, or never answered) become an empty answer of
//!   an `incomplete` run: the question before them is unanswered, never glued to the next;
//! - message `status` (`in_progress`, `incomplete`) follows `[patterns] incomplete`, as for
//!   threads; tool outputs, reasoning and MCP bookkeeping items carry nothing to migrate.
//!
//! Items carry no `created_at`; messages take the item's when a server sends one, else the
//! conversation's, never going back in time (so item order is message order).
//!
//! There is no assistant: scope templates use `{thread.id}`, `{thread.metadata.KEY}` or
//! `default_project` (checked when the mapping is loaded). The wire types live here, beside
//! their only reader.

use super::openai::OpenAiSource;
use crate::http::transport::TransportError;
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

pub struct ConversationsSource {
    api: Arc<OpenAiSource>,
    tools: ToolSkills,
}

impl ConversationsSource {
    pub fn new(api: Arc<OpenAiSource>, tools: ToolSkills) -> Self {
        ConversationsSource { api, tools }
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
        // Items stay raw JSON until `to_bundle` reads each by its type: one item engram cannot
        // read costs that item (a counted warning), never the conversation.
        let (items, mut warnings) = self.api.list_all::<Value>(&format!("/conversations/{id}/items"), id).await?;
        let (bundle, item_warnings) = to_bundle(&conversation, &items, &self.tools);
        warnings.extend(item_warnings);
        Ok(ThreadFetch::Found { bundle, warnings })
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

/// Which tool calls besides `function_call` tag an answer with a skill (`[skills]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSkills {
    pub custom: bool,
    pub mcp: bool,
    pub builtin: bool,
}

impl Default for ToolSkills {
    fn default() -> Self {
        ToolSkills { custom: true, mcp: true, builtin: true }
    }
}

impl From<&crate::config::SkillsConfig> for ToolSkills {
    fn from(c: &crate::config::SkillsConfig) -> Self {
        ToolSkills { custom: c.custom_tools, mcp: c.mcp_tools, builtin: c.builtin_tools }
    }
}

/// Built-in tool call item types (ConversationItem, openai/openai-openapi) and the skill each
/// names.
const BUILTIN_TOOLS: &[(&str, &str)] = &[
    ("file_search_call", "file_search"),
    ("web_search_call", "web_search"),
    ("image_generation_call", "image_generation"),
    ("computer_call", "computer_use"),
    ("code_interpreter_call", "code_interpreter"),
    ("local_shell_call", "local_shell"),
    ("shell_call", "shell"),
    ("apply_patch_call", "apply_patch"),
    ("tool_search_call", "tool_search"),
];

/// Documented item types that carry nothing to migrate: tool outputs (their call is what
/// counts), reasoning, and MCP bookkeeping.
const NOT_MIGRATED: &[&str] = &[
    "computer_call_output",
    "reasoning",
    "local_shell_call_output",
    "shell_call_output",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "custom_tool_call_output",
    "tool_search_output",
    "compaction",
    "item_reference",
];

fn str_of<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    item.get(key).and_then(Value::as_str)
}

/// Items (oldest first) -> a thread bundle, and warnings for items engram could not read; see
/// the module header for the rules. Pure.
pub fn to_bundle(conversation: &Conversation, items: &[Value], tools: &ToolSkills) -> (ThreadBundle, Vec<Warning>) {
    let conv_id = conversation.id.as_str();
    let mut b = Builder { conv_id, messages: Vec::new(), runs: Vec::new(), steps: Vec::new(), calls: Vec::new(), first_call: None };
    // Item types engram could not read, by type, in order of first appearance.
    let mut unread: Vec<(String, usize, String)> = Vec::new();
    let mut clock = conversation.created_at;
    for item in items {
        let kind = str_of(item, "type").unwrap_or_default();
        let id = str_of(item, "id").unwrap_or_default();
        clock = clock.max(item.get("created_at").and_then(Value::as_i64).unwrap_or(clock));
        let skill = match kind {
            "message" if !id.is_empty() => {
                b.message(item, id, clock);
                continue;
            }
            "function_call" => str_of(item, "name").map(str::to_string),
            "custom_tool_call" => str_of(item, "name").filter(|_| tools.custom).map(str::to_string),
            "mcp_call" => match (str_of(item, "server_label"), str_of(item, "name")) {
                (Some(label), Some(name)) if tools.mcp => Some(format!("{label}.{name}")),
                (None, Some(name)) if tools.mcp => Some(name.to_string()),
                _ => None,
            },
            "function_call_output" => {
                b.output(item);
                continue;
            }
            k if NOT_MIGRATED.contains(&k) => continue,
            k => match BUILTIN_TOOLS.iter().find(|(t, _)| *t == k) {
                Some((_, skill)) => tools.builtin.then(|| skill.to_string()),
                None => {
                    let why = if kind.is_empty() { "no `type`".to_string() } else if id.is_empty() { "no `id`".to_string() } else { "a type engram does not know".to_string() };
                    let label = if kind.is_empty() { "(untyped)".to_string() } else { kind.to_string() };
                    match unread.iter_mut().find(|(k, _, _)| *k == label) {
                        Some((_, n, _)) => *n += 1,
                        None => unread.push((label, 1, why)),
                    }
                    continue;
                }
            },
        };
        // A tool call, used or not as a skill: it belongs to the next answer.
        b.call(item, id, kind, skill);
    }
    b.flush_unanswered(clock);
    let thread = Thread {
        id: conv_id.to_string(),
        created_at: conversation.created_at,
        metadata: conversation.metadata.clone(),
        tool_resources: None,
    };
    let warnings = unread
        .into_iter()
        .map(|(kind, n, why)| {
            Warning::new(
                "conversation_item_skipped",
                conv_id,
                format!("{n} item(s) of type {kind:?} in conversation {conv_id} not migrated ({why}); the rest of the conversation was"),
            )
        })
        .collect();
    (ThreadBundle { thread, messages: b.messages, runs: b.runs, steps: b.steps }, warnings)
}

/// The bundle being built: tool calls since the last message wait for the answer they led to.
struct Builder<'a> {
    conv_id: &'a str,
    messages: Vec<Message>,
    runs: Vec<Run>,
    steps: Vec<RunStep>,
    calls: Vec<ToolCall>,
    /// Id of the first tool-call item since the last message (the synthetic run's id).
    first_call: Option<String>,
}

impl Builder<'_> {
    fn message(&mut self, item: &Value, id: &str, clock: i64) {
        let role = match (str_of(item, "role"), str_of(item, "phase")) {
            // A `commentary` preamble ("Let me check the rate.") is not the answer.
            (Some("assistant"), Some("commentary")) => Role::Other,
            (Some("user"), _) => Role::User,
            (Some("assistant"), _) => Role::Assistant,
            _ => Role::Other,
        };
        let mut run_id = None;
        match role {
            // Calls that led to no answer: the question before them was not answered.
            Role::User => self.flush_unanswered(clock),
            Role::Assistant => {
                if let Some(first) = self.first_call.take() {
                    run_id = Some(self.push_run(first, "completed", clock));
                }
            }
            Role::Other => {}
        }
        let content = match item.get("content") {
            Some(Value::Array(parts)) => parts.iter().filter_map(content_part).collect(),
            // A plain-string content (some compatible servers).
            Some(Value::String(s)) => vec![verbatim(s.clone())],
            _ => Vec::new(),
        };
        self.messages.push(Message {
            id: id.to_string(),
            created_at: clock,
            thread_id: self.conv_id.to_string(),
            role,
            content,
            assistant_id: None,
            run_id,
            attachments: Vec::new(),
            metadata: Metadata::new(),
            status: str_of(item, "status").map(str::to_string),
            incomplete_details: None,
        });
    }

    fn call(&mut self, item: &Value, id: &str, kind: &str, skill: Option<String>) {
        if self.first_call.is_none() {
            self.first_call = Some(if id.is_empty() { format!("{kind}_{}", self.messages.len()) } else { id.to_string() });
        }
        if let Some(name) = skill {
            let arguments = item.get("arguments").or_else(|| item.get("input")).map(output_text);
            self.calls.push(ToolCall {
                id: str_of(item, "call_id").unwrap_or(id).to_string(),
                kind: "function".into(),
                function: Some(FunctionCall { name, arguments, output: None }),
            });
        }
    }

    fn output(&mut self, item: &Value) {
        let call_id = str_of(item, "call_id").unwrap_or_default();
        if let Some(f) = self.calls.iter_mut().filter(|c| c.id == call_id).find_map(|c| c.function.as_mut()) {
            f.output = item.get("output").map(output_text);
        }
    }

    /// Tool calls with no answer after them (interrupted, or the model never replied): an empty
    /// answer from an `incomplete` run, so the question before them pairs with nothing instead
    /// of being glued to the next one.
    fn flush_unanswered(&mut self, clock: i64) {
        let Some(first) = self.first_call.take() else { return };
        let run_id = self.push_run(first.clone(), "incomplete", clock);
        self.messages.push(Message {
            id: first,
            created_at: clock,
            thread_id: self.conv_id.to_string(),
            role: Role::Assistant,
            content: Vec::new(),
            assistant_id: None,
            run_id: Some(run_id),
            attachments: Vec::new(),
            metadata: Metadata::new(),
            status: Some("incomplete".into()),
            incomplete_details: None,
        });
    }

    /// One synthetic run holding the calls since the last message, as one `tool_calls` step.
    fn push_run(&mut self, id: String, status: &str, clock: i64) -> String {
        let tool_calls = std::mem::take(&mut self.calls);
        self.runs.push(Run {
            id: id.clone(),
            created_at: clock,
            thread_id: self.conv_id.to_string(),
            assistant_id: None,
            status: status.into(),
            tools: vec![Tool { kind: "function".into(), function: None }],
            required_action: None,
        });
        self.steps.push(RunStep {
            id: id.clone(),
            created_at: clock,
            run_id: id.clone(),
            kind: "tool_calls".into(),
            status: status.into(),
            step_details: StepDetails { kind: "tool_calls".into(), tool_calls, message_creation: None },
        });
        id
    }
}

/// Text kept exactly as written: Responses text has no citation markers to clean (see
/// `map::text`, which only cleans `text` parts of Assistants messages).
fn verbatim(value: String) -> ContentPart {
    ContentPart {
        kind: crate::model::VERBATIM_TEXT.into(),
        text: Some(TextContent { value, annotations: Vec::new() }),
        image_file: None,
    }
}

/// One message content part (`input_text`, `output_text`, `text`, `summary_text`,
/// `reasoning_text`, `refusal`, `input_image`, `computer_screenshot`, `input_file`).
fn content_part(part: &Value) -> Option<ContentPart> {
    let kind = str_of(part, "type")?;
    let text = || str_of(part, "text").unwrap_or_default().to_string();
    match kind {
        "input_text" | "text" => Some(verbatim(text())),
        "output_text" => {
            let annotations = part.get("annotations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            Some(verbatim(resolve_annotations(&text(), annotations)))
        }
        // Refusals and images carry no text; pairing reads their kind.
        "refusal" => Some(ContentPart { kind: "refusal".into(), ..Default::default() }),
        "input_image" | "computer_screenshot" => Some(ContentPart { kind: "image_url".into(), ..Default::default() }),
        // Reasoning summaries and attached files are not the answer.
        _ => None,
    }
}

/// Responses annotations point into the text rather than standing in it: a file citation adds
/// `[filename]` where it points (as Assistants citations are resolved), a URL citation adds
/// `(<url>)` after the cited span unless the text already shows that URL, each set off by one
/// space; `file_path` (no name to show) adds nothing. Nothing else in the text changes. Offsets
/// are in characters and clamped to the text.
pub fn resolve_annotations(text: &str, annotations: &[Value]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for a in annotations {
        let at = |key: &str| a.get(key).and_then(Value::as_u64).map(|i| (i as usize).min(chars.len()));
        match str_of(a, "type") {
            Some("file_citation") | Some("container_file_citation") => {
                let Some(name) = str_of(a, "filename").filter(|n| !n.trim().is_empty()) else { continue };
                let Some(pos) = at("index").or_else(|| at("end_index")) else { continue };
                let tag = format!("[{name}]");
                if !text.contains(&tag) {
                    inserts.push((pos, spaced(&chars, pos, &tag)));
                }
            }
            Some("url_citation") => {
                let Some(url) = str_of(a, "url").filter(|u| !u.is_empty()) else { continue };
                let Some(pos) = at("end_index") else { continue };
                if !text.contains(url) {
                    inserts.push((pos, spaced(&chars, pos, &format!("({url})"))));
                }
            }
            _ => {}
        }
    }
    if inserts.is_empty() {
        return text.to_string();
    }
    // Stable: equal positions keep annotation order.
    inserts.sort_by_key(|(pos, _)| *pos);
    let mut out = String::with_capacity(text.len() + 32);
    let mut next = inserts.into_iter().peekable();
    for (i, c) in chars.iter().enumerate() {
        while let Some((_, s)) = next.next_if(|(pos, _)| *pos == i) {
            out.push_str(&s);
        }
        out.push(*c);
    }
    for (_, s) in next {
        out.push_str(&s);
    }
    out
}

/// `tag` to insert at `pos`, set off by one space from the word before it ("the guide
/// [guide.pdf]", as a resolved Assistants marker reads), never doubling a space.
fn spaced(chars: &[char], pos: usize, tag: &str) -> String {
    match pos.checked_sub(1).map(|i| chars[i]) {
        Some(c) if c.is_whitespace() => format!("{tag} "),
        Some(_) => format!(" {tag}"),
        None => format!("{tag} "),
    }
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
    use crate::map::pairing::{Ending, Fate, conversation as questions};
    use crate::map::skills::functions_called;
    use serde_json::json;

    fn conv() -> Conversation {
        serde_json::from_value(json!({"id": "conv_1", "object": "conversation", "created_at": 100, "metadata": {"team": "ops"}})).unwrap()
    }

    fn bundle(items: Value) -> (ThreadBundle, Vec<Warning>) {
        to_bundle(&conv(), items.as_array().unwrap(), &ToolSkills::default())
    }

    fn user(id: &str, text: &str) -> Value {
        json!({"type": "message", "id": id, "role": "user", "status": "completed", "content": [{"type": "input_text", "text": text}]})
    }

    fn answer(id: &str, text: &str) -> Value {
        json!({"type": "message", "id": id, "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    }

    /// (question, answer or fate) of every question, as Map pairs them.
    fn pairs(b: &ThreadBundle) -> Vec<(String, String)> {
        questions(&b.messages, &b.runs, &Default::default())
            .questions
            .into_iter()
            .map(|q| {
                let fate = match q.fate {
                    Fate::Answered { answer, ending: Ending::Completed } => answer.text,
                    Fate::Answered { ending: Ending::Incomplete(r), .. } => format!("<incomplete {r}>"),
                    Fate::Refused { .. } => "<refused>".into(),
                    Fate::Unanswered { .. } => "<unanswered>".into(),
                };
                (q.user.text, fate)
            })
            .collect()
    }

    #[test]
    fn function_calls_become_a_run_of_the_next_answer() {
        let (b, w) = bundle(json!([
            {"type": "message", "id": "msg_sys", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
            user("msg_u1", "Weather in Oslo?"),
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}", "status": "completed"},
            {"type": "function_call_output", "id": "fco_1", "call_id": "call_a", "output": "{\"temp\":4}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "Get_Forecast", "arguments": "{}"},
            answer("msg_a1", "4 degrees."),
            user("msg_u3", "And tomorrow?"),
            answer("msg_a2", "Rain.")
        ]));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(b.thread.id, "conv_1");
        assert_eq!(b.thread.metadata["team"], json!("ops"));
        let roles: Vec<(&str, Role, Option<&str>)> = b.messages.iter().map(|m| (m.id.as_str(), m.role, m.run_id.as_deref())).collect();
        assert_eq!(
            roles,
            [
                ("msg_sys", Role::Other, None),
                ("msg_u1", Role::User, None),
                ("msg_a1", Role::Assistant, Some("fc_1")),
                ("msg_u3", Role::User, None),
                ("msg_a2", Role::Assistant, None),
            ]
        );
        assert_eq!(b.runs.len(), 1);
        let call = &b.steps[0].step_details.tool_calls[0];
        assert_eq!((call.id.as_str(), call.function.as_ref().unwrap().output.as_deref()), ("call_a", Some("{\"temp\":4}")));
        assert_eq!(functions_called(&b, &["fc_1"]), ["get_forecast", "get_weather"]);
        assert!(b.messages.iter().all(|m| m.created_at == 100));
        assert_eq!(pairs(&b), [("Weather in Oslo?".into(), "4 degrees.".into()), ("And tomorrow?".into(), "Rain.".into())]);
    }

    /// The cases: a refusal, an interrupted call, an image-only turn, incomplete and
    /// in-progress answers, a commentary preamble: none glues two questions.
    #[test]
    fn fates_of_questions() {
        let (b, _) = bundle(json!([
            user("u1", "How do I pick a lock?"),
            {"type": "message", "id": "a1", "role": "assistant", "status": "completed", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
            user("u2", "Convert 10 EUR to USD."),
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "convert", "arguments": "{}", "status": "incomplete"},
            user("u3", "What is 2 + 2?"),
            answer("a3", "4."),
            {"type": "message", "id": "u4", "role": "user", "content": [{"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"}]},
            answer("a4", "A cat on a keyboard."),
            user("u5", "Write a long poem."),
            {"type": "message", "id": "a5", "role": "assistant", "status": "incomplete", "content": [{"type": "output_text", "text": "Roses are", "annotations": []}]},
            user("u6", "Still writing?"),
            {"type": "message", "id": "a6", "role": "assistant", "status": "in_progress", "content": [{"type": "output_text", "text": "Yes", "annotations": []}]},
            user("u7", "What is the USD rate?"),
            {"type": "message", "id": "a7c", "role": "assistant", "phase": "commentary", "content": [{"type": "output_text", "text": "Let me check the rate.", "annotations": []}]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "usd rate"}},
            {"type": "message", "id": "a7", "role": "assistant", "phase": "final_answer", "status": "completed", "content": [{"type": "output_text", "text": "1.08.", "annotations": []}]}
        ]));
        assert_eq!(
            pairs(&b),
            [
                ("How do I pick a lock?".into(), "<refused>".into()),
                ("Convert 10 EUR to USD.".into(), "<unanswered>".into()),
                ("What is 2 + 2?".into(), "4.".into()),
                ("Write a long poem.".into(), "<incomplete incomplete>".into()),
                ("Still writing?".into(), "<incomplete in_progress>".into()),
                ("What is the USD rate?".into(), "1.08.".into()),
            ]
        );
        let last = b.messages.iter().find(|m| m.id == "a7").unwrap();
        assert_eq!(functions_called(&b, &[last.run_id.as_deref().unwrap()]), ["web_search"]);
    }

    #[test]
    fn text_is_kept_as_written_and_annotations_resolved_by_offset() {
        let text = "See the guide and the docs. Literal 【4:0†source】 stays.";
        let (b, _) = bundle(json!([
            user("u1", "Where is it documented?"),
            {"type": "message", "id": "a1", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": [
                {"type": "file_citation", "file_id": "file-1", "filename": "guide.pdf", "index": 13},
                {"type": "url_citation", "url": "https://docs.example.com", "title": "Docs", "start_index": 22, "end_index": 26},
                {"type": "container_file_citation", "container_id": "cntr_1", "file_id": "cfile_1", "filename": "out.csv", "start_index": 0, "end_index": 3},
                {"type": "file_path", "file_id": "file-2", "index": 5}
            ]}]}
        ]));
        assert_eq!(
            pairs(&b)[0].1,
            "See [out.csv] the guide [guide.pdf] and the docs (https://docs.example.com). Literal 【4:0†source】 stays."
        );
        // A URL the text already shows is not repeated; offsets past the end are clamped.
        let a = [json!({"type": "url_citation", "url": "https://x.y", "start_index": 0, "end_index": 99})];
        assert_eq!(resolve_annotations("at https://x.y", &a), "at https://x.y");
        assert_eq!(resolve_annotations("at x", &[json!({"type": "file_citation", "filename": "f.txt", "index": 99})]), "at x [f.txt]");
    }

    /// Every ConversationItem type (openai/openai-openapi): none fails the conversation; tool
    /// calls tag the answer, per `[skills]`; an unknown type is a counted warning.
    #[test]
    fn every_item_type_is_read_and_tools_become_skills() {
        let items = json!([
            user("u1", "Do everything."),
            {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": null},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
            {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "aGk="},
            {"type": "computer_call", "id": "cc_1", "call_id": "ccall_1", "action": {"type": "click", "x": 1, "y": 2, "button": "left"}, "pending_safety_checks": [], "status": "completed"},
            {"type": "computer_call_output", "id": "cco_1", "call_id": "ccall_1", "output": {"type": "computer_screenshot", "image_url": "data:"}},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}], "content": [{"type": "reasoning_text", "text": "hmm"}]},
            {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "container_id": "cntr_1", "code": "1+1", "outputs": [{"type": "logs", "logs": "2"}]},
            {"type": "local_shell_call", "id": "ls_1", "call_id": "lsc_1", "action": {"type": "exec", "command": ["ls"], "env": {}}, "status": "completed"},
            {"type": "local_shell_call_output", "id": "lso_1", "output": "a b"},
            {"type": "shell_call", "id": "sh_1", "call_id": "shc_1", "action": {"commands": ["ls"]}, "status": "completed"},
            {"type": "shell_call_output", "id": "sho_1", "call_id": "shc_1", "output": [{"stdout": "a", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]},
            {"type": "apply_patch_call", "id": "ap_1", "call_id": "apc_1", "operation": {"type": "update_file", "path": "a.py", "diff": "-x\n+y"}, "status": "completed"},
            {"type": "apply_patch_call_output", "id": "apo_1", "call_id": "apc_1", "status": "completed"},
            {"type": "mcp_list_tools", "id": "ml_1", "server_label": "github", "tools": [{"name": "search_issues", "input_schema": {}}]},
            {"type": "mcp_approval_request", "id": "mar_1", "server_label": "github", "name": "search_issues", "arguments": "{}"},
            {"type": "mcp_approval_response", "id": "mas_1", "approval_request_id": "mar_1", "approve": true},
            {"type": "mcp_call", "id": "mc_1", "server_label": "github", "name": "search_issues", "arguments": "{}", "output": "[]"},
            {"type": "custom_tool_call", "id": "ct_1", "call_id": "ctc_1", "name": "Run_SQL", "input": "select 1"},
            {"type": "custom_tool_call_output", "id": "cto_1", "call_id": "ctc_1", "output": "1"},
            {"type": "function_call", "id": "fc_1", "call_id": "fcc_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "id": "fco_1", "call_id": "fcc_1", "output": [{"type": "input_text", "text": "ok"}]},
            {"type": "tool_search_call", "id": "ts_1", "arguments": {"query": "tools"}, "status": "completed"},
            {"type": "some_future_call", "id": "fu_1"},
            {"type": "some_future_call", "id": "fu_2"},
            answer("a1", "Done.")
        ]);
        let (b, w) = bundle(items.clone());
        assert_eq!(pairs(&b), [("Do everything.".into(), "Done.".into())]);
        let run = b.messages.iter().find(|m| m.id == "a1").unwrap().run_id.clone().unwrap();
        assert_eq!(
            functions_called(&b, &[run.as_str()]),
            [
                "apply_patch", "code_interpreter", "computer_use", "file_search", "github.search_issues", "image_generation", "local_shell",
                "lookup", "run_sql", "shell", "tool_search", "web_search"
            ]
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].kind, "conversation_item_skipped");
        assert!(w[0].message.contains("2 item(s) of type \"some_future_call\""), "{}", w[0].message);
        // `[skills]` switches: only functions are left.
        let (b, _) = to_bundle(&conv(), items.as_array().unwrap(), &ToolSkills { custom: false, mcp: false, builtin: false });
        let run = b.messages.iter().find(|m| m.id == "a1").unwrap().run_id.clone().unwrap();
        assert_eq!(functions_called(&b, &[run.as_str()]), ["lookup"]);
    }

    #[test]
    fn item_times_never_go_back() {
        let (b, _) = bundle(json!([
            {"type": "message", "id": "m1", "role": "user", "created_at": 150, "content": []},
            {"type": "message", "id": "m2", "role": "assistant", "content": []},
            {"type": "message", "id": "m3", "role": "user", "created_at": 120, "content": []}
        ]));
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
