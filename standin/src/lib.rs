//! A stand-in OpenAI server for tests, recorded fixtures and benchmarks (binary: `openai-standin`).
//!
//! The real Assistants API was shut down on 2026-08-26, so engram talks to this server instead.
//! It serves a read-only [`Account`] over the wire format of
//! `shared/spec/openai-assistants-api.md`: the Assistants GET routes (assistants, threads,
//! messages, runs, run steps), files and their bytes, vector stores with their files and parsed
//! content, and `POST /v1/embeddings` with deterministic, paraphrase-friendly vectors.
//! It checks auth and the `OpenAI-Beta` header, validates id prefixes, answers with OpenAI's
//! error envelopes and headers, can imitate the 2026-08-26 shutdown, a requests-per-minute limit
//! and injected faults (429, 500, delays, dropped connections) for retry tests.
//!
//! Invariant: the served data never changes after [`serve`]; the only mutable state is the
//! counters behind [`Standin::stats`] and the rate-limit window. So a faulted request retried
//! gets exactly the answer it would have got the first time.

mod account;
mod conversations;
pub mod embeddings;
mod error;
mod faults;
mod pagination;
mod routes;
mod synthetic;
#[cfg(test)]
mod tests;

pub use account::Account;
pub use embeddings::embed_text;
pub use synthetic::synthetic_account;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Faults injected into `/v1` requests, counted in arrival order from 1 (every request to `/v1`
/// counts, whatever its route or outcome). `Some(0)` is the same as `None`. When one request is
/// due for several faults, a dropped connection wins over a 429, and a 429 over a 500.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every Nth request answers 429 `rate_limit_exceeded` with `retry-after`.
    pub every_429: Option<u64>,
    /// `retry-after` seconds sent with injected 429s (0 means 1).
    pub retry_after_secs: u64,
    /// Every Mth request answers 500 `server_error`.
    pub every_500: Option<u64>,
    /// Sleep this long before answering any `/v1` request (faulted ones too).
    pub delay_ms: u64,
    /// Every Kth request's connection is closed (reset) without any response bytes.
    pub drop_every: Option<u64>,
}

/// How a stand-in behaves beyond the data it serves. The default: any bearer key, not shut
/// down, no faults, no rate limit.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// When set, `Authorization: Bearer` must carry exactly this key; when `None`, any
    /// non-empty bearer token is accepted (a missing one is still a 401).
    pub api_key: Option<String>,
    /// Answer every `/v1/assistants*` and `/v1/threads*` route with 404 `Invalid URL`, as the
    /// real API has since 2026-08-26. Files, vector stores and embeddings keep working.
    pub assistants_shut_down: bool,
    pub faults: Faults,
    /// Requests allowed in any 60-second sliding window; adds the `x-ratelimit-*-requests`
    /// headers and answers 429 when exceeded.
    pub rate_limit_per_minute: Option<u64>,
    /// Embedding input tokens (cl100k_base) allowed in any 60-second sliding window; adds the
    /// `x-ratelimit-*-tokens` headers to every answer and answers an embeddings request that
    /// would pass it with 429 `tokens`.
    pub tokens_per_minute: Option<u64>,
    /// The window both limits count over instead of a minute (tests shorten it); the
    /// `x-ratelimit-reset-*` headers follow it.
    pub rate_window: Option<Duration>,
    /// How long answers take, as a real server's do.
    pub timing: Timing,
}

/// Simulated server time. The default answers at once.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    /// Every `/v1` request waits this long before it is answered (faulted ones too) ...
    pub latency_ms: u64,
    /// ... plus up to this much more, the same for the same arrival number on every run.
    pub jitter_ms: u64,
    /// An embeddings request also waits this many microseconds per input (a 2,048-input
    /// request to the real API takes seconds).
    pub embed_us_per_input: u64,
}

/// Counters since the stand-in started. Served (uncounted, without auth) at
/// `GET /_standin/stats`.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Requests to `/v1/...`, whatever their outcome.
    pub requests: u64,
    /// Requests per route template, e.g. `"GET /threads/{id}/messages"`; paths that match no
    /// route count as `"GET (unknown)"` (method varies).
    pub by_route: BTreeMap<String, u64>,
    /// Successful `POST /v1/embeddings` answers.
    pub embedding_requests: u64,
    /// Inputs embedded in those answers.
    pub embedding_inputs: u64,
    /// Injected faults (429, 500, dropped connections); rate-limit 429s are not faults.
    pub faults_injected: u64,
    /// Requests answered 429 because a declared limit (requests or tokens) was exceeded.
    #[serde(default)]
    pub rate_limited: u64,
    /// Embedding input tokens served.
    #[serde(default)]
    pub embedding_tokens: u64,
}

