//! A running Engramia server as the target, reached only through its REST API
//! (`[target] url = "https://…"`): for Engramia Cloud and for servers whose database engram
//! cannot reach. See spec/engramia-rest.md.
//!
//! - Keys: one key reaches one project (the key alone fixes tenant and project). A scope's key
//!   comes from the environment variable `[target.keys]` names for it (by `tenant/project`,
//!   project or assistant id), else from `ENGRAMIA_API_KEY`. Never from the mapping file, never
//!   in any output.
//! - Preflight (also in a dry run, before any write): the server's version (from 0.7.0 its
//!   import embeds; an older one is refused unless `[target.server] unembedded_import =
//!   "reindex"`), per key the role (admin or owner), the project it lands in (must be the scope
//!   engram planned, else exit 2), the storage kind and the pattern quota.
//! - Plan: what a project holds is read once from `GET /v1/governance/export` (streamed), so
//!   the plan's create/update/unchanged counts are exact. engram compares on the content hash it
//!   stored in each pattern's `_engram` provenance, so the server's own changes (recall raising
//!   `reuse_count`) are not mistaken for edits.
//! - Write: `POST /v1/import`, new records with `overwrite: false` and changed ones in their own
//!   requests with `overwrite: true`, bodies bounded by bytes and count (413 shrinks and
//!   retries), then the skills, `POST /v1/skills/register` one at a time (the project has one
//!   registry document). A 429 QUOTA_EXCEEDED stops that project (a warning says what was and
//!   was not stored) while other projects go on.
//! - Resume: every record is stored whole or not at all by the server and the next run's plan
//!   reads what is there, so a killed run's successor sends only what is missing. A record
//!   whose skills were not registered when the run stopped (the plan checks engram's skills
//!   with the read-only `/v1/skills/search`) is sent again with them.

pub mod batch;
pub mod client;
pub mod preflight;
mod write;

use super::{Embedded, Existing, PairOrigin, Preflight, RunInfo, Sink, SinkError, StoredPattern};
use crate::record::{Scope, Warning};
use client::{ApiKey, Client};
use preflight::{KeyFacts, KeyProblem};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// `[target.server]`: how engram treats an Engramia server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Requests per minute per path (Engramia's `ENGRAMIA_RATE_LIMIT_DEFAULT`, 60).
    #[serde(default = "default_per_path")]
    pub requests_per_minute_per_path: u32,
    /// Requests per minute per key (Engramia's `ENGRAMIA_RATE_LIMIT_PER_KEY`, 120).
    #[serde(default = "default_per_key")]
    pub requests_per_minute_per_key: u32,
    /// Largest `/v1/import` body in bytes (Engramia's `ENGRAMIA_MAX_BODY_SIZE` is 1 MiB; a 413
    /// shrinks it for the rest of the run).
    #[serde(default = "default_max_bytes")]
    pub max_request_bytes: usize,
    /// Most records per `/v1/import` (the server embeds them one by one while the request waits).
    #[serde(default = "default_max_records")]
    pub max_records_per_request: usize,
    /// Seconds one request may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts per request on 429 RATE_LIMITED, 502/504 and no answer.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// A server whose import does not embed (Engramia before 0.7.0): "refuse", or "reindex"
    /// (import anyway; recall finds nothing until `engramia reindex` runs on the server).
    #[serde(default)]
    pub unembedded_import: Unembedded,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unembedded {
    #[default]
    Refuse,
    Reindex,
}

fn default_per_path() -> u32 { 60 }
fn default_per_key() -> u32 { 120 }
fn default_max_bytes() -> usize { 1_000_000 }
fn default_max_records() -> usize { 200 }
fn default_timeout() -> u64 { 600 }
fn default_attempts() -> u32 { 4 }

impl Default for ServerConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// The environment variable for a single project's key.
pub const ENV_KEY: &str = "ENGRAMIA_API_KEY";

/// `[target]` problems found without the network (part of `Config::load`'s validation).
/// Problems with `[target.keys]` and `[target.server]` (checked with the mapping).
pub fn config_problems(keys: &std::collections::BTreeMap<String, String>, server: &ServerConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for (scope, var) in keys {
        let valid_name = !var.is_empty()
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !var.starts_with(|c: char| c.is_ascii_digit());
        if var.starts_with("engramia_sk_") || var.starts_with("eyJ") || (!valid_name && var.len() > 20) {
            problems.push(format!(
                "[target.keys] {scope:?} looks like an API key itself: engram never reads keys from mapping.toml. Put the key in an environment variable and write that variable's NAME here (e.g. {scope:?} = \"ENGRAMIA_KEY_SUPPORT\")"
            ));
        } else if !valid_name {
            problems.push(format!(
                "[target.keys] {scope:?} = {var:?} is not an environment variable name (letters, digits and _, not starting with a digit)"
            ));
        }
    }
    let s = server;
    if s.max_request_bytes < 4096 {
        problems.push(format!("[target.server] max_request_bytes must be at least 4096, got {}", s.max_request_bytes));
    }
    if s.max_records_per_request == 0 || s.max_records_per_request > batch::SERVER_MAX_RECORDS {
        problems.push(format!(
            "[target.server] max_records_per_request must be 1..={} (the server's limit), got {}",
            batch::SERVER_MAX_RECORDS,
            s.max_records_per_request
        ));
    }
    if s.requests_per_minute_per_path == 0 || s.requests_per_minute_per_key == 0 {
        problems.push("[target.server] requests_per_minute_per_path and _per_key must be at least 1".into());
    }
    problems
}

