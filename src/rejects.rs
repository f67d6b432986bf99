//! The rejects file: every item a run could not finish (a thread the server kept failing on, a
//! record the target refused, a file that could not be read), one JSON object per line, so
//! that `engram migrate --retry-failed FILE` can re-run just those.
//!
//! Where: `<report>.rejects.jsonl` beside `--report FILE`, else `engram-rejects.jsonl` in the
//! working directory. Written (atomically) only when there are rejects; a run without any
//! removes the file an earlier run left at that path, so it never lists failures that are gone.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name used when no `--report` is given.
pub const DEFAULT_FILE: &str = "engram-rejects.jsonl";

/// Stage names. A thread: fetching it (thread, messages, runs, steps) failed.
pub const STAGE_THREAD: &str = "thread";
/// A file: fetching or extracting it failed.
pub const STAGE_FILE: &str = "file";
/// A record: the target refused it.
pub const STAGE_WRITE: &str = "write";

/// One failed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The OpenAI id of the item (`thread_...`, `file-...`), or the record key for writes.
    pub id: String,
    /// Which stage gave up on it: `thread`, `file` or `write`.
    pub stage: String,
    /// What went wrong, as the user reads it (never a secret: messages are built from
    /// requests and server answers with the key scrubbed).
    pub reason: String,
    /// Attempts made before giving up (1 when the failure was not worth retrying in-run).
    pub attempts: u32,
}

/// Where the rejects of a run go.
pub fn path_for(report: Option<&Path>) -> PathBuf {
    match report {
        Some(r) => {
            let mut name = r.as_os_str().to_os_string();
            name.push(".rejects.jsonl");
            PathBuf::from(name)
        }
        None => PathBuf::from(DEFAULT_FILE),
    }
}

/// What [`persist`] did, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persisted {
    Written(PathBuf),
    /// No rejects; an old file at the path was removed.
    RemovedStale(PathBuf),
    Nothing,
}

/// Writes `rejects` as JSON lines to `path` atomically, or, when there are none, removes a
/// rejects file an earlier run left there.
pub fn persist(rejects: &[Reject], path: &Path) -> Result<Persisted, String> {
    if rejects.is_empty() {
        return match std::fs::remove_file(path) {
            Ok(()) => Ok(Persisted::RemovedStale(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Persisted::Nothing),
            Err(e) => Err(format!("removing the old rejects file {}: {e}", path.display())),
        };
    }
    let mut bytes = Vec::new();
    for r in rejects {
        // A struct of strings and a number always serialises.
        serde_json::to_writer(&mut bytes, r).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
    }
    let target = if path.parent().is_some_and(|p| p.as_os_str().is_empty()) { Path::new(".").join(path) } else { path.to_path_buf() };
    crate::fs_atomic::write_atomic(&target, &bytes)
        .map_err(|e| format!("writing the rejects file {}: {e}", path.display()))?;
    Ok(Persisted::Written(path.to_path_buf()))
}

/// Reads a rejects file; errors name the file and the line.
pub fn read(path: &Path) -> Result<Vec<Reject>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("--retry-failed {}: {e}\n  hint: pass the rejects file an earlier run wrote (beside its --report, or {DEFAULT_FILE})", path.display())
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Reject = serde_json::from_str(line).map_err(|e| {
            format!(
                "--retry-failed {}:{}: not a rejects line ({e}); expected {{\"id\", \"stage\", \"reason\", \"attempts\"}} per line",
                path.display(),
                n + 1
            )
        })?;
        out.push(r);
    }
    Ok(out)
}

/// The distinct ids of one stage, in file order.
pub fn ids_of_stage(rejects: &[Reject], stage: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    rejects.iter().filter(|r| r.stage == stage && seen.insert(r.id.as_str())).map(|r| r.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(id: &str, stage: &str) -> Reject {
        Reject { id: id.into(), stage: stage.into(), reason: "HTTP 500 \"quoted\"\nnext".into(), attempts: 6 }
    }

    #[test]
    fn path_is_beside_the_report_or_in_the_working_directory() {
        assert_eq!(path_for(Some(Path::new("out/report.json"))), PathBuf::from("out/report.json.rejects.jsonl"));
        assert_eq!(path_for(None), PathBuf::from("engram-rejects.jsonl"));
    }

    #[test]
    fn round_trip_and_stale_file_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let items = vec![reject("thread_a", STAGE_THREAD), reject("file-b", STAGE_FILE), reject("thread_a", STAGE_THREAD)];
        assert_eq!(persist(&items, &path).unwrap(), Persisted::Written(path.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "one line per reject: {text}");
        assert_eq!(read(&path).unwrap(), items);
        assert_eq!(ids_of_stage(&items, STAGE_THREAD), vec!["thread_a"]);
        assert_eq!(persist(&[], &path).unwrap(), Persisted::RemovedStale(path.clone()));
        assert!(!path.exists());
        assert_eq!(persist(&[], &path).unwrap(), Persisted::Nothing);
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"id\":\"thread_a\",\"stage\":\"thread\",\"reason\":\"x\",\"attempts\":1}\n\nnot json\n").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("r.jsonl:3"), "{e}");
        let e = read(&dir.path().join("missing.jsonl")).unwrap_err();
        assert!(e.contains("missing.jsonl"), "{e}");
    }
}
