//! `mapping.toml`: the model, its defaults, and validation.
//!
//! Parsing is strict (`deny_unknown_fields`): a misspelt key is an error that names the key,
//! its line and column, and the nearest valid key. `validate` checks everything that needs no
//! network, so that a bad mapping never gets as far as the first request.

use crate::map::scope::ScopeTemplate;
pub use crate::http::limiter::Concurrency;
pub use crate::sink::postgres::index::IndexStrategy;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub target: TargetConfig,
    #[serde(default)]
    pub embedding: EmbeddingConfig,
    #[serde(default)]
    pub scope: ScopeConfig,
    #[serde(default)]
    pub patterns: PatternsConfig,
    #[serde(default)]
    pub skills: SkillsConfig,
    #[serde(default)]
    pub files: FilesConfig,
    #[serde(default)]
    pub agents: AgentsConfig,
}

/// `[agents]`: the cutover code (one OpenAI Agents SDK module per assistant, `src/agents`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Where to write it, relative to the mapping file; unset: not generated.
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where the OpenAI objects come from: "openai" (the HTTP API or a compatible server),
    /// "ndjson" (Engramia's export format), "export-dir" (an `assistants-thread-export/v1`
    /// directory) or "conversations" (the Responses API's Conversations).
    #[serde(default = "default_source_kind")]
    pub kind: String,
    /// API base URL; when unset, `OPENAI_BASE_URL`, else https://api.openai.com/v1.
    pub base_url: Option<String>,
    /// File of thread ids, one per line (the API cannot list threads). Kind "openai".
    pub threads_file: Option<PathBuf>,
    /// The export to read: an NDJSON file or glob (kind "ndjson"), a directory ("export-dir").
    pub path: Option<String>,
    /// File of conversation ids (`conv_...`), one per line. Kind "conversations".
    pub conversations_file: Option<PathBuf>,
    /// Requests in flight at once: `"auto"` (found while the run goes, see `http::limiter`) or
    /// a number 1..=64 that pins it.
    #[serde(default, deserialize_with = "concurrency_setting")]
    pub concurrency: Concurrency,
    /// Seconds before one HTTP request is abandoned (and retried).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts per request on 429/5xx/connection errors before giving up on it.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Requests per minute engram allows itself, whatever the server declares (the dry run's
    /// time estimate uses it too). Unset: only the server's `x-ratelimit-*` headers pace it.
    pub requests_per_minute: Option<u32>,
    /// `"I/N"`: migrate part I of N of the account (`crate::shard`); `--shard` overrides it.
    pub shard: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A directory (Engramia JSON storage) or a postgres:// URL.
    #[serde(default = "default_target_url")]
    pub url: String,
    /// Records per write batch (one atomic unit).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// PostgreSQL: keep Engramia's HNSW index during the load, or drop and rebuild it.
    #[serde(default)]
    pub index_strategy: IndexStrategy,
    /// PostgreSQL: which Engramia schema (alembic revision) an empty database gets.
    #[serde(default)]
    pub engramia_schema: crate::sink::postgres::schema::Choice,
    /// Engramia server (`http(s)://` url): scope `tenant/project`, project or assistant id ->
    /// the NAME of the environment variable holding that project's API key (never the key).
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, String>,
    /// Engramia server: the limits engram paces its requests to, the body and record limits of
    /// one `/v1/import`, and what to do with a server that does not embed on import.
    #[serde(default)]
    pub server: crate::sink::rest::ServerConfig,
}


