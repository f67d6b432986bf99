//! Engramia's PostgreSQL + pgvector database (`ENGRAMIA_STORAGE=postgres`).
//!
//! Patterns go into Engramia's own tables: `memory_data` (pattern JSON, `source = 'import'`,
//! `run_id` = the record's origin, `classification`) and `memory_embeddings`, per-scope skills
//! into the `skills/_registry` row, missing `tenants` / `projects` rows are created, and one
//! `audit_log` row per scope records each run. engram's own bookkeeping lives in `engram_*`
//! tables. See docs/postgres-target.md.
//!
//! Invariants: opening, `preflight`, `check_scopes` and `existing` never write (a dry run
//! leaves the database byte for byte as it was, even an empty one); every batch is one
//! transaction (pattern, embedding, registry and ledger rows commit together or not at all);
//! Engramia's tables are never altered; Engramia's whole schema, at the alembic revision
//! `[target] engramia_schema` names, is created only in a database that has none of it.

pub(crate) mod catalog;
pub mod coord;
pub mod index;
mod migrate;
mod preflight;
pub mod schema;
mod write;

use super::{Embedded, Existing, Preflight, PreviousRun, RunInfo, RunProgress, Sink, SinkError, StoredPattern};
use crate::record::{Scope, Warning, content_hash};
use catalog::{CREATED_DIMENSIONS, Catalog, KeyLayout, Shape};
use preflight::dims_message;
use indexmap::IndexMap;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;
use write::ScopeCounts;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What one committed batch changed, for the in-memory state.
#[derive(Default)]
struct Applied {
    /// Keys inserted (the rest of the batch was updated).
    inserted: HashSet<String>,
    /// The scope holding the skills registry (bare-key layout).
    owner: Option<Scope>,
    /// Scopes whose skills could not be registered, with how many patterns had skills.
    blocked: Vec<(Scope, usize)>,
}

pub struct PgSink {
    conn: PgConnection,
    /// `host:port/db`, never the password.
    place: String,
    run_id: String,
    model: String,
    catalog: Option<Catalog>,
    /// Scopes whose tenants/projects rows this run has checked or created.
    ensured: HashSet<Scope>,
    written: IndexMap<Scope, ScopeCounts>,
    /// Scopes already warned about the one-registry limit.
    warned: HashSet<Scope>,
    /// Warnings for the report, handed over by `take_warnings`.
    warnings: Vec<Warning>,
    /// Near-duplicates to remove, applied in the transaction of the next write.
    removals: IndexMap<Scope, Vec<String>>,
    index_strategy: crate::sink::postgres::index::IndexStrategy,
    /// Preflight passed: `settle` may rebuild what an earlier run left dropped.
    preflight_ok: bool,
    /// `[target] engramia_schema`: what an empty database gets.
    schema_choice: schema::Choice,
    /// This run created Engramia's schema.
    created_schema: bool,
    /// Who this run is (shard, host, pid, threads), for `engram_runs` (see `coord`).
    who: coord::Identity,
    /// This run's `engram_runs` row exists, with its identity, and it holds its liveness lock.
    registered: bool,
    /// This run marked itself as loading into the unindexed table.
    loading: bool,
}

/// A run id for `engram_runs` and `audit_log`: time and process id (not part of any key, so
/// it need not be deterministic).
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("engram-{}-{:03}-{}", now.as_secs(), now.subsec_millis(), std::process::id())
}

