//! Command-line interface (clap). Only definitions: `run` does the work.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "engram",
    version = crate::version::LONG,
    about = "Move OpenAI Assistants data (threads, messages, runs, tools) into Engramia",
    long_about = "Move OpenAI Assistants data into Engramia.\n\nStart with `engram init`, then `engram migrate --dry-run`, `engram migrate`, and `engram verify` to prove every record is recalled in its scope.\n\nengram reads assistants, threads (by id), messages, runs, run steps, files and vector stores from the OpenAI API, a compatible server, recorded fixtures, or exports ([source] kind: openai, ndjson, export-dir, conversations); maps user->assistant turns to Engramia patterns, function tools to skills and documents to chunk patterns; embeds each pattern's task; and writes Engramia's own storage: a JSON directory, a PostgreSQL + pgvector database, or a running Engramia server's REST API. Several runs (`--shard I/N`) may write one database at once; `engram status` shows them.\n\nExit codes: 0 done (warnings are in the report), 1 failed (nothing half-written), 2 usage or configuration error (nothing written), 3 done with warnings under --strict (engram verify: a check failed), 130 interrupted by Ctrl-C (the batch in flight is finished and the report written; a second Ctrl-C stops at once; a rerun resumes)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate an account into Engramia (or, with --dry-run, print the plan).
    Migrate(MigrateArgs),
    /// Copy everything the API serves (assistants, threads, messages, runs, steps, files,
    /// vector stores) into a directory that `engram migrate` reads offline
    /// ([source] kind = "export-dir"). Ctrl-C stops it with exit 130, the manifest listing the
    /// threads written.
    Export(ExportArgs),
    /// Check a migrated store: every record present, valid by Engramia's rules and recalled
    /// by its question in its own scope. Read-only. Exit 0 passed, 3 a check failed.
    Verify(VerifyArgs),
    /// Show the runs into a target, from the target itself: for PostgreSQL every run (shard,
    /// host, pid, running / done / stopped / failed, progress) and which shards are left; for a
    /// JSON directory who holds its lock. Read-only.
    Status(StatusArgs),
    /// Write a commented mapping.toml for a source, filled from what engram can see there
    /// (never overwrites one), and print the next command.
    Init(InitArgs),
    /// Print a shell completion script: `engram completions bash > /etc/bash_completion.d/engram`.
    Completions(CompletionsArgs),
    /// Internal: prints one PDF's text as a JSON line. `engram migrate` runs it as a child
    /// process, so that a PDF that crashes or hangs the parser cannot stop the migration.
    #[command(hide = true)]
    ExtractPdf(ExtractPdfArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The mapping file the runs use ([target] url).
    #[arg(long, short, default_value = "mapping.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Overrides [target] url: the JSON directory or postgres:// URL to look at.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub target: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct ExtractPdfArgs {
    pub file: PathBuf,
    /// Exit after this many seconds whatever the parser is doing (the parent's own timeout
    /// normally kills it first; this covers a parent that died).
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The mapping file ([source] kind = "openai": base_url, threads_file, concurrency, ...).
    #[arg(long, short, default_value = "mapping.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// The directory to write: new, or empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// No progress bar and no summary (errors still print).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The mapping file; relative paths in it are relative to the file.
    #[arg(long, short, default_value = "mapping.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Overrides [target] url: a directory (Engramia's JSON storage) or a postgres:// URL
    /// (Engramia's PostgreSQL + pgvector database).
    #[arg(long, value_name = "DIR_OR_URL")]
    pub target: Option<String>,
    /// Write the run's report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Format of the --report file: json, or markdown for a pull-request review.
    #[arg(long, value_enum, default_value_t = ReportFormat::Json, value_name = "FORMAT")]
    pub report_format: ReportFormat,
    /// Include every record (key, action, reason, task excerpt, origin) in the report.
    #[arg(long)]
    pub report_detail: bool,
    /// Save every HTTP exchange into DIR (API keys and auth headers are never stored).
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer every request from a directory written by --record; no network, no key.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Read, map and plan everything, then stop: no file, table or embedding request.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-run only the items a rejects file lists (threads: instead of [source] threads_file).
    /// A run writes one beside --report FILE (FILE.rejects.jsonl), else engram-rejects.jsonl.
    #[arg(long, value_name = "FILE")]
    pub retry_failed: Option<PathBuf>,
    /// Migrate part I of N of the account (overrides [source] shard): threads, conversations,
    /// assistants' tools and files split by a fixed hash of their id, so that N processes, on
    /// one machine or several, migrate disjoint parts into the same Engramia. E.g. 2/3.
    #[arg(long, value_name = "I/N", value_parser = crate::shard::Shard::parse)]
    pub shard: Option<crate::shard::Shard>,
    /// Write the cutover code into DIR (overrides [agents] out_dir): one Python module per
    /// assistant defining its OpenAI Agents SDK Agent with Engramia memory in its scope.
    #[arg(long, value_name = "DIR")]
    pub agents: Option<PathBuf>,
    /// Exit with code 3 when the run finished with warnings.
    #[arg(long)]
    pub strict: bool,
    /// No progress bar and no summary table (errors still print).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Markdown,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// openai, ndjson, export-dir or conversations. Default: export-dir for a directory
    /// --path; for a file, ndjson when it holds JSON lines, conversations for conv_ ids,
    /// else openai (a thread id list); openai without --path.
    #[arg(long, value_name = "KIND")]
    pub source_kind: Option<String>,
    /// The NDJSON file or export directory (for openai: the thread id file; for
    /// conversations: the conversation id file).
    #[arg(long, value_name = "P")]
    pub path: Option<PathBuf>,
    /// [target] url: a directory or a postgres:// URL.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub target: Option<String>,
    /// [source] base_url of an OpenAI-compatible server (default: OPENAI_BASE_URL, else OpenAI).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The file to write; an existing file is never overwritten.
    #[arg(long, short, default_value = "mapping.toml", value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The mapping file the migration ran with ([embedding] model, [target] url).
    #[arg(long, short, default_value = "mapping.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Overrides [target] url: the JSON directory or postgres:// URL to check.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub target: Option<String>,
    /// Records queried per scope (chosen with --seed).
    #[arg(long, default_value_t = 300, value_name = "N", conflicts_with = "all")]
    pub sample: usize,
    /// Query every record.
    #[arg(long)]
    pub all: bool,
    /// Chooses the sample and each file chunk's sentence; the same seed, the same queries.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A record counts as recalled when it is among the first K results.
    #[arg(long, short = 'k', default_value_t = 5, value_name = "K")]
    pub k: usize,
    /// Exit 3 when recall@K of any scope is below this.
    #[arg(long, default_value_t = 0.95, value_name = "FRACTION")]
    pub min_recall: f64,
    /// Write the report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Format of the --report file: json, or markdown.
    #[arg(long, value_enum, default_value_t = ReportFormat::Json, value_name = "FORMAT")]
    pub report_format: ReportFormat,
    /// Embed the queries from a recording (`engram migrate --record DIR`): no network, no key.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Check presence and validity, and count the embedding requests recall would make and
    /// their cost; embed and search nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No summary (errors still print).
    #[arg(long, short)]
    pub quiet: bool,
}