/// What a project holds under one key, as the plan and the near-duplicate check see it.
#[derive(Debug, Clone)]
struct Stored {
    hash: String,
    task: String,
    score: f64,
    origin: Option<PairOrigin>,
    /// Skills engram registered for it (from its provenance).
    skills: Vec<String>,
}

/// One project on the server and the key that reaches it.
struct Project {
    key: ApiKey,
    facts: KeyFacts,
    stored: HashMap<String, Stored>,
    /// Keys this run plans to add (absent from the server when the plan asked).
    adding: HashSet<String>,
    /// Set when the server refused more patterns (QUOTA_EXCEEDED): nothing more is sent.
    stopped: Option<String>,
    quota_warned: bool,
    sent: write::Sent,
}

pub struct RestSink {
    url: String,
    client: Client,
    config: ServerConfig,
    /// `[target.keys]`: scope, project or assistant -> environment variable name.
    key_vars: BTreeMap<String, String>,
    env_key: Option<ApiKey>,
    /// Resolved from the environment at open: variable name -> key.
    named_keys: HashMap<String, ApiKey>,
    assistants: Vec<(String, Scope)>,
    projects: HashMap<Scope, Project>,
    version: Option<String>,
    warnings: Vec<Warning>,
    /// Largest import body, lowered by a 413.
    max_bytes: usize,
}

