//! The `llmtap` command line as a library, so tests run each subcommand in-process.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run`; [`main`] only
//! parses and dispatches. Exit codes follow sysexits: 64 usage/config, 65 input that is not
//! OTLP/JSON lines, 66 unreadable input, 73 output that cannot be created, 69 unreachable
//! service, 1 anything else (`show`: no span has the id).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod content;
pub mod cost;
pub mod demo;
pub mod export;
pub mod hist;
pub mod input;
pub mod proxy_cmd;
mod push;
pub mod row;
pub mod show;
pub mod spans;
pub mod stats;
pub mod tail;
pub mod timefmt;
pub mod tree;

/// Exit code for a usage or configuration error (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for an output file that cannot be created (EX_CANTCREAT).
pub const EXIT_CANT_CREATE: u8 = 73;
/// Exit code for an input file that is not OTLP/JSON lines (EX_DATAERR).
pub const EXIT_DATA_ERR: u8 = 65;
/// Exit code for an input file that cannot be read (EX_NOINPUT).
pub const EXIT_NO_INPUT: u8 = 66;

/// OpenTelemetry-native tracing for LLM calls and agent swarms.
#[derive(Debug, Parser)]
#[command(name = "llmtap", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the recording proxy: point any client's base_url here.
    Proxy(proxy_cmd::ProxyArgs),
    /// See it work: a built-in mock upstream, the proxy and a scripted multi-agent run.
    Demo(demo::DemoArgs),
    /// Print the agent trees of a JSONL trace file.
    Tree(tree::TreeArgs),
    /// The last N finished model calls, oldest to newest, one line each; then (-f) each new
    /// one as it is written.
    Tail(tail::TailArgs),
    /// One call in full (prompt, answer, usage, cost, timing, parent and children), by span
    /// id, response id or upstream request id.
    Show(show::ShowArgs),
    /// Calls, errors, tokens, latency and TTFT percentiles, cost, rate limits, grouped by
    /// model, agent, session, service, finish reason, metadata…
    Stats(stats::StatsArgs),
    /// Calls as flat JSONL or CSV, OpenAI fine-tuning examples, or filtered OTLP/JSON lines.
    Export(export::ExportArgs),
    /// Re-send a JSONL trace file to an OTLP collector.
    Push(push::Args),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    init_logging();
    match Cli::parse().command {
        Command::Proxy(args) => run_async(proxy_cmd::run(&args)),
        Command::Demo(args) => run_async(demo::run(&args)),
        Command::Tree(args) => tree::run(&args),
        Command::Tail(args) => tail::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Stats(args) => stats::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Push(args) => push::run(args),
    }
}

/// Runs an async subcommand on a multi-threaded runtime; errors print one line and exit 1.
fn run_async(fut: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("llmtap: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("llmtap: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
