//! `llmtap mock`: the built-in OpenAI/Anthropic/Gemini-shaped upstream (`llmtap-mock`, the one
//! `llmtap demo` uses) as a server of its own, so `llmtap mock` + `llmtap proxy` + any client is
//! a tour that needs no API key and no network.

use std::process::ExitCode;
use std::time::Duration;

use llmtap_mock::{MockConfig, MockUpstream, SCENARIO_HEADER};

use crate::{EXIT_UNAVAILABLE, EXIT_USAGE};

/// Where the mock listens unless told otherwise: next to the proxy's 8421.
pub const DEFAULT_MOCK_LISTEN: &str = "127.0.0.1:8420";

/// Flags of `llmtap mock`.
#[derive(Debug, clap::Args)]
pub struct MockArgs {
    /// Address to listen on (a host name such as localhost works too) [default: 127.0.0.1:8420]
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Milliseconds before every response head, like a model's time to first byte
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Milliseconds between two streamed events
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub chunk_delay_ms: u64,
    /// Stream every answer in exactly this many pieces [default: one per word]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub chunks: Option<u32>,
}

/// Serves until SIGINT or SIGTERM.
pub async fn run(args: &MockArgs) -> anyhow::Result<ExitCode> {
    let raw = args.listen.as_deref().unwrap_or(DEFAULT_MOCK_LISTEN);
    let addr = match llmtap_proxy::config::resolve_listen(raw) {
        Ok(addr) => addr,
        Err(reason) => {
            eprintln!("llmtap mock: invalid value {raw:?} for --listen: {reason}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let listener = match llmtap_proxy::listen::bind(addr) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("llmtap mock: cannot listen on {addr} (--listen): {err}");
            return Ok(ExitCode::from(EXIT_UNAVAILABLE));
        }
    };
    let config = MockConfig {
        latency: Duration::from_millis(args.latency_ms),
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        chunks: args.chunks.map(|n| n as usize),
        // A long-running server keeps no copies of what it was sent.
        record_limit: 0,
        ..MockConfig::default()
    };
    let shutdown = crate::proxy_cmd::shutdown_signal("llmtap mock: shutting down");
    let mock = MockUpstream::start(listener, config)?;
    eprint!("{}", banner(&mock.base_url()));
    shutdown.await;
    mock.shutdown().await;
    eprintln!("llmtap mock stopped");
    Ok(ExitCode::SUCCESS)
}

/// What the mock answers and how to put the proxy in front of it.
fn banner(base: &str) -> String {
    format!(
        "llmtap mock listening on {base} (canned answers, token counts from the request; no key needed)\n\
         \x20 OpenAI     {base}/v1  (chat/completions, completions, embeddings, responses, models)\n\
         \x20 Anthropic  {base}/v1/messages\n\
         \x20 Gemini     {base}/v1beta/models/MODEL:generateContent | :streamGenerateContent\n\
         \x20 faults     header {SCENARIO_HEADER}: error:429, delay:2000, slow:200, hangup-after:3, malformed-json, hang …\n\
         next, in another terminal:\n\
         \x20 llmtap proxy --upstream-openai {base} --upstream-anthropic {base} --upstream-gemini {base}\n"
    )
}
