//! Source: where OpenAI objects come from. `openai` reads the HTTP API (live, recorded or
//! replayed through `transport`); `ndjson` and `export_dir` read exports made before the
//! shutdown; `conversations` reads the Responses API's Conversations. [`Source`] is the one
//! type the pipeline holds: a plain enum over the four kinds, each answering the same calls.
//! The thread-id list is parsed here because the API cannot list threads.

pub mod conversations;
pub mod export_dir;
pub mod ndjson;
pub mod openai;

pub use openai::ThreadFetch;

use crate::config::{Config, SourceKind};
use crate::model::{Assistant, FileObject};
use crate::record::Warning;
use openai::OpenAiSource;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The configured source. Every kind yields the same values (assistants, `ThreadBundle`s,
/// file objects), so Map, Plan, Embed and Sink never know which one read them.
pub enum Source {
    /// The Assistants API (live, recorded or replayed).
    OpenAi(Arc<OpenAiSource>),
    /// Engramia's NDJSON export: text messages only, assistants known by id.
    Ndjson(ndjson::NdjsonSource),
    /// An `assistants-thread-export/v1` directory: raw API objects, read offline.
    ExportDir(export_dir::ExportDirSource),
    /// Conversations of the Responses API, turned into thread bundles.
    Conversations(conversations::ConversationsSource),
}

/// A source ready to read, with the ids of the threads the run will ask it for (in order) and
/// the warnings met while finding them (bad id lines, malformed export lines).
pub struct Opened {
    pub source: Source,
    pub thread_ids: Vec<String>,
    pub warnings: Vec<Warning>,
}

impl Source {
    /// Opens `[source]`: reads the id file, or indexes the export. No network; an error is a
    /// configuration or input problem (exit 2, nothing written).
    pub fn open(config: &Config, api: Arc<OpenAiSource>) -> Result<Opened, String> {
        match config.source_kind {
            SourceKind::OpenAi => {
                let path = config.threads_file.as_deref().ok_or("[source] threads_file is required")?;
                let (thread_ids, warnings) = read_id_file(path, "threads_file", config, parse_thread_ids)?;
                Ok(Opened { source: Source::OpenAi(api), thread_ids, warnings })
            }
            SourceKind::Conversations => {
                let path = config.conversations_file.as_deref().ok_or("[source] conversations_file is required")?;
                let (thread_ids, warnings) = read_id_file(path, "conversations_file", config, conversations::parse_ids)?;
                Ok(Opened { source: Source::Conversations(conversations::ConversationsSource::new(api, conversations::ToolSkills::from(&config.mapping.skills))), thread_ids, warnings })
            }
            SourceKind::Ndjson => {
                let (source, thread_ids, warnings) = ndjson::NdjsonSource::open(config)?;
                Ok(Opened { source: Source::Ndjson(source), thread_ids, warnings })
            }
            SourceKind::ExportDir => {
                let (source, thread_ids, warnings) = export_dir::ExportDirSource::open(config)?;
                Ok(Opened { source: Source::ExportDir(source), thread_ids, warnings })
            }
        }
    }

    /// Every assistant the source knows, named by `[scope.assistants]` where it gives a name
    /// (ids it lists that the source does not are added, so that answers of assistants the
    /// source no longer holds still find their project).
    pub async fn list_assistants(&self, names: &BTreeMap<String, String>) -> Result<(Vec<Assistant>, Vec<Warning>), SourceError> {
        let (assistants, warnings) = match self {
            Source::OpenAi(api) => api.list_assistants().await?,
            Source::Ndjson(s) => (s.assistants(), Vec::new()),
            Source::ExportDir(s) => s.assistants().await?,
            Source::Conversations(_) => (Vec::new(), Vec::new()),
        };
        Ok((name_assistants(assistants, names), warnings))
    }

    /// One thread (for `conversations`, one conversation) as a bundle, or why it was skipped.
    pub async fn fetch_thread(&self, id: &str) -> Result<ThreadFetch, SourceError> {
        match self {
            Source::OpenAi(api) => api.fetch_thread(id).await,
            Source::Ndjson(s) => s.fetch_thread(id).await,
            Source::ExportDir(s) => s.fetch_thread(id).await,
            Source::Conversations(s) => s.fetch_thread(id).await,
        }
    }

    /// A file's metadata (for the filenames of citations), or None when the source does not
    /// have it. An export answers from what it holds, offline.
    pub async fn file(&self, id: &str) -> Result<Option<FileObject>, SourceError> {
        match self {
            Source::OpenAi(api) => api.file(id).await,
            Source::Conversations(s) => s.file(id).await,
            Source::ExportDir(s) => Ok(s.file(id).await),
            Source::Ndjson(_) => Ok(None),
        }
    }

    /// The API client the files stage reads files through: the export itself for an export
    /// directory (offline), else None (the run's own client).
    pub fn files_api(&self) -> Option<Arc<OpenAiSource>> {
        match self {
            Source::ExportDir(s) => Some(s.files_api(false)),
            _ => None,
        }
    }

    /// Parses a list of ids of what this source reads (threads, or conversations), as for
    /// `--retry-failed`.
    pub fn parse_ids(&self, text: &str, file_name: &str) -> (Vec<String>, Vec<Warning>) {
        match self {
            Source::Conversations(_) => conversations::parse_ids(text, file_name),
            _ => parse_thread_ids(text, file_name),
        }
    }

    /// The report's `source` line for sources that are not an API address; None for those
    /// that are (the caller knows the address, or the replay directory).
    pub fn describe(&self) -> Option<String> {
        match self {
            Source::OpenAi(_) | Source::Conversations(_) => None,
            Source::Ndjson(s) => Some(s.describe()),
            Source::ExportDir(s) => Some(s.describe()),
        }
    }
}

/// Applies `[scope.assistants]` names to the assistants a source listed, and adds the ids it
/// names that the source did not list (as assistants with a name and nothing else).
pub fn name_assistants(mut assistants: Vec<Assistant>, names: &BTreeMap<String, String>) -> Vec<Assistant> {
    for a in &mut assistants {
        if let Some(name) = names.get(&a.id) {
            a.name = Some(name.trim().to_string());
        }
    }
    for (id, name) in names {
        if !assistants.iter().any(|a| &a.id == id) {
            assistants.push(Assistant { id: id.clone(), name: Some(name.trim().to_string()), ..Default::default() });
        }
    }
    assistants
}

/// Reads a file of ids (`[source] <key>`), one per line, with `parse`.
fn read_id_file(
    path: &std::path::Path,
    key: &str,
    config: &Config,
    parse: fn(&str, &str) -> (Vec<String>, Vec<Warning>),
) -> Result<(Vec<String>, Vec<Warning>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "[source] {key} {}: {e}\n  hint: the path is relative to {}; the file lists one id per line",
            path.display(),
            config.mapping_path.display()
        )
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(parse(&text, &name))
}

