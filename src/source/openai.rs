//! The OpenAI HTTP source: assistants, threads (by id), messages, runs and run steps, with
//! cursor pagination as the official SDK does it (next cursor = id of the last item, stop on
//! `has_more == false`) plus a guard against servers that repeat a cursor forever.

use super::SourceError;
use crate::http::transport::{ApiRequest, ApiResponse, SharedTransport, TransportError};
use crate::model::{Assistant, FileObject, Message, Run, RunStep, Thread, ThreadBundle};
use crate::record::Warning;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashSet;

const PAGE_LIMIT: u32 = 100;

pub struct OpenAiSource {
    transport: SharedTransport,
    /// Which env vars the key and org came from, for messages (never their values).
    credential_note: String,
    /// Read run steps to find function calls (`[skills] from_run_steps`).
    read_run_steps: bool,
}

/// The outcome of fetching one thread: its bundle, a reason it was skipped (it is gone or
/// hidden: a rerun will not change that), or a failure a later run may not meet (the server
/// kept failing): those go into the rejects file for `--retry-failed`.
pub enum ThreadFetch {
    Found { bundle: ThreadBundle, warnings: Vec<Warning> },
    Skipped(Warning),
    Failed { warning: Warning, attempts: u32 },
}

impl OpenAiSource {
    pub fn new(transport: SharedTransport, credential_note: String, read_run_steps: bool) -> Self {
        OpenAiSource { transport, credential_note, read_run_steps }
    }

    /// All assistants of the account. A 404 here means the Assistants API is gone.
    pub async fn list_assistants(&self) -> Result<(Vec<Assistant>, Vec<Warning>), SourceError> {
        match self.list_all::<Assistant>("/assistants", "assistants").await {
            Err(SourceError::Http { request, status: 404 | 410, .. }) => Err(SourceError::AssistantsShutDown { request }),
            other => other,
        }
    }

    /// A thread with all its messages, runs and (where they can hold tool calls) run steps.
    /// Per-thread problems (404, 403, a server that keeps failing) become warnings.
    pub async fn fetch_thread(&self, thread_id: &str) -> Result<ThreadFetch, SourceError> {
        match self.fetch_thread_inner(thread_id).await {
            Ok(found) => Ok(found),
            Err(SourceError::Http { status: 404, message, .. }) => Ok(ThreadFetch::Skipped(Warning::new(
                "thread_not_found",
                thread_id,
                format!("the thread answered 404 ({message}); it was deleted, expired, or belongs to another organization or project"),
            ))),
            Err(SourceError::Http { status: 403, message, .. }) => Ok(ThreadFetch::Skipped(Warning::new(
                "thread_forbidden",
                thread_id,
                format!("the key may not read this thread (HTTP 403: {message})"),
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
                        thread_id,
                        format!("{e}; it is listed in the rejects file: rerun with --retry-failed FILE to retry just the failed threads"),
                    ),
                    attempts,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch_thread_inner(&self, thread_id: &str) -> Result<ThreadFetch, SourceError> {
        let thread: Thread = self.get_json(&format!("/threads/{thread_id}")).await?;
        let (messages, mut warnings) =
            self.list_all::<Message>(&format!("/threads/{thread_id}/messages"), thread_id).await?;
        let (runs, w) = self.list_all::<Run>(&format!("/threads/{thread_id}/runs"), thread_id).await?;
        warnings.extend(w);
        let mut steps = Vec::new();
        if self.read_run_steps {
            for run in runs.iter().filter(|r| run_may_call_functions(r)) {
                let (s, w) = self
                    .list_all::<RunStep>(&format!("/threads/{thread_id}/runs/{}/steps", run.id), &run.id)
                    .await?;
                steps.extend(s);
                warnings.extend(w);
            }
        }
        Ok(ThreadFetch::Found { bundle: ThreadBundle { thread, messages, runs, steps }, warnings })
    }

    /// `GET /files/{id}`: the file's metadata, or None when it is gone (404) or hidden (403).
    pub async fn file(&self, file_id: &str) -> Result<Option<FileObject>, SourceError> {
        match self.get_json::<FileObject>(&format!("/files/{file_id}")).await {
            Ok(f) => Ok(Some(f)),
            Err(SourceError::Http { status: 404 | 403, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Result<ApiResponse, SourceError> {
        let req = ApiRequest::get(path);
        let resp = self.transport.send(&req).await?;
        if resp.is_success() {
            return Ok(resp);
        }
        if resp.status == 401 {
            return Err(SourceError::Unauthorized {
                status: resp.status,
                message: resp.error_message(),
                org: self.credential_note.clone(),
            });
        }
        Err(SourceError::Http { request: req.describe(), status: resp.status, message: resp.error_message() })
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, SourceError> {
        let resp = self.get(path).await?;
        serde_json::from_slice(&resp.body)
            .map_err(|e| SourceError::Decode { request: format!("GET {path}"), message: e.to_string() })
    }

    /// Every item of a cursor-paginated list, oldest first. `owner` names the object the list
    /// belongs to, for the warning when a server repeats a cursor.
    pub(crate) async fn list_all<T: DeserializeOwned>(&self, path: &str, owner: &str) -> Result<(Vec<T>, Vec<Warning>), SourceError> {
        let mut items = Vec::new();
        let mut warnings = Vec::new();
        let mut after: Option<String> = None;
        let mut seen_cursors = HashSet::new();
        loop {
            let mut url = format!("{path}?limit={PAGE_LIMIT}&order=asc");
            if let Some(a) = &after {
                url.push_str("&after=");
                url.push_str(&url::form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>());
            }
            let page: Value = self.get_json(&url).await?;
            let data = page.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
            let has_more = page.get("has_more").and_then(Value::as_bool).unwrap_or(false);
            let last_id = data.last().and_then(|v| v.get("id")).and_then(Value::as_str).map(str::to_string);
            for v in data {
                let item = serde_json::from_value(v)
                    .map_err(|e| SourceError::Decode { request: format!("GET {url}"), message: e.to_string() })?;
                items.push(item);
            }
            match (has_more, last_id) {
                (true, Some(next)) => {
                    if !seen_cursors.insert(next.clone()) {
                        warnings.push(Warning::new(
                            "pagination_loop",
                            owner,
                            format!("GET {path} returned cursor {next} twice; stopped paging there (the server ignores `after`)"),
                        ));
                        break;
                    }
                    after = Some(next);
                }
                _ => break,
            }
        }
        Ok((items, warnings))
    }
}

/// Run steps are only worth a request when the run could call a function: its tool list has
/// a function tool, or it stopped to ask for tool outputs. An empty tool list is read too,
/// because some compatible servers do not echo the tools on the run.
fn run_may_call_functions(run: &Run) -> bool {
    run.tools.is_empty() || run.tools.iter().any(|t| t.kind == "function") || run.required_action.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tool;

    #[test]
    fn steps_only_for_runs_that_can_call_functions() {
        let mut run = Run { id: "run_1".into(), ..Default::default() };
        assert!(run_may_call_functions(&run));
        run.tools = vec![Tool { kind: "file_search".into(), function: None }];
        assert!(!run_may_call_functions(&run));
        run.tools.push(Tool { kind: "function".into(), function: None });
        assert!(run_may_call_functions(&run));
    }
}
