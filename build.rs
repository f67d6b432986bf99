//! Records the git commit engram is built from (`ENGRAM_GIT_COMMIT`, shown by `--version`).
//! Outside a git checkout (a source tarball, a vendored copy) or without git it says so
//! instead of failing the build.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(_) => format!("{c}, modified"),
            None => c,
        },
        None => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=ENGRAM_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, packed refs, the index.
    if let (Some(git_dir), Some(common)) = (git(&["rev-parse", "--absolute-git-dir"]), git(&["rev-parse", "--git-common-dir"])) {
        let git_dir = PathBuf::from(git_dir);
        let common = if PathBuf::from(&common).is_absolute() { PathBuf::from(common) } else { std::env::current_dir().unwrap_or_default().join(common) };
        let mut watch = vec![git_dir.join("HEAD"), git_dir.join("index"), common.join("packed-refs")];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(common.join(r));
        }
        for p in watch.into_iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
