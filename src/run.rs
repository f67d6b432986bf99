//! `engram migrate`: wires Source -> Map -> Plan -> Embed -> Sink.
//!
//! Order of business: everything checkable is checked before the first write or embedding
//! request (mapping, thread list, credentials, target, embedding dimension, the assistants
//! list, scope templates); then threads stream through in order, records are planned and
//! written in batches, and the report is built from the same tallies in a dry run and a real
//! one.

use crate::cli::{MigrateArgs, ReportFormat};
use crate::config::Config;
use crate::extract::{Limits, isolate::Isolation};
use crate::embed::{EmbedError, EmbedTotals, Embedder, batch_ranges, count_tokens, embedding_input, expected_dimensions};
use crate::map::scope::ScopeContext;
use crate::map::chunk::{ChunkSettings, chunk_text, file_chunk_records};
use crate::map::{MapContext, MapSettings, map_assistant_tools, map_thread};
use crate::model::{Assistant, ThreadBundle};
use crate::plan::{PlanState, Tally, plan_batch};
use crate::progress::Progress;
use crate::record::{Record, Scope, Warning};
use crate::report::{EmbeddingReport, Report, ThreadCounts, scope_reports};
use crate::sink::json_dir::JsonDirSink;
use crate::sink::postgres::PgSink;
use crate::sink::{Embedded, Preflight, RunInfo, RunProgress, Sink, SinkError, Target};
use crate::source::files::{FileCounts, FileRefs, FileSource};
use crate::source::fixtures::{FixtureStore, Recorder};
use crate::source::openai::OpenAiSource;
use crate::source::{Source, ThreadFetch};
use crate::source::retry::RetryPolicy;
use crate::source::transport::{Credentials, Live, SharedTransport, Transport};
use crate::source::SourceError;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
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

/// Runs `engram migrate` and returns its report (also written to `--report` when given).
pub async fn migrate(args: &MigrateArgs, env: &Env) -> Result<Report, RunError> {
    let mut config = Config::load(&args.config, env.base_url.clone()).map_err(|e| RunError::Config(e.0))?;
    if let Some(dir) = &args.agents {
        config.agents_out_dir = Some(dir.clone());
    }
    if let Some(dir) = &config.agents_out_dir {
        crate::agents::preflight(dir).map_err(RunError::Config)?;
    }
    let transport = Arc::new(build_transport(args, &config, env)?);
    // The Assistants API client: the `openai` and `conversations` sources read through it, and
    // the files stage reads files through it whatever the source.
    let api = Arc::new(OpenAiSource::new(transport.clone(), credential_note(env), config.mapping.skills.from_run_steps));
    let opened = Source::open(&config, api.clone()).map_err(RunError::Config)?;
    let (thread_ids, id_warnings) = match &args.retry_failed {
        Some(path) => retry_thread_ids(path, &opened.source)?,
        None => (opened.thread_ids, opened.warnings),
    };
    let target = Target::parse(&config.target_url(args.target.as_deref()));
    let files_api = opened.source.files_api().unwrap_or(api);
    let pipeline = Pipeline::new(args, &config, transport, files_api, opened.source, env);
    let mut report = match target {
        Target::JsonDir(dir) => pipeline.run(JsonDirSink::new(dir), thread_ids, id_warnings).await?,
        Target::Postgres(url) => {
            let sink = PgSink::open(&url, pipeline.run_id.clone()).await?.with_index_strategy(config.mapping.target.index_strategy)
                .with_engramia_schema(config.mapping.target.engramia_schema.clone());
            pipeline.run(sink, thread_ids, id_warnings).await?
        }
    };
    // A dry run writes no rejects file: it promises to write nothing but the report.
    if !report.dry_run {
        let path = crate::rejects::path_for(args.report.as_deref());
        match crate::rejects::persist(&report.rejects, &path).map_err(RunError::Failed)? {
            crate::rejects::Persisted::Written(p) => report.rejects_file = Some(p.display().to_string()),
            crate::rejects::Persisted::RemovedStale(p) => tracing::info!(path = %p.display(), "no rejects: removed the old rejects file"),
            crate::rejects::Persisted::Nothing => {}
        }
    }
    if let Some(path) = &args.report {
        write_report(path, args.report_format, &report, Report::render_markdown)?;
    }
    Ok(report)
}

