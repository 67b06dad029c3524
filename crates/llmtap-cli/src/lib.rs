//! The `llmtap` command line as a library, so tests run each subcommand in-process.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run`; [`main`] only
//! parses and dispatches. Exit codes follow sysexits (the README's table lists every one):
//! 64 usage/config (bad flag or variable, clap's own usage errors included), 65 input that is
//! not OTLP/JSON lines, 66 unreadable input, 69 unavailable (collector unreachable, listen address
//! taken), 73 output that cannot be created, 1 anything else (`show`: no span has the id).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llmtap_core::userinfo::mask_userinfo;

pub mod content;
pub mod cost;
pub mod demo;
pub mod export;
pub mod hist;
pub mod input;
pub mod mock_cmd;
pub mod paths;
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
/// Exit code for a service that cannot be reached or an address that cannot be listened on
/// (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

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
    #[command(after_help = proxy_cmd::env_help())]
    Proxy(proxy_cmd::ProxyArgs),
    /// Run the built-in mock upstream (OpenAI, Anthropic, Gemini shapes): try the proxy with no key.
    Mock(mock_cmd::MockArgs),
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` are not errors; a usage error is EX_USAGE, like a bad
            // value in the environment, instead of clap's own 2.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Proxy(args) => run_async(proxy_cmd::run(&args)),
        Command::Mock(args) => run_async(mock_cmd::run(&args)),
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
            eprintln!("llmtap: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: many errors already print their cause
/// (`cannot open x: No such file…`), and anyhow's `{:#}` would print it again. URL credentials
/// are masked.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    mask_userinfo(&line).into_owned()
}

/// Whether stderr gets colours: a terminal, and `NO_COLOR` unset or empty (no-color.org).
fn stderr_colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Log lines go to stderr with URL credentials masked, whatever logged them.
struct MaskedStderr;

impl std::io::Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(mask_userinfo(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_colours())
        .with_writer(|| MaskedStderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_says_each_cause_once_and_hides_credentials() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let outer = format!("cannot open trace file off: {io}");
        let err = anyhow::Error::new(io).context(outer);
        assert_eq!(
            error_chain(&err),
            "cannot open trace file off: No such file (os error 2)"
        );
        let err = anyhow::anyhow!("refused").context("cannot reach http://u:pw@h:1");
        assert_eq!(error_chain(&err), "cannot reach http://***@h:1: refused");
    }
}
