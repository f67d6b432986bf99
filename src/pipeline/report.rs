//! The report, assembled once at the end of a run from its counters, its stages and the sink.

use super::Run;
use crate::files::FileCounts;
use crate::http::transport::RequestStats;
use crate::report::{EmbeddingReport, Report, RequestReport, ThreadCounts, scope_reports};
use crate::sink::{PreviousRun, Sink};

impl Run<'_> {
    pub(super) fn report<S: Sink>(
        mut self,
        sink: &S,
        resumed: Option<PreviousRun>,
        threads: ThreadCounts,
        files: Option<FileCounts>,
        interrupted: bool,
    ) -> Report {
        let m = &self.s.config.mapping;
        let mut requests = request_report(
            &self.s.transport.stats,
            self.s.args.dry_run.then_some(self.c.totals.requests as u64),
            m.source.requests_per_minute.map(u64::from),
        );
        requests.concurrency = self.s.transport.concurrency();
        let source = self.source_label();
        let c = &mut self.c;
        Report {
            engram_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: self.s.run_id.clone(),
            resumed,
            dry_run: self.s.args.dry_run,
            source,
            shard: self.s.config.shard.map(|s| s.to_string()),
            target: sink.describe(),
            threads,
            scopes: scope_reports(&c.tally),
            warnings: std::mem::take(&mut c.warnings),
            embedding: EmbeddingReport::new(&m.embedding.model, c.totals.inputs, c.totals.tokens, c.totals.requests)
                .embedded_by(sink.embeds_itself()),
            records: c.tally.details.take(),
            samples: c.tally.samples.iter().map(|(s, t)| (s.to_string(), t.clone())).collect(),
            interrupted,
            rejects_file: None,
            rejects: std::mem::take(&mut c.rejects),
            files,
            requests,
            index: c.index.take(),
            engramia_schema: sink.engramia_schema(),
            target_notes: Vec::new(),
            elapsed_secs: 0.0, // set by `run`, after the sink has settled
            superseded: std::mem::take(&mut c.tally.superseded),
            agents: None, // set by `run_body`
        }
    }

    /// What the report calls the source.
    pub(super) fn source_label(&self) -> String {
        if let Some(label) = self.s.source.describe() {
            return label;
        }
        let api = match (&self.s.args.replay, self.s.transport.is_replay()) {
            (Some(dir), true) => format!("replay of {}", dir.display()),
            _ => self.s.config.base_url.clone(),
        };
        match self.s.config.source_kind {
            crate::config::SourceKind::Conversations => format!("conversations at {api}"),
            _ => api,
        }
    }
}

/// The requests made; for a dry run (`planned_embeddings` is the embeddings requests the plan
/// needs) also those the real run will make, and how long they take at the rate limit — the
/// lower of the server's declared limit and `[source] requests_per_minute`.
fn request_report(stats: &RequestStats, planned_embeddings: Option<u64>, configured_per_minute: Option<u64>) -> RequestReport {
    let api = RequestStats::get(&stats.api);
    let sent_embeddings = RequestStats::get(&stats.embeddings);
    let embeddings = planned_embeddings.unwrap_or(sent_embeddings);
    let answered = api + sent_embeddings;
    let declared = Some(RequestStats::get(&stats.declared_limit)).filter(|n| *n > 0);
    let rate = match (declared, configured_per_minute) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let estimated = planned_embeddings.map(|_| api + embeddings);
    RequestReport {
        api,
        run_steps: RequestStats::get(&stats.run_steps),
        embeddings,
        retries: RequestStats::get(&stats.attempts).saturating_sub(answered),
        rate_limit_per_minute: rate,
        estimated_requests: estimated,
        estimated_minutes: estimated.zip(rate).map(|(n, r)| n as f64 / r as f64),
        concurrency: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn stats(api: u64, embeddings: u64, attempts: u64, declared: u64) -> RequestStats {
        let s = RequestStats::default();
        s.api.store(api, Ordering::Relaxed);
        s.embeddings.store(embeddings, Ordering::Relaxed);
        s.attempts.store(attempts, Ordering::Relaxed);
        s.declared_limit.store(declared, Ordering::Relaxed);
        s
    }

    #[test]
    fn a_real_run_reports_what_it_sent_and_its_retries() {
        let r = request_report(&stats(40, 2, 45, 0), None, None);
        assert_eq!((r.api, r.embeddings, r.retries), (40, 2, 3));
        assert_eq!((r.rate_limit_per_minute, r.estimated_requests, r.estimated_minutes), (None, None, None));
    }

    #[test]
    fn a_dry_run_estimates_the_real_runs_requests_at_the_lower_limit() {
        // A dry run sends no embeddings request: the plan's count stands in for them.
        let r = request_report(&stats(40, 0, 40, 3000), Some(10), Some(600));
        assert_eq!(r.embeddings, 10);
        assert_eq!(r.rate_limit_per_minute, Some(600));
        assert_eq!(r.estimated_requests, Some(50));
        assert_eq!(r.estimated_minutes, Some(50.0 / 600.0));
        let declared_only = request_report(&stats(40, 0, 40, 3000), Some(10), None);
        assert_eq!(declared_only.rate_limit_per_minute, Some(3000));
    }
}
