//! What `engram verify` found: one model, rendered as a terminal summary, Markdown or JSON.

use crate::report::EmbeddingReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub engram_version: String,
    pub target: String,
    pub dry_run: bool,
    pub seed: u64,
    pub k: usize,
    pub min_recall: f64,
    /// Records queried per scope; None for `--all`.
    pub sample: Option<usize>,
    pub scopes: Vec<ScopeReport>,
    /// Every check that failed, store-wide and per record.
    pub faults: Vec<Fault>,
    /// What could not be checked, and why; things worth knowing that are not faults.
    pub notes: Vec<String>,
    /// The query embeddings made (a dry run: the ones the real verify will make).
    pub embedding: EmbeddingReport,
    /// No fault, and recall@k at least `min_recall` in every scope.
    pub passed: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScopeReport {
    pub tenant: String,
    pub project: String,
    /// Records engram's ledger says it wrote into this scope.
    pub migrated: usize,
    /// Of those: pattern there, valid by Engramia's rules, embedding there with the right size.
    pub searchable: usize,
    /// Changed since engram wrote them (Engramia itself updates reuse_count and scores).
    pub changed_since_migration: usize,
    /// Sampled queries that could not be embedded (a recording without them): not in recall.
    pub not_checked: usize,
    /// Recall over the queried records, all kinds; None in a dry run.
    pub recall: Option<Recall>,
    pub by_kind: BTreeMap<String, Recall>,
    pub misses: Vec<Miss>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recall {
    pub queries: usize,
    pub hits_at_1: usize,
    pub hits_at_k: usize,
    pub recall_at_1: f64,
    pub recall_at_k: f64,
}

impl Recall {
    pub fn add(&mut self, rank: Option<usize>, k: usize) {
        self.queries += 1;
        self.hits_at_1 += usize::from(rank == Some(1));
        self.hits_at_k += usize::from(rank.is_some_and(|r| r <= k));
        self.recall_at_1 = self.hits_at_1 as f64 / self.queries as f64;
        self.recall_at_k = self.hits_at_k as f64 / self.queries as f64;
    }
}

/// A queried record that did not come back in the top k.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub key: String,
    pub kind: String,
    /// None when the record could not be queried (no pattern to take the query from).
    pub query: Option<String>,
    /// Its rank among the results, when it came back below k.
    pub rank: Option<usize>,
    /// What came first instead: its key and the start of its task.
    pub first_key: Option<String>,
    pub first_task: Option<String>,
    pub why: String,
}

/// A failed check. `kind` is machine-readable: missing_pattern, unreadable_pattern,
/// invalid_pattern, missing_embedding, wrong_dimension, missing_skills, wrong_model,
/// missing_model, misplaced, shared_directory, unmerged_log, missing_index, invalid_index,
/// index_not_cosine, recall_below_threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub kind: String,
    pub scope: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl Fault {
    pub fn store(kind: &str, message: impl Into<String>) -> Fault {
        Fault { kind: kind.into(), scope: None, key: None, message: message.into() }
    }

    pub fn record(kind: &str, scope: &crate::record::Scope, key: &str, message: impl Into<String>) -> Fault {
        Fault { kind: kind.into(), scope: Some(scope.to_string()), key: Some(key.into()), message: message.into() }
    }
}

/// Faults of one kind listed in the summary before "and N more".
const LISTED: usize = 10;

