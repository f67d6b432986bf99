//! Sink: where records land. Each sink answers "what do you already hold for these keys?"
//! (for the plan), checks everything it can before the first write (`preflight`), and writes
//! batches atomically.

pub mod json_dir;
pub mod postgres;
pub mod rest;

pub use crate::record::{Existing, PairOrigin, StoredPattern};
use crate::record::{Record, Scope};
use std::collections::HashMap;

/// Where `[target] url` (or `--target`) points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Engramia's JSON storage directory.
    JsonDir(std::path::PathBuf),
    /// Engramia's PostgreSQL + pgvector database (`postgres://` or `postgresql://`).
    Postgres(String),
    /// A running Engramia server, reached through its REST API (`http://` or `https://`).
    Rest(String),
}

impl Target {
    pub fn parse(url: &str) -> Target {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres(url.to_string())
        } else if url.starts_with("http://") || url.starts_with("https://") {
            Target::Rest(url.to_string())
        } else {
            Target::JsonDir(std::path::PathBuf::from(url.strip_prefix("file://").unwrap_or(url)))
        }
    }
}

/// What a load does to the target's search index, and why (for the plan and the report).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadPlan {
    /// "keep" or "rebuild".
    pub action: &'static str,
    pub reason: String,
}

/// The Engramia schema a target holds (or, in a dry run, will be given).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaReport {
    /// The alembic revision found, or created (or, in a dry run, to be created).
    pub revision: String,
    /// "found" (the database had it), "create" (a dry run: the real run creates it),
    /// "created" (this run created it).
    pub status: &'static str,
    /// The Engramia release whose migrations engram ran, when engram creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engramia: Option<String>,
    /// "key" or "tenant_id, project_id, key"; None when the layout is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyed_by: Option<&'static str>,
}

/// An earlier run of engram into this target that did not finish (killed, crashed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviousRun {
    pub run_id: String,
    /// Batches it committed before it stopped.
    pub batches: u64,
    /// Records it wrote before it stopped.
    pub records: u64,
    /// The last thread whose records it had committed.
    pub last_thread: Option<String>,
}

/// Progress of the current run, recorded after each committed batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunProgress {
    pub run_id: String,
    pub batches: u64,
    pub records: u64,
    pub last_thread: Option<String>,
}

/// A record with its embedding, ready to write.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub record: Record,
    pub embedding: Vec<f32>,
}

/// What the sink checks before anything is written or embedded.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub model: String,
    /// The vector size the configured model returns, when known without a request.
    pub dimensions: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target cannot take this migration as configured (exit 2, nothing written).
    #[error("{0}")]
    Config(String),
    /// The target failed (exit 1).
    #[error("{0}")]
    Io(String),
}

/// Summary a sink may store about the run (audit rows, ledgers).
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub run_id: String,
    pub source: String,
    pub wrote_anything: bool,
}

/// The sink interface shared by the JSON directory and PostgreSQL targets.
#[allow(async_fn_in_trait)]
pub trait Sink {
    /// "JSON directory ./engramia_data", for messages and the report.
    fn describe(&self) -> String;
    /// Engramia's schema in the target (alembic revision found or created), for the report.
    fn engramia_schema(&self) -> Option<SchemaReport> {
        None
    }
    /// Some(who) when the target embeds what it stores itself (an Engramia server): engram then
    /// sends no embedding requests, and the report says who embeds.
    fn embeds_itself(&self) -> Option<String> {
        None
    }
    /// The scope each assistant's records go to, once the assistants are listed (a sink that
    /// picks credentials per assistant needs it). Writes nothing.
    fn note_assistant_scopes(&mut self, _scopes: &[(String, Scope)]) {}
    /// Per-item problems the sink met since the last call, for the report.
    fn take_warnings(&mut self) -> Vec<crate::record::Warning> {
        Vec::new()
    }
    /// Checks reachability, permissions, schema and embedding dimension. Writes nothing.
    /// Returns lines worth telling the user (e.g. what a later write will create).
    async fn preflight(&mut self, check: &Preflight) -> Result<Vec<String>, SinkError>;
    /// Checks the scopes known before the first write (from the assistants list) can be
    /// written, e.g. that no other tenant owns a project of the same id. Writes nothing.
    async fn check_scopes(&mut self, _scopes: &[Scope]) -> Result<(), SinkError> {
        Ok(())
    }
    /// What is stored under these keys in this scope (absent keys are left out).
    async fn existing(&mut self, scope: &Scope, keys: &[String]) -> Result<HashMap<String, Existing>, SinkError>;
    /// Writes one batch atomically: after a crash, each record is either fully there (pattern,
    /// embedding, skills) or absent.
    async fn write(&mut self, batch: &[Embedded]) -> Result<(), SinkError>;
    /// Every pattern of a scope (key, task, score), for the near-duplicate check. Read-only.
    /// The default holds nothing, which only a sink that cannot list its patterns should keep.
    async fn scope_patterns(&mut self, _scope: &Scope) -> Result<Vec<StoredPattern>, SinkError> {
        Ok(Vec::new())
    }
    /// Removes patterns (with their embeddings and skills) that a better near-duplicate
    /// replaces; called in the same batch as the write of their replacement.
    async fn remove(&mut self, _scope: &Scope, keys: &[String]) -> Result<(), SinkError> {
        Err(SinkError::Config(format!(
            "{} cannot remove patterns ({} near-duplicates to replace); use [patterns] on_duplicate = \"skip\" or \"keep_both\"",
            self.describe(),
            keys.len()
        )))
    }
    /// An earlier run into this target that did not finish, if any. Read-only.
    async fn previous_run(&mut self) -> Result<Option<PreviousRun>, SinkError> {
        Ok(None)
    }
    /// Records progress after a committed batch, so a killed run's successor can say where
    /// it resumed. Not called in a dry run.
    async fn mark_progress(&mut self, _progress: &RunProgress) -> Result<(), SinkError> {
        Ok(())
    }
    /// Decides how the load of `adding` new embeddings treats the target's vector index (see
    /// `postgres::index`) and, when `apply`, prepares it (a real run, before its first write).
    /// None for targets without such an index.
    async fn plan_load(&mut self, _adding: u64, _apply: bool) -> Result<Option<LoadPlan>, SinkError> {
        Ok(None)
    }
    /// Puts back whatever `plan_load` took apart (rebuilds a dropped index), and whatever an
    /// earlier, stopped run left so. Called at the end of every run that is not a dry run,
    /// also one that failed or was interrupted. Returns what it did, for the user.
    async fn settle(&mut self) -> Result<Vec<String>, SinkError> {
        Ok(Vec::new())
    }
    /// Called once at the end of a run that was not a dry run.
    async fn finish(&mut self, run: &RunInfo) -> Result<(), SinkError>;
    /// The run failed with `error` (after `settle`): a sink that keeps a record of runs notes
    /// it (`engram status`). Best effort: the run's own error is what the user sees.
    async fn fail(&mut self, _error: &str) {}
}

/// This machine's name, for the records of who runs (`engram status`, the JSON directory's
/// lock file); "localhost" where the system does not say.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}
