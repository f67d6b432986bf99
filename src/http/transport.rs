//! How requests reach an OpenAI-compatible server: live over HTTP, live while recording every
//! exchange to a fixture directory, or replayed from such a directory with no network at all.
//!
//! Everything above this module (the source, the embedder) speaks `ApiRequest`/`ApiResponse`
//! and never knows which of the three it is talking to.

use super::replay::{FixtureStore, Recorder};
use super::retry::{RetryPolicy, send_with_retry};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which configured base URL a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// `[source] base_url`: assistants, threads, files, vector stores.
    Api,
    /// `[embedding] base_url`.
    Embeddings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

/// A request, relative to its service's base URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    pub method: Method,
    pub service: Service,
    /// Path and query relative to the base URL, e.g. `/threads/thread_1/messages?order=asc`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> Self {
        ApiRequest { method: Method::Get, service: Service::Api, path: path.into(), body: None }
    }

    pub fn post_embeddings(body: Value) -> Self {
        ApiRequest { method: Method::Post, service: Service::Embeddings, path: "/embeddings".into(), body: Some(body) }
    }

    /// Assistants surfaces (and vector stores, as the SDK does) need the beta header.
    pub fn needs_beta_header(&self) -> bool {
        let p = self.path.as_str();
        p.starts_with("/assistants") || p.starts_with("/threads") || p.starts_with("/vector_stores")
    }

    /// `GET /threads/thread_1/messages?order=asc` — for messages and errors.
    pub fn describe(&self) -> String {
        let m = match self.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        format!("{m} {}", self.path)
    }
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error.message` of an OpenAI error body, or the body as text.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).chars().take(300).collect())
    }

    /// The `error.code` of an OpenAI error body.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.pointer("/error/code").and_then(Value::as_str).map(str::to_string))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{request}: {message} (gave up after {attempts} attempt{})", plural(*.attempts))]
    Network { request: String, message: String, attempts: u32 },
    #[error("{request}: gave up after {attempts} attempt{}; last answer: HTTP {status} {message}", plural(*.attempts))]
    Exhausted { request: String, attempts: u32, status: u16, message: String },
    #[error("{0}")]
    ReplayMiss(String),
    #[error("recording {request}: {message}")]
    Record { request: String, message: String },
}

impl TransportError {
    /// Attempts made before giving up (1 for errors that are not retried).
    pub fn attempts(&self) -> u32 {
        match self {
            TransportError::Network { attempts, .. } | TransportError::Exhausted { attempts, .. } => *attempts,
            _ => 1,
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Credentials and headers for live requests. The key is held only here and never logged.
#[derive(Clone)]
pub struct Credentials {
    pub api_key: String,
    pub organization: Option<String>,
    pub project: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("api_key", &"<redacted>").finish_non_exhaustive()
    }
}

/// Live HTTP with retries.
pub struct Live {
    client: reqwest::Client,
    api_base: String,
    embeddings_base: String,
    credentials: Credentials,
    retry: RetryPolicy,
}

impl Live {
    pub fn new(
        api_base: &str,
        embeddings_base: &str,
        credentials: Credentials,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> anyhow::Result<Live> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("engram/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Live {
            client,
            api_base: api_base.trim_end_matches('/').to_string(),
            embeddings_base: embeddings_base.trim_end_matches('/').to_string(),
            credentials,
            retry,
        })
    }

    pub fn api_key(&self) -> &str {
        &self.credentials.api_key
    }

    /// One attempt, no retry.
    pub(crate) async fn send_once(&self, req: &ApiRequest) -> Result<ApiResponse, reqwest::Error> {
        let base = match req.service {
            Service::Api => &self.api_base,
            Service::Embeddings => &self.embeddings_base,
        };
        let url = format!("{base}{}", req.path);
        let mut builder = match req.method {
            Method::Get => self.client.get(&url),
            Method::Post => self.client.post(&url),
        };
        builder = builder.bearer_auth(&self.credentials.api_key);
        if req.needs_beta_header() {
            builder = builder.header("OpenAI-Beta", "assistants=v2");
        }
        if let Some(org) = &self.credentials.organization {
            builder = builder.header("OpenAI-Organization", org);
        }
        if let Some(project) = &self.credentials.project {
            builder = builder.header("OpenAI-Project", project);
        }
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let resp = builder.send().await?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let mut body = resp.bytes().await?;
        if !(200..300).contains(&status) {
            body = scrub(body, &self.credentials.api_key);
        }
        Ok(ApiResponse { status, headers, body })
    }
}

/// Error answers are quoted in messages, warnings and the rejects file; a server (or proxy)
/// that echoes the key back must not get it printed.
fn scrub(body: Bytes, key: &str) -> Bytes {
    if key.is_empty() || !body.windows(key.len()).any(|w| w == key.as_bytes()) {
        return body;
    }
    let text = String::from_utf8_lossy(&body).replace(key, "<redacted>");
    Bytes::from(text)
}

/// The ways to reach the server.
enum TransportKind {
    Live(Live),
    Recording(Live, Recorder),
    Replay(FixtureStore),
    /// Answers from data on disk, no network (an export directory's files and vector stores).
    Offline(Box<dyn Offline>),
}

/// A way to reach the server, counting what goes through it.
pub struct Transport {
    kind: TransportKind,
    pub stats: Arc<RequestStats>,
}

/// Requests a run made, for the report (`requests`) and the benchmark.
#[derive(Debug, Default)]
pub struct RequestStats {
    /// The tokens-per-minute limit the server declared (`x-ratelimit-limit-tokens`), 0 if none.
    pub declared_tokens: AtomicU64,
    /// Answered requests to `[source] base_url` (pages, object reads, file contents).
    pub api: AtomicU64,
    /// Of those, run-steps pages (`[skills] from_run_steps`).
    pub run_steps: AtomicU64,
    /// Answered embeddings requests.
    pub embeddings: AtomicU64,
    /// HTTP attempts on the wire, retries included (live only).
    pub attempts: AtomicU64,
    /// The last `x-ratelimit-limit-requests` a server declared (0: none).
    pub declared_limit: AtomicU64,
}

impl RequestStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What answers requests for `Transport::Offline`: every request gets an answer (an API-style
/// 404 for what it does not hold), never a network error.
pub trait Offline: Send + Sync {
    fn answer(&self, req: &ApiRequest) -> ApiResponse;
}

impl Transport {
    pub fn live(live: Live) -> Transport {
        let stats = live.retry.stats.clone();
        Transport { kind: TransportKind::Live(live), stats }
    }

    pub fn recording(live: Live, recorder: Recorder) -> Transport {
        let stats = live.retry.stats.clone();
        Transport { kind: TransportKind::Recording(live, recorder), stats }
    }

    pub fn replay(store: FixtureStore) -> Transport {
        Transport { kind: TransportKind::Replay(store), stats: Arc::default() }
    }

    pub fn offline(answers: Box<dyn Offline>) -> Transport {
        Transport { kind: TransportKind::Offline(answers), stats: Arc::default() }
    }

    /// Sends a request. HTTP error statuses come back as responses (the caller decides what a
    /// 404 means); only network failures, exhausted retries and replay misses are errors.
    pub async fn send(&self, req: &ApiRequest) -> Result<ApiResponse, TransportError> {
        self.send_weighted(req, 0).await
    }

    /// `send` for a request that takes `tokens` from a declared tokens-per-minute budget (an
    /// embeddings request): it waits until the budget covers them.
    pub async fn send_weighted(&self, req: &ApiRequest, tokens: u64) -> Result<ApiResponse, TransportError> {
        let resp = match &self.kind {
            TransportKind::Live(live) => send_with_retry(live, req, &live.retry, tokens).await?,
            TransportKind::Recording(live, recorder) => {
                let resp = send_with_retry(live, req, &live.retry, tokens).await?;
                recorder.record(req, &resp, live.api_key())?;
                resp
            }
            TransportKind::Replay(store) => store.answer(req)?,
            TransportKind::Offline(offline) => offline.answer(req),
        };
        let s = &self.stats;
        match req.service {
            Service::Embeddings => s.embeddings.fetch_add(1, Ordering::Relaxed),
            Service::Api => s.api.fetch_add(1, Ordering::Relaxed),
        };
        if req.path.split('?').next().is_some_and(|p| p.ends_with("/steps")) {
            s.run_steps.fetch_add(1, Ordering::Relaxed);
        }
        Ok(resp)
    }

    /// Where the live in-flight limit settled (None for a replay or offline source).
    pub fn concurrency(&self) -> Option<super::limiter::Settled> {
        match &self.kind {
            TransportKind::Live(live) | TransportKind::Recording(live, _) => Some(live.retry.concurrency_settled()),
            _ => None,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.kind, TransportKind::Replay(_))
    }
}

pub type SharedTransport = Arc<Transport>;
