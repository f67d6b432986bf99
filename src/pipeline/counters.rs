//! Everything a run counts, as one type: the batch and thread stages add to it, and the report
//! is assembled from it at the end — the same way in a dry run and a real one.

use crate::embed::EmbedTotals;
use crate::plan::{OnDuplicate, PlanState, Tally};
use crate::record::Warning;
use crate::rejects::Reject;
use crate::sink::{LoadPlan, RunProgress};

pub(super) struct RunCounters {
    pub tally: Tally,
    pub plan: PlanState,
    pub warnings: Vec<Warning>,
    /// Items given up on, for the rejects file.
    pub rejects: Vec<Reject>,
    pub totals: EmbedTotals,
    /// The target's index decision (made before the first write; a dry run makes it at the end).
    pub index: Option<LoadPlan>,
    /// Threads listed and threads dealt with so far, to project the run's size from its start.
    pub threads_listed: usize,
    pub threads_seen: usize,
    /// Records planned to be written so far (create + update).
    pub writes_planned: u64,
    /// The last thread whose records are all planned (pending, embedding or written).
    pub current_thread: Option<String>,
    /// The last thread whose records are all written, for the sink's progress mark.
    pub written_through: Option<String>,
    pub batches_written: u64,
    pub records_written: u64,
    pub wrote_anything: bool,
}

impl RunCounters {
    pub fn new(on_duplicate: OnDuplicate, report_detail: bool) -> Self {
        RunCounters {
            tally: Tally { details: report_detail.then(Vec::new), ..Tally::default() },
            plan: PlanState::new(on_duplicate),
            warnings: Vec::new(),
            rejects: Vec::new(),
            totals: EmbedTotals::default(),
            index: None,
            threads_listed: 0,
            threads_seen: 0,
            writes_planned: 0,
            current_thread: None,
            written_through: None,
            batches_written: 0,
            records_written: 0,
            wrote_anything: false,
        }
    }

    /// The writes the whole run will make, projected from the threads seen so far (the files
    /// stage adds what it adds): what the target's index decision is made on.
    pub fn projected_writes(&self) -> u64 {
        let seen = self.threads_seen.max(1) as u64;
        self.writes_planned * (self.threads_listed as u64).max(seen) / seen
    }

    /// A thread given up on: a warning, and a line of the rejects file.
    pub fn reject_thread(&mut self, id: &str, warning: Warning, attempts: u32) {
        self.rejects.push(Reject {
            id: id.to_string(),
            stage: crate::rejects::STAGE_THREAD.to_string(),
            reason: warning.message.clone(),
            attempts,
        });
        self.warnings.push(warning);
    }

    /// A batch is written; `through` is the last thread all of whose records it completes.
    pub fn batch_written(&mut self, records: usize, through: Option<String>) {
        self.written_through = through;
        self.wrote_anything = true;
        self.batches_written += 1;
        self.records_written += records as u64;
    }

    /// What the sink records after each batch, for a resumed run's report.
    pub fn progress(&self, run_id: &str) -> RunProgress {
        RunProgress {
            run_id: run_id.to_string(),
            batches: self.batches_written,
            records: self.records_written,
            last_thread: self.written_through.clone(),
        }
    }

    /// Engramia refuses to learn into a scope past its pattern limit; say so in the plan.
    pub fn warn_over_quota(&mut self) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Scope;

    fn counters() -> RunCounters {
        RunCounters::new(OnDuplicate::default(), false)
    }

    #[test]
    fn the_load_is_projected_from_the_threads_seen() {
        let mut c = counters();
        assert_eq!(c.projected_writes(), 0, "nothing planned, nothing projected");
        c.threads_listed = 100;
        c.threads_seen = 10;
        c.writes_planned = 50;
        assert_eq!(c.projected_writes(), 500);
        // Assistants' tools are planned before any thread: no division by zero, no shrinking.
        c.threads_seen = 0;
        assert_eq!(c.projected_writes(), 5000);
        c.threads_listed = 0;
        c.threads_seen = 3;
        assert_eq!(c.projected_writes(), 50, "never fewer than planned");
    }

    #[test]
    fn a_rejected_thread_is_a_warning_and_a_reject() {
        let mut c = counters();
        c.reject_thread("thread_1", Warning::new("thread_failed", "thread_1", "HTTP 500, 4 attempts"), 4);
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.rejects[0].id, "thread_1");
        assert_eq!(c.rejects[0].stage, crate::rejects::STAGE_THREAD);
        assert_eq!(c.rejects[0].reason, "HTTP 500, 4 attempts");
        assert_eq!(c.rejects[0].attempts, 4);
    }

    #[test]
    fn progress_counts_batches_and_records() {
        let mut c = counters();
        assert!(!c.wrote_anything);
        c.current_thread = Some("thread_12".into());
        c.batch_written(3, Some("thread_8".into()));
        c.batch_written(2, Some("thread_9".into()));
        let p = c.progress("run-1");
        assert_eq!((p.batches, p.records, p.last_thread.as_deref(), p.run_id.as_str()), (2, 5, Some("thread_9"), "run-1"));
        assert!(c.wrote_anything);
    }

    #[test]
    fn a_scope_past_engramias_limit_is_warned_about_once() {
        let mut c = counters();
        let big = Scope::new("acme", "big");
        let small = Scope::new("acme", "small");
        c.tally.by_scope.entry(big.clone()).or_default().create = crate::plan::ENGRAMIA_MAX_PATTERNS + 1;
        c.tally.by_scope.entry(small).or_default().create = 3;
        c.warn_over_quota();
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].kind, "scope_over_quota");
        assert_eq!(c.warnings[0].id, big.to_string());
        // Near-duplicates it replaces bring it back under the limit.
        c.warnings.clear();
        c.tally.replaced.insert(big, 1);
        c.warn_over_quota();
        assert!(c.warnings.is_empty());
    }
}