#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// "openai" (any OpenAI-compatible /embeddings endpoint).
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default = "default_model")]
    pub model: String,
    /// Defaults to `[source] base_url`.
    pub base_url: Option<String>,
    /// Ask the API for shorter vectors (text-embedding-3-* only).
    pub dimensions: Option<u32>,
    /// Inputs per embeddings request (the API allows at most 2048).
    #[serde(default = "default_embed_batch")]
    pub batch_inputs: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    #[serde(default = "default_tenant")]
    pub tenant: String,
    #[serde(default = "default_project_template")]
    pub project: String,
    /// Used when the project template cannot be resolved for a thread.
    pub default_project: Option<String>,
    /// `[scope.assistants]`: assistant id -> the name `{assistant.name}` renders (exports
    /// without assistant objects carry only ids; for the other kinds it renames).
    #[serde(default)]
    pub assistants: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternsConfig {
    #[serde(default = "default_eval_score")]
    pub eval_score: f64,
    /// An answer that did not finish (message `incomplete` / `in_progress`, or its run did not
    /// complete): skipped, or kept with `incomplete_score`.
    #[serde(default)]
    pub incomplete: crate::map::IncompletePolicy,
    /// The score of kept incomplete answers; below `eval_score` (default: half of it).
    #[serde(default)]
    pub incomplete_score: Option<f64>,
    #[serde(default = "default_task_max")]
    pub task_max_chars: usize,
    #[serde(default = "default_code_max")]
    pub code_max_chars: usize,
    #[serde(default = "default_classification")]
    pub classification: String,
    /// A new record whose task is a near-duplicate of a stored one (word Jaccard >= 0.92).
    #[serde(default)]
    pub on_duplicate: crate::plan::OnDuplicate,
}

impl Config {
    /// The settings Map reads, from the mapping (`migrate`, `init` and `verify` map alike).
    pub fn map_settings(&self) -> crate::map::MapSettings {
        let m = &self.mapping;
        crate::map::MapSettings {
            tenant: m.scope.tenant.clone(),
            project_template: self.project_template.clone(),
            default_project: m.scope.default_project.clone(),
            eval_score: m.patterns.eval_score,
            incomplete: m.patterns.incomplete,
            incomplete_score: m.patterns.incomplete_score(),
            task_max_chars: m.patterns.task_max_chars,
            code_max_chars: m.patterns.code_max_chars,
            classification: m.patterns.classification.clone(),
        }
    }
}

impl PatternsConfig {
    /// `incomplete_score`, or half of `eval_score`.
    pub fn incomplete_score(&self) -> f64 {
        self.incomplete_score.unwrap_or(self.eval_score / 2.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillsConfig {
    /// Read run steps to learn which functions a run called.
    #[serde(default = "default_true")]
    pub from_run_steps: bool,
    /// Conversations: `custom_tool_call` items tag the answer with the tool's name.
    #[serde(default = "default_true")]
    pub custom_tools: bool,
    /// Conversations: `mcp_call` items tag the answer with `<server_label>.<name>`.
    #[serde(default = "default_true")]
    pub mcp_tools: bool,
    /// Conversations: built-in tool calls (`web_search_call`, `file_search_call`,
    /// `code_interpreter_call`, ...) tag the answer with the tool's type (`web_search`, ...).
    #[serde(default = "default_true")]
    pub builtin_tools: bool,
}

fn default_source_kind() -> String { "openai".into() }
/// `concurrency = "auto"` or `concurrency = 8`.
fn concurrency_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Concurrency, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(i64),
        Text(String),
    }
    match Value::deserialize(d)? {
        Value::Text(t) if t == "auto" => Ok(Concurrency::Auto),
        Value::Text(t) => Err(serde::de::Error::custom(format!("expected \"auto\" or a number 1..=64, got {t:?}"))),
        Value::Number(n) => usize::try_from(n)
            .map(Concurrency::Fixed)
            .map_err(|_| serde::de::Error::custom(format!("expected \"auto\" or a number 1..=64, got {n}"))),
    }
}
fn default_timeout() -> u64 { 60 }
fn default_max_attempts() -> u32 { 6 }
fn default_target_url() -> String { "./engramia_data".into() }
fn default_batch_size() -> usize { 2048 }
fn default_provider() -> String { "openai".into() }
fn default_model() -> String { "text-embedding-3-small".into() }
fn default_embed_batch() -> usize { 2048 }
fn default_tenant() -> String { "default".into() }
fn default_project_template() -> String { "{assistant.name}".into() }
fn default_eval_score() -> f64 { 5.0 }
fn default_task_max() -> usize { 2000 }
fn default_code_max() -> usize { 8000 }
fn default_classification() -> String { "internal".into() }
fn default_true() -> bool { true }
fn default_max_bytes() -> u64 { 64 << 20 }
fn default_extract_timeout() -> u64 { 30 }
fn default_chunk_tokens() -> usize { 500 }
fn default_chunk_overlap() -> usize { 50 }

/// Largest `chunk_tokens`: a chunk plus its filename must fit one embedding input (8192 tokens).
pub const MAX_CHUNK_TOKENS: usize = 8000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Migrate the files assistants and threads used (file_search stores, code_interpreter
    /// files, attachments, cited and generated files) as chunk patterns.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Your own copies of files OpenAI does not serve, named by file id or original filename.
    pub local_dir: Option<PathBuf>,
    /// Largest file (download, parsed text or local copy) engram reads, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Seconds one file's text extraction may take before the file is skipped.
    #[serde(default = "default_extract_timeout")]
    pub extract_timeout_secs: u64,
    /// Chunk size in cl100k_base tokens.
    #[serde(default = "default_chunk_tokens")]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks (less than chunk_tokens).
    #[serde(default = "default_chunk_overlap")]
    pub chunk_overlap: usize,
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                toml::from_str("").expect("every field of this section has a default")
            }
        }
    )*};
}
default_from_serde!(SourceConfig, TargetConfig, EmbeddingConfig, ScopeConfig, PatternsConfig, SkillsConfig, FilesConfig);

