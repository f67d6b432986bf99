//! `engram migrate`: one run of the pipeline (DESIGN.md: Source → Extract → Map → Plan → Embed
//! → Sink).
//!
//! Order of business: everything checkable is checked before the first write or embedding
//! request (mapping, thread list, credentials, target, embedding dimension, the assistants
//! list, scope templates); then threads stream through in order (`threads`: fetched in their own
//! task, a bounded channel between it and the rest), then the files stage (`files_stage`, over
//! `crate::files`); records are planned, embedded and written `[target] batch_size` at a time
//! (`batch`); pairs that new rules supersede are retired; and the report is assembled (`report`)
//! from the one set of counters (`counters`), the same way in a dry run and a real one.

mod batch;
mod counters;
mod files_stage;
mod report;
mod threads;

use crate::app::{Env, RunError, credential_note, migrate_transport, write_report};
use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::embed::{Embedder, expected_dimensions};
use crate::files::FileSource;
use crate::http::transport::SharedTransport;
use crate::map::MapSettings;
use crate::record::Warning;
use crate::report::Report;
use crate::signal::Interrupt;
use crate::sink::json_dir::JsonDirSink;
use crate::sink::postgres::PgSink;
use crate::sink::{Preflight, RunInfo, Sink, Target};
use crate::source::Source;
use crate::source::openai::OpenAiSource;
use counters::RunCounters;
use std::sync::Arc;

