//! `openai-standin`: serves an account file over the OpenAI wire format (see the `engram_standin` library)
//! until it is killed. Prints exactly one line, `listening on http://HOST:PORT/v1`, once bound.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use engram_standin::{self as standin, Account, Faults, Options};

/// A stand-in OpenAI server (Assistants v2 GET routes, files, vector stores, embeddings)
/// serving a fixed account, for tests, recordings and benchmarks.
#[derive(Parser, Debug)]
#[command(name = "openai-standin", version)]
struct Args {
    /// The account to serve (JSON; format in fixtures/README.md).
    #[arg(long, value_name = "FILE", required_unless_present = "synthetic")]
    account: Option<PathBuf>,
    /// Serve a generated benchmark account instead: THREADSxMESSAGES[xFILES], e.g. 500x40x20.
    #[arg(long, value_name = "SPEC", conflicts_with = "account")]
    synthetic: Option<String>,
    /// With --synthetic: write the generated account's thread ids to FILE (one per line).
    #[arg(long, value_name = "FILE", requires = "synthetic")]
    write_thread_ids: Option<PathBuf>,
    /// Address to bind; loopback only unless --allow-non-loopback.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind; 0 picks a free one (read it from the printed line).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Require exactly this bearer key (default: any non-empty key).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Answer /v1/assistants* and /v1/threads* with 404, as OpenAI does since 2026-08-26.
    #[arg(long)]
    assistants_shut_down: bool,
    /// Answer every Nth /v1 request with 429 rate_limit_exceeded.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    fault_429_every: Option<u64>,
    /// Retry-After seconds sent with injected 429s.
    #[arg(long, value_name = "SECS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    retry_after: u64,
    /// Answer every Mth /v1 request with 500 server_error.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u64).range(1..))]
    fault_500_every: Option<u64>,
    /// Sleep this long before answering each /v1 request.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay_ms: u64,
    /// Reset the connection of every Kth /v1 request without answering.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    drop_every: Option<u64>,
    /// Allow this many /v1 requests per sliding minute, then answer 429.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    rate_limit_per_minute: Option<u64>,
    /// Allow this many embedding input tokens per sliding minute, then answer 429.
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(1..))]
    tokens_per_minute: Option<u64>,
    /// Answer each /v1 request after this many milliseconds (a real server's latency) ...
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// ... plus up to this many more (reproducible per arrival number).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    jitter_ms: u64,
    /// An embeddings request also takes this many microseconds per input.
    #[arg(long, value_name = "US", default_value_t = 0)]
    embed_us_per_input: u64,
    /// Allow binding an address other than loopback (the server has no TLS).
    #[arg(long)]
    allow_non_loopback: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.host.is_loopback() && !args.allow_non_loopback {
        eprintln!(
            "openai-standin: error: {} is not a loopback address; pass --allow-non-loopback to bind it anyway",
            args.host
        );
        return ExitCode::from(2);
    }
    match try_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openai-standin: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn try_main(args: Args) -> anyhow::Result<()> {
    let account = match (&args.account, &args.synthetic) {
        (Some(path), _) => Account::load(path)?,
        (None, Some(spec)) => {
            let dims: Vec<usize> = spec
                .split('x')
                .map(|n| n.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("--synthetic {spec:?}: expected THREADSxMESSAGES[xFILES], e.g. 500x40x20"))?;
            let (threads, messages, files) = match dims[..] {
                [t, m] => (t, m, 0),
                [t, m, f] => (t, m, f),
                _ => anyhow::bail!("--synthetic {spec:?}: expected THREADSxMESSAGES[xFILES]"),
            };
            let account = Account::from_json(standin::synthetic_account(threads, messages, files, 1))?;
            if let Some(path) = &args.write_thread_ids {
                std::fs::write(path, account.thread_ids().join("\n") + "\n")?;
            }
            account
        }
        (None, None) => anyhow::bail!("give --account FILE or --synthetic SPEC"),
    };
    let options = Options {
        api_key: args.api_key,
        assistants_shut_down: args.assistants_shut_down,
        faults: Faults {
            every_429: args.fault_429_every,
            retry_after_secs: args.retry_after,
            every_500: args.fault_500_every,
            delay_ms: args.delay_ms,
            drop_every: args.drop_every,
        },
        rate_limit_per_minute: args.rate_limit_per_minute,
        tokens_per_minute: args.tokens_per_minute,
        rate_window: None,
        timing: standin::Timing { latency_ms: args.latency_ms, jitter_ms: args.jitter_ms, embed_us_per_input: args.embed_us_per_input },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server =
            standin::serve(account, options, SocketAddr::new(args.host, args.port)).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.base_url)?;
        out.flush()?;
        drop(out);
        terminated().await;
        server.shutdown().await;
        Ok(())
    })
}

/// Resolves on ctrl-c or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