/// A configuration problem: exit code 2, nothing written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The mapping after validation, with paths resolved against the mapping file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub mapping: Mapping,
    pub mapping_path: PathBuf,
    pub base_url: String,
    pub embedding_base_url: String,
    pub threads_file: Option<PathBuf>,
    pub source_kind: SourceKind,
    /// `[source] path` (a file, glob or directory), resolved against the mapping's directory.
    pub source_path: Option<PathBuf>,
    /// `[source] conversations_file`, resolved.
    pub conversations_file: Option<PathBuf>,
    pub project_template: ScopeTemplate,
    /// `[files] local_dir`, resolved against the mapping file's directory.
    pub files_local_dir: Option<PathBuf>,
    /// `[agents] out_dir`, resolved against the mapping file's directory.
    pub agents_out_dir: Option<PathBuf>,
    /// `[source] shard` (or `--shard`, set by the command): the part of the account this run takes.
    pub shard: Option<crate::shard::Shard>,
}

impl Config {
    /// Reads and validates a mapping file. `env_base_url` is `OPENAI_BASE_URL` (passed in so
    /// that this stays free of process state).
    pub fn load(path: &Path, env_base_url: Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read mapping file {}: {e}\n  hint: pass --config PATH to an existing mapping.toml (the repository's mapping.toml is a commented example)",
                path.display()
            ))
        })?;
        let mapping = parse_mapping(&text, path)?;
        Config::from_mapping(mapping, path, env_base_url)
    }

    pub fn from_mapping(mapping: Mapping, path: &Path, env_base_url: Option<String>) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };

        let base_url = mapping
            .source
            .base_url
            .clone()
            .or(env_base_url.filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let base_url = base_url.trim_end_matches('/').to_string();
        if let Err(e) = url::Url::parse(&base_url) {
            problems.push(format!("[source] base_url {base_url:?} is not a URL: {e}"));
        }
        let embedding_base_url = mapping
            .embedding
            .base_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| base_url.clone());

        let source_kind = SourceKind::parse(&mapping.source.kind);
        match source_kind {
            Some(kind) => problems.extend(source_problems(kind, &mapping)),
            None => problems.push(format!(
                "[source] kind {:?} is not supported; use one of {}",
                mapping.source.kind,
                SourceKind::ALL.map(|k| format!("{:?}", k.as_str())).join(", ")
            )),
        }
        if let Concurrency::Fixed(n) = mapping.source.concurrency
            && (n == 0 || n > crate::http::limiter::MAX_CONCURRENCY)
        {
            problems.push(format!("[source] concurrency must be \"auto\" or 1..=64, got {n}"));
        }
        let shard = match mapping.source.shard.as_deref().map(crate::shard::Shard::parse) {
            Some(Err(e)) => {
                problems.push(format!("[source] {e}"));
                None
            }
            Some(Ok(s)) => Some(s),
            None => None,
        };
        if mapping.source.requests_per_minute == Some(0) {
            problems.push("[source] requests_per_minute must be at least 1 (or removed, to follow the server's headers)".to_string());
        }
        if mapping.source.max_attempts == 0 {
            problems.push("[source] max_attempts must be at least 1".to_string());
        }
        if mapping.embedding.provider != "openai" {
            problems.push(format!(
                "[embedding] provider {:?} is not supported; use \"openai\" (any OpenAI-compatible /embeddings endpoint)",
                mapping.embedding.provider
            ));
        }
        if mapping.embedding.batch_inputs == 0 || mapping.embedding.batch_inputs > 2048 {
            problems.push(format!(
                "[embedding] batch_inputs must be 1..=2048 (the API's limit), got {}",
                mapping.embedding.batch_inputs
            ));
        }
        if mapping.embedding.dimensions == Some(0) {
            problems.push("[embedding] dimensions must be at least 1".to_string());
        }
        if let Some(s) = mapping.patterns.incomplete_score
            && !(0.0..mapping.patterns.eval_score).contains(&s)
        {
            problems.push(format!(
                "[patterns] incomplete_score must be at least 0.0 and below eval_score ({}), got {s}: an unfinished answer must rank below finished ones",
                mapping.patterns.eval_score
            ));
        }
        if !(0.0..=10.0).contains(&mapping.patterns.eval_score) {
            problems.push(format!(
                "[patterns] eval_score must be between 0.0 and 10.0 (Engramia skips patterns outside it), got {}",
                mapping.patterns.eval_score
            ));
        }
        if mapping.patterns.task_max_chars == 0 || mapping.patterns.code_max_chars == 0 {
            problems.push("[patterns] task_max_chars and code_max_chars must be at least 1".to_string());
        }
        let files_local_dir = mapping.files.local_dir.as_deref().map(resolve);
        problems.extend(files_problems(&mapping.files, files_local_dir.as_deref()));
        if mapping.target.batch_size == 0 {
            problems.push("[target] batch_size must be at least 1".to_string());
        }
        problems.extend(crate::sink::rest::config_problems(&mapping.target.keys, &mapping.target.server));
        if mapping.scope.tenant.trim().is_empty() {
            problems.push("[scope] tenant must not be empty".to_string());
        }
        let project_template = match ScopeTemplate::parse(&mapping.scope.project) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!("[scope] project: {e}"));
                None
            }
        };
        // An NDJSON export has no thread metadata: such a template could never resolve.
        if let (Some(SourceKind::Ndjson), Some(t)) = (source_kind, &project_template)
            && let Some(key) = t.metadata_keys().first()
            && mapping.scope.default_project.is_none()
        {
            problems.push(format!(
                "[scope] project uses {{thread.metadata.{key}}}, but an NDJSON export carries no thread metadata; use {{assistant.name}}, {{assistant.id}} or {{thread.id}}, or set [scope] default_project"
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigError(format!(
                "{}: {} problem{}:\n  - {}",
                path.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems.join("\n  - ")
            )));
        }
        let threads_file = mapping.source.threads_file.as_deref().map(resolve);
        Ok(Config {
            project_template: project_template.expect("checked above"),
            source_kind: source_kind.expect("checked above"),
            source_path: mapping.source.path.as_deref().map(|p| resolve(Path::new(p))),
            conversations_file: mapping.source.conversations_file.as_deref().map(resolve),
            threads_file,
            files_local_dir,
            agents_out_dir: mapping.agents.out_dir.as_deref().map(resolve),
            shard,
            base_url,
            embedding_base_url,
            mapping_path: path.to_path_buf(),
            mapping,
        })
    }

    /// The target URL: `--target` wins over `[target] url`; a relative directory is relative to
    /// the mapping file when it came from the file, and to the working directory when given on
    /// the command line.
    pub fn target_url(&self, cli_target: Option<&str>) -> String {
        if let Some(t) = cli_target {
            return t.to_string();
        }
        let url = &self.mapping.target.url;
        if url.contains("://") || Path::new(url).is_absolute() {
            url.clone()
        } else {
            let dir = self.mapping_path.parent().unwrap_or(Path::new(""));
            dir.join(url).to_string_lossy().into_owned()
        }
    }
}

