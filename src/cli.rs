//! Command-line interface (clap). Only definitions: `run` does the work.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "engram",
    version,
    about = "Move OpenAI Assistants data (threads, messages, runs, tools) into Engramia",
    long_about = "Move OpenAI Assistants data into Engramia.\n\nengram reads assistants, threads (by id), messages, runs and run steps from the OpenAI API, a compatible server, or recorded fixtures; maps user->assistant turns to Engramia patterns and function tools to skills; embeds each pattern's task; and writes Engramia's own storage.\n\nExit codes: 0 done (warnings are in the report), 1 failed (nothing half-written), 2 usage or configuration error (nothing written), 3 done with warnings under --strict."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate an account into Engramia (or, with --dry-run, print the plan).
    Migrate(MigrateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The mapping file; relative paths in it are relative to the file.
    #[arg(long, short, default_value = "mapping.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Overrides [target] url: a directory (Engramia JSON storage).
    #[arg(long, value_name = "DIR_OR_URL")]
    pub target: Option<String>,
    /// Write the run's report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Save every HTTP exchange into DIR (API keys and auth headers are never stored).
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer every request from a directory written by --record; no network, no key.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Read, map and plan everything, then stop: no file, table or embedding request.
    #[arg(long)]
    pub dry_run: bool,
    /// Exit with code 3 when the run finished with warnings.
    #[arg(long)]
    pub strict: bool,
    /// No progress bar and no summary table (errors still print).
    #[arg(long, short)]
    pub quiet: bool,
}