impl PgSink {
    /// Connects (read-only until the first write). An unreachable server is `SinkError::Io`
    /// naming host, port and database, never the password.
    pub async fn open(url: &str, run_id: String) -> Result<PgSink, SinkError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| SinkError::Config(format!("target {}: not a PostgreSQL URL ({e})", crate::redact::redact_url(url))))?
            .application_name("engram")
            // Index builds and bulk upserts are slow by nature; sqlx would log each as a
            // warning on stderr. ENGRAM_LOG=debug still shows them.
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let place = format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or(opts.get_username())
        );
        let unreachable = |why: String| {
            SinkError::Io(format!(
                "cannot connect to PostgreSQL at {place} as {}: {why}\n  Check that the server is running and that [target] url / --target names the right host, port and database. Nothing was written.",
                opts.get_username()
            ))
        };
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
            Err(_) => return Err(unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(conn)) => conn,
        };
        Ok(PgSink {
            conn,
            place,
            run_id,
            model: String::new(),
            catalog: None,
            ensured: HashSet::new(),
            written: IndexMap::new(),
            warned: HashSet::new(),
            warnings: Vec::new(),
            removals: IndexMap::new(),
            index_strategy: crate::sink::postgres::index::IndexStrategy::Auto,
            preflight_ok: false,
            schema_choice: schema::Choice::Auto,
            created_schema: false,
            who: coord::Identity::of_this_process(None, None),
            registered: false,
            loading: false,
        })
    }

    /// `[target] index_strategy` (default auto).
    pub fn with_index_strategy(mut self, strategy: crate::sink::postgres::index::IndexStrategy) -> Self {
        self.index_strategy = strategy;
        self
    }

    /// The part of the account this run migrates and how many threads it was given.
    pub fn with_shard(mut self, shard: Option<String>, threads_listed: usize) -> Self {
        self.who = coord::Identity::of_this_process(shard, Some(threads_listed as u64));
        self
    }

    /// Every run engram recorded in this database (`engram status`). Read-only.
    pub async fn runs(&mut self) -> Result<Vec<coord::RunRow>, SinkError> {
        let cat = self.catalog().await?.clone();
        if !cat.has("engram_runs") {
            return Ok(Vec::new());
        }
        if !cat.tracks_live_runs() {
            return Err(SinkError::Config(format!(
                "{}: engram's run records predate concurrent runs (its migration 0004 is not applied), so engram cannot tell which runs are alive; the next `engram migrate` into it applies it",
                self.place
            )));
        }
        coord::runs(&mut self.conn).await.map_err(|e| self.io("reading engram_runs", e))
    }

    /// `[target] engramia_schema` (default auto).
    pub fn with_engramia_schema(mut self, choice: schema::Choice) -> Self {
        self.schema_choice = choice;
        self
    }

    /// Why the HNSW index cannot be dropped for a load, if it cannot.
    async fn droppable(&mut self) -> Result<Result<(), String>, SinkError> {
        // engram's own tables (the note of the drop) are there or created by the first write:
        // preflight refuses a role that could not create them.
        let cat = self.catalog().await?.clone();
        if !cat.has("memory_embeddings") {
            return Ok(Ok(()));
        }
        let owns = index::owns_table(&mut self.conn).await.map_err(|e| self.io("reading the owner of memory_embeddings", e))?;
        Ok(if owns { Ok(()) } else { Err(format!("the role {} does not own memory_embeddings", cat.user)) })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn io(&self, what: &str, e: sqlx::Error) -> SinkError {
        SinkError::Io(format!("{what} in PostgreSQL at {}: {e}", self.place))
    }

    async fn catalog(&mut self) -> Result<&Catalog, SinkError> {
        if self.catalog.is_none() {
            let cat = catalog::inspect(&mut self.conn).await.map_err(|e| self.io("reading the catalog", e))?;
            self.catalog = Some(cat);
        }
        Ok(self.catalog.as_ref().expect("set above"))
    }

    /// Everything that can be wrong before the first write, as one message per problem.
    async fn verdict(&mut self, check: &Preflight) -> Result<preflight::Verdict, SinkError> {
        let place = self.place.clone();
        let cat = self.catalog().await?.clone();
        Ok(match cat.shape(&place).map_err(SinkError::Config)? {
            Shape::Empty => preflight::empty(&cat, check, &place, self.schema_choice.shipped()),
            Shape::Present => {
                let columns = catalog::missing_columns(&mut self.conn).await.map_err(|e| self.io("reading the catalog", e))?;
                let lacking =
                    catalog::missing_privileges(&mut self.conn, &cat).await.map_err(|e| self.io("reading privileges", e))?;
                let mut v = preflight::present(&cat, check, &place, &columns, &lacking);
                if let (schema::Choice::Revision(want), Some(head)) = (&self.schema_choice, &cat.alembic_head)
                    && want.revision != head
                {
                    v.notes.push(format!(
                        "[target] engramia_schema = \"{}\" applies to an empty database only; {place} is at revision {head} and is used as it is",
                        want.revision
                    ));
                }
                v
            }
        })
    }

    /// Creates Engramia's schema (an empty database) and engram's tables if this database
    /// still needs them (first write only).
    async fn ensure_schema(&mut self) -> Result<(), SinkError> {
        if !self.catalog().await?.needs_migration() {
            return Ok(());
        }
        // Another run into this database may be migrating it right now: one at a time, and
        // each looks again once it holds the lock.
        self.locked(coord::SCHEMA, "the schema lock", async |s| s.ensure_schema_locked().await).await
    }

    /// `f` under engram's session advisory lock `which` (see `coord`), released whatever `f`
    /// returns; `f`'s error comes first.
    async fn locked<T>(&mut self, which: i32, name: &str, f: impl AsyncFnOnce(&mut Self) -> Result<T, SinkError>) -> Result<T, SinkError> {
        coord::lock(&mut self.conn, which).await.map_err(|e| self.io(&format!("waiting for {name}"), e))?;
        let result = f(self).await;
        let unlocked = coord::unlock(&mut self.conn, which).await.map_err(|e| self.io(&format!("releasing {name}"), e));
        let value = result?;
        unlocked?;
        Ok(value)
    }

    async fn ensure_schema_locked(&mut self) -> Result<(), SinkError> {
        self.catalog = None;
        let cat = self.catalog().await?.clone();
        if !cat.needs_migration() {
            return Ok(());
        }
        let place = self.place.clone();
        cat.shape(&place).map_err(SinkError::Config)?;
        if cat.creates_engramia_schema() {
            let shipped = self.schema_choice.shipped();
            migrate::create_engramia_schema(&mut self.conn, shipped).await.map_err(|e| {
                SinkError::Io(format!(
                    "creating Engramia's schema (alembic revision {}) in PostgreSQL at {place}: {e}. It was rolled back; nothing was written.",
                    shipped.revision
                ))
            })?;
            self.created_schema = true;
        }
        migrate::migrator()
            .run(&mut self.conn)
            .await
            .map_err(|e| SinkError::Io(format!("creating engram's tables in PostgreSQL at {place}: {e}. No pattern was written.")))?;
        self.catalog = None;
        self.catalog().await?;
        Ok(())
    }

    /// Records this run in `engram_runs` with who it is and takes its liveness lock (once,
    /// before its first write).
    async fn register(&mut self) -> Result<(), SinkError> {
        if self.registered {
            return Ok(());
        }
        coord::register(&mut self.conn, &self.run_id, &self.who).await.map_err(|e| self.io("recording the run in engram_runs", e))?;
        self.registered = true;
        Ok(())
    }

    /// Other live runs loading into the unindexed table, as "run X (shard 1/3)" (none before
    /// engram's migration 0004, whose rows say who is live).
    async fn other_loaders(&mut self) -> Result<Vec<String>, SinkError> {
        if !self.catalog().await?.tracks_live_runs() {
            return Ok(Vec::new());
        }
        let rows = coord::live_loaders(&mut self.conn, &self.run_id).await.map_err(|e| self.io("reading engram_runs", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, shard)| match shard {
                Some(s) => format!("{id} (shard {s})"),
                None => id,
            })
            .collect())
    }

    /// What the load would do with the HNSW index, from what the table holds now; with the
    /// indexes present and those an earlier run left dropped.
    async fn index_choice(&mut self, adding: u64) -> Result<(crate::sink::LoadPlan, Vec<index::HnswIndex>, Vec<index::HnswIndex>), SinkError> {
        let cat = self.catalog().await?.clone();
        // None: the table does not exist yet (an empty database gets the index with Engramia's schema).
        let (present, held, left_dropped) = if cat.has("memory_embeddings") {
            let present = index::hnsw_indexes(&mut self.conn).await.map_err(|e| self.io("reading memory_embeddings' indexes", e))?;
            let left = match cat.has("engram_dropped_indexes") {
                true => index::dropped(&mut self.conn).await.map_err(|e| self.io("reading engram_dropped_indexes", e))?,
                false => Vec::new(),
            };
            let held = index::row_count(&mut self.conn).await.map_err(|e| self.io("counting memory_embeddings", e))?;
            (Some(present), held, left)
        } else {
            (None, 0, Vec::new())
        };
        let mut names: Vec<String> = match &present {
            Some(p) => p.iter().chain(&left_dropped).map(|i| i.name.clone()).collect(),
            None => vec!["idx_memory_embeddings_hnsw".to_string()],
        };
        names.sort();
        names.dedup();
        let droppable = self.droppable().await?;
        let mut choice = index::choose(self.index_strategy, held, adding, droppable, &names);
        if !left_dropped.is_empty() {
            let which: Vec<&str> = left_dropped.iter().map(|i| i.name.as_str()).collect();
            let loaders = self.other_loaders().await?;
            choice.reason = if loaders.is_empty() {
                format!(
                    "{} (an earlier run dropped {} and was stopped before rebuilding it; {})",
                    choice.reason,
                    which.join(", "),
                    if choice.action == "rebuild" { "it stays dropped for this load" } else { "this run rebuilds it" }
                )
            } else {
                choice.action = "rebuild";
                format!(
                    "{} is dropped for the load of run {}, still going: this run loads into the unindexed table too, and the last of them to finish rebuilds it",
                    which.join(", "),
                    loaders.join(", ")
                )
            };
        }
        Ok((choice, present.unwrap_or_default(), left_dropped))
    }

    /// Under the index lock: drops the index for this load, joins another live run's drop, or
    /// rebuilds what a stopped run left dropped.
    async fn prepare_index(&mut self, adding: u64) -> Result<crate::sink::LoadPlan, SinkError> {
        let (choice, present, left_dropped) = self.index_choice(adding).await?;
        if choice.action == "rebuild" {
            if left_dropped.is_empty() {
                index::drop_for_load(&mut self.conn, &self.run_id, &present)
                    .await
                    .map_err(|e| self.io("dropping the HNSW index for the load", e))?;
            }
            coord::set_loading(&mut self.conn, &self.run_id, true).await.map_err(|e| self.io("recording the load in engram_runs", e))?;
            self.loading = true;
        } else if !left_dropped.is_empty() {
            self.restore_index().await?;
        }
        Ok(choice)
    }

    /// Under the index lock: this run's load is over; the last live loader rebuilds.
    async fn settle_locked(&mut self) -> Result<Vec<String>, SinkError> {
        if self.loading {
            coord::set_loading(&mut self.conn, &self.run_id, false).await.map_err(|e| self.io("recording the load's end in engram_runs", e))?;
            self.loading = false;
        }
        let left = index::dropped(&mut self.conn).await.map_err(|e| self.io("reading engram_dropped_indexes", e))?;
        if left.is_empty() {
            return Ok(Vec::new());
        }
        let loaders = self.other_loaders().await?;
        if !loaders.is_empty() {
            let names: Vec<&str> = left.iter().map(|i| i.name.as_str()).collect();
            return Ok(vec![format!(
                "the HNSW index {} stays dropped while run {} loads: its rebuild is left to the last of them to finish",
                names.join(", "),
                loaders.join(", ")
            )]);
        }
        self.restore_index().await
    }

    async fn restore_index(&mut self) -> Result<Vec<String>, SinkError> {
        let place = self.place.clone();
        let built = index::restore(&mut self.conn).await.map_err(|e| {
            SinkError::Io(format!(
                "rebuilding the HNSW index in PostgreSQL at {place}: {e}. The patterns are written; Engramia searches without the index (slowly) until the next engram run rebuilds it."
            ))
        })?;
        Ok(built.into_iter().map(|(name, took)| format!("rebuilt the HNSW index {name} in {:.1} s", took.as_secs_f64())).collect())
    }

    /// True where the bare-key layout keeps `scope` from holding a skills registry (another
    /// scope has the one row); `existing` then hashes with the skills engram's ledger holds.
    fn registry_blocked(&self, scope: &Scope) -> bool {
        self.catalog.as_ref().is_some_and(|c| {
            c.layout == Some(KeyLayout::BareKey) && c.registry_owner.as_ref().is_some_and(|o| o != scope)
        })
    }

    fn warn_registry(&mut self, scope: &Scope, count: usize) {
        if !self.warned.insert(scope.clone()) {
            return;
        }
        let owner = self.catalog.as_ref().and_then(|c| c.registry_owner.clone()).map(|s| s.to_string()).unwrap_or_default();
        self.warnings.push(Warning::new(
            "skills_registry_limit",
            scope.to_string(),
            format!(
                "{}: Engramia 0.6.x (memory_data keyed by `key` alone) holds one skills registry per database, and scope {owner} has it; the skills of {count} pattern(s) in scope {scope} are kept in engram_records only, so Engramia's find_by_skills will not see them there. A schema keyed by (tenant_id, project_id, key) has no such limit: after Engramia's `alembic upgrade head` (revision 019 and later), the next engram run registers them",
                self.place
            ),
        ));
    }

    /// Creates missing tenants/projects rows for scopes new to this run, then checks them.
    async fn ensure_scopes(conn: &mut PgConnection, scopes: &[Scope]) -> Result<(), SinkError> {
        let io = |e: sqlx::Error| SinkError::Io(format!("creating tenants/projects rows: {e}"));
        write::insert_scopes(conn, scopes).await.map_err(io)?;
        let problems = write::scope_problems(conn, scopes).await.map_err(io)?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(scope_error(&problems))
    }

    /// Refuses, before any migration or write, keys outside `patterns/` and vectors whose
    /// size the embedding column (existing, or about to be created) cannot take.
    async fn check_batch(&mut self, batch: &[Embedded]) -> Result<(), SinkError> {
        if let Some(e) = batch.iter().find(|e| !e.record.key.starts_with("patterns/")) {
            return Err(SinkError::Io(format!("refusing to write the key {:?}: engram writes only patterns/ keys", e.record.key)));
        }
        let place = self.place.clone();
        let cat = self.catalog().await?;
        let column = cat.dims.or(cat.creates_engramia_schema().then_some(CREATED_DIMENSIONS));
        let (Some(d), Some(e)) = (column, batch.iter().find(|e| column.is_some_and(|d| e.embedding.len() != d))) else {
            return Ok(());
        };
        let what = match cat.dims {
            Some(_) => format!("memory_embeddings.embedding in {place} is vector({d})"),
            None => format!("engram would create memory_embeddings.embedding in {place} as vector({d})"),
        };
        let msg = dims_message(&what, d, e.embedding.len(), &self.model);
        Err(SinkError::Config(format!("{msg} This batch was not written.")))
    }

    /// One transaction: pending removals, scopes, patterns, embeddings, registries, ledger.
    async fn write_batch(&mut self, batch: &[Embedded]) -> Result<(), SinkError> {
        self.check_batch(batch).await?;
        self.ensure_schema().await?;
        self.register().await?;
        let cat = self.catalog().await?.clone();
        // Later records win within a batch (the plan never repeats a key; this is a guard,
        // since one upsert statement cannot touch a row twice).
        let mut unique: IndexMap<(&Scope, &str), &Embedded> = IndexMap::new();
        for e in batch {
            unique.insert((&e.record.scope, &e.record.key), e);
        }
        let items: Vec<&Embedded> = unique.into_values().collect();
        let new_scopes: Vec<Scope> = items
            .iter()
            .map(|e| e.record.scope.clone())
            .filter(|s| !self.ensured.contains(s))
            .collect::<indexmap::IndexSet<_>>()
            .into_iter()
            .collect();
        let removals = std::mem::take(&mut self.removals);
        let applied = match self.apply(&cat, &items, &removals, &new_scopes).await {
            Ok(a) => a,
            Err(e) => {
                self.removals = removals;
                return Err(e);
            }
        };

        // The batch is in; only now does the in-memory state follow it.
        self.ensured.extend(new_scopes);
        if let Some(c) = self.catalog.as_mut() {
            c.registry_owner = applied.owner;
        }
        for (scope, keys) in &removals {
            self.written.entry(scope.clone()).or_default().replaced += keys.len();
        }
        for e in &items {
            let counts = self.written.entry(e.record.scope.clone()).or_default();
            if applied.inserted.contains(&e.record.key) {
                counts.created += 1;
            } else {
                counts.updated += 1;
            }
        }
        for (scope, n) in applied.blocked {
            self.warn_registry(&scope, n);
        }
        Ok(())
    }

    async fn apply(
        &mut self,
        cat: &Catalog,
        items: &[&Embedded],
        removals: &IndexMap<Scope, Vec<String>>,
        new_scopes: &[Scope],
    ) -> Result<Applied, SinkError> {
        let place = self.place.clone();
        let io = |what: &str, e: sqlx::Error| SinkError::Io(format!("{what} in PostgreSQL at {place}: {e}. This batch was rolled back."));
        let bare = cat.layout == Some(KeyLayout::BareKey);
        let mut applied = Applied { owner: cat.registry_owner.clone(), ..Default::default() };

        let mut tx = self.conn.begin().await.map_err(|e| io("starting a transaction", e))?;
        // Batches of concurrent runs commit one after another (see `coord`); what another run
        // committed before this one got the lock is read below, inside the transaction.
        coord::lock_writes(&mut tx).await.map_err(|e| io("waiting for other runs' batches", e))?;
        if bare {
            applied.owner = catalog::registry_owner(&mut tx).await.map_err(|e| io("reading the skills registry", e))?;
        }
        for (scope, keys) in removals {
            write::delete_patterns(&mut tx, scope, keys, cat.has_ledger()).await.map_err(|e| io("removing replaced patterns", e))?;
        }
        if !new_scopes.is_empty() {
            Self::ensure_scopes(&mut tx, new_scopes).await?;
        }
        if !items.is_empty() {
            applied.inserted = write::upsert_patterns(&mut tx, items)
                .await
                .map_err(|e| key_clash(&place, e).unwrap_or_else(|e| io("writing patterns", e)))?
                .into_iter()
                .collect();
        }
        // Registry entries: removed keys unregister, written keys get their skills.
        let mut by_scope: IndexMap<&Scope, Vec<(&str, &[String])>> = IndexMap::new();
        for (scope, keys) in removals {
            by_scope.entry(scope).or_default().extend(keys.iter().map(|k| (k.as_str(), &[] as &[String])));
        }
        for e in items {
            by_scope.entry(&e.record.scope).or_default().push((e.record.key.as_str(), e.record.skills.as_slice()));
        }
        for (scope, entries) in &by_scope {
            if bare && applied.owner.as_ref().is_some_and(|o| o != *scope) {
                let with_skills = entries.iter().filter(|(_, s)| !s.is_empty()).count();
                if with_skills > 0 {
                    applied.blocked.push(((*scope).clone(), with_skills));
                }
                continue;
            }
            let wrote = write::update_registry(&mut tx, scope, entries).await.map_err(|e| io("writing the skills registry", e))?;
            if wrote && bare && applied.owner.is_none() {
                applied.owner = Some((*scope).clone());
            }
        }
        if !items.is_empty() {
            write::upsert_ledger(&mut tx, &self.run_id, items).await.map_err(|e| io("writing engram_records", e))?;
        }
        tx.commit().await.map_err(|e| io("committing", e))?;
        Ok(applied)
    }
}

