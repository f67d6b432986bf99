//! `engram migrate`: wires Source -> Map -> Plan -> Embed -> Sink.
//!
//! Order of business: everything checkable is checked before the first write or embedding
//! request (mapping, thread list, credentials, target, embedding dimension, the assistants
//! list, scope templates); then threads stream through in order, records are planned and
//! written in batches, and the report is built from the same tallies in a dry run and a real
//! one.

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::embed::{EmbedError, EmbedTotals, Embedder, batch_ranges, count_tokens, embedding_input, expected_dimensions};
use crate::map::scope::ScopeContext;
use crate::map::{MapContext, MapSettings, map_assistant_tools, map_thread};
use crate::model::{Assistant, ThreadBundle};
use crate::plan::{Tally, plan_batch};
use crate::progress::Progress;
use crate::record::{Record, Scope, Warning};
use crate::report::{EmbeddingReport, Report, ThreadCounts, scope_reports};
use crate::sink::json_dir::JsonDirSink;
use crate::sink::{Embedded, Preflight, RunInfo, Sink, SinkError, Target};
use crate::source::fixtures::{FixtureStore, Recorder};
use crate::source::openai::{OpenAiSource, ThreadFetch};
use crate::source::retry::RetryPolicy;
use crate::source::transport::{Credentials, Live, SharedTransport, Transport};
use crate::source::{SourceError, parse_thread_ids};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The process environment engram reads, captured once in `main`.
#[derive(Clone, Default)]
pub struct Env {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub organization: Option<String>,
    pub project: Option<String>,
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

/// Runs `engram migrate` and returns its report (also written to `--report` when given).
pub async fn migrate(args: &MigrateArgs, env: &Env) -> Result<Report, RunError> {
    let config = Config::load(&args.config, env.base_url.clone()).map_err(|e| RunError::Config(e.0))?;
    let (thread_ids, id_warnings) = read_thread_ids(&config)?;
    let transport = Arc::new(build_transport(args, &config, env)?);
    let target = Target::parse(&config.target_url(args.target.as_deref()));
    let pipeline = Pipeline::new(args, &config, transport, env);
    let report = match target {
        Target::JsonDir(dir) => pipeline.run(JsonDirSink::new(dir), thread_ids, id_warnings).await?,
        Target::Postgres(url) => {
            return Err(RunError::Config(format!(
                "target {}: the PostgreSQL sink is not available in this build; use a directory",
                redact_url(&url)
            )));
        }
    };
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| RunError::Failed(e.to_string()))?;
        std::fs::write(path, json).map_err(|e| RunError::Failed(format!("writing the report {}: {e}", path.display())))?;
    }
    Ok(report)
}