/// `--retry-failed FILE`: the threads a rejects file lists, instead of `threads_file`. Rejects
/// of other stages are named in a warning (this version retries threads).
fn retry_thread_ids(path: &std::path::Path, source: &Source) -> Result<(Vec<String>, Vec<Warning>), RunError> {
    let rejects = crate::rejects::read(path).map_err(RunError::Config)?;
    let ids = crate::rejects::ids_of_stage(&rejects, crate::rejects::STAGE_THREAD);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (ids, mut warnings) = source.parse_ids(&ids.join("\n"), &name);
    for r in rejects.iter().filter(|r| r.stage != crate::rejects::STAGE_THREAD) {
        warnings.push(Warning::new(
            "retry_not_supported",
            r.id.clone(),
            format!("{}: a {} reject is not retried by --retry-failed; rerun without it to retry everything", name, r.stage),
        ));
    }
    Ok((ids, warnings))
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

fn build_transport(args: &MigrateArgs, config: &Config, env: &Env) -> Result<Transport, RunError> {
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
fn credential_note(env: &Env) -> String {
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
pub(crate) fn retry_policy(config: &Config, env: &Env) -> RetryPolicy {
    let policy = RetryPolicy::new(config.mapping.source.max_attempts)
        .with_concurrency(config.mapping.source.concurrency)
        .with_requests_per_minute(config.mapping.source.requests_per_minute);
    match env.retry_base_ms {
        Some(ms) => policy.with_min_delay(Duration::from_millis(ms)),
        None => policy,
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
    source: Arc<Source>,
    files: Arc<FileSource>,
    pdf_helper: Option<std::path::PathBuf>,
    embedder: Embedder,
    settings: MapSettings,
    tally: Tally,
    plan: PlanState,
    run_id: String,
    /// The last thread whose records are all in `pending` or written.
    current_thread: Option<String>,
    batches_written: u64,
    records_written: u64,
    totals: EmbedTotals,
    warnings: Vec<Warning>,
    wrote_anything: bool,
    /// Items given up on, for the rejects file.
    rejects: Vec<crate::rejects::Reject>,
    interrupt: crate::signal::Interrupt,
    /// The vector-index decision (made before the first write; a dry run makes it at the end).
    index: Option<crate::sink::postgres::index::IndexChoice>,
    /// Threads listed and threads dealt with so far, to project the run's size from its start.
    threads_listed: usize,
    threads_seen: usize,
    /// Records planned to be written so far (create + update).
    writes_planned: u64,
    started: std::time::Instant,
    /// Where each assistant's records went, for the generated agents (`[agents]`).
    agents_seen: crate::agents::Seen,
}

impl<'a> Pipeline<'a> {
    fn new(args: &'a MigrateArgs, config: &'a Config, transport: SharedTransport, api: Arc<OpenAiSource>, source: Source, env: &Env) -> Self {
        let m = &config.mapping;
        Pipeline {
            args,
            config,
            files: Arc::new(FileSource::new(api, config.files_local_dir.clone(), m.files.max_bytes)),
            pdf_helper: env.pdf_helper.clone(),
            source: Arc::new(source),
            embedder: Embedder::new(transport.clone(), m.embedding.model.clone(), m.embedding.dimensions, m.embedding.batch_inputs),
            transport,
            settings: config.map_settings(),
            tally: Tally { details: args.report_detail.then(Vec::new), ..Tally::default() },
            plan: PlanState::new(m.patterns.on_duplicate),
            run_id: crate::sink::postgres::new_run_id(),
            current_thread: None,
            batches_written: 0,
            records_written: 0,
            totals: EmbedTotals::default(),
            warnings: Vec::new(),
            wrote_anything: false,
            rejects: Vec::new(),
            interrupt: env.interrupt.clone(),
            index: None,
            threads_listed: 0,
            threads_seen: 0,
            writes_planned: 0,
            started: std::time::Instant::now(),
            agents_seen: crate::agents::Seen::default(),
        }
    }

    /// The run, then `Sink::settle` whatever happened (a dropped index is rebuilt even when
    /// the run failed or was interrupted).
    async fn run<S: Sink>(self, mut sink: S, thread_ids: Vec<String>, id_warnings: Vec<Warning>) -> Result<Report, RunError> {
        let (dry_run, quiet, started) = (self.args.dry_run, self.args.quiet, self.started);
        let mut result = self.run_body(&mut sink, thread_ids, id_warnings).await;
        if !dry_run {
            result = match (result, sink.settle().await) {
                (Ok(mut report), Ok(notes)) => {
                    report.target_notes = notes;
                    Ok(report)
                }
                (Ok(_), Err(e)) => Err(e.into()),
                (Err(e), settled) => {
                    if !quiet {
                        match settled {
                            Ok(notes) => notes.iter().for_each(|n| eprintln!("engram: {}: {n}", sink.describe())),
                            Err(e2) => eprintln!("engram: {e2}"),
                        }
                    }
                    Err(e)
                }
            };
        }
        result.map(|mut report| {
            report.elapsed_secs = started.elapsed().as_secs_f64();
            report
        })
    }

    async fn run_body<S: Sink>(mut self, sink: &mut S, thread_ids: Vec<String>, id_warnings: Vec<Warning>) -> Result<Report, RunError> {
        let m = &self.config.mapping;
        let dims = expected_dimensions(&m.embedding.model, m.embedding.dimensions);
        let notes = sink.preflight(&Preflight { model: m.embedding.model.clone(), dimensions: dims }).await?;
        if !self.args.quiet {
            for note in notes {
                eprintln!("engram: {}: {note}", sink.describe());
            }
        }
        let resumed = sink.previous_run().await?;
        self.warnings.extend(id_warnings);

        let (assistants, w) = self.source.list_assistants(&m.scope.assistants).await?;
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
        let mut file_refs = FileRefs::default();
        if m.files.enabled {
            assistants.iter().for_each(|a| file_refs.add_assistant(a, &self.settings));
        }

        let progress = Progress::threads(thread_ids.len(), !self.args.quiet);
        let mut counts = ThreadCounts { listed: thread_ids.len(), ..Default::default() };
        self.threads_listed = thread_ids.len();
        let concurrency = m.source.concurrency;
        let source = self.source.clone();
        // `buffered` keeps the input order, so records (and embedding batches) are the same on
        // every run whatever the concurrency. The fetching runs in its own task, so that threads
        // keep arriving while a batch is embedded and written; the channel bounds how many
        // wait (memory stays flat however many threads there are), and holds about a batch's
        // worth of typical threads so that the fetcher rarely waits for the writer.
        let (tx, mut rx) = tokio::sync::mpsc::channel(concurrency * 12);
        let fetcher = AbortOnDrop(tokio::spawn(async move {
            let mut fetched = futures::stream::iter(thread_ids.into_iter())
                .map(move |id| {
                    let source = source.clone();
                    async move {
                        let result = source.fetch_thread(&id).await;
                        (id, result)
                    }
                })
                .buffered(concurrency);
            while let Some(item) = fetched.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        }));
        // Ctrl-C stops taking threads (the ones in flight or waiting are dropped, unread); what
        // was read is still planned and written below, so the next run starts right after it.
        let interrupt = self.interrupt.clone();
        loop {
            let next = tokio::select! {
                biased;
                _ = interrupt.wait() => None,
                next = rx.recv() => next,
            };
            let Some((id, result)) = next else { break };
            let fetch = match result? {
                ThreadFetch::Found { bundle, warnings } => match self.resolve_file_names(&bundle, &mut ctx).await? {
                    None => ThreadFetch::Found { bundle, warnings },
                    Some(failed) => failed,
                },
                other => other,
            };
            match fetch {
                ThreadFetch::Skipped(w) => {
                    counts.skipped += 1;
                    self.warnings.push(w);
                }
                ThreadFetch::Failed { warning, attempts } => {
                    counts.failed += 1;
                    self.rejects.push(crate::rejects::Reject {
                        id: id.clone(),
                        stage: crate::rejects::STAGE_THREAD.to_string(),
                        reason: warning.message.clone(),
                        attempts,
                    });
                    self.warnings.push(warning);
                }
                ThreadFetch::Found { bundle, warnings } => {
                    counts.read += 1;
                    self.warnings.extend(warnings);
                    let mapped = map_thread(&bundle, &ctx, &self.settings);
                    if m.files.enabled {
                        file_refs.add_thread(&bundle, &ctx, &self.settings);
                    }
                    pending.extend(mapped.records);
                    self.warnings.extend(mapped.warnings);
                    self.tally.add_questions(&mapped.questions);
                    self.plan.pairs.thread_read(&bundle.thread.id, &mapped.not_stored);
                    tracing::debug!(thread = %id, "mapped");
                }
            }
            self.current_thread = Some(id.clone());
            self.threads_seen += 1;
            progress.thread_done(self.plan.planned_keys() + pending.len());
            self.process_full_batches(sink, &mut pending).await?;
        }
        drop(fetcher);
        let files = match m.files.enabled && !self.interrupt.is_set() {
            true => Some(self.migrate_files(sink, file_refs, &mut pending).await?),
            false => None,
        };
        if !pending.is_empty() {
            self.process_batch(sink, pending).await?;
        }
        if !self.interrupt.is_set() {
            self.retire_superseded(sink).await?;
        }
        progress.finish();
        if self.args.dry_run {
            self.index = sink.plan_load(self.writes_planned, false).await?;
        }
        let interrupted = self.interrupt.is_set();
        counts.not_reached = counts.listed - counts.read - counts.skipped - counts.failed;

        self.warn_over_quota();
        self.warnings.extend(sink.take_warnings());
        // An interrupted run is not finished: the sink keeps its "running" marker, so the next
        // run reports that it resumed this one.
        if !self.args.dry_run && !interrupted {
            let info = RunInfo { run_id: self.run_id.clone(), source: self.source_label(), wrote_anything: self.wrote_anything };
            sink.finish(&info).await?;
        }
        let agents = match &self.config.agents_out_dir {
            Some(dir) if !interrupted => Some(self.generate_agents(dir, &assistants)?),
            _ => None,
        };
        let requests = self.request_report();
        Ok(Report {
            engram_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: self.run_id.clone(),
            resumed,
            dry_run: self.args.dry_run,
            source: self.source_label(),
            target: sink.describe(),
            threads: counts,
            scopes: scope_reports(&self.tally),
            warnings: self.warnings,
            embedding: EmbeddingReport::new(&m.embedding.model, self.totals.inputs, self.totals.tokens, self.totals.requests),
            records: self.tally.details.take(),
            samples: self.tally.samples.iter().map(|(s, t)| (s.to_string(), t.clone())).collect(),
            interrupted,
            rejects_file: None,
            rejects: self.rejects,
            files,
            requests,
            index: self.index,
            engramia_schema: sink.engramia_schema(),
            target_notes: Vec::new(),
            elapsed_secs: 0.0, // set by `run`, after the sink has settled
            superseded: std::mem::take(&mut self.tally.superseded),
            agents,
        })
    }

    /// The cutover code for every assistant (written unless this is a dry run).
    fn generate_agents(&self, dir: &std::path::Path, assistants: &[Assistant]) -> Result<crate::agents::AgentsReport, RunError> {
        let storage = match Target::parse(&self.config.target_url(self.args.target.as_deref())) {
            Target::JsonDir(d) => crate::agents::Storage::JsonDir(std::path::absolute(&d).unwrap_or(d)),
            Target::Postgres(url) => crate::agents::Storage::Postgres(redact_url(&url)),
        };
        let inputs = crate::agents::Inputs {
            assistants,
            settings: &self.settings,
            seen: &self.agents_seen,
            storage,
            embedding_model: &self.config.mapping.embedding.model,
        };
        crate::agents::generate(&inputs, dir, self.args.dry_run).map_err(RunError::Failed)
    }

    /// The requests made; for a dry run also those the real run will make, and how long they
    /// take at the rate limit.
    fn request_report(&self) -> crate::report::RequestReport {
        use crate::source::transport::RequestStats;
        let s = &self.transport.stats;
        let api = RequestStats::get(&s.api);
        let embeddings = if self.args.dry_run { self.totals.requests as u64 } else { RequestStats::get(&s.embeddings) };
        let answered = api + RequestStats::get(&s.embeddings);
        let declared = Some(RequestStats::get(&s.declared_limit)).filter(|n| *n > 0);
        let configured = self.config.mapping.source.requests_per_minute.map(u64::from);
        let rate = match (declared, configured) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let estimated = self.args.dry_run.then_some(api + embeddings);
        crate::report::RequestReport {
            api,
            run_steps: RequestStats::get(&s.run_steps),
            embeddings,
            retries: RequestStats::get(&s.attempts).saturating_sub(answered),
            rate_limit_per_minute: rate,
            estimated_requests: estimated,
            estimated_minutes: estimated.zip(rate).map(|(n, r)| n as f64 / r as f64),
        }
    }

    /// Processes `[target] batch_size` records at a time, so that each batch is one embeddings
    /// request (when it fits the request limits) and one transaction; the rest waits in `pending`.
    async fn process_full_batches<S: Sink>(&mut self, sink: &mut S, pending: &mut Vec<Record>) -> Result<(), RunError> {
        let size = self.config.mapping.target.batch_size;
        while pending.len() >= size {
            let rest = pending.split_off(size);
            let batch = std::mem::replace(pending, rest);
            self.process_batch(sink, batch).await?;
        }
        Ok(())
    }

    /// The files stage: every file the assistants and threads used, fetched and extracted
    /// once, chunked, and mapped into each scope that used it; its records join the batches.
    async fn migrate_files<S: Sink>(&mut self, sink: &mut S, mut refs: FileRefs, pending: &mut Vec<Record>) -> Result<FileCounts, RunError> {
        let f = &self.config.mapping.files;
        let chunking = ChunkSettings { tokens: f.chunk_tokens, overlap: f.chunk_overlap };
        let iso = Isolation {
            timeout: Duration::from_secs(f.extract_timeout_secs),
            pdf_helper: self.pdf_helper.clone(),
            limits: Limits { max_decompressed_bytes: f.max_bytes },
        };
        self.warnings.append(&mut refs.warnings);
        let (planned, warnings) = self.files.plan(&refs, self.config.mapping.source.concurrency).await?;
        self.warnings.extend(warnings);
        let names = self.files.filename_counts(&planned);
        let mut counts = FileCounts { referenced: planned.len(), ..FileCounts::default() };
        let (files, names, iso) = (self.files.clone(), &names, &iso);
        // In order, at most `concurrency` files held at once (as threads are).
        let mut documents = futures::stream::iter(planned)
            .map(|file| {
                let files = files.clone();
                async move {
                    let document = files.document(&file, names, iso).await;
                    (file, document)
                }
            })
            .buffered(self.config.mapping.source.concurrency);
        while let Some((file, document)) = documents.next().await {
            match document? {
                Err(warning) => {
                    counts.skipped += 1;
                    self.warnings.push(warning);
                }
                Ok(d) => {
                    counts.extracted += 1;
                    let chunks = chunk_text(&d.text.text, d.text.is_markdown(), chunking);
                    pending.extend(file_chunk_records(&d.doc, &chunks, &file.scopes, &self.settings));
                }
            }
            self.process_full_batches(sink, pending).await?;
            if self.interrupt.is_set() {
                break;
            }
        }
        Ok(counts)
    }

    /// Engramia refuses to learn into a scope past its pattern limit; say so in the plan.
    fn warn_over_quota(&mut self) {
        for (scope, c) in &self.tally.by_scope {
            let replaced = self.tally.replaced.get(scope).copied().unwrap_or(0);
            let after = self.plan.stored_in(scope) + c.create - replaced;
            if after > crate::plan::ENGRAMIA_MAX_PATTERNS {
                self.warnings.push(Warning::new(
                    "scope_over_quota",
                    scope.to_string(),
                    format!(
                        "the scope would hold {after} patterns; Engramia refuses to learn into a scope past {} (and its API enforces projects.max_patterns); split the project with [scope] project, or archive old patterns first",
                        crate::plan::ENGRAMIA_MAX_PATTERNS
                    ),
                ));
            }
        }
    }

    fn source_label(&self) -> String {
        if let Some(label) = self.source.describe() {
            return label;
        }
        let api = match (&self.args.replay, self.transport.is_replay()) {
            (Some(dir), true) => format!("replay of {}", dir.display()),
            _ => self.config.base_url.clone(),
        };
        match self.config.source_kind {
            crate::config::SourceKind::Conversations => format!("conversations at {api}"),
            _ => api,
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
    /// A file that is gone or hidden (404/403) is a warning and its marker is removed; a lookup
    /// the server kept failing fails the whole thread (returned), so that no record is written
    /// with a citation it could not resolve and `--retry-failed` can redo the thread.
    async fn resolve_file_names(&mut self, bundle: &ThreadBundle, ctx: &mut MapContext) -> Result<Option<ThreadFetch>, RunError> {
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
            let name = match self.files.file(&id).await {
                Ok(Some(f)) => f.filename,
                Ok(None) => {
                    self.warnings.push(Warning::new(
                        "cited_file_unavailable",
                        id.clone(),
                        format!(
                            "thread {} cites file {id}, which the API did not return (404 or 403: deleted, or not readable with this key); its citation markers were removed",
                            bundle.thread.id
                        ),
                    ));
                    String::new()
                }
                Err(e @ SourceError::Unauthorized { .. }) => return Err(e.into()),
                Err(e) => {
                    let attempts = match &e {
                        SourceError::Transport(t) => t.attempts(),
                        _ => 1,
                    };
                    let warning = Warning::new(
                        "thread_failed",
                        bundle.thread.id.clone(),
                        format!("looking up the cited file {id}: {e}; it is listed in the rejects file: rerun with --retry-failed FILE to retry just the failed threads"),
                    );
                    return Ok(Some(ThreadFetch::Failed { warning, attempts }));
                }
            };
            // An empty name (unknown file) removes the marker rather than replacing it.
            ctx.file_names.insert(id, name);
        }
        Ok(None)
    }

    /// Removes the stored message pairs the pairing rules now retire (see `plan::supersede`),
    /// once every thread is planned; the dry run only counts them.
    async fn retire_superseded<S: Sink>(&mut self, sink: &mut S) -> Result<(), RunError> {
        // A scope that received no record this run may still hold pairs its questions retire.
        let scopes: Vec<Scope> = self.tally.questions.keys().filter(|s| self.plan.needs_scope(s)).cloned().collect();
        for scope in &scopes {
            let stored = sink.scope_patterns(scope).await?;
            self.plan.load_scope(scope, stored);
        }
        let retired = self.plan.retirements();
        if retired.is_empty() {
            return Ok(());
        }
        if !self.args.dry_run {
            let mut by_scope: HashMap<Scope, Vec<String>> = HashMap::new();
            for r in &retired {
                by_scope.entry(Scope::new(r.tenant.clone(), r.project.clone())).or_default().push(r.key.clone());
            }
            for (scope, keys) in &by_scope {
                sink.remove(scope, keys).await?;
            }
            // Sinks that queue removals apply them with the next write.
            sink.write(&[]).await?;
            self.wrote_anything = true;
        }
        self.tally.add_retired(retired);
        Ok(())
    }

    /// Plan -> embed -> write for one batch of records.
    async fn process_batch<S: Sink>(&mut self, sink: &mut S, records: Vec<Record>) -> Result<(), RunError> {
        self.agents_seen.observe(&records);
        let mut keys_by_scope: HashMap<Scope, Vec<String>> = HashMap::new();
        for r in &records {
            keys_by_scope.entry(r.scope.clone()).or_default().push(r.key.clone());
        }
        let mut existing = HashMap::new();
        for (scope, keys) in &keys_by_scope {
            existing.extend(sink.existing(scope, keys).await?);
        }
        for scope in keys_by_scope.keys() {
            if self.plan.needs_scope(scope) {
                let stored = sink.scope_patterns(scope).await?;
                self.plan.load_scope(scope, stored);
            }
        }
        let planned = plan_batch(records, &existing, &mut self.plan);
        planned.iter().for_each(|p| self.tally.add(p));
        let mut replaced: HashMap<Scope, Vec<String>> = HashMap::new();
        for p in &planned {
            if let Some(old) = &p.replaces {
                replaced.entry(p.record.scope.clone()).or_default().push(old.clone());
            }
        }
        let to_write: Vec<Record> = planned.into_iter().filter(|p| p.writes()).map(|p| p.record).collect();
        self.writes_planned += to_write.len() as u64;
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
        if self.index.is_none() {
            // Projected from the threads seen so far; the files stage adds what it adds.
            let seen = self.threads_seen.max(1) as u64;
            let projected = self.writes_planned * (self.threads_listed as u64).max(seen) / seen;
            self.index = sink.plan_load(projected, true).await?;
            if let (Some(ix), false) = (&self.index, self.args.quiet) {
                eprintln!("engram: {}: HNSW index: {}: {}", sink.describe(), ix.action, ix.reason);
            }
        }
        for (scope, keys) in &replaced {
            sink.remove(scope, keys).await?;
        }
        sink.write(&batch).await?;
        self.wrote_anything = true;
        self.batches_written += 1;
        self.records_written += batch.len() as u64;
        let progress = RunProgress {
            run_id: self.run_id.clone(),
            batches: self.batches_written,
            records: self.records_written,
            last_thread: self.current_thread.clone(),
        };
        sink.mark_progress(&progress).await?;
        Ok(())
    }
}

/// Aborts a spawned task when dropped (the thread fetcher, when the run stops early).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