/// Shared counters; everything else the server holds is immutable.
#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    by_route: Mutex<BTreeMap<String, u64>>,
    embedding_requests: AtomicU64,
    embedding_inputs: AtomicU64,
    faults_injected: AtomicU64,
    rate_limited: AtomicU64,
    embedding_tokens: AtomicU64,
    response_ids: AtomicU64,
}

impl Counters {
    /// Counts a `/v1` request and returns its arrival number (from 1).
    pub(crate) fn count_request(&self, route: String) -> u64 {
        *lock(&self.by_route).entry(route).or_default() += 1;
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn count_fault(&self) {
        self.faults_injected.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_embeddings(&self, inputs: u64, tokens: u64) {
        self.embedding_requests.fetch_add(1, Ordering::SeqCst);
        self.embedding_inputs.fetch_add(inputs, Ordering::SeqCst);
        self.embedding_tokens.fetch_add(tokens, Ordering::SeqCst);
    }

    pub(crate) fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::SeqCst);
    }

    /// `req_` + 32 hex digits, sequential so logs of a run read in order.
    pub(crate) fn next_request_id(&self) -> String {
        format!(
            "req_{:032x}",
            self.response_ids.fetch_add(1, Ordering::SeqCst) + 1
        )
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::SeqCst),
            by_route: lock(&self.by_route).clone(),
            embedding_requests: self.embedding_requests.load(Ordering::SeqCst),
            embedding_inputs: self.embedding_inputs.load(Ordering::SeqCst),
            faults_injected: self.faults_injected.load(Ordering::SeqCst),
            rate_limited: self.rate_limited.load(Ordering::SeqCst),
            embedding_tokens: self.embedding_tokens.load(Ordering::SeqCst),
        }
    }
}

/// Locks a mutex, ignoring poisoning: the guarded values (counters, a window of instants) stay
/// valid whatever a panicking holder was doing.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything a request handler can see.
pub(crate) struct App {
    pub account: Account,
    pub options: Options,
    pub counters: Counters,
    pub limiter: Option<faults::RateLimiter>,
    pub token_limiter: Option<faults::RateLimiter>,
}

/// A running stand-in. Dropping it without [`Standin::shutdown`] aborts the server task.
pub struct Standin {
    /// `http://127.0.0.1:PORT/v1` (the bound address), ready to be used as an OpenAI base URL.
    pub base_url: String,
    /// The bound socket address.
    pub addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts a stand-in serving `account` on `addr` (port 0 picks a free port) and returns once
/// the socket is bound and accepting.
pub async fn serve(
    account: Account,
    options: Options,
    addr: SocketAddr,
) -> anyhow::Result<Standin> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the stand-in to {addr}"))?;
    let addr = listener
        .local_addr()
        .context("reading the stand-in's bound address")?;
    let window = options.rate_window.unwrap_or(faults::WINDOW);
    let limiter = options
        .rate_limit_per_minute
        .filter(|&r| r > 0)
        .map(|r| faults::RateLimiter::with_window(r, window));
    let token_limiter = options
        .tokens_per_minute
        .filter(|&r| r > 0)
        .map(|r| faults::RateLimiter::with_window(r, window));
    let app = Arc::new(App {
        account,
        options,
        counters: Counters::default(),
        limiter,
        token_limiter,
    });
    let router = axum::Router::new()
        .fallback(routes::handle)
        .with_state(app.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = axum::serve(
        faults::DroppableListener(listener),
        router.into_make_service_with_connect_info::<faults::Connection>(),
    )
    .with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move {
        // Accept errors are retried inside axum; serve only returns after shutdown.
        let _ = server.await;
    });
    Ok(Standin {
        base_url: format!("http://{addr}/v1"),
        addr,
        app,
        stop: Some(stop),
        task: Some(task),
    })
}

impl Standin {
    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.app.counters.snapshot()
    }

    /// Stops accepting, lets in-flight requests finish (at most 5 s), then stops the server.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
