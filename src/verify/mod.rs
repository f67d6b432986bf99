//! `engram verify`: proves a migration by asking the target what an agent would ask.
//!
//! Per scope engram's ledger lists (what engram migrate wrote there):
//! - presence: each key has its pattern, its embedding of the right size, its skills, and the
//!   store records the mapping's embedding model;
//! - validity: each pattern passes Engramia's own `Pattern` rules (`pattern::invalid_reason`);
//! - recall: for a seeded sample, the query an agent would send (`pattern::query_for`) is
//!   embedded as the migration embedded tasks and searched the way Engramia searches; the
//!   record must come back in the top k;
//! - isolation: no record of one scope is stored in, or served by, another.
//!
//! Read-only: nothing in the target is written, locked or reindexed.

pub mod embed;
mod json_dir;
pub mod pattern;
mod postgres;
pub mod report;

pub use crate::cli::VerifyArgs;
use crate::config::Config;
use crate::embed::{EmbedTotals, embedding_input, expected_dimensions};
use crate::record::{RecordKind, Scope};
use crate::report::EmbeddingReport;
use crate::app::{Env, RunError};
use crate::sink::Target;
use embed::QueryEmbedder;
use report::{Fault, Miss, Recall, ScopeReport, VerifyReport};
use serde_json::Value;
use std::collections::{HashMap, HashSet};


/// One record of the ledger as verify found it in its scope.
pub(crate) struct Found {
    pub key: String,
    pub kind: RecordKind,
    /// The pattern, when it is there and valid by Engramia's rules.
    pub pattern: Option<Value>,
    /// Pattern valid and embedding of the right size: vector search can return it.
    pub searchable: bool,
    /// Pattern or skills differ from what engram wrote (Engramia updates scores and counts).
    pub changed: bool,
}

/// What a store holds for one scope's ledger.
pub(crate) struct Inspected {
    pub found: Vec<Found>,
    pub faults: Vec<Fault>,
    /// Every pattern of the scope that Engramia can load (key -> task): recall skips the rest.
    pub tasks: HashMap<String, String>,
}

/// One query's results, best first.
pub(crate) struct Ranked {
    pub keys: Vec<String>,
}

enum Store {
    Json(json_dir::JsonStore),
    Pg(Box<postgres::PgStore>),
}

impl Store {
    async fn open(target: Target) -> Result<Store, RunError> {
        Ok(match target {
            Target::JsonDir(dir) => Store::Json(json_dir::JsonStore::open(&dir).map_err(RunError::Config)?),
            Target::Postgres(url) => Store::Pg(Box::new(postgres::PgStore::open(&url).await?)),
            Target::Rest(url) => {
                return Err(RunError::Config(format!(
                    "engram verify reads a JSON directory or a PostgreSQL database; {url} is an Engramia server: check it through its own /v1/recall and /v1/skills/search (the migrate report lists what was stored)"
                )));
            }
        })
    }

    fn describe(&self) -> String {
        match self {
            Store::Json(s) => s.describe(),
            Store::Pg(s) => s.describe(),
        }
    }

    async fn model(&mut self) -> Result<Option<String>, RunError> {
        match self {
            Store::Json(s) => s.model().map_err(RunError::Failed),
            Store::Pg(s) => s.model().await,
        }
    }

    async fn scopes(&mut self) -> Result<Vec<Scope>, RunError> {
        match self {
            Store::Json(s) => Ok(s.scopes()),
            Store::Pg(s) => s.scopes().await,
        }
    }

    async fn store_faults(&mut self) -> Result<Vec<Fault>, RunError> {
        match self {
            Store::Json(s) => s.isolation().map_err(RunError::Failed),
            Store::Pg(s) => s.store_faults().await,
        }
    }

    async fn inspect(&mut self, scope: &Scope, dims: Option<usize>) -> Result<Inspected, RunError> {
        match self {
            Store::Json(s) => s.inspect(scope, dims).map_err(RunError::Failed),
            Store::Pg(s) => s.inspect(scope, dims).await,
        }
    }