/// `[source] kind`: which Source reads the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The Assistants API over HTTP (live, recorded or replayed).
    OpenAi,
    /// Engramia's NDJSON export, one message per line.
    Ndjson,
    /// An `assistants-thread-export/v1` directory (`engram export`, or the exporter it follows).
    ExportDir,
    /// The Responses API's Conversations, by id.
    Conversations,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [SourceKind::OpenAi, SourceKind::Ndjson, SourceKind::ExportDir, SourceKind::Conversations];

    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::OpenAi => "openai",
            SourceKind::Ndjson => "ndjson",
            SourceKind::ExportDir => "export-dir",
            SourceKind::Conversations => "conversations",
        }
    }
}

/// `[source]` keys each kind needs, and those it would silently ignore (an error, so that a
/// mapping never looks as if it did something it does not).
fn source_problems(kind: SourceKind, m: &Mapping) -> Vec<String> {
    let s = &m.source;
    let mut problems = Vec::new();
    let name = kind.as_str();
    let mut unused = |key: &str, set: bool| {
        if set {
            problems.push(format!("[source] {key} is not used by kind {name:?}; remove it"));
        }
    };
    unused("threads_file", s.threads_file.is_some() && kind != SourceKind::OpenAi);
    unused("path", s.path.is_some() && !matches!(kind, SourceKind::Ndjson | SourceKind::ExportDir));
    unused("conversations_file", s.conversations_file.is_some() && kind != SourceKind::Conversations);
    let required = |what: &str| format!("[source] {what} is required for kind {name:?}");
    match kind {
        SourceKind::OpenAi if s.threads_file.is_none() => problems.push(
            "[source] threads_file is required: the API cannot list threads, so engram reads their ids from a file (one per line)"
                .to_string(),
        ),
        SourceKind::Ndjson if s.path.as_deref().is_none_or(|p| p.trim().is_empty()) => problems.push(format!(
            "{}: the NDJSON export to read, a file or a glob such as \"exports/*.ndjson\"",
            required("path")
        )),
        SourceKind::ExportDir if s.path.as_deref().is_none_or(|p| p.trim().is_empty()) => problems.push(format!(
            "{}: the export directory (the one holding manifest.json and threads/)",
            required("path")
        )),
        SourceKind::Conversations => {
            if s.conversations_file.is_none() {
                problems.push(format!(
                    "{}: a file of conversation ids (conv_...), one per line; the API cannot list conversations",
                    required("conversations_file")
                ));
            }
            if !m.scope.assistants.is_empty() {
                problems.push("[scope.assistants] does not apply to kind \"conversations\": conversations have no assistant".to_string());
            }
            let uses_assistant = ScopeTemplate::parse(&m.scope.project).is_ok_and(|t| t.uses_assistant());
            if uses_assistant && m.scope.default_project.is_none() {
                problems.push(format!(
                    "[scope] project = {:?} names the assistant, but conversations have none; use {{thread.id}} or {{thread.metadata.KEY}} (the conversation's metadata), or set [scope] default_project",
                    m.scope.project
                ));
            }
        }
        _ => {}
    }
    for (id, name) in &m.scope.assistants {
        if id.trim().is_empty() || name.trim().is_empty() {
            problems.push(format!("[scope.assistants] {id:?} = {name:?}: the assistant id and the name must both be non-empty"));
        }
    }
    problems
}

