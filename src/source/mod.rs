//! Source: where OpenAI objects come from. `openai` reads the HTTP API (live, recorded or
//! replayed through `transport`); the thread-id list is parsed here because the API cannot
//! list threads.

pub mod fixtures;
pub mod openai;
pub mod retry;
pub mod transport;

use crate::record::Warning;

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
    Transport(#[from] transport::TransportError),
}

/// Parses a thread-id file: one id per line; blank lines and `#` comments (whole-line or
/// trailing) are ignored. Lines that are not thread ids, and repeats, become warnings.
pub fn parse_thread_ids(text: &str, file_name: &str) -> (Vec<String>, Vec<Warning>) {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut warnings = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let place = format!("{file_name}:{}", n + 1);
        if !is_thread_id(line) {
            let shown: String = line.chars().take(80).collect();
            warnings.push(Warning::new(
                "invalid_thread_id",
                place,
                format!("{shown:?} is not a thread id (expected thread_ followed by letters, digits, - or _); line skipped"),
            ));
        } else if !seen.insert(line.to_string()) {
            warnings.push(Warning::new("duplicate_thread_id", place, format!("{line} is listed again; read once")));
        } else {
            ids.push(line.to_string());
        }
    }
    (ids, warnings)
}

fn is_thread_id(s: &str) -> bool {
    s.strip_prefix("thread_").is_some_and(|rest| {
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
