//! The threads stage: the assistants first (their tools become skills, their scopes are checked
//! before anything is written), then every thread fetched in order in its own task — a bounded
//! channel between it and the rest of the run — mapped into records that join the batches.

use super::{AbortOnDrop, Run};
use crate::app::RunError;
use crate::files::FileRefs;
use crate::map::scope::ScopeContext;
use crate::map::{MapContext, map_assistant_tools, map_thread};
use crate::model::{Assistant, ThreadBundle};
use crate::progress::Progress;
use crate::record::{Record, Scope, Warning};
use crate::report::ThreadCounts;
use crate::sink::Sink;
use crate::source::{SourceError, ThreadFetch};
use futures::StreamExt;

/// What the run carries from stage to stage: the mapping context, the records waiting for a
/// full batch, and the files referenced so far.
pub(super) struct Carried {
    /// The assistants, in the order the source listed them.
    pub assistants: Vec<Assistant>,
    pub ctx: MapContext,
    pub pending: Vec<Record>,
    pub file_refs: FileRefs,
}

impl Run<'_> {
    /// Lists the assistants, maps their tools, and checks every scope that can be known now.
    pub(super) async fn assistants<S: Sink>(&mut self, sink: &mut S) -> Result<Carried, RunError> {
        let m = &self.s.config.mapping;
        let (assistants, w) = self.s.source.list_assistants(&m.scope.assistants).await?;
        self.c.warnings.extend(w);
        self.check_assistant_scopes(&assistants)?;
        let ctx = MapContext { assistants: assistants.iter().map(|a| (a.id.clone(), a.clone())).collect(), ..Default::default() };
        let mut pending: Vec<Record> = Vec::new();
        let shard = self.s.config.shard;
        // Each shard lists every assistant (scopes need them) but writes the tools of its own.
        for a in assistants.iter().filter(|a| crate::shard::owns(shard, &a.id)) {
            let mapped = map_assistant_tools(a, &self.s.settings);
            pending.extend(mapped.records);
            self.c.warnings.extend(mapped.warnings);
        }
        sink.note_assistant_scopes(&self.assistant_scopes(&assistants));
        sink.check_scopes(&self.known_scopes(&assistants)).await?;
        let mut file_refs = FileRefs::default();
        if m.files.enabled {
            assistants.iter().for_each(|a| file_refs.add_assistant(a, &self.s.settings));
            // The files and vector stores assistants hold go to the shard their id falls in;
            // what threads refer to is added later, by the shard reading the thread.
            file_refs.files.retain(|id, _| crate::shard::owns(shard, id));
            file_refs.stores.retain(|id, _| crate::shard::owns(shard, id));
        }
        Ok(Carried { assistants, ctx, pending, file_refs })
    }

    /// Every listed thread, in order; records are planned and written as batches fill.
    pub(super) async fn threads<S: Sink>(
        &mut self,
        sink: &mut S,
        thread_ids: Vec<String>,
        carried: &mut Carried,
        progress: &Progress,
    ) -> Result<ThreadCounts, RunError> {
        let mut counts = ThreadCounts { listed: thread_ids.len(), ..Default::default() };
        self.c.threads_listed = thread_ids.len();
        let files_enabled = self.s.config.mapping.files.enabled;
        let (mut rx, _fetcher) = spawn_fetcher(self.s.source.clone(), thread_ids, self.s.config.mapping.source.concurrency.width());
        // Ctrl-C stops taking threads (the ones in flight or waiting are dropped, unread); what
        // was read is still planned and written, so the next run starts right after it.
        let interrupt = self.s.interrupt.clone();
        while let Some(Some((id, result))) = interrupt.unless_set(rx.recv()).await {
            let fetch = match result? {
                ThreadFetch::Found { bundle, warnings } => match self.resolve_file_names(&bundle, &mut carried.ctx).await? {
                    None => ThreadFetch::Found { bundle, warnings },
                    Some(failed) => failed,
                },
                other => other,
            };
            match fetch {
                ThreadFetch::Skipped(w) => {
                    counts.skipped += 1;
                    self.c.warnings.push(w);
                }
                ThreadFetch::Failed { warning, attempts } => {
                    counts.failed += 1;
                    self.c.reject_thread(&id, warning, attempts);
                }
                ThreadFetch::Found { bundle, warnings } => {
                    counts.read += 1;
                    self.c.warnings.extend(warnings);
                    let mapped = map_thread(&bundle, &carried.ctx, &self.s.settings);
                    if files_enabled {
                        carried.file_refs.add_thread(&bundle, &carried.ctx, &self.s.settings);
                    }
                    carried.pending.extend(mapped.records);
                    self.c.warnings.extend(mapped.warnings);
                    self.c.tally.add_questions(&mapped.questions);
                    self.c.plan.pairs.thread_read(&bundle.thread.id, &mapped.not_stored);
                    tracing::debug!(thread = %id, "mapped");
                }
            }
            self.c.current_thread = Some(id.clone());
            self.c.threads_seen += 1;
            progress.thread_done(self.c.plan.planned_keys() + carried.pending.len());
            self.process_full_batches(sink, &mut carried.pending).await?;
        }
        Ok(counts)
    }

    /// Each assistant's scope, when the project template needs only the assistant (a target
    /// that keys scopes by assistant, the Engramia server's `[target.keys]`, reads them).
    fn assistant_scopes(&self, assistants: &[Assistant]) -> Vec<(String, Scope)> {
        assistants
            .iter()
            .filter_map(|a| {
                let s = crate::map::resolve_scope(&self.s.settings, &ScopeContext { assistant: Some(a), thread: None }).ok()?;
                self.s.settings.project_template.needs_only_assistant().then(|| (a.id.clone(), s))
            })
            .collect()
    }

    /// The scopes that can be known before any thread is read: one per assistant when the
    /// project template needs only the assistant.
    fn known_scopes(&self, assistants: &[Assistant]) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = Vec::new();
        if self.s.settings.project_template.needs_only_assistant() {
            for a in assistants {
                if let Ok(s) = crate::map::resolve_scope(&self.s.settings, &ScopeContext { assistant: Some(a), thread: None })
                    && !scopes.contains(&s)
                {
                    scopes.push(s);
                }
            }
        }
        scopes
    }

    /// A template that needs only the assistant must resolve for every assistant now, before
    /// anything is written (unless `default_project` catches it).
    fn check_assistant_scopes(&self, assistants: &[Assistant]) -> Result<(), RunError> {
        let t = &self.s.settings.project_template;
        if !t.uses_assistant() || self.s.settings.default_project.is_some() {
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
            let name = match self.s.files.file(&id).await {
                Ok(Some(f)) => f.filename,
                Ok(None) => {
                    self.c.warnings.push(Warning::new(
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
}

type Fetched = (String, Result<ThreadFetch, SourceError>);

/// Fetches the threads in order in a task of its own, `concurrency` at a time, so that threads
/// keep arriving while a batch is embedded and written. `buffered` keeps the input order, so
/// records (and embedding batches) are the same on every run whatever the concurrency. The
/// channel bounds how many wait (memory stays flat however many threads there are) and holds
/// enough that the fetcher rarely waits for the writer. The
/// task is aborted, requests in flight included, when the returned guard is dropped.
fn spawn_fetcher(
    source: std::sync::Arc<crate::source::Source>,
    thread_ids: Vec<String>,
    concurrency: usize,
) -> (tokio::sync::mpsc::Receiver<Fetched>, AbortOnDrop<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel((concurrency * 2).max(48));
    let task = AbortOnDrop::spawn(async move {
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
    });
    (rx, task)
}
