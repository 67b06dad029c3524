//! `llmtap`: the command-line entry point. Each subcommand lives in its own module with an
//! `Args` struct and a `run(args) -> ExitCode`; `main` only parses and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod push;

/// OpenTelemetry-native tracing for LLM calls.
#[derive(Debug, Parser)]
#[command(name = "llmtap", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-send a JSONL trace file to an OTLP collector.
    Push(push::Args),
}

fn main() -> ExitCode {
    init_logging();
    match Cli::parse().command {
        Command::Push(args) => push::run(args),
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