/// A failure that stops the run (per-object problems are warnings instead).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "the API rejected the key (HTTP {status}: {message}).\n  The key came from OPENAI_API_KEY{org}; check that it is current and belongs to the organization/project that owns these assistants"
    )]
    Unauthorized { status: u16, message: String, org: String },
    #[error(
        "the Assistants API is shut down: {request} answered 404.\n  OpenAI turned the Assistants API off on 2026-08-26; its endpoints now answer 404 while files, vector stores and embeddings still work.\n  Inputs that still work:\n    - recorded fixtures: engram migrate --replay DIR (a directory written earlier with --record DIR)\n    - an export made before the shutdown (see README: exports)\n    - a compatible server that still serves the Assistants API: set [source] base_url in mapping.toml (or OPENAI_BASE_URL)\n  Nothing was written."
    )]
    AssistantsShutDown { request: String },
    #[error("{request} answered HTTP {status}: {message}")]
    Http { request: String, status: u16, message: String },
    #[error("{request}: the answer is not what the API documents: {message}")]
    Decode { request: String, message: String },
    #[error(transparent)]
    Transport(#[from] crate::http::transport::TransportError),
}

impl SourceError {
    /// A failure of one object (a file, a vector store, a thread's lookup) that the run records
    /// and goes on from, with its `errors[]` code; `Err(self)` for what stops the run (a
    /// rejected key, a replay that lacks the request, the Assistants shutdown).
    pub fn per_item(self) -> Result<ItemFailure, SourceError> {
        use crate::http::transport::TransportError;
        let code = match &self {
            SourceError::Http { status: 404, .. } => "not_found_or_expired",
            SourceError::Http { status: 403, .. } => "forbidden",
            SourceError::Http { .. }
            | SourceError::Decode { .. }
            | SourceError::Transport(TransportError::Exhausted { .. } | TransportError::Network { .. }) => "fetch_failed",
            _ => return Err(self),
        };
        Ok(ItemFailure { code, message: self.to_string() })
    }
}

/// One object given up on (see `SourceError::per_item`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    pub code: &'static str,
    pub message: String,
}

/// Parses a thread-id file: one id per line; blank lines and `#` comments (whole-line or
/// trailing) are ignored. Lines that are not thread ids, and repeats, become warnings.
pub fn parse_thread_ids(text: &str, file_name: &str) -> (Vec<String>, Vec<Warning>) {
    parse_prefixed_ids(text, file_name, "thread")
}

/// `parse_thread_ids` for ids `<prefix>_...`; warnings are `invalid_<prefix>_id` and
/// `duplicate_<prefix>_id`.
pub(crate) fn parse_prefixed_ids(text: &str, file_name: &str, prefix: &str) -> (Vec<String>, Vec<Warning>) {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut warnings = Vec::new();
    let noun = if prefix == "conv" { "conversation" } else { prefix };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let place = format!("{file_name}:{}", n + 1);
        if !is_prefixed_id(line, prefix) {
            let shown: String = line.chars().take(80).collect();
            warnings.push(Warning::new(
                &format!("invalid_{noun}_id"),
                place,
                format!("{shown:?} is not a {noun} id (expected {prefix}_ followed by letters, digits, - or _); line skipped"),
            ));
        } else if !seen.insert(line.to_string()) {
            warnings.push(Warning::new(&format!("duplicate_{noun}_id"), place, format!("{line} is listed again; read once")));
        } else {
            ids.push(line.to_string());
        }
    }
    (ids, warnings)
}

/// `thread_abc`, `conv_abc`: the prefix, `_`, then 1..=128 letters, digits, `-` or `_` (so an
/// id is also a safe file name).
pub(crate) fn is_prefixed_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 128 && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_id_file() {
        let (ids, w) = parse_thread_ids(
            "# header\n\nthread_abc\n  thread_def  # trailing comment\nnot-a-thread\nthread_abc\nthread_\nthread_a/../b\n",
            "ids.txt",
        );
        assert_eq!(ids, vec!["thread_abc", "thread_def"]);
        let kinds: Vec<_> = w.iter().map(|w| (w.kind.as_str(), w.id.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                ("invalid_thread_id", "ids.txt:5"),
                ("duplicate_thread_id", "ids.txt:6"),
                ("invalid_thread_id", "ids.txt:7"),
                ("invalid_thread_id", "ids.txt:8")
            ]
        );
    }
}
