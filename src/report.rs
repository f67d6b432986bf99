//! The run's report: one model, rendered as JSON (`--report FILE`) and as the summary table
//! printed at the end of every run.

use crate::embed::price_per_million;
use crate::plan::{Counts, Tally};
use crate::record::Warning;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engram_version: String,
    /// This run's id (also in the target's bookkeeping: `_engram_run.json`, `engram_runs`).
    pub run_id: String,
    /// Set when an earlier run into this target stopped before finishing: this run picked up
    /// its work (what it had written is `unchanged` now).
    pub resumed: Option<crate::sink::PreviousRun>,
    pub dry_run: bool,
    pub source: String,
    /// `--shard I/N`: the part of the account this run took (`threads.listed` counts its part).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub target: String,
    pub threads: ThreadCounts,
    pub scopes: Vec<ScopeReport>,
    pub warnings: Vec<Warning>,
    pub embedding: EmbeddingReport,
    /// Every record with its decision, with `--report-detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<crate::plan::RecordDetail>>,
    /// A few tasks per scope that the run writes (`tenant/project` -> tasks).
    pub samples: std::collections::BTreeMap<String, Vec<String>>,
    /// Ctrl-C stopped the run: the batch in flight was finished, the threads not reached were
    /// not read (`threads.not_reached`); a rerun resumes.
    pub interrupted: bool,
    /// Where the items this run gave up on were listed (`--retry-failed FILE` re-runs them);
    /// None when there were none.
    pub rejects_file: Option<String>,
    /// The rejects themselves, for the rejects file (not part of the JSON report).
    #[serde(skip)]
    pub rejects: Vec<crate::rejects::Reject>,
    /// The files stage (None when `[files] enabled = false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<crate::files::FileCounts>,
    /// Requests made (and, for a dry run, the estimate for the real run).
    pub requests: RequestReport,
    /// What the load does with the target's vector index, and why (PostgreSQL only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::sink::LoadPlan>,
    /// Engramia's schema in the target: the alembic revision found, or created (PostgreSQL only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engramia_schema: Option<crate::sink::SchemaReport>,
    /// What the sink did at the end (e.g. rebuilt an index, with its time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_notes: Vec<String>,
    /// Wall time of the run, in seconds.
    pub elapsed_secs: f64,
    /// Stored patterns this rerun replaced (with the key replacing each) or retired, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<crate::plan::supersede::Superseded>,
    /// The cutover code generated (`[agents] out_dir` / `--agents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<crate::agents::AgentsReport>,
}

/// API traffic of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestReport {
    /// Answered requests to the source's API (pages, object reads, file contents).
    pub api: u64,
    /// Of those, run-steps pages (`[skills] from_run_steps = false` saves them).
    pub run_steps: u64,
    /// Embeddings requests made (a dry run: those the real run will make).
    pub embeddings: u64,
    /// Attempts beyond the first (429s, 5xx, dropped connections).
    pub retries: u64,
    /// Requests a minute the run is held to: the server's declared limit
    /// (`x-ratelimit-limit-requests`) or `[source] requests_per_minute`, the lower.
    pub rate_limit_per_minute: Option<u64>,
    /// Dry run: the requests the real run will make (the same reads plus the embeddings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_requests: Option<u64>,
    /// Dry run: minutes those requests take at `rate_limit_per_minute` (None without a rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_minutes: Option<f64>,
    /// Where `[source] concurrency` settled and why (live runs; a replay sends nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::http::limiter::Settled>,
}

