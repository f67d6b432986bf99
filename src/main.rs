//! engram's entry point: parse, run, print the error once, map it to an exit code.

use clap::Parser;
use engram::cli::{Cli, Command};
use engram::app::{Env, RunError};
use engram::pipeline::migrate;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match try_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("engram: error: {e}");
            ExitCode::from(match e {
                RunError::Config(_) => 2,
                RunError::Failed(_) => 1,
            })
        }
    }
}

fn try_main(cli: Cli) -> Result<ExitCode, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Failed(format!("starting the async runtime: {e}")))?;
    let env = Env::from_process();
    {
        // The listener must be registered inside the runtime, before any work starts.
        let _guard = runtime.enter();
        if let Err(e) = env.interrupt.listen() {
            tracing::warn!("Ctrl-C will stop engram at once: cannot listen for it ({e})");
        }
    }
    match cli.command {
        Command::Export(args) => {
            let report = runtime.block_on(engram::export::export(&args, &env))?;
            if !args.quiet {
                print!("{}", report.render_text());
            }
            if report.interrupted {
                return Ok(ExitCode::from(130));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(args) => {
            use clap::CommandFactory;
            clap_complete::generate(args.shell, &mut Cli::command(), "engram", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => {
            engram::init::init(&args, &env)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let report = runtime.block_on(engram::verify::verify(&args, &env))?;
            if !args.quiet {
                print!("{}", report.render_text());
            }
            Ok(ExitCode::from(if report.passed { 0 } else { 3 }))
        }
        Command::Status(args) => {
            let report = runtime.block_on(engram::status::status(&args, &env))?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&report).map_err(|e| RunError::Failed(e.to_string()))?),
                false => print!("{}", report.render_text()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ExtractPdf(args) => Ok(ExitCode::from(engram::extract::pdf::child_main(&args.file, args.timeout_secs))),
        Command::Migrate(args) => {
            let report = runtime.block_on(migrate(&args, &env))?;
            if !args.quiet {
                print!("{}", report.render_text());
            }
            if report.interrupted {
                return Ok(ExitCode::from(130));
            }
            if args.strict && !report.warnings.is_empty() {
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Log lines go to stderr; `ENGRAM_LOG=debug` shows retries and per-thread progress.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENGRAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
