//! One run at a time into a JSON directory: `_engram.lock` at its root (Engramia skips names
//! that start with `_`), created exclusively and holding who took it. A second run stops with
//! a message naming the holder; a lock whose process is gone (same host, no such pid, or a pid
//! now running something else) is stale and taken over. Removed when the run ends, also when it
//! fails; a killed run leaves it behind, stale.

use crate::sink::SinkError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "_engram.lock";

/// Who holds the lock (the file's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
}

impl Holder {
    fn describe(&self) -> String {
        format!("pid {} on host {}, since {}", self.pid, self.host, self.started_at)
    }

    /// False only when this machine can tell the process is gone: same host, and no process
    /// of that pid, or one that is not engram (the pid was reused).
    pub fn alive(&self) -> bool {
        if self.host != crate::sink::host_name() {
            return true;
        }
        let proc = Path::new("/proc");
        if !proc.join("self").exists() {
            return true; // no procfs: cannot tell, so assume it runs
        }
        match std::fs::read(proc.join(self.pid.to_string()).join("cmdline")) {
            Err(_) => false,
            Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("engram"),
        }
    }
}

/// The held lock; dropping it removes the file (if it is still this run's).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    holder: Holder,
}

/// A lock file that was taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Its holder's process is gone.
    Gone(Holder),
    /// It did not parse (a write of it cut short).
    Unreadable,
}

impl Stale {
    /// What the note about the takeover says of it.
    pub fn describe(&self) -> String {
        match self {
            Stale::Gone(h) => format!("a run that is gone ({})", h.describe()),
            Stale::Unreadable => "a lock file that did not parse".to_string(),
        }
    }
}

/// What taking the lock found.
#[derive(Debug)]
pub struct Taken {
    pub lock: DirLock,
    /// The stale lock this one replaced, if any.
    pub took_over: Option<Stale>,
}

/// Takes the lock of `root` (which must exist) for this process.
pub fn take(root: &Path) -> Result<Taken, SinkError> {
    let path = root.join(LOCK_FILE);
    let me = Holder { pid: std::process::id(), host: crate::sink::host_name(), started_at: crate::clock::now_iso8601() };
    let mut took_over = None;
    // Twice at most: once as it is, once after removing a stale lock.
    for _ in 0..2 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let body = serde_json::to_string_pretty(&me).expect("a holder serialises");
                f.write_all(body.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| SinkError::Io(format!("writing the lock file {}: {e}", path.display())))?;
                return Ok(Taken { lock: DirLock { path, holder: me }, took_over });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = read(&path);
                match holder {
                    Some(h) if h.alive() => {
                        return Err(SinkError::Config(format!(
                            "{} is being written by another engram run ({}; lock file {}).\n  Wait for it to finish and rerun, or migrate into another directory. If that process is gone (on another machine, say), delete {} and rerun. Nothing was written.",
                            root.display(),
                            h.describe(),
                            path.display(),
                            path.display()
                        )));
                    }
                    _ => {
                        // Dead holder, or a file that does not parse (a write cut short): stale.
                        std::fs::remove_file(&path)
                            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                            .map_err(|e| SinkError::Io(format!("removing the stale lock file {}: {e}", path.display())))?;
                        took_over = Some(holder.map_or(Stale::Unreadable, Stale::Gone));
                    }
                }
            }
            Err(e) => return Err(SinkError::Io(format!("creating the lock file {}: {e}", path.display()))),
        }
    }
    Err(SinkError::Io(format!("{}: another run took the lock file {} as this one removed a stale one; rerun", root.display(), path.display())))
}

/// Removes the temporary files of atomic writes (`fs_atomic::is_temporary`) anywhere below
/// `root`; only for the holder of the lock, when a dead run's may be left. Best effort.
pub fn sweep_temporaries(root: &Path) {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() && crate::fs_atomic::is_temporary(&name) => {
                    let _ = std::fs::remove_file(entry.path());
                }
                _ => {}
            }
        }
    }
}

/// The holder recorded in a lock file, if it is there and parses.
pub fn read(path: &Path) -> Option<Holder> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Only this run's own lock: never one a later run took over after this one was
        // thought dead.
        if read(&self.path).as_ref() == Some(&self.holder) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_and_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = take(dir.path()).unwrap();
        assert!(first.took_over.is_none());
        let e = take(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("another engram run"), "{e}");
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists(), "released on drop");

        // A process that has exited: its pid is free (or reused by something that is not engram).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Holder { pid, host: crate::sink::host_name(), started_at: "2026-12-07T00:00:00Z".into() };
        std::fs::write(dir.path().join(LOCK_FILE), serde_json::to_string(&dead).unwrap()).unwrap();
        std::fs::create_dir_all(dir.path().join("acme/bot/patterns")).unwrap();
        std::fs::write(dir.path().join("acme/bot/patterns/.engram-a1b2c3.tmp"), "{\"task\"").unwrap();
        std::fs::write(dir.path().join("acme/bot/patterns/p_1.json"), "{}").unwrap();
        let taken = take(dir.path()).unwrap();
        assert_eq!(taken.took_over, Some(Stale::Gone(dead)));
        sweep_temporaries(dir.path());
        assert!(!dir.path().join("acme/bot/patterns/.engram-a1b2c3.tmp").exists());
        assert!(dir.path().join("acme/bot/patterns/p_1.json").exists());
        assert_eq!(read(&dir.path().join(LOCK_FILE)).unwrap().pid, std::process::id(), "the lock now names this process");
    }

    #[test]
    fn a_holder_on_another_host_counts_as_alive_and_garbage_as_stale() {
        let h = Holder { pid: 1, host: "some-other-machine.example".into(), started_at: String::new() };
        assert!(h.alive());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "{\"pid\": 12").unwrap();
        let taken = take(dir.path()).unwrap();
        assert_eq!(taken.took_over, Some(Stale::Unreadable));
    }
}
