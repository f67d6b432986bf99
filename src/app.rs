//! What every command builds before it works: the environment it reads, the HTTP transport
//! (live, recording or replaying) with its retry policy, the errors that become exit codes, and
//! the `--report` writer. `migrate`, `export`, `verify` and `init` share these.

use crate::cli::{MigrateArgs, ReportFormat};
use crate::config::Config;
use crate::embed::EmbedError;
use crate::http::replay::{FixtureStore, Recorder};
use crate::http::retry::RetryPolicy;
use crate::http::transport::{Credentials, Live, Transport};
use crate::sink::SinkError;
use crate::source::SourceError;
use std::time::Duration;

/// The process environment engram reads, captured once in `main`.
#[derive(Clone, Default)]
pub struct Env {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub organization: Option<String>,
    pub project: Option<String>,
    /// `ENGRAM_RETRY_BASE_MS`: the first backoff delay in milliseconds (default 500). For tests,
    /// which inject faults and do not want to wait; a server's `retry-after` is honoured anyway.
    pub retry_base_ms: Option<u64>,
    /// Set by the first Ctrl-C (see `signal`); never set unless `main` listens for it.
    pub interrupt: crate::signal::Interrupt,
    /// The engram binary, re-invoked as `engram extract-pdf` to parse PDFs in a child process
    /// that a timeout can kill; `None` parses them on a thread (see `extract::isolate`).
    pub pdf_helper: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("api_key", &self.api_key.as_ref().map(|_| "<redacted>")).finish_non_exhaustive()
    }
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Env {
            api_key: var("OPENAI_API_KEY"),
            base_url: var("OPENAI_BASE_URL"),
            organization: var("OPENAI_ORG_ID"),
            project: var("OPENAI_PROJECT_ID"),
            retry_base_ms: var("ENGRAM_RETRY_BASE_MS").and_then(|v| v.trim().parse().ok()),
            interrupt: crate::signal::Interrupt::default(),
            // `from_process` is called by engram's own `main`: the running binary is engram.
            pdf_helper: std::env::current_exe().ok(),
        }
    }
}

/// Why a run stopped; `main` maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Usage or configuration (exit 2, nothing written).
    #[error("{0}")]
    Config(String),
    /// Failed (exit 1, nothing half-written).
    #[error("{0}")]
    Failed(String),
}

impl From<SourceError> for RunError {
    fn from(e: SourceError) -> Self {
        RunError::Failed(e.to_string())
    }
}

impl From<SinkError> for RunError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Config(m) => RunError::Config(m),
            SinkError::Io(m) => RunError::Failed(m),
        }
    }
}

impl From<EmbedError> for RunError {
    fn from(e: EmbedError) -> Self {
        RunError::Failed(e.to_string())
    }
}

/// The HTTP client for the source and the embeddings endpoint, with the key from the
/// environment (`migrate`, `export`, `verify` and `init` alike); `no_key` is the error when
/// OPENAI_API_KEY is not set, saying what that command can do instead.
pub fn live_client(config: &Config, env: &Env, no_key: &str) -> Result<Live, RunError> {
    let api_key = env.api_key.clone().ok_or_else(|| RunError::Config(no_key.to_string()))?;
    let credentials = Credentials { api_key, organization: env.organization.clone(), project: env.project.clone() };
    Live::new(
        &config.base_url,
        &config.embedding_base_url,
        credentials,
        Duration::from_secs(config.mapping.source.timeout_secs),
        retry_policy(config, env),
    )
    .map_err(|e| RunError::Failed(format!("building the HTTP client: {e}")))
}

/// Writes a `--report FILE` in the chosen format.
pub fn write_report<R: serde::Serialize>(
    path: &std::path::Path,
    format: ReportFormat,
    report: &R,
    markdown: impl FnOnce(&R) -> String,
) -> Result<(), RunError> {
    let bytes = match format {
        ReportFormat::Json => serde_json::to_vec_pretty(report).map_err(|e| RunError::Failed(e.to_string()))?,
        ReportFormat::Markdown => markdown(report).into_bytes(),
    };
    std::fs::write(path, bytes).map_err(|e| RunError::Failed(format!("writing the report {}: {e}", path.display())))
}

/// The transport of a `migrate`: replaying `--replay DIR`, recording to `--record DIR`, or live.
pub fn migrate_transport(args: &MigrateArgs, config: &Config, env: &Env) -> Result<Transport, RunError> {
    if let Some(dir) = &args.replay {
        return FixtureStore::load(dir).map(Transport::replay).map_err(RunError::Config);
    }
    let live = live_client(
        config,
        env,
        "OPENAI_API_KEY is not set: engram reads the API key from that variable only (never from mapping.toml).\n  Set it, or use --replay DIR to run from recorded fixtures without a key.",
    )?;
    match &args.record {
        Some(dir) => Recorder::create(dir).map(|r| Transport::recording(live, r)).map_err(RunError::Config),
        None => Ok(Transport::live(live)),
    }
}

/// Which optional credential variables are in use, for messages about a rejected key.
pub fn credential_note(env: &Env) -> String {
    let mut note = String::new();
    if env.organization.is_some() {
        note.push_str(", with OPENAI_ORG_ID");
    }
    if env.project.is_some() {
        note.push_str(", with OPENAI_PROJECT_ID");
    }
    note
}

/// One policy for every live request of the run: thread fetches, file lookups and embedding
/// requests share its concurrency limit and the pause a 429 starts.
pub fn retry_policy(config: &Config, env: &Env) -> RetryPolicy {
    let policy = RetryPolicy::new(config.mapping.source.max_attempts)
        .with_concurrency(config.mapping.source.concurrency)
        .with_requests_per_minute(config.mapping.source.requests_per_minute);
    match env.retry_base_ms {
        Some(ms) => policy.with_min_delay(Duration::from_millis(ms)),
        None => policy,
    }
}
