//! engram's version for `--version` and reports: the package version and the git commit it was
//! built from (see build.rs; "unknown commit" when built outside a git checkout).

/// "0.1.0 (abc123def456)".
pub const LONG: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ENGRAM_GIT_COMMIT"), ")");

pub fn long() -> &'static str {
    LONG
}