    /// `Ok(Err(why))`: Engramia's vector search fails in this scope.
    async fn search(&mut self, scope: &Scope, queries: &[Vec<f32>], k: usize, loadable: &HashSet<&str>) -> Result<Result<Vec<Ranked>, String>, RunError> {
        match self {
            Store::Json(s) => s.search(scope, queries, k, loadable).map_err(RunError::Failed),
            Store::Pg(s) => s.search(scope, queries, k, loadable).await,
        }
    }
}

pub fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::MessagePair => "message_pair",
        RecordKind::FileChunk => "file_chunk",
        RecordKind::Tool => "tool",
    }
}

/// Runs `engram verify` and returns its report (also written to `--report` when given).
pub async fn verify(args: &VerifyArgs, env: &Env) -> Result<VerifyReport, RunError> {
    if args.k == 0 {
        return Err(RunError::Config("--k must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&args.min_recall) {
        return Err(RunError::Config(format!("--min-recall {} is not a fraction between 0 and 1", args.min_recall)));
    }
    let config = Config::load(&args.config, env.base_url.clone()).map_err(|e| RunError::Config(e.0))?;
    let target = Target::parse(&config.target_url(args.target.as_deref()));
    let model = config.mapping.embedding.model.clone();
    let dims = expected_dimensions(&model, config.mapping.embedding.dimensions);
    // Everything that can refuse to start is checked before the first query.
    let (embedder, embed_note) = match args.dry_run {
        true => (None, None),
        false => {
            let (e, note) = QueryEmbedder::new(&config, env, args.replay.as_deref())?;
            (Some(e), note)
        }
    };
    let mut store = Store::open(target).await?;
    let mut faults = Vec::new();
    let mut notes: Vec<String> = embed_note.into_iter().collect();
    match store.model().await? {
        None if matches!(store, Store::Pg(_)) => notes.push(
            "the database records no embedding model (memory_data metadata/embedding_config); Engramia records its model there on its first start and warns when it later differs".into(),
        ),
        None => faults.push(Fault::store(
            "missing_model",
            "the store records no embedding model (metadata/embedding_config): Engramia cannot tell that its vectors were made with [embedding] model".to_string(),
        )),
        Some(m) if m != model => faults.push(Fault::store(
            "wrong_model",
            format!("the store records embedding model {m:?}, the mapping says {model:?}: vectors of two models cannot be compared; verify with the mapping the migration used, or run `engramia reindex`"),
        )),
        Some(_) => {}
    }
    faults.extend(store.store_faults().await?);
    let sample = (!args.all).then_some(args.sample);
    let mut totals = EmbedTotals::default();
    let mut scopes = Vec::new();
    for scope in store.scopes().await? {
        let inspected = store.inspect(&scope, dims).await?;
        let mut s = ScopeReport {
            tenant: scope.tenant.clone(),
            project: scope.project.clone(),
            migrated: inspected.found.len(),
            searchable: inspected.found.iter().filter(|f| f.searchable).count(),
            changed_since_migration: inspected.found.iter().filter(|f| f.changed).count(),
            ..ScopeReport::default()
        };
        faults.extend(inspected.faults);
        let mut sampler = pattern::Sampler::new(sample, args.seed);
        for f in inspected.found {
            sampler.offer(&f.key.clone(), f);
        }
        let chosen = sampler.into_sorted();
        // (found, query) for the records that have a pattern to take the query from.
        let queries: Vec<(&Found, String)> = chosen
            .iter()
            .filter_map(|(_, f)| f.pattern.as_ref().map(|p| (f, embedding_input(&pattern::query_for(f.kind, p, &f.key, args.seed)))))
            .collect();
        let texts: Vec<String> = queries.iter().map(|(_, q)| q.clone()).collect();
        let Some(embedder) = &embedder else {
            embed::estimate(&texts, config.mapping.embedding.batch_inputs, &mut totals);
            scopes.push(s);
            continue;
        };
        let vectors = embedder.embed(&texts, &mut totals).await?;
        let (asked, vectors): (Vec<&(&Found, String)>, Vec<Vec<f32>>) =
            queries.iter().zip(vectors).filter_map(|(q, v)| v.map(|v| (q, v))).unzip();
        s.not_checked = queries.len() - asked.len();
        let loadable: HashSet<&str> = inspected.tasks.keys().map(String::as_str).collect();
        let results = store.search(&scope, &vectors, args.k, &loadable).await?;
        let mut recall = Recall::default();
        for (_, f) in &chosen {
            if f.pattern.is_some() {
                continue;
            }
            recall.add(None, args.k);
            s.by_kind.entry(kind_name(f.kind).to_string()).or_default().add(None, args.k);
            s.misses.push(Miss {
                key: f.key.clone(),
                kind: kind_name(f.kind).into(),
                query: None,
                rank: None,
                first_key: None,
                first_task: None,
                why: "no valid pattern to take the query from (see the faults)".into(),
            });
        }
        for (i, (f, query)) in asked.iter().enumerate() {
            let (rank, first, why) = match &results {
                Err(why) => (None, None, why.clone()),
                Ok(ranked) => {
                    let keys = &ranked[i].keys;
                    let rank = keys.iter().position(|k| *k == f.key).map(|p| p + 1);
                    (rank, keys.first().filter(|k| **k != f.key).cloned(), format!("not among the first {} results", args.k))
                }
            };
            recall.add(rank, args.k);
            s.by_kind.entry(kind_name(f.kind).to_string()).or_default().add(rank, args.k);
            if rank.is_none() {
                let first_task = first.as_ref().and_then(|k| inspected.tasks.get(k)).map(|t| excerpt(t, 80));
                s.misses.push(Miss {
                    key: f.key.clone(),
                    kind: kind_name(f.kind).into(),
                    query: Some(query.clone()),
                    rank,
                    first_key: first,
                    first_task,
                    why,
                });
            }
        }
        if recall.queries > 0 && recall.recall_at_k < args.min_recall {
            faults.push(Fault {
                kind: "recall_below_threshold".into(),
                scope: Some(scope.to_string()),
                key: None,
                message: format!(
                    "scope {scope}: recall@{} is {:.3} ({} of {}), below --min-recall {}",
                    args.k, recall.recall_at_k, recall.hits_at_k, recall.queries, args.min_recall
                ),
            });
        }
        if s.not_checked > 0 {
            notes.push(format!("scope {scope}: {} queries not checked (the recording has no embedding for them)", s.not_checked));
        }
        // None when nothing could be checked (every query missing from a recording).
        s.recall = (recall.queries > 0).then_some(recall);
        scopes.push(s);
    }
    if let Store::Pg(pg) = &mut store {
        notes.append(&mut pg.notes);
    }
    if matches!(store, Store::Json(_)) && !args.dry_run {
        notes.push(
            "search as Engramia's JSON storage searches (cosine over the scope's _embeddings.json, patterns that load only); recall()'s eval weighting and near-duplicate grouping are not applied".into(),
        );
    }
    let replayed = matches!(embedder, Some(QueryEmbedder::Recording(_)));
    let mut embedding = EmbeddingReport::new(&model, totals.inputs, totals.tokens, if replayed { 0 } else { totals.requests });
    if replayed {
        embedding.estimated_cost_usd = Some(0.0);
    }
    let passed = faults.is_empty();
    let report = VerifyReport {
        engram_version: crate::version::long().to_string(),
        target: store.describe(),
        dry_run: args.dry_run,
        seed: args.seed,
        k: args.k,
        min_recall: args.min_recall,
        sample,
        scopes,
        faults,
        notes,
        embedding,
        passed,
    };
    if let Some(path) = &args.report {
        crate::app::write_report(path, args.report_format, &report, |r| r.render_markdown())?;
    }
    Ok(report)
}

fn excerpt(s: &str, chars: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}
