//! Files replaced atomically: a reader, or a crash, sees the old file or the new one.
//! The JSON directory sink, the export writer and the rejects file all write this way.

use std::io::Write as _;
use std::path::Path;

/// How the temporary file of a write is named: `.engram-<random>.tmp`. It must not end in
/// .json: Engramia lists every *.json as a key.
const TEMP_PREFIX: &str = ".engram-";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is the temporary file of a write (one a killed process may leave behind).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Replaces `path` with `bytes` (creating its directory): written to a temporary file beside it,
/// synced, then renamed over it. The error names the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let io = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let dir = path.parent().ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.json");
        super::write_atomic(&path, b"one").unwrap();
        super::write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}
