//! `engram status`: what the runs into a target are doing, from the target itself. For a
//! PostgreSQL database, engram's `engram_runs` rows and PostgreSQL's advisory locks (a run is
//! running while its session holds its lock): every run with its shard, host and pid, state
//! and progress, and per sharded split which parts are done, running, stopped or not started.
//! For a JSON directory, who holds its lock file and how the last run ended. Read-only.

use crate::app::RunError;
use crate::cli::StatusArgs;
use crate::config::Config;
use crate::sink::Target;
use crate::sink::postgres::coord::RunRow;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub target: String,
    /// PostgreSQL: every run, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<RunRow>>,
    /// PostgreSQL: per split into N shards, the state of each part (`shards["3"]["2/3"]`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub shards: BTreeMap<u32, BTreeMap<String, String>>,
    /// A JSON directory: its lock and last run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<crate::sink::json_dir::DirStatus>,
}

pub async fn status(args: &StatusArgs, env: &crate::app::Env) -> Result<StatusReport, RunError> {
    let config = Config::load(&args.config, env.base_url.clone()).map_err(|e| RunError::Config(e.0))?;
    match Target::parse(&config.target_url(args.target.as_deref())) {
        Target::Postgres(url) => {
            let mut sink = crate::sink::postgres::PgSink::open(&url, String::new()).await?;
            let runs = sink.runs().await?;
            let shards = shard_states(&runs);
            Ok(StatusReport { target: crate::sink::Sink::describe(&sink), runs: Some(runs), shards, directory: None })
        }
        Target::JsonDir(dir) => Ok(StatusReport {
            target: format!("JSON directory {}", dir.display()),
            runs: None,
            shards: BTreeMap::new(),
            directory: Some(crate::sink::json_dir::dir_status(&dir)),
        }),
        Target::Rest(url) => Err(RunError::Config(format!(
            "engram status reads a PostgreSQL database or a JSON directory; {} is an Engramia server, whose runs engram does not record (see each run's --report)",
            crate::redact::redact_url(&url)
        ))),
    }
}

/// For each N some run was sharded by: the best state of each part 1..=N over its runs
/// (done beats running beats failed beats stopped; a part no run took is "not started").
pub fn shard_states(runs: &[RunRow]) -> BTreeMap<u32, BTreeMap<String, String>> {
    let rank = |s: &str| match s {
        "done" | "completed" => 4,
        "running" => 3,
        "failed" => 2,
        "stopped" => 1,
        _ => 0,
    };
    let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for run in runs {
        let Some(shard) = run.shard.as_deref().and_then(|s| crate::shard::Shard::parse(s).ok()) else { continue };
        let parts = out.entry(shard.count).or_insert_with(|| {
            (1..=shard.count).map(|i| (format!("{i}/{}", shard.count), "not started".to_string())).collect()
        });
        let state = run.state();
        let slot = parts.entry(shard.to_string()).or_default();
        if rank(state) > rank(slot) {
            *slot = if state == "completed" { "done".to_string() } else { state.to_string() };
        }
    }
    out
}

impl StatusReport {
    pub fn render_text(&self) -> String {
        let mut out = format!("engram status: {}\n", self.target);
        if let Some(runs) = &self.runs {
            if runs.is_empty() {
                out.push_str("  no engram run has written here yet\n");
            } else {
                out.push_str(&format!(
                    "  {:<32} {:<7} {:<9} {:<24} {:<20} {:<20} {:>7} {:>8} {:>7}\n",
                    "run", "shard", "state", "host/pid", "started", "last progress", "batches", "records", "threads"
                ));
                for r in runs {
                    let who = match (&r.host, r.pid) {
                        (Some(h), Some(p)) => format!("{h}/{p}"),
                        _ => "-".to_string(),
                    };
                    out.push_str(&format!(
                        "  {:<32} {:<7} {:<9} {:<24} {:<20} {:<20} {:>7} {:>8} {:>7}\n",
                        r.run_id,
                        r.shard.as_deref().unwrap_or("-"),
                        r.state(),
                        who,
                        r.started_at,
                        r.heartbeat_at.as_deref().unwrap_or("-"),
                        r.batches,
                        r.records,
                        r.threads_listed.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                    ));
                    if let (Some(e), "failed") = (&r.error, r.state()) {
                        out.push_str(&format!("      failed: {}\n", e.lines().next().unwrap_or("")));
                    }
                }
            }
            for (n, parts) in &self.shards {
                let left: Vec<&str> = parts.iter().filter(|(_, s)| s.as_str() != "done").map(|(p, _)| p.as_str()).collect();
                let list: Vec<String> = parts.iter().map(|(p, s)| format!("{p} {s}")).collect();
                out.push_str(&format!("  shards of {n}: {}\n", list.join(", ")));
                out.push_str(&match left.len() {
                    0 => format!("  all {n} shards are done\n"),
                    _ => format!(
                        "  left: {} (run `engram migrate` with {})\n",
                        left.join(", "),
                        left.iter().map(|p| format!("--shard {p}")).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        if let Some(d) = &self.directory {
            match &d.lock {
                Some((h, true)) => out.push_str(&format!("  locked by engram pid {} on host {}, since {} (running)\n", h.pid, h.host, h.started_at)),
                Some((h, false)) => out.push_str(&format!(
                    "  a stale lock of pid {} on host {} (since {}): that run is gone; the next run takes it over\n",
                    h.pid, h.host, h.started_at
                )),
                None => out.push_str("  not locked: no run is writing it\n"),
            }
            match &d.last_run {
                Some((status, p)) => out.push_str(&format!(
                    "  last run {} {status}: {} batches, {} records{}\n",
                    p.run_id,
                    p.batches,
                    p.records,
                    p.last_thread.as_deref().map(|t| format!(", last thread {t}")).unwrap_or_default()
                )),
                None => out.push_str("  no engram run has written here yet\n"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(shard: &str, live: bool, finished: bool) -> RunRow {
        RunRow::example(Some(shard), live, finished, false, false)
    }

    #[test]
    fn each_part_takes_its_best_run_and_untaken_parts_are_not_started() {
        let runs = [run("1/3", false, false), run("1/3", false, true), run("2/3", true, false)];
        let s = shard_states(&runs);
        let parts = &s[&3];
        assert_eq!(parts["1/3"], "done");
        assert_eq!(parts["2/3"], "running");
        assert_eq!(parts["3/3"], "not started");
        let text = StatusReport { target: "t".into(), runs: Some(runs.to_vec()), shards: s, directory: None }.render_text();
        assert!(text.contains("left: 2/3, 3/3"), "{text}");
    }
}