/// `[files]`: sizes that make sense, and a local_dir that is a directory.
fn files_problems(files: &FilesConfig, local_dir: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    if files.max_bytes == 0 {
        problems.push("[files] max_bytes must be at least 1".to_string());
    }
    if files.extract_timeout_secs == 0 {
        problems.push("[files] extract_timeout_secs must be at least 1".to_string());
    }
    if files.chunk_tokens == 0 || files.chunk_tokens > MAX_CHUNK_TOKENS {
        problems.push(format!(
            "[files] chunk_tokens must be 1..={MAX_CHUNK_TOKENS} (a chunk is embedded as one input of at most 8192 tokens), got {}",
            files.chunk_tokens
        ));
    } else if files.chunk_overlap >= files.chunk_tokens {
        problems.push(format!(
            "[files] chunk_overlap ({}) must be less than chunk_tokens ({})",
            files.chunk_overlap, files.chunk_tokens
        ));
    }
    if let Some(dir) = local_dir.filter(|d| !d.is_dir()) {
        problems.push(format!(
            "[files] local_dir {} is not a directory (relative paths are relative to the mapping file)",
            dir.display()
        ));
    }
    problems
}

/// Parses mapping TOML; errors carry file, line, column, and for unknown keys the nearest one.
pub fn parse_mapping(text: &str, path: &Path) -> Result<Mapping, ConfigError> {
    toml::from_str::<Mapping>(text).map_err(|e| {
        let mut msg = String::new();
        let (line, col) = e
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or((0, 0));
        if line > 0 {
            msg.push_str(&format!("{}:{line}:{col}: ", path.display()));
        } else {
            msg.push_str(&format!("{}: ", path.display()));
        }
        msg.push_str(e.message().trim());
        if let Some(hint) = unknown_key_hint(e.message()) {
            msg.push_str(&format!("\n  hint: {hint}"));
        }
        ConfigError(msg)
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| before.len() - i).unwrap_or(before.len() + 1);
    (line, col)
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" builds "did you mean `a`?".
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let unknown = rest.split('`').next()?;
    let expected: Vec<&str> = rest
        .split("expected ")
        .nth(1)?
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let best = expected
        .iter()
        .map(|c| (strsim::jaro_winkler(unknown, c), *c))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(if best.0 >= 0.7 {
        format!("did you mean `{}`? (valid keys here: {})", best.1, expected.join(", "))
    } else {
        format!("valid keys here: {}", expected.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let m = parse_mapping(text, Path::new("/cfg/mapping.toml"))?;
        Config::from_mapping(m, Path::new("/cfg/mapping.toml"), None)
    }

    #[test]
    fn the_issue_example_parses() {
        let c = load(
            r#"
[source]
base_url = "http://127.0.0.1:9999/v1"   # comment
threads_file = "thread_ids.txt"
[target]
url = "./engramia_data"
[embedding]
provider = "openai"
model = "text-embedding-3-small"
[scope]
tenant = "acme"
project = "{assistant.name}"
"#,
        )
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9999/v1");
        assert_eq!(c.embedding_base_url, c.base_url);
        assert_eq!(c.threads_file.clone().unwrap(), Path::new("/cfg/thread_ids.txt"));
        assert_eq!(c.mapping.patterns.task_max_chars, 2000);
        assert_eq!(c.target_url(None), "/cfg/./engramia_data");
        assert_eq!(c.target_url(Some("out")), "out");
    }

    #[test]
    fn unknown_key_names_line_and_nearest() {
        let e = load("[source]\nthreads_file = \"t\"\n[scope]\nprojct = \"x\"\n").unwrap_err().0;
        assert!(e.contains("mapping.toml:4:1"), "{e}");
        assert!(e.contains("did you mean `project`"), "{e}");
    }

    #[test]
    fn type_error_names_line() {
        let e = load("[source]\nthreads_file = \"t\"\n[patterns]\neval_score = \"high\"\n").unwrap_err().0;
        assert!(e.contains(":4:"), "{e}");
    }

    #[test]
    fn bad_template_and_values_are_all_reported() {
        let e = load("[source]\nthreads_file = \"t\"\n[scope]\nproject = \"{assistant.title}\"\n[patterns]\neval_score = 11.0\n")
            .unwrap_err()
            .0;
        assert!(e.contains("2 problems"), "{e}");
        assert!(e.contains("{assistant.title}"), "{e}");
        assert!(e.contains("eval_score"), "{e}");
    }

    #[test]
    fn base_url_falls_back_to_env_then_default() {
        let m = parse_mapping("[source]\nthreads_file = \"t\"\n", Path::new("m.toml")).unwrap();
        let c = Config::from_mapping(m.clone(), Path::new("m.toml"), Some("http://x/v1/".into())).unwrap();
        assert_eq!(c.base_url, "http://x/v1");
        let c = Config::from_mapping(m, Path::new("m.toml"), None).unwrap();
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
    }
}

#[cfg(test)]
mod files_section {
    use super::*;

    fn load(files: &str) -> Result<Config, ConfigError> {
        let text = format!("[source]\nthreads_file = \"t\"\n[files]\n{files}");
        Config::from_mapping(parse_mapping(&text, Path::new("/cfg/mapping.toml"))?, Path::new("/cfg/mapping.toml"), None)
    }

    #[test]
    fn defaults() {
        let c = load("").unwrap();
        let f = &c.mapping.files;
        assert!(f.enabled);
        assert_eq!((f.max_bytes, f.extract_timeout_secs, f.chunk_tokens, f.chunk_overlap), (64 << 20, 30, 500, 50));
        assert_eq!(c.files_local_dir, None);
    }

    #[test]
    fn local_dir_is_resolved_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let mapping = dir.path().join("mapping.toml");
        std::fs::create_dir(dir.path().join("copies")).unwrap();
        let text = "[source]\nthreads_file = \"t\"\n[files]\nlocal_dir = \"copies\"\n";
        let c = Config::from_mapping(parse_mapping(text, &mapping).unwrap(), &mapping, None).unwrap();
        assert_eq!(c.files_local_dir.unwrap(), dir.path().join("copies"));
        let e = load("local_dir = \"/nonexistent/copies\"").unwrap_err().0;
        assert!(e.contains("[files] local_dir /nonexistent/copies is not a directory"), "{e}");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let e = load("max_bytes = 0\nextract_timeout_secs = 0\nchunk_tokens = 100\nchunk_overlap = 100\n").unwrap_err().0;
        assert!(e.contains("3 problems"), "{e}");
        assert!(e.contains("max_bytes") && e.contains("extract_timeout_secs") && e.contains("chunk_overlap (100)"), "{e}");
        let e = load("chunk_tokens = 9000").unwrap_err().0;
        assert!(e.contains("chunk_tokens must be 1..=8000"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_hint() {
        let e = load("chunk_token = 400").unwrap_err().0;
        assert!(e.contains("did you mean `chunk_tokens`"), "{e}");
    }
}

#[cfg(test)]
mod shipped_mappings {
    use super::*;

    /// The documented default and the demo mapping must stay valid as the model changes.
    #[test]
    fn repository_mappings_parse_and_validate() {
        for (name, text) in [
            ("mapping.toml", include_str!("../mapping.toml")),
            ("fixtures/demo/mapping.toml", include_str!("../fixtures/demo/mapping.toml")),
        ] {
            let m = parse_mapping(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            Config::from_mapping(m, Path::new(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[cfg(test)]
mod source_kinds {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_mapping(parse_mapping(text, Path::new("/cfg/mapping.toml"))?, Path::new("/cfg/mapping.toml"), None)
    }

    #[test]
    fn each_kind_with_its_keys() {
        let c = load("[source]\nkind = \"ndjson\"\npath = \"exports/*.ndjson\"\n[scope.assistants]\n\"asst_1\" = \"coder\"\n").unwrap();
        assert_eq!(c.source_kind, SourceKind::Ndjson);
        assert_eq!(c.source_path.unwrap(), Path::new("/cfg/exports/*.ndjson"));
        assert_eq!(c.mapping.scope.assistants["asst_1"], "coder");
        let c = load("[source]\nkind = \"export-dir\"\npath = \"/data/export\"\n").unwrap();
        assert_eq!((c.source_kind, c.source_path.unwrap()), (SourceKind::ExportDir, PathBuf::from("/data/export")));
        let c = load("[source]\nkind = \"conversations\"\nconversations_file = \"conv.txt\"\n[scope]\nproject = \"{thread.metadata.team}\"\n").unwrap();
        assert_eq!(c.conversations_file.unwrap(), Path::new("/cfg/conv.txt"));
        // The default template names the assistant: fine with a default_project.
        load("[source]\nkind = \"conversations\"\nconversations_file = \"c\"\n[scope]\ndefault_project = \"chat\"\n").unwrap();
    }

    #[test]
    fn missing_and_misplaced_keys_are_all_named() {
        let e = load("[source]\nkind = \"ndjson\"\nthreads_file = \"t\"\n").unwrap_err().0;
        assert!(e.contains("2 problems"), "{e}");
        assert!(e.contains("[source] threads_file is not used by kind \"ndjson\"") && e.contains("[source] path is required for kind \"ndjson\""), "{e}");
        let e = load("[source]\nkind = \"export-dir\"\n").unwrap_err().0;
        assert!(e.contains("path is required for kind \"export-dir\""), "{e}");
        let e = load("[source]\nkind = \"openai\"\nthreads_file = \"t\"\npath = \"x\"\nconversations_file = \"c\"\n").unwrap_err().0;
        assert!(e.contains("path is not used") && e.contains("conversations_file is not used"), "{e}");
        let e = load("[source]\nkind = \"conversations\"\n[scope.assistants]\n\"asst_1\" = \"x\"\n").unwrap_err().0;
        assert!(e.contains("3 problems"), "{e}");
        assert!(e.contains("conversations_file is required") && e.contains("[scope.assistants] does not apply"), "{e}");
        assert!(e.contains("names the assistant, but conversations have none"), "{e}");
        let e = load("[source]\nkind = \"ndjson\"\npath = \"x\"\n[scope.assistants]\n\"asst_1\" = \" \"\n").unwrap_err().0;
        assert!(e.contains("must both be non-empty"), "{e}");
    }

    #[test]
    fn ndjson_cannot_resolve_thread_metadata() {
        let e = load("[source]\nkind = \"ndjson\"\npath = \"x.ndjson\"\n[scope]\nproject = \"{thread.metadata.team}\"\n").unwrap_err().0;
        assert!(e.contains("{thread.metadata.team}") && e.contains("no thread metadata"), "{e}");
        load("[source]\nkind = \"ndjson\"\npath = \"x.ndjson\"\n[scope]\nproject = \"{thread.metadata.team}\"\ndefault_project = \"all\"\n").unwrap();
    }

    #[test]
    fn unknown_kind_lists_the_kinds() {
        let e = load("[source]\nkind = \"jsonl\"\n").unwrap_err().0;
        assert!(e.contains(r#""openai", "ndjson", "export-dir", "conversations""#), "{e}");
    }
}
