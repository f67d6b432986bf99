//! The batch stage: plan → embed → write, `[target] batch_size` records at a time, so that a
//! batch is one embeddings request (when it fits the request limits) and one transaction; and,
//! at the end, the stored pairs that new pairing rules supersede are retired.

use super::Run;
use crate::app::RunError;
use crate::embed::embedding_input;
use crate::plan::plan_batch;
use crate::record::{Record, Scope};
use crate::sink::{Embedded, Sink};
use std::collections::HashMap;

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
        let texts: Vec<String> = to_write.iter().map(|r| embedding_input(r.task())).collect();
        if self.s.args.dry_run {
            self.s.embedder.estimate(&texts, &mut self.c.totals);
            return Ok(());
        }
        let vectors = self.s.embedder.embed(&texts, &mut self.c.totals).await?;
        let batch: Vec<Embedded> =
            to_write.into_iter().zip(vectors).map(|(record, embedding)| Embedded { record, embedding }).collect();
        if self.c.index.is_none() {
            self.c.index = sink.plan_load(self.c.projected_writes(), true).await?;
            if let (Some(ix), false) = (&self.c.index, self.s.args.quiet) {
                eprintln!("engram: {}: HNSW index: {}: {}", sink.describe(), ix.action, ix.reason);
            }
        }
        for (scope, keys) in &replaced {
            sink.remove(scope, keys).await?;
        }
        sink.write(&batch).await?;
        self.c.batch_written(batch.len());
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