impl RequestReport {
    /// "1234 API (56 run-steps pages), 3 embeddings, 0 retries; limit 500/min".
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} API ({} run-steps pages), {} embeddings, {} retries",
            self.api, self.run_steps, self.embeddings, self.retries
        );
        if let Some(r) = self.rate_limit_per_minute {
            s.push_str(&format!("; limit {r}/min"));
        }
        if let Some(n) = self.estimated_requests {
            s.push_str(&format!("; the real run makes {n} requests"));
            if let Some(m) = self.estimated_minutes {
                s.push_str(&format!(", at least {m:.1} min at the limit"));
            }
        }
        s
    }

    /// "auto, settled at 9 (peak 16, 0 back-offs): held at 9: …".
    pub fn concurrency_summary(&self) -> Option<String> {
        let c = self.concurrency.as_ref()?;
        Some(format!(
            "{}, settled at {} (peak {}, {} back-off{}): {}",
            c.mode,
            c.limit,
            c.peak,
            c.backoffs,
            if c.backoffs == 1 { "" } else { "s" },
            c.reason
        ))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadCounts {
    /// Thread ids read from the threads file.
    pub listed: usize,
    /// Threads fetched and mapped.
    pub read: usize,
    /// Threads skipped with a warning: gone or hidden (404, 403), or not a thread id.
    pub skipped: usize,
    /// Threads the server kept failing on (after retries): warnings, and lines of the rejects
    /// file. listed = read + skipped + failed + not_reached.
    pub failed: usize,
    /// Threads not read because the run was interrupted (0 otherwise).
    pub not_reached: usize,
}

impl ThreadCounts {
    /// "8 listed, 6 read, 1 skipped, 1 failed" (failed and not reached only when non-zero).
    pub fn summary(&self) -> String {
        let mut s = format!("{} listed, {} read, {} skipped", self.listed, self.read, self.skipped);
        if self.failed > 0 {
            s.push_str(&format!(", {} failed", self.failed));
        }
        if self.not_reached > 0 {
            s.push_str(&format!(", {} not reached", self.not_reached));
        }
        s
    }
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
    /// Stored near-duplicates replaced by better records (`on_duplicate = "replace_with_better"`).
    pub replaced: usize,
    /// Questions with no answer to store, refused ones, and answers that did not finish.
    pub unanswered: usize,
    pub refused: usize,
    pub incomplete: usize,
    /// Stored message pairs this rerun retired under the pairing rules.
    pub retired: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingReport {
    pub model: String,
    pub inputs: usize,
    pub tokens: usize,
    pub requests: usize,
    /// None for a model without a known price.
    pub estimated_cost_usd: Option<f64>,
    /// The target that embeds the records itself (an Engramia server): engram sent none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_by: Option<String>,
}

impl EmbeddingReport {
    pub fn new(model: &str, inputs: usize, tokens: usize, requests: usize) -> Self {
        EmbeddingReport {
            model: model.to_string(),
            inputs,
            tokens,
            requests,
            estimated_cost_usd: price_per_million(model).map(|p| tokens as f64 * p / 1_000_000.0),
            embedded_by: None,
        }
    }

    /// Marks the embeddings as the target's own (see `Sink::embeds_itself`).
    pub fn embedded_by(mut self, who: Option<String>) -> Self {
        if who.is_some() {
            self.estimated_cost_usd = Some(0.0);
        }
        self.embedded_by = who;
        self
    }
}

impl EmbeddingReport {
    /// "72 inputs, 755 tokens (cl100k_base), 1 request to text-embedding-3-small, estimated
    /// cost $0.000015"
    pub fn summary(&self) -> String {
        if let Some(who) = &self.embedded_by {
            return format!(
                "engram sends no embeddings: {who} embeds each of the {} records it stores with its own model (its provider's cost, not engram's)",
                self.inputs
            );
        }
        let cost = self.estimated_cost_usd.map(|c| format!("${c:.6}")).unwrap_or_else(|| "unknown for this model".into());
        format!(
            "{} inputs, {} tokens (cl100k_base), {} request{} to {}, estimated cost {cost}",
            self.inputs,
            self.tokens,
            self.requests,
            if self.requests == 1 { "" } else { "s" },
            self.model
        )
    }
}

pub fn scope_reports(tally: &Tally) -> Vec<ScopeReport> {
    // A scope may have only questions nothing answered: it still gets its row.
    let scopes: std::collections::BTreeSet<&crate::record::Scope> =
        tally.by_scope.keys().chain(tally.questions.keys()).chain(tally.retired.keys()).collect();
    scopes
        .into_iter()
        .map(|scope| {
            let c = tally.by_scope.get(scope).cloned().unwrap_or_default();
            let q = tally.questions.get(scope).copied().unwrap_or_default();
            ScopeReport {
                tenant: scope.tenant.clone(),
                project: scope.project.clone(),
                create: c.create,
                update: c.update,
                unchanged: c.unchanged,
                skip: c.skip,
                patterns: tally.embeddings.get(scope).copied().unwrap_or(0),
                embedded: tally.embedded.get(scope).copied().unwrap_or(0),
                skills: tally.skills.get(scope).map_or(0, |s| s.len()),
                replaced: tally.replaced.get(scope).copied().unwrap_or(0),
                unanswered: q.unanswered,
                refused: q.refused,
                incomplete: q.incomplete,
                retired: tally.retired.get(scope).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// Superseded patterns listed by the text and Markdown reports.
const SUPERSEDED_SHOWN: usize = 10;

impl Report {
    /// "acme/Support Bot: 2 unanswered, 1 refused, 1 incomplete" for every scope with any.
    fn question_lines(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| s.unanswered + s.refused + s.incomplete > 0)
            .map(|s| {
                format!(
                    "{}/{}: {} unanswered, {} refused, {} incomplete",
                    s.tenant, s.project, s.unanswered, s.refused, s.incomplete
                )
            })
            .collect()
    }

    /// A summary of `superseded` and its first entries (all of them are in the JSON report).
    fn superseded_lines(&self) -> Vec<String> {
        if self.superseded.is_empty() {
            return Vec::new();
        }
        let replaced = self.superseded.iter().filter(|s| s.by.is_some()).count();
        let verb = if self.dry_run { "would be" } else { "were" };
        let mut out = vec![format!(
            "{} stored pattern{} {verb} superseded: {replaced} replaced by a new key, {} retired",
            self.superseded.len(),
            if self.superseded.len() == 1 { "" } else { "s" },
            self.superseded.len() - replaced
        )];
        for s in self.superseded.iter().take(SUPERSEDED_SHOWN) {
            let by = s.by.as_deref().map(|b| format!(" -> {b}")).unwrap_or_default();
            out.push(format!("{}/{} {}{by} ({}): {}", s.tenant, s.project, s.key, s.origin, s.reason));
        }
        if self.superseded.len() > SUPERSEDED_SHOWN {
            out.push(format!("... and {} more (see --report FILE.json)", self.superseded.len() - SUPERSEDED_SHOWN));
        }
        out
    }

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

    /// The same report for a pull-request review: per-scope table, cost, warnings, and a sample
    /// of the tasks each scope receives.
    pub fn render_markdown(&self) -> String {
        let mut out = String::new();
        let title = if self.dry_run { "engram migration plan (dry run)" } else { "engram migration report" };
        out.push_str(&format!("## {title}\n\n"));
        out.push_str(&format!("- source: `{}`\n- target: `{}`\n", self.source, self.target));
        out.push_str(&format!("- threads: {}\n", self.threads.summary()));
        if let Some(f) = &self.files {
            out.push_str(&format!("- files: {} referenced, {} extracted, {} skipped\n", f.referenced, f.extracted, f.skipped));
        }
        // Where the concurrency settled depends on timing: it is in the text and JSON reports,
        // not in this one, which reviewers diff between dry runs.
        out.push_str(&format!("- requests: {}\n", self.requests.summary()));
        if let Some(schema) = &self.engramia_schema {
            out.push_str(&format!("- Engramia schema: {}\n", md_escape(&schema.summary())));
        }
        if let Some(ix) = &self.index {
            out.push_str(&format!("- HNSW index: **{}**: {}\n", ix.action, md_escape(&ix.reason)));
        }
        if self.interrupted {
            out.push_str("- **interrupted** (Ctrl-C): rerun to finish\n");
        }
        if let Some(r) = &self.resumed {
            out.push_str(&format!(
                "- resumed run `{}` (it had committed {} batches, {} records)\n",
                r.run_id, r.batches, r.records
            ));
        }
        out.push_str("\n| scope | create | update | unchanged | skip | patterns | embedded | skills |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for s in &self.scopes {
            out.push_str(&format!(
                "| {}/{} | {} | {} | {} | {} | {} | {} | {} |\n",
                md_escape(&s.tenant),
                md_escape(&s.project),
                s.create,
                s.update,
                s.unchanged,
                s.skip,
                s.patterns,
                s.embedded,
                s.skills
            ));
        }
        let t = self.totals();
        out.push_str(&format!("| **total** | {} | {} | {} | {} | | | |\n\n", t.create, t.update, t.unchanged, t.skip));
        let questions = self.question_lines();
        if !questions.is_empty() {
            out.push_str("**Questions with no stored answer:**\n\n");
            for line in &questions {
                out.push_str(&format!("- {}\n", md_escape(line)));
            }
            out.push('\n');
        }
        let superseded = self.superseded_lines();
        if let Some((head, rest)) = superseded.split_first() {
            out.push_str(&format!("**Superseded:** {}\n\n", md_escape(head)));
            for line in rest {
                out.push_str(&format!("- {}\n", md_escape(line)));
            }
            out.push('\n');
        }
        out.push_str(&format!("**Embedding:** {}.\n\n", self.embedding.summary()));
        if self.warnings.is_empty() {
            out.push_str("**Warnings:** none.\n");
        } else {
            out.push_str(&format!("**Warnings ({}):**\n\n| kind | object | message |\n| --- | --- | --- |\n", self.warnings.len()));
            for w in &self.warnings {
                out.push_str(&format!("| {} | {} | {} |\n", md_escape(&w.kind), md_escape(&w.id), md_escape(&w.message)));
            }
        }
        if !self.samples.is_empty() {
            out.push_str("\n<details><summary>Sample tasks per scope</summary>\n\n");
            for (scope, tasks) in &self.samples {
                out.push_str(&format!("**{}**\n\n", md_escape(scope)));
                for t in tasks {
                    out.push_str(&format!("- {}\n", md_escape(t)));
                }
                out.push('\n');
            }
            out.push_str("</details>\n");
        }
        out
    }

    /// The human summary: a table a reader takes in at a glance.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let headline = match (self.dry_run, self.interrupted) {
            (true, false) => "engram migrate --dry-run: plan (nothing written)",
            (true, true) => "engram migrate --dry-run: interrupted (plan of the threads read so far)",
            (false, false) => "engram migrate: done",
            (false, true) => "engram migrate: interrupted (what was read is written; rerun to finish)",
        };
        out.push_str(headline);
        out.push('\n');
        out.push_str(&format!("  source   {}\n  target   {}\n", self.source, self.target));
        if let Some(shard) = &self.shard {
            out.push_str(&format!("  shard    {shard}: the threads, tools and files whose id falls in it\n"));
        }
        if let Some(r) = &self.resumed {
            out.push_str(&format!(
                "  resumed  run {} had stopped after {} batches ({} records, last thread {}); finishing its work\n",
                r.run_id,
                r.batches,
                r.records,
                r.last_thread.as_deref().unwrap_or("none")
            ));
        }
        out.push_str(&format!("  threads  {}\n", self.threads.summary()));
        if let Some(f) = &self.files {
            out.push_str(&format!("  files    {} referenced, {} extracted, {} skipped\n", f.referenced, f.extracted, f.skipped));
        }
        out.push_str(&format!("  requests {}\n", self.requests.summary()));
        if let Some(c) = self.requests.concurrency_summary() {
            out.push_str(&format!("  in flight {c}\n"));
        }
        if let Some(schema) = &self.engramia_schema {
            out.push_str(&format!("  schema   {}\n", schema.summary()));
        }
        if let Some(ix) = &self.index {
            out.push_str(&format!("  index    {}: {}\n", ix.action, ix.reason));
        }
        for note in &self.target_notes {
            out.push_str(&format!("  target   {note}\n"));
        }
        if let Some(a) = &self.agents {
            out.push_str(&format!("  agents   {}\n", a.summary(self.dry_run)));
        }
        if let Some(path) = &self.rejects_file {
            out.push_str(&format!(
                "  rejects  {} item{} in {path}; engram migrate --retry-failed {path} retries them\n",
                self.rejects.len(),
                if self.rejects.len() == 1 { "" } else { "s" }
            ));
        }
        out.push('\n');
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
        let questions = self.question_lines();
        if !questions.is_empty() {
            out.push_str("\n  questions with no stored answer, by scope:\n");
            for line in &questions {
                out.push_str(&format!("    {line}\n"));
            }
        }
        let superseded = self.superseded_lines();
        if let Some((head, rest)) = superseded.split_first() {
            out.push_str(&format!("\n  {head}:\n"));
            for line in rest {
                out.push_str(&format!("    {line}\n"));
            }
        }
        let verb = match (self.dry_run, self.embedding.embedded_by.is_some()) {
            (_, true) => "embedding",
            (true, false) => "would embed",
            (false, false) => "embedded",
        };
        out.push_str(&format!("\n  {verb} {}\n", self.embedding.summary()));
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

/// Keeps user text from breaking a Markdown table or injecting markup.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '`' | '*' | '_' | '<' | '>' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}