fn read_thread_ids(config: &Config) -> Result<(Vec<String>, Vec<Warning>), RunError> {
    let Some(path) = &config.threads_file else { return Ok((Vec::new(), Vec::new())) };
    let text = std::fs::read_to_string(path).map_err(|e| {
        RunError::Config(format!(
            "[source] threads_file {}: {e}\n  hint: the path is relative to {}; the file lists one thread id per line",
            path.display(),
            config.mapping_path.display()
        ))
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(parse_thread_ids(&text, &name))
}

fn build_transport(args: &MigrateArgs, config: &Config, env: &Env) -> Result<Transport, RunError> {
    if let Some(dir) = &args.replay {
        return FixtureStore::load(dir).map(Transport::Replay).map_err(RunError::Config);
    }
    let api_key = env.api_key.clone().ok_or_else(|| {
        RunError::Config(
            "OPENAI_API_KEY is not set: engram reads the API key from that variable only (never from mapping.toml).\n  Set it, or use --replay DIR to run from recorded fixtures without a key."
                .to_string(),
        )
    })?;
    let credentials = Credentials { api_key, organization: env.organization.clone(), project: env.project.clone() };
    let live = Live::new(
        &config.base_url,
        &config.embedding_base_url,
        credentials,
        Duration::from_secs(config.mapping.source.timeout_secs),
        RetryPolicy::new(config.mapping.source.max_attempts),
    )
    .map_err(|e| RunError::Failed(format!("building the HTTP client: {e}")))?;
    match &args.record {
        Some(dir) => Recorder::create(dir).map(|r| Transport::Recording(live, r)).map_err(RunError::Config),
        None => Ok(Transport::Live(live)),
    }
}

/// Hides a password in a URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

struct Pipeline<'a> {
    args: &'a MigrateArgs,
    config: &'a Config,
    transport: SharedTransport,
    source: Arc<OpenAiSource>,
    embedder: Embedder,
    settings: MapSettings,
    tally: Tally,
    seen: HashSet<String>,
    totals: EmbedTotals,
    warnings: Vec<Warning>,
    wrote_anything: bool,
}

impl<'a> Pipeline<'a> {
    fn new(args: &'a MigrateArgs, config: &'a Config, transport: SharedTransport, env: &Env) -> Self {
        let m = &config.mapping;
        let mut note = String::new();
        if env.organization.is_some() {
            note.push_str(", with OPENAI_ORG_ID");
        }
        if env.project.is_some() {
            note.push_str(", with OPENAI_PROJECT_ID");
        }
        Pipeline {
            args,
            config,
            source: Arc::new(OpenAiSource::new(transport.clone(), note, m.skills.from_run_steps)),
            embedder: Embedder::new(transport.clone(), m.embedding.model.clone(), m.embedding.dimensions, m.embedding.batch_inputs),
            transport,
            settings: MapSettings {
                tenant: m.scope.tenant.clone(),
                project_template: config.project_template.clone(),
                default_project: m.scope.default_project.clone(),
                eval_score: m.patterns.eval_score,
                task_max_chars: m.patterns.task_max_chars,
                code_max_chars: m.patterns.code_max_chars,
                classification: m.patterns.classification.clone(),
            },
            tally: Tally::default(),
            seen: HashSet::new(),
            totals: EmbedTotals::default(),
            warnings: Vec::new(),
            wrote_anything: false,
        }
    }

    async fn run<S: Sink>(mut self, mut sink: S, thread_ids: Vec<String>, id_warnings: Vec<Warning>) -> Result<Report, RunError> {
        let m = &self.config.mapping;
        let dims = expected_dimensions(&m.embedding.model, m.embedding.dimensions);
        sink.preflight(&Preflight { model: m.embedding.model.clone(), dimensions: dims }).await?;
        self.warnings.extend(id_warnings);

        let (assistants, w) = self.source.list_assistants().await?;
        self.warnings.extend(w);
        self.check_assistant_scopes(&assistants)?;
        let mut ctx = MapContext { assistants: assistants.iter().map(|a| (a.id.clone(), a.clone())).collect(), ..Default::default() };

        let mut pending: Vec<Record> = Vec::new();
        for a in &assistants {
            let mapped = map_assistant_tools(a, &self.settings);
            pending.extend(mapped.records);
            self.warnings.extend(mapped.warnings);
        }
        sink.check_scopes(&self.known_scopes(&assistants)).await?;

        let progress = Progress::threads(thread_ids.len(), !self.args.quiet);
        let mut counts = ThreadCounts { listed: thread_ids.len(), ..Default::default() };
        let concurrency = m.source.concurrency;
        let source = self.source.clone();
        // `buffered` keeps the input order, so records (and embedding batches) are the same on
        // every run whatever the concurrency; at most `concurrency` threads are held at once.
        let mut fetched = futures::stream::iter(thread_ids.into_iter())
            .map(move |id| {
                let source = source.clone();
                async move {
                    let result = source.fetch_thread(&id).await;
                    (id, result)
                }
            })
            .buffered(concurrency);
        while let Some((id, result)) = fetched.next().await {
            match result? {
                ThreadFetch::Skipped(w) => {
                    counts.skipped += 1;
                    self.warnings.push(w);
                }
                ThreadFetch::Found { bundle, warnings } => {
                    counts.read += 1;
                    self.warnings.extend(warnings);
                    self.resolve_file_names(&bundle, &mut ctx).await?;
                    let mapped = map_thread(&bundle, &ctx, &self.settings);
                    pending.extend(mapped.records);
                    self.warnings.extend(mapped.warnings);
                    tracing::debug!(thread = %id, "mapped");
                }
            }
            progress.thread_done(self.seen.len() + pending.len());
            if pending.len() >= m.target.batch_size {
                self.process_batch(&mut sink, std::mem::take(&mut pending)).await?;
            }
        }
        drop(fetched);
        if !pending.is_empty() {
            self.process_batch(&mut sink, pending).await?;
        }
        progress.finish();

        if !self.args.dry_run {
            let info = RunInfo { run_id: String::new(), source: self.source_label(), wrote_anything: self.wrote_anything };
            sink.finish(&info).await?;
        }
        Ok(Report {
            engram_version: env!("CARGO_PKG_VERSION").to_string(),
            dry_run: self.args.dry_run,
            source: self.source_label(),
            target: sink.describe(),
            threads: counts,
            scopes: scope_reports(&self.tally),
            warnings: self.warnings,
            embedding: EmbeddingReport::new(&m.embedding.model, self.totals.inputs, self.totals.tokens, self.totals.requests),
        })
    }

    fn source_label(&self) -> String {
        match (&self.args.replay, self.transport.is_replay()) {
            (Some(dir), true) => format!("replay of {}", dir.display()),
            _ => self.config.base_url.clone(),
        }
    }

    /// The scopes that can be known before any thread is read: one per assistant when the
    /// project template needs only the assistant.
    fn known_scopes(&self, assistants: &[Assistant]) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = Vec::new();
        if self.settings.project_template.needs_only_assistant() {
            for a in assistants {
                if let Ok(s) = crate::map::resolve_scope(&self.settings, &ScopeContext { assistant: Some(a), thread: None }) {
                    if !scopes.contains(&s) {
                        scopes.push(s);
                    }
                }
            }
        }
        scopes
    }

    /// A template that needs only the assistant must resolve for every assistant now, before
    /// anything is written (unless `default_project` catches it).
    fn check_assistant_scopes(&self, assistants: &[Assistant]) -> Result<(), RunError> {
        let t = &self.settings.project_template;
        if !t.uses_assistant() || self.settings.default_project.is_some() {
            return Ok(());
        }
        let problems: Vec<String> = assistants
            .iter()
            .filter_map(|a| {
                t.render(&ScopeContext { assistant: Some(a), thread: None }).err().filter(|_| t.needs_only_assistant())
                    .map(|e| format!("{}: {}", e.placeholder, e.reason))
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(RunError::Config(format!(
            "[scope] project = {:?} cannot be resolved for {} assistant{}:\n  - {}\n  Set [scope] default_project, or use a placeholder every assistant has (e.g. {{assistant.id}}). Nothing was written.",
            t.as_str(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  - ")
        )))
    }

    /// Looks up the filenames of files cited in a thread, once per file, for citation markers.
    async fn resolve_file_names(&self, bundle: &ThreadBundle, ctx: &mut MapContext) -> Result<(), RunError> {
        let cited: Vec<String> = bundle
            .messages
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|c| c.text.as_ref())
            .flat_map(|t| t.annotations.iter())
            .filter_map(|a| a.file_id().map(str::to_string))
            .filter(|id| !id.is_empty() && !ctx.file_names.contains_key(id))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in cited {
            let name = match self.source.file(&id).await? {
                Some(f) if !f.filename.is_empty() => f.filename,
                // Unknown: the marker is removed rather than replaced.
                _ => String::new(),
            };
            ctx.file_names.insert(id, name);
        }
        Ok(())
    }

    /// Plan -> embed -> write for one batch of records.
    async fn process_batch<S: Sink>(&mut self, sink: &mut S, records: Vec<Record>) -> Result<(), RunError> {
        let mut keys_by_scope: HashMap<Scope, Vec<String>> = HashMap::new();
        for r in &records {
            keys_by_scope.entry(r.scope.clone()).or_default().push(r.key.clone());
        }
        let mut existing = HashMap::new();
        for (scope, keys) in &keys_by_scope {
            existing.extend(sink.existing(scope, keys).await?);
        }
        let planned = plan_batch(records, &existing, &mut self.seen);
        planned.iter().for_each(|p| self.tally.add(p));
        let to_write: Vec<Record> = planned.into_iter().filter(|p| p.writes()).map(|p| p.record).collect();
        if to_write.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = to_write.iter().map(|r| embedding_input(r.task())).collect();
        if self.args.dry_run {
            let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
            self.totals.requests += batch_ranges(&counts, self.embedder.batch_inputs).len();
            self.totals.inputs += texts.len();
            self.totals.tokens += counts.iter().sum::<usize>();
            return Ok(());
        }
        let vectors = self.embedder.embed(&texts, &mut self.totals).await?;
        let batch: Vec<Embedded> =
            to_write.into_iter().zip(vectors).map(|(record, embedding)| Embedded { record, embedding }).collect();
        sink.write(&batch).await?;
        self.wrote_anything = true;
        Ok(())
    }
}