fn scope_error(problems: &[write::ScopeProblem]) -> SinkError {
    let lines: Vec<String> = problems.iter().map(|p| format!("scope {}: {}", p.scope, p.message)).collect();
    SinkError::Config(format!(
        "{}\n  Choose another tenant or [scope] project template, or restore the project in Engramia. Nothing of these scopes was written.",
        lines.join("\n")
    ))
}

impl Sink for PgSink {
    fn engramia_schema(&self) -> Option<schema::SchemaReport> {
        let cat = self.catalog.as_ref()?;
        if self.created_schema || cat.creates_engramia_schema() {
            let s = self.schema_choice.shipped();
            return Some(schema::SchemaReport {
                revision: s.revision.into(),
                status: if self.created_schema { "created" } else { "create" },
                engramia: Some(s.engramia.into()),
                keyed_by: Some(schema::layout_key(s.layout)),
            });
        }
        Some(schema::SchemaReport {
            revision: cat.alembic_head.clone()?,
            status: "found",
            engramia: None,
            keyed_by: cat.layout.map(schema::layout_key),
        })
    }

    fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.place)
    }

    async fn preflight(&mut self, check: &Preflight) -> Result<Vec<String>, SinkError> {
        self.model = check.model.clone();
        self.catalog = None;
        let preflight::Verdict { mut notes, problems } = self.verdict(check).await?;
        if problems.is_empty() {
            self.preflight_ok = true;
            if self.catalog().await?.has("engram_dropped_indexes") {
                let left = index::dropped(&mut self.conn).await.map_err(|e| self.io("reading engram_dropped_indexes", e))?;
                if !left.is_empty() {
                    let names: Vec<&str> = left.iter().map(|i| i.name.as_str()).collect();
                    let loaders = self.other_loaders().await?;
                    notes.push(if loaders.is_empty() {
                        format!(
                            "an earlier run dropped the HNSW index {} for its load and was stopped before rebuilding it; this run rebuilds it (a dry run does not)",
                            names.join(", ")
                        )
                    } else {
                        format!(
                            "the HNSW index {} is dropped for the load of run {}, still going; the last run loading rebuilds it",
                            names.join(", "),
                            loaders.join(", ")
                        )
                    });
                }
            }
            return Ok(notes);
        }
        let mut msg = match problems.as_slice() {
            [one] => one.clone(),
            many => format!(
                "{} cannot take this migration ({} problems):\n- {}",
                self.describe(),
                many.len(),
                many.join("\n- ")
            ),
        };
        msg.push_str("\n  Nothing was embedded or written.");
        Err(SinkError::Config(msg))
    }

    async fn check_scopes(&mut self, scopes: &[Scope]) -> Result<(), SinkError> {
        if scopes.is_empty() || !self.catalog().await?.has("projects") {
            return Ok(());
        }
        let problems = write::scope_problems(&mut self.conn, scopes).await.map_err(|e| self.io("checking scopes", e))?;
        if problems.is_empty() { Ok(()) } else { Err(scope_error(&problems)) }
    }

    async fn existing(&mut self, scope: &Scope, keys: &[String]) -> Result<HashMap<String, Existing>, SinkError> {
        let cat = self.catalog().await?;
        let (Some(layout), true) = (cat.layout, cat.has("memory_data")) else {
            // An empty database holds nothing yet.
            return Ok(HashMap::new());
        };
        let ledger = cat.has_ledger();
        let rows = write::stored(&mut self.conn, layout, ledger, scope, keys).await.map_err(|e| self.io("reading patterns", e))?;
        let blocked = self.registry_blocked(scope);
        let mut out = HashMap::new();
        let mut elsewhere = Vec::new();
        let mut kept_aside = 0;
        for row in rows {
            if &row.scope != scope {
                elsewhere.push(format!("{} (in scope {})", row.key, row.scope));
                continue;
            }
            let skills = if blocked {
                write::parse_skills(row.ledger_skills.as_deref())
            } else {
                write::parse_skills(row.registry_skills.as_deref())
            };
            kept_aside += usize::from(blocked && !skills.is_empty());
            // Through serde_json::Value, so json text formatting and key order do not matter.
            let pattern: Value = serde_json::from_str(&row.data)
                .map_err(|e| SinkError::Io(format!("{}: memory_data.data of {} is not JSON ({e})", self.place, row.key)))?;
            out.insert(row.key, Existing { hash: content_hash(&pattern, &skills), has_embedding: row.has_embedding });
        }
        if kept_aside > 0 {
            self.warn_registry(scope, kept_aside);
        }
        if !elsewhere.is_empty() {
            return Err(SinkError::Io(format!(
                "{}: {} key(s) of scope {scope} are already stored under another scope: {}.\n  Engramia 0.6.x keys memory_data by `key` alone, so a key can live in one scope only. Was [scope] changed since an earlier run? Restore it, or delete those patterns in Engramia first.",
                self.place,
                elsewhere.len(),
                elsewhere.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(out)
    }

    async fn write(&mut self, batch: &[Embedded]) -> Result<(), SinkError> {
        if batch.is_empty() && self.removals.is_empty() {
            return Ok(());
        }
        self.write_batch(batch).await
    }

    async fn scope_patterns(&mut self, scope: &Scope) -> Result<Vec<StoredPattern>, SinkError> {
        if !self.catalog().await?.has("memory_data") {
            return Ok(Vec::new());
        }
        let rows = write::scope_patterns(&mut self.conn, scope).await.map_err(|e| self.io("reading patterns", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, task, score, openai)| {
                let origin = openai.and_then(|o| serde_json::from_str(&o).ok()).and_then(|o| super::PairOrigin::of_openai(&o));
                Some(StoredPattern { key, task: task?, success_score: score.and_then(|s| s.parse().ok()).unwrap_or(0.0), origin })
            })
            .collect())
    }

    async fn remove(&mut self, scope: &Scope, keys: &[String]) -> Result<(), SinkError> {
        if let Some(k) = keys.iter().find(|k| !k.starts_with("patterns/")) {
            return Err(SinkError::Io(format!("refusing to remove the key {k:?}: engram removes only patterns/ keys")));
        }
        self.removals.entry(scope.clone()).or_default().extend(keys.iter().cloned());
        Ok(())
    }

    async fn previous_run(&mut self) -> Result<Option<PreviousRun>, SinkError> {
        let cat = self.catalog().await?.clone();
        if !cat.has("engram_runs") {
            return Ok(None);
        }
        let row = if cat.tracks_live_runs() {
            coord::unfinished_run(&mut self.conn, &self.run_id, self.who.shard.as_deref()).await
        } else {
            write::unfinished_run(&mut self.conn).await
        };
        let row = row.map_err(|e| self.io("reading engram_runs", e))?;
        Ok(row.map(|(run_id, batches, records, last_thread)| PreviousRun {
            run_id,
            batches: batches.max(0) as u64,
            records: records.max(0) as u64,
            last_thread,
        }))
    }

    async fn mark_progress(&mut self, p: &RunProgress) -> Result<(), SinkError> {
        if !self.registered {
            return Ok(());
        }
        let (batches, records) = (p.batches as i64, p.records as i64);
        write::mark_progress(&mut self.conn, &self.run_id, batches, records, p.last_thread.as_deref())
            .await
            .map_err(|e| self.io("recording progress in engram_runs", e))
    }

    async fn plan_load(&mut self, adding: u64, apply: bool) -> Result<Option<crate::sink::LoadPlan>, SinkError> {
        if !apply {
            return self.index_choice(adding).await.map(|(choice, _, _)| Some(choice));
        }
        self.ensure_schema().await?;
        self.register().await?;
        // The decision and the drop are taken by one run at a time, on what the others did.
        self.locked(coord::INDEX, "the index lock", async |s| s.prepare_index(adding).await).await.map(Some)
    }

    async fn settle(&mut self) -> Result<Vec<String>, SinkError> {
        if !self.preflight_ok {
            return Ok(Vec::new());
        }
        if !self.catalog().await?.has("engram_dropped_indexes") {
            return Ok(Vec::new());
        }
        self.locked(coord::INDEX, "the index lock", async |s| s.settle_locked().await).await
    }

    async fn fail(&mut self, error: &str) {
        if !self.registered {
            return;
        }
        // Best effort: the run is failing already, and the row stays unfinished either way.
        if let Err(e) = coord::mark_failed(&mut self.conn, &self.run_id, error).await {
            tracing::warn!(error = %e, "could not record the failure in engram_runs");
        }
    }

    async fn finish(&mut self, run: &RunInfo) -> Result<(), SinkError> {
        if !self.removals.is_empty() {
            self.write_batch(&[]).await?;
        }
        if !self.catalog().await?.has_ledger() {
            return Ok(());
        }
        let place = self.place.clone();
        let io = |e: sqlx::Error| SinkError::Io(format!("recording the run in PostgreSQL at {place}: {e} (the patterns themselves are written)"));
        let mut tx = self.conn.begin().await.map_err(io)?;
        if run.wrote_anything && !self.written.is_empty() {
            write::finish_run(&mut tx, &self.run_id, &run.source, &self.written).await.map_err(io)?;
        }
        // This run did (or found done) whatever an earlier, killed run of its shard had left.
        if self.catalog.as_ref().is_some_and(Catalog::tracks_live_runs) {
            coord::complete_earlier_runs(&mut tx, &self.run_id, self.who.shard.as_deref()).await.map_err(io)?;
        } else {
            write::complete_earlier_runs(&mut tx, &self.run_id).await.map_err(io)?;
        }
        tx.commit().await.map_err(io)?;
        Ok(())
    }
}

/// With the bare-key layout, a key held by another scope fails on the `key` primary key.
fn key_clash(place: &str, e: sqlx::Error) -> Result<SinkError, sqlx::Error> {
    let clash = e.as_database_error().is_some_and(|d| d.code().as_deref() == Some("23505") && d.constraint().is_some_and(|c| c.ends_with("_pkey")));
    if !clash {
        return Err(e);
    }
    Ok(SinkError::Io(format!(
        "{place}: a key of this batch is already stored under another scope ({e}); Engramia 0.6.x keys memory_data by `key` alone. This batch was rolled back."
    )))
}
