//! Run with: `cargo run -p example-multi-agent`
//!
//! An orchestrator spawns three concurrent researcher agents with `tokio::spawn` and then a
//! writer, each calling tools, all traced with llmtap-sdk in direct mode (the SDK's
//! `TracedClient` records every model call). Against the built-in mock upstream by default;
//! against OpenAI when `OPENAI_API_KEY` is set (`OPENAI_BASE_URL` and `LLMTAP_EXAMPLE_MODEL`
//! override the URL and model) — that needs TLS in this process:
//! `OPENAI_API_KEY=sk-... cargo run -p example-multi-agent --features tls`.
//!
//! Spans go where `llmtap_sdk::init()` says (`.llmtap/traces.jsonl` by default, OTLP with
//! `OTEL_EXPORTER_OTLP_ENDPOINT`); see the tree with `llmtap tree .llmtap/traces.jsonl`.

use example_multi_agent::{DEFAULT_MODEL, Mode, Options, run, start_mock};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = llmtap_sdk::init()?;
    let key = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let model = std::env::var("LLMTAP_EXAMPLE_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.to_owned());
    let (mock, base_url) = match &key {
        Some(_) => (
            None,
            std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into()),
        ),
        None => {
            let (mock, base) = start_mock().await?;
            (Some(mock), base)
        }
    };
    eprintln!("multi-agent: model calls go to {base_url}");
    let summary = run(
        &guard,
        Options {
            base_url,
            api_key: key,
            model,
            mode: Mode::Direct,
            session: "multi-agent-example".into(),
        },
    )
    .await?;
    println!("{}", summary.report);
    let stats = guard.shutdown().await;
    if let Some(mock) = mock {
        mock.shutdown().await;
    }
    let written = stats.jsonl.map_or_else(
        || "no JSONL file (LLMTAP_JSONL=off)".to_owned(),
        |s| format!("{} spans written to the JSONL file", s.written),
    );
    eprintln!(
        "multi-agent: {} model calls traced; {written}",
        summary.calls
    );
    Ok(())
}