/// Runs `engram migrate` and returns its report (also written to `--report` when given).
pub async fn migrate(args: &MigrateArgs, env: &Env) -> Result<Report, RunError> {
    let mut config = Config::load(&args.config, env.base_url.clone()).map_err(|e| RunError::Config(e.0))?;
    if let Some(dir) = &args.agents {
        config.agents_out_dir = Some(dir.clone());
    }
    if args.shard.is_some() {
        config.shard = args.shard;
    }
    if let Some(dir) = &config.agents_out_dir {
        crate::agents::preflight(dir).map_err(RunError::Config)?;
    }
    let transport = Arc::new(migrate_transport(args, &config, env)?);
    // The Assistants API client: the `openai` and `conversations` sources read through it, and
    // the files stage reads files through it whatever the source.
    let api = Arc::new(OpenAiSource::new(transport.clone(), credential_note(env), config.mapping.skills.from_run_steps));
    let opened = Source::open(&config, api.clone()).map_err(RunError::Config)?;
    let (mut thread_ids, id_warnings) = match &args.retry_failed {
        Some(path) => retry_thread_ids(path, &opened.source)?,
        None => (opened.thread_ids, opened.warnings),
    };
    thread_ids.retain(|id| crate::shard::owns(config.shard, id));
    let target = Target::parse(&config.target_url(args.target.as_deref()));
    let files_api = opened.source.files_api().unwrap_or(api);
    let run = Run::new(args, &config, transport, files_api, opened.source, env);
    let mut report = match target {
        Target::JsonDir(dir) => run.run(JsonDirSink::new(dir).exclusive(!args.dry_run), thread_ids, id_warnings).await?,
        Target::Postgres(url) => {
            let sink = PgSink::open(&url, run.s.run_id.clone()).await?.with_index_strategy(config.mapping.target.index_strategy)
                .with_engramia_schema(config.mapping.target.engramia_schema.clone())
                .with_shard(config.shard.map(|s| s.to_string()), thread_ids.len());
            run.run(sink, thread_ids, id_warnings).await?
        }
        Target::Rest(url) => {
            let sink = crate::sink::rest::RestSink::open(&url, &config.mapping.target.keys, &config.mapping.target.server, &|k| std::env::var(k).ok())?;
            run.run(sink, thread_ids, id_warnings).await?
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

/// Files fetched and extracted at once, at most (each may be up to `[files] max_bytes`); the
/// in-flight limit of `[source] concurrency` still governs the requests.
const FILES_WIDTH: usize = 16;

/// What a run works with; none of it changes while the run goes.
struct Stages<'a> {
    args: &'a MigrateArgs,
    config: &'a Config,
    settings: MapSettings,
    transport: SharedTransport,
    source: Arc<Source>,
    files: Arc<FileSource>,
    file_stage: Arc<crate::files::Stage>,
    embedder: Arc<Embedder>,
    interrupt: Interrupt,
    run_id: String,
    started: std::time::Instant,
}

/// A run: its stages, what it has counted so far, and the planned batches waiting for their
/// embeddings (see `batch`).
struct Run<'a> {
    s: Stages<'a>,
    c: RunCounters,
    embedding: std::collections::VecDeque<batch::EmbedJob>,
    /// Where each assistant's records went, for the generated agents (`[agents]`).
    agents_seen: crate::agents::Seen,
}

/// A spawned task, aborted when dropped (the run stopped early: no request goes on after it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> AbortOnDrop<T> {
    fn spawn(task: impl std::future::Future<Output = T> + Send + 'static) -> Self {
        AbortOnDrop(tokio::spawn(task))
    }

    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<'a> Run<'a> {
    fn new(args: &'a MigrateArgs, config: &'a Config, transport: SharedTransport, api: Arc<OpenAiSource>, source: Source, env: &Env) -> Self {
        let m = &config.mapping;
        let files = Arc::new(FileSource::new(api, config.files_local_dir.clone(), m.files.max_bytes));
        let s = Stages {
            args,
            config,
            settings: config.map_settings(),
            file_stage: Arc::new(crate::files::Stage::new(files.clone(), &m.files, m.source.concurrency.width().min(FILES_WIDTH), env.pdf_helper.clone())),
            files,
            source: Arc::new(source),
            embedder: Arc::new(Embedder::new(transport.clone(), m.embedding.model.clone(), m.embedding.dimensions, m.embedding.batch_inputs)),
            transport,
            interrupt: env.interrupt.clone(),
            run_id: crate::sink::postgres::new_run_id(),
            started: std::time::Instant::now(),
        };
        Run { s, c: RunCounters::new(m.patterns.on_duplicate, args.report_detail), embedding: Default::default(), agents_seen: Default::default() }
    }

    /// The run, then `Sink::settle` whatever happened (a dropped index is rebuilt even when
    /// the run failed or was interrupted).
    async fn run<S: Sink>(self, mut sink: S, thread_ids: Vec<String>, id_warnings: Vec<Warning>) -> Result<Report, RunError> {
        let (dry_run, quiet, started) = (self.s.args.dry_run, self.s.args.quiet, self.s.started);
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
                    sink.fail(&e.to_string()).await;
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
        let m = &self.s.config.mapping;
        let dims = expected_dimensions(&m.embedding.model, m.embedding.dimensions);
        let notes = sink.preflight(&Preflight { model: m.embedding.model.clone(), dimensions: dims }).await?;
        if !self.s.args.quiet {
            for note in notes {
                eprintln!("engram: {}: {note}", sink.describe());
            }
        }
        let resumed = sink.previous_run().await?;
        self.c.warnings.extend(id_warnings);

        let mut start = self.assistants(sink).await?;
        let progress = crate::progress::Progress::threads(thread_ids.len(), !self.s.args.quiet);
        let mut threads = self.threads(sink, thread_ids, &mut start, &progress).await?;
        let files = match m.files.enabled && !self.s.interrupt.is_set() {
            true => Some(self.files_stage(sink, start.file_refs, &mut start.pending).await?),
            false => None,
        };
        if !start.pending.is_empty() {
            self.process_batch(sink, std::mem::take(&mut start.pending)).await?;
        }
        self.drain_writes(sink).await?;
        if !self.s.interrupt.is_set() {
            self.retire_superseded(sink).await?;
        }
        progress.finish();
        if self.s.args.dry_run {
            self.c.index = sink.plan_load(self.c.writes_planned, false).await?;
        }
        let interrupted = self.s.interrupt.is_set();
        threads.not_reached = threads.listed - threads.read - threads.skipped - threads.failed;
        self.c.warn_over_quota();
        self.c.warnings.extend(sink.take_warnings());
        // An interrupted run is not finished: the sink keeps its "running" marker, so the next
        // run reports that it resumed this one.
        if !self.s.args.dry_run && !interrupted {
            let info = RunInfo { run_id: self.s.run_id.clone(), source: self.source_label(), wrote_anything: self.c.wrote_anything };
            sink.finish(&info).await?;
        }
        let agents = match &self.s.config.agents_out_dir {
            Some(dir) if !interrupted => self.generate_agents(dir, &start.assistants)?,
            _ => None,
        };
        let mut report = self.report(sink, resumed, threads, files, interrupted);
        report.agents = agents;
        Ok(report)
    }
}

impl Run<'_> {
    /// The cutover code for every assistant (written unless this is a dry run). An Engramia
    /// server target has no storage an agent's `Memory` opens directly: none is generated.
    fn generate_agents(&mut self, dir: &std::path::Path, assistants: &[crate::model::Assistant]) -> Result<Option<crate::agents::AgentsReport>, RunError> {
        let storage = match Target::parse(&self.s.config.target_url(self.s.args.target.as_deref())) {
            Target::JsonDir(d) => crate::agents::Storage::JsonDir(std::path::absolute(&d).unwrap_or(d)),
            Target::Postgres(url) => crate::agents::Storage::Postgres(crate::redact::redact_url(&url)),
            Target::Rest(url) => {
                self.c.warnings.push(crate::record::Warning::new(
                    "agents_not_generated",
                    url,
                    "[agents]: the cutover code is generated for a JSON directory or PostgreSQL target; for an Engramia server, point the agents' Memory at it by hand",
                ));
                return Ok(None);
            }
        };
        let inputs = crate::agents::Inputs {
            assistants,
            settings: &self.s.settings,
            seen: &self.agents_seen,
            storage,
            embedding_model: &self.s.config.mapping.embedding.model,
        };
        crate::agents::generate(&inputs, dir, self.s.args.dry_run).map(Some).map_err(RunError::Failed)
    }
}
