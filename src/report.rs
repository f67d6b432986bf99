//! The run's report: one model, rendered as JSON (`--report FILE`) and as the summary table
//! printed at the end of every run.

use crate::embed::price_per_million;
use crate::plan::{Counts, Tally};
use crate::record::Warning;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engram_version: String,
    pub dry_run: bool,
    pub source: String,
    pub target: String,
    pub threads: ThreadCounts,
    pub scopes: Vec<ScopeReport>,
    pub warnings: Vec<Warning>,
    pub embedding: EmbeddingReport,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadCounts {
    /// Thread ids read from the threads file.
    pub listed: usize,
    /// Threads fetched and mapped.
    pub read: usize,
    /// Threads skipped with a warning (404, 403, failing server).
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScopeReport {
    pub tenant: String,
    pub project: String,
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub skip: usize,
    /// Patterns of this run present in the scope afterwards (create + update + unchanged).
    pub patterns: usize,
    /// Embeddings computed and stored by this run (create + update).
    pub embedded: usize,
    /// Distinct skill tags registered for those patterns.
    pub skills: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingReport {
    pub model: String,
    pub inputs: usize,
    pub tokens: usize,
    pub requests: usize,
    /// None for a model without a known price.
    pub estimated_cost_usd: Option<f64>,
}

impl EmbeddingReport {
    pub fn new(model: &str, inputs: usize, tokens: usize, requests: usize) -> Self {
        EmbeddingReport {
            model: model.to_string(),
            inputs,
            tokens,
            requests,
            estimated_cost_usd: price_per_million(model).map(|p| tokens as f64 * p / 1_000_000.0),
        }
    }
}

pub fn scope_reports(tally: &Tally) -> Vec<ScopeReport> {
    tally
        .by_scope
        .iter()
        .map(|(scope, c)| ScopeReport {
            tenant: scope.tenant.clone(),
            project: scope.project.clone(),
            create: c.create,
            update: c.update,
            unchanged: c.unchanged,
            skip: c.skip,
            patterns: tally.embeddings.get(scope).copied().unwrap_or(0),
            embedded: tally.embedded.get(scope).copied().unwrap_or(0),
            skills: tally.skills.get(scope).map_or(0, |s| s.len()),
        })
        .collect()
}

impl Report {
    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for s in &self.scopes {
            t.create += s.create;
            t.update += s.update;
            t.unchanged += s.unchanged;
            t.skip += s.skip;
        }
        t
    }

    /// The human summary: a table a reader takes in at a glance.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let headline = if self.dry_run { "engram migrate --dry-run: plan (nothing written)" } else { "engram migrate: done" };
        out.push_str(headline);
        out.push('\n');
        out.push_str(&format!("  source   {}\n  target   {}\n", self.source, self.target));
        out.push_str(&format!(
            "  threads  {} listed, {} read, {} skipped\n\n",
            self.threads.listed, self.threads.read, self.threads.skipped
        ));
        let width = self
            .scopes
            .iter()
            .map(|s| s.tenant.chars().count() + s.project.chars().count() + 1)
            .max()
            .unwrap_or(5)
            .max(5);
        out.push_str(&format!(
            "  {:<width$}  {:>7} {:>7} {:>9} {:>5}  {:>8} {:>8} {:>6}\n",
            "scope", "create", "update", "unchanged", "skip", "patterns", "embedded", "skills"
        ));
        for s in &self.scopes {
            let name = format!("{}/{}", s.tenant, s.project);
            out.push_str(&format!(
                "  {:<width$}  {:>7} {:>7} {:>9} {:>5}  {:>8} {:>8} {:>6}\n",
                name, s.create, s.update, s.unchanged, s.skip, s.patterns, s.embedded, s.skills
            ));
        }
        let t = self.totals();
        let patterns: usize = self.scopes.iter().map(|s| s.patterns).sum();
        let embedded: usize = self.scopes.iter().map(|s| s.embedded).sum();
        let skills: usize = self.scopes.iter().map(|s| s.skills).sum();
        out.push_str(&format!(
            "  {:<width$}  {:>7} {:>7} {:>9} {:>5}  {:>8} {:>8} {:>6}\n",
            format!("total ({} scopes)", self.scopes.len()),
            t.create,
            t.update,
            t.unchanged,
            t.skip,
            patterns,
            embedded,
            skills
        ));
        let e = &self.embedding;
        let verb = if self.dry_run { "would embed" } else { "embedded" };
        let cost = e.estimated_cost_usd.map(|c| format!("${c:.6}")).unwrap_or_else(|| "cost unknown for this model".into());
        out.push_str(&format!(
            "\n  {verb} {} inputs, {} tokens, {} request{} with {} ({cost})\n",
            e.inputs,
            e.tokens,
            e.requests,
            if e.requests == 1 { "" } else { "s" },
            e.model
        ));
        if self.warnings.is_empty() {
            out.push_str("  no warnings\n");
        } else {
            out.push_str(&format!("  {} warning{}:\n", self.warnings.len(), if self.warnings.len() == 1 { "" } else { "s" }));
            for w in self.warnings.iter().take(20) {
                out.push_str(&format!("    {} {}: {}\n", w.kind, w.id, w.message));
            }
            if self.warnings.len() > 20 {
                out.push_str(&format!("    ... and {} more (see --report FILE)\n", self.warnings.len() - 20));
            }
        }
        out
    }
}