impl VerifyReport {
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let verdict = if self.dry_run {
            "dry run: nothing was embedded or searched"
        } else if self.passed {
            "PASSED"
        } else {
            "FAILED"
        };
        let _ = writeln!(out, "engram verify: {} — {verdict}", self.target);
        let _ = writeln!(out, "{:<40} {:>8} {:>10} {:>8} {:>9} {:>9}", "scope", "migrated", "searchable", "queried", "recall@1", format!("recall@{}", self.k));
        for s in &self.scopes {
            let (q, r1, rk) = match &s.recall {
                Some(r) => (r.queries.to_string(), pct(r.recall_at_1), pct(r.recall_at_k)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(out, "{:<40} {:>8} {:>10} {:>8} {:>9} {:>9}", format!("{}/{}", s.tenant, s.project), s.migrated, s.searchable, q, r1, rk);
            for (kind, r) in &s.by_kind {
                let _ = writeln!(out, "  {:<38} {:>8} {:>10} {:>8} {:>9} {:>9}", kind, "", "", r.queries, pct(r.recall_at_1), pct(r.recall_at_k));
            }
        }
        let _ = writeln!(out, "embedding: {}", self.embedding.summary());
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let mut by_kind: BTreeMap<&str, Vec<&Fault>> = BTreeMap::new();
        for f in &self.faults {
            by_kind.entry(f.kind.as_str()).or_default().push(f);
        }
        for (kind, faults) in by_kind {
            let _ = writeln!(out, "FAULT {kind} ({}):", faults.len());
            for f in faults.iter().take(LISTED) {
                let _ = writeln!(out, "  - {}", f.message);
            }
            if faults.len() > LISTED {
                let _ = writeln!(out, "  ... and {} more (all in the --report file)", faults.len() - LISTED);
            }
        }
        for s in &self.scopes {
            for m in s.misses.iter().take(LISTED) {
                let _ = writeln!(out, "miss {}/{} {} ({}): {}", s.tenant, s.project, m.key, m.kind, m.why);
            }
        }
        out
    }

    pub fn render_markdown(&self) -> String {
        let mut out = String::new();
        let verdict = if self.dry_run { "dry run" } else if self.passed { "passed" } else { "**failed**" };
        let _ = writeln!(out, "# engram verify: {verdict}\n");
        let _ = writeln!(out, "Target: {} · k = {} · min recall@{} = {} · seed {} · sample {}\n", self.target, self.k, self.k, self.min_recall, self.seed,
            self.sample.map(|n| format!("{n} per scope")).unwrap_or_else(|| "all".into()));
        let _ = writeln!(out, "| scope | kind | migrated | searchable | queried | recall@1 | recall@{} |", self.k);
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        for s in &self.scopes {
            let scope = format!("{}/{}", s.tenant, s.project);
            let (q, r1, rk) = match &s.recall {
                Some(r) => (r.queries.to_string(), pct(r.recall_at_1), pct(r.recall_at_k)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(out, "| {} | all | {} | {} | {q} | {r1} | {rk} |", md(&scope), s.migrated, s.searchable);
            for (kind, r) in &s.by_kind {
                let _ = writeln!(out, "| {} | {kind} | | | {} | {} | {} |", md(&scope), r.queries, pct(r.recall_at_1), pct(r.recall_at_k));
            }
        }
        let _ = writeln!(out, "\nEmbedding: {}\n", self.embedding.summary());
        if !self.faults.is_empty() {
            let _ = writeln!(out, "## Faults ({})\n", self.faults.len());
            for f in &self.faults {
                let _ = writeln!(out, "- `{}` {}", f.kind, md(&f.message));
            }
            out.push('\n');
        }
        let misses: Vec<(&ScopeReport, &Miss)> = self.scopes.iter().flat_map(|s| s.misses.iter().map(move |m| (s, m))).collect();
        if !misses.is_empty() {
            let _ = writeln!(out, "## Misses ({})\n", misses.len());
            let _ = writeln!(out, "| scope | key | kind | query | rank | first instead |");
            let _ = writeln!(out, "| --- | --- | --- | --- | ---: | --- |");
            for (s, m) in misses {
                let first = match (&m.first_key, &m.first_task) {
                    (Some(k), Some(t)) => format!("{k}: {t}"),
                    (Some(k), None) => k.clone(),
                    _ => m.why.clone(),
                };
                let _ = writeln!(out, "| {}/{} | {} | {} | {} | {} | {} |", md(&s.tenant), md(&s.project), m.key, m.kind,
                    md(m.query.as_deref().unwrap_or("-")), m.rank.map(|r| r.to_string()).unwrap_or_else(|| "-".into()), md(&first));
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {}", md(n));
            }
        }
        out
    }
}

fn pct(x: f64) -> String {
    format!("{x:.3}")
}

/// Markdown table cells: no pipes or line breaks.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