impl RestSink {
    /// Builds the sink; reads keys with `env` (the process environment in `engram migrate`).
    /// No request yet.
    pub fn open(
        url: &str,
        keys: &std::collections::BTreeMap<String, String>,
        server: &ServerConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RestSink, SinkError> {
        let url = url.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&url).map_err(|e| SinkError::Config(format!("[target] url {url:?} is not a URL: {e}")))?;
        if parsed.password().is_some() || !parsed.username().is_empty() {
            return Err(SinkError::Config(format!(
                "[target] url must not carry credentials ({}); put the API key in {ENV_KEY} or a variable named in [target.keys]",
                crate::redact::redact_url(&url)
            )));
        }
        let s = server;
        let client = Client::new(&url, Duration::from_secs(s.timeout_secs), s.requests_per_minute_per_path, s.requests_per_minute_per_key, s.max_attempts)
            .map_err(SinkError::Io)?;
        let get = |k: &str| env(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut named_keys = HashMap::new();
        let mut unset = Vec::new();
        for (scope, var) in keys {
            match get(var) {
                Some(v) => {
                    named_keys.insert(var.clone(), ApiKey::new(var.clone(), v));
                }
                None => unset.push(format!("{var} (for {scope:?})")),
            }
        }
        if !unset.is_empty() {
            return Err(SinkError::Config(format!(
                "[target.keys] names environment variables that are not set: {}.\n  Export each with that project's API key, or remove the entry. Nothing was written.",
                unset.join(", ")
            )));
        }
        let env_key = get(ENV_KEY).map(|v| ApiKey::new(ENV_KEY, v));
        if env_key.is_none() && named_keys.is_empty() {
            return Err(SinkError::Config(format!(
                "no API key for the Engramia server {url}: set {ENV_KEY} (one project), or map each scope to the variable holding its project's key in [target.keys]. Keys are never read from mapping.toml."
            )));
        }
        Ok(RestSink {
            url,
            client,
            max_bytes: s.max_request_bytes,
            config: s.clone(),
            key_vars: keys.clone(),
            env_key,
            named_keys,
            assistants: Vec::new(),
            projects: HashMap::new(),
            version: None,
            warnings: Vec::new(),
        })
    }

    /// The key for a scope: `[target.keys]` by `tenant/project`, by project, by an assistant
    /// whose records go there; else `ENGRAMIA_API_KEY`.
    fn key_for(&self, scope: &Scope) -> Result<ApiKey, SinkError> {
        let by_name = [scope.to_string(), scope.project.clone()];
        let var = by_name.iter().find_map(|n| self.key_vars.get(n)).or_else(|| {
            self.assistants.iter().filter(|(_, s)| s == scope).find_map(|(a, _)| self.key_vars.get(a))
        });
        match var {
            Some(v) => Ok(self.named_keys.get(v).cloned().expect("every named variable was read at open")),
            None => self.env_key.clone().ok_or_else(|| {
                SinkError::Config(format!(
                    "no API key for scope {scope}: add \"{scope}\" = \"VAR\" to [target.keys] (VAR holding that project's key), or set {ENV_KEY}. Nothing was written."
                ))
            }),
        }
    }

    /// Checks the scope's key and reads what its project holds; once per scope.
    async fn project(&mut self, scope: &Scope) -> Result<&mut Project, SinkError> {
        if !self.projects.contains_key(scope) {
            let key = self.key_for(scope)?;
            let label = scope.to_string();
            let facts = preflight::check_key(&self.client, &key, &label).await.map_err(|p| match p {
                KeyProblem::Config(m) => SinkError::Config(m),
                KeyProblem::Failed(m) => SinkError::Io(m),
            })?;
            if &facts.scope != scope {
                return Err(SinkError::Config(format!(
                    "the API key in ${} lands in project {} on {} ({}), but engram planned scope {scope} for these records.\n  Give scope {scope} the key of its own project in [target.keys] (\"{scope}\" = \"VAR\"), or set [scope] tenant/project so the plan names project {}. Nothing was written.",
                    key.var, facts.scope, self.url, facts.scope_source, facts.scope
                )));
            }
            if let Some((other, _)) = self.projects.iter().find(|(_, p)| p.key.id() == key.id()) {
                return Err(SinkError::Config(format!(
                    "scopes {other} and {scope} would both use the key in ${}, which reaches one project; map each scope to its own project's key in [target.keys]",
                    key.var
                )));
            }
            let stored = write::read_project(&self.client, &key, &label).await?;
            tracing::info!(scope = %scope, stored = stored.len(), storage = %facts.storage, "Engramia project checked");
            let project = Project {
                key,
                facts,
                stored,
                adding: HashSet::new(),
                stopped: None,
                quota_warned: false,
                sent: write::Sent::default(),
            };
            self.projects.insert(scope.clone(), project);
        }
        Ok(self.projects.get_mut(scope).expect("inserted above"))
    }

    /// Warns once per project when the records it is to receive pass its pattern quota.
    fn check_quota(&mut self, scope: &Scope) {
        let Some(p) = self.projects.get_mut(scope) else { return };
        let (Some(cap), Some(used)) = (p.facts.project_cap(), p.facts.patterns_used) else { return };
        let after = used + p.adding.len() as u64;
        if after > cap && !p.quota_warned {
            p.quota_warned = true;
            self.warnings.push(Warning::new(
                "project_over_quota",
                scope.to_string(),
                format!(
                    "project {scope} holds {used} patterns and this run adds {}: {after} is over its quota of about {cap} ({}% of the plan's {} patterns); the server refuses the rest with QUOTA_EXCEEDED. Delete old patterns, raise the limit (self-hosted: ENGRAMIA_PROJECT_QUOTA_PCT; Cloud: a larger plan), or split the project with [scope] project",
                    p.adding.len(),
                    (preflight::PROJECT_QUOTA_SHARE * 100.0) as u32,
                    p.facts.patterns_limit.unwrap_or(0)
                ),
            ));
        }
    }
}

impl Sink for RestSink {
    fn describe(&self) -> String {
        format!("Engramia server {}", self.url)
    }

    fn embeds_itself(&self) -> Option<String> {
        Some(format!("the Engramia server {}", self.url))
    }

    fn note_assistant_scopes(&mut self, scopes: &[(String, Scope)]) {
        self.assistants = scopes.to_vec();
    }

    fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    async fn preflight(&mut self, _check: &Preflight) -> Result<Vec<String>, SinkError> {
        let version: preflight::Version = self.client.json(reqwest::Method::GET, "/v1/version", None, None).await.map_err(|e| {
            let what = match e.status() {
                None => "is it running, and is [target] url right?".to_string(),
                Some(404) => "it has no /v1/version: is [target] url the Engramia API's base (https://host, without /v1)?".to_string(),
                Some(_) => "is [target] url the Engramia API's base (https://host, without /v1), not a web page or proxy?".to_string(),
            };
            SinkError::Io(format!("cannot use the Engramia server {}: GET /v1/version: {e}; {what} Nothing was written.", self.url))
        })?;
        let v = version.app_version.clone();
        let mut notes = vec![format!("Engramia {v}")];
        match preflight::embeds_on_import(&v) {
            Some(true) => notes.push("its /v1/import embeds each record with the server's own model; engram sends no embeddings".into()),
            embeds => {
                let what = if embeds.is_none() { format!("an unknown version ({v:?})") } else { format!("Engramia {v}") };
                match self.config.unembedded_import {
                    Unembedded::Refuse => {
                        return Err(SinkError::Config(format!(
                            "{} runs {what}, whose /v1/import stores patterns without embedding them (from 0.7.0 it embeds): recall would never find what engram imports.\n  Upgrade the server to Engramia 0.7.0 or later, or set [target.server] unembedded_import = \"reindex\" to import anyway and then run `engramia reindex` on the server (engram does not use /v1/learn: it cannot keep engram's keys). Nothing was written.",
                            self.url
                        )));
                    }
                    Unembedded::Reindex => {
                        notes.push(format!("{what} does not embed on import: run `engramia reindex` on the server after this migration, or recall finds none of it ([target.server] unembedded_import = \"reindex\")"));
                        self.warnings.push(Warning::new(
                            "server_does_not_embed",
                            self.url.clone(),
                            format!("{what} stores imports without embeddings: run `engramia reindex` on the server, or recall finds none of the migrated patterns"),
                        ));
                    }
                }
            }
        }
        self.version = Some(v);
        // A single key: say now what it reaches. A key that cannot be used is refused when
        // the plan first asks for its scope (still before any write), in words naming it.
        if self.key_vars.is_empty()
            && let Some(key) = self.env_key.clone()
            && let Ok(facts) = preflight::check_key(&self.client, &key, "").await
        {
            notes.push(format!(
                "${ENV_KEY} reaches project {} ({}), role {}, storage {}, {}",
                facts.scope,
                facts.scope_source,
                facts.role.as_deref().unwrap_or("not listed"),
                if facts.storage.is_empty() { "unknown" } else { &facts.storage },
                match (facts.patterns_used, facts.project_cap()) {
                    (Some(u), Some(c)) => format!("{u} patterns stored, quota about {c}"),
                    (Some(u), None) => format!("{u} patterns stored, no pattern limit"),
                    _ => "quota unknown".into(),
                }
            ));
        }
        Ok(notes)
    }

    async fn check_scopes(&mut self, scopes: &[Scope]) -> Result<(), SinkError> {
        for scope in scopes {
            self.project(scope).await?;
        }
        Ok(())
    }

    async fn existing(&mut self, scope: &Scope, keys: &[String]) -> Result<HashMap<String, Existing>, SinkError> {
        let p = self.project(scope).await?;
        let mut out = HashMap::new();
        for key in keys {
            match p.stored.get(key) {
                Some(s) => {
                    out.insert(key.clone(), Existing { hash: s.hash.clone(), has_embedding: true });
                }
                None => {
                    p.adding.insert(key.clone());
                }
            }
        }
        self.check_quota(scope);
        Ok(out)
    }

    async fn scope_patterns(&mut self, scope: &Scope) -> Result<Vec<StoredPattern>, SinkError> {
        let p = self.project(scope).await?;
        let mut out: Vec<StoredPattern> = p
            .stored
            .iter()
            .map(|(k, s)| StoredPattern { key: k.clone(), task: s.task.clone(), success_score: s.score, origin: s.origin.clone() })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn write(&mut self, batch: &[Embedded]) -> Result<(), SinkError> {
        let mut by_scope: indexmap::IndexMap<Scope, Vec<&crate::record::Record>> = indexmap::IndexMap::new();
        for e in batch {
            by_scope.entry(e.record.scope.clone()).or_default().push(&e.record);
        }
        for (scope, records) in by_scope {
            self.project(&scope).await?;
            self.write_project(&scope, &records).await?;
        }
        Ok(())
    }

    async fn remove(&mut self, scope: &Scope, keys: &[String]) -> Result<(), SinkError> {
        let key = self.project(scope).await?.key.clone();
        for k in keys {
            match self.client.send(reqwest::Method::DELETE, &format!("/v1/patterns/{k}"), Some(&key), None).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(SinkError::Io(format!("{}: project {scope}: deleting {k}: {e}", self.url))),
            }
            if let Some(p) = self.projects.get_mut(scope) {
                p.stored.remove(k);
            }
        }
        Ok(())
    }

    async fn settle(&mut self) -> Result<Vec<String>, SinkError> {
        let mut notes: Vec<String> = self
            .projects
            .iter()
            .filter(|(_, p)| !p.sent.is_empty())
            .map(|(scope, p)| format!("project {scope}: {}", p.sent.summary()))
            .collect();
        notes.sort();
        Ok(notes)
    }

    async fn finish(&mut self, _run: &RunInfo) -> Result<(), SinkError> {
        Ok(())
    }
}
