//! The batch stage: plan → embed → write, `[target] batch_size` records at a time, so that a
//! batch is one embeddings request (when it fits the request limits) and one transaction; and,
//! at the end, the stored pairs that new pairing rules supersede are retired.
//!
//! Embedding is a stage of its own: a planned batch's embeddings are requested in a task while
//! the run goes on fetching, mapping and planning the next batches; batches are written in the
//! order they were planned, each once its vectors are in — so one batch embeds while the one
//! before it is written. At most `EMBED_AHEAD` batches wait for their vectors, so memory
//! stays flat; the requests themselves are paced by the transport
//! (in-flight limit, request and token budgets).

use super::{AbortOnDrop, Run};
use crate::app::RunError;
use crate::embed::{EmbedError, EmbedTotals, Embedder, embedding_input};
use crate::plan::plan_batch;
use crate::record::{Record, Scope};
use crate::sink::{Embedded, Sink};
use std::collections::HashMap;
use std::sync::Arc;

/// Planned batches whose embeddings may be in flight while the run plans the next one.
const EMBED_AHEAD: usize = 1;

/// A planned batch waiting for its vectors.
pub(super) struct EmbedJob {
    task: AbortOnDrop<(Result<Vec<Vec<f32>>, EmbedError>, EmbedTotals)>,
    records: Vec<Record>,
    /// Stored keys the batch's records replace, removed when it is written.
    replaced: HashMap<Scope, Vec<String>>,
    /// The last thread whose records were all planned when this batch was formed.
    last_thread: Option<String>,
}

impl EmbedJob {
    /// `embedder` None: the target embeds itself, the records go without vectors.
    fn spawn(embedder: Option<Arc<Embedder>>, records: Vec<Record>, replaced: HashMap<Scope, Vec<String>>, last_thread: Option<String>) -> EmbedJob {
        let texts: Vec<String> = records.iter().map(|r| embedding_input(r.task())).collect();
        let task = AbortOnDrop::spawn(async move {
            let mut totals = EmbedTotals::default();
            let vectors = match embedder {
                Some(embedder) => embedder.embed(&texts, &mut totals).await,
                None => Ok(vec![Vec::new(); texts.len()]),
            };
            (vectors, totals)
        });
        EmbedJob { task, records, replaced, last_thread }
    }
}

impl Run<'_> {
    /// Processes full batches; the rest waits in `pending`.
    pub(super) async fn process_full_batches<S: Sink>(&mut self, sink: &mut S, pending: &mut Vec<Record>) -> Result<(), RunError> {
        let size = self.s.config.mapping.target.batch_size;
        while pending.len() >= size {
            let rest = pending.split_off(size);
            let batch = std::mem::replace(pending, rest);
            self.process_batch(sink, batch).await?;
        }
        Ok(())
    }

    /// Plan -> embed -> write for one batch of records.
    pub(super) async fn process_batch<S: Sink>(&mut self, sink: &mut S, records: Vec<Record>) -> Result<(), RunError> {
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
            if self.c.plan.needs_scope(scope) {
                let stored = sink.scope_patterns(scope).await?;
                self.c.plan.load_scope(scope, stored);
            }
        }
        let planned = plan_batch(records, &existing, &mut self.c.plan);
        planned.iter().for_each(|p| self.c.tally.add(p));
        let mut replaced: HashMap<Scope, Vec<String>> = HashMap::new();
        for p in &planned {
            if let Some(old) = &p.replaces {
                replaced.entry(p.record.scope.clone()).or_default().push(old.clone());
            }
        }
        let to_write: Vec<Record> = planned.into_iter().filter(|p| p.writes()).map(|p| p.record).collect();
        self.c.writes_planned += to_write.len() as u64;
        if to_write.is_empty() {
            return Ok(());
        }
        // A target that embeds on its side (an Engramia server) gets no vectors from engram.
        let target_embeds = sink.embeds_itself().is_some();
        if target_embeds {
            self.c.totals.inputs += to_write.len();
            if self.s.args.dry_run {
                return Ok(());
            }
        }
        if self.s.args.dry_run {
            let texts: Vec<String> = to_write.iter().map(|r| embedding_input(r.task())).collect();
            self.s.embedder.estimate(&texts, &mut self.c.totals);
            return Ok(());
        }
        let embedder = (!target_embeds).then(|| self.s.embedder.clone());
        self.embedding.push_back(EmbedJob::spawn(embedder, to_write, replaced, self.c.current_thread.clone()));
        while self.embedding.len() > EMBED_AHEAD {
            self.write_next(sink).await?;
        }
        Ok(())
    }

    /// Writes every planned batch still waiting for its vectors, in order.
    pub(super) async fn drain_writes<S: Sink>(&mut self, sink: &mut S) -> Result<(), RunError> {
        while !self.embedding.is_empty() {
            self.write_next(sink).await?;
        }
        Ok(())
    }

    /// The oldest planned batch: waits for its vectors, then writes it.
    async fn write_next<S: Sink>(&mut self, sink: &mut S) -> Result<(), RunError> {
        let Some(job) = self.embedding.pop_front() else { return Ok(()) };
        let (vectors, totals) = job.task.join().await.map_err(|e| RunError::Failed(format!("the embeddings task stopped: {e}")))?;
        let vectors = vectors?;
        self.c.totals.absorb(&totals);
        let batch: Vec<Embedded> =
            job.records.into_iter().zip(vectors).map(|(record, embedding)| Embedded { record, embedding }).collect();
        if self.c.index.is_none() {
            self.c.index = sink.plan_load(self.c.projected_writes(), true).await?;
            if let (Some(ix), false) = (&self.c.index, self.s.args.quiet) {
                eprintln!("engram: {}: HNSW index: {}: {}", sink.describe(), ix.action, ix.reason);
            }
        }
        for (scope, keys) in &job.replaced {
            sink.remove(scope, keys).await?;
        }
        sink.write(&batch).await?;
        self.c.batch_written(batch.len(), job.last_thread);
        sink.mark_progress(&self.c.progress(&self.s.run_id)).await?;
        Ok(())
    }

    /// Removes the stored message pairs the pairing rules now retire (see `plan::supersede`),
    /// once every thread is planned; the dry run only counts them.
    pub(super) async fn retire_superseded<S: Sink>(&mut self, sink: &mut S) -> Result<(), RunError> {
        // A scope that received no record this run may still hold pairs its questions retire.
        let scopes: Vec<Scope> = self.c.tally.questions.keys().filter(|s| self.c.plan.needs_scope(s)).cloned().collect();
        for scope in &scopes {
            let stored = sink.scope_patterns(scope).await?;
            self.c.plan.load_scope(scope, stored);
        }
        let retired = self.c.plan.retirements();
        if retired.is_empty() {
            return Ok(());
        }
        if !self.s.args.dry_run {
            self.drain_writes(sink).await?;
            let mut by_scope: HashMap<Scope, Vec<String>> = HashMap::new();
            for r in &retired {
                by_scope.entry(Scope::new(r.tenant.clone(), r.project.clone())).or_default().push(r.key.clone());
            }
            for (scope, keys) in &by_scope {
                sink.remove(scope, keys).await?;
            }
            // Sinks that queue removals apply them with the next write.
            sink.write(&[]).await?;
            self.c.wrote_anything = true;
        }
        self.c.tally.add_retired(retired);
        Ok(())
    }
}
