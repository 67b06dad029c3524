//! Run with: `cargo run -p example-through-proxy`
//!
//! The `multi-agent` program in proxy mode: `llmtap proxy` runs in this process
//! (`llmtap_proxy::App` on `127.0.0.1:0`), the agents' model calls go through it with plain
//! `reqwest` plus the SDK's `traceparent`/`x-llmtap-*` headers, and the proxy records each model
//! span — the SDK records only the agent and tool spans, so no call is counted twice. The tree is
//! the same as in direct mode.
//!
//! Upstream: the mock by default; OpenAI when `OPENAI_API_KEY` is set (the proxy does the TLS).
//! The SDK writes `.llmtap/traces.jsonl`, the proxy `.llmtap/proxy.jsonl` unless `LLMTAP_JSONL`
//! says otherwise; `llmtap tree .llmtap/traces.jsonl .llmtap/proxy.jsonl` shows them joined.

use example_multi_agent::{DEFAULT_MODEL, Mode, Options, run, start_mock};
use llmtap_core::env::ProcessEnv;
use llmtap_core::settings;
use llmtap_proxy::{App, Config, Overrides};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = llmtap_sdk::init()?;
    let key = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let model = std::env::var("LLMTAP_EXAMPLE_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.to_owned());
    let (mock, upstream) = match &key {
        Some(_) => (None, "https://api.openai.com".to_owned()),
        None => {
            let (mock, _) = start_mock().await?;
            let base = mock.base_url();
            (Some(mock), base)
        }
    };

    let config = Config::load(
        &Overrides::new()
            .with(&settings::LISTEN, "127.0.0.1:0")
            .with(&settings::JSONL, ".llmtap/proxy.jsonl")
            .with(&settings::UPSTREAM_OPENAI, upstream.clone()),
        &ProcessEnv,
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let proxy_url = format!("http://{}/v1", listener.local_addr()?);
    let app = App::build(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    eprintln!("through-proxy: agents → llmtap proxy {proxy_url} → {upstream}");

    let summary = run(
        &guard,
        Options {
            base_url: proxy_url,
            api_key: key,
            model,
            mode: Mode::Proxy,
            session: "through-proxy-example".into(),
        },
    )
    .await?;
    println!("{}", summary.report);
    let _ = stop.send(());
    let report = server.await??;
    let sdk = guard.shutdown().await;
    if let Some(mock) = mock {
        mock.shutdown().await;
    }
    let proxy_written = report.telemetry.jsonl.map_or_else(
        || "no JSONL file".to_owned(),
        |s| format!("{} spans written", s.written),
    );
    let sdk_written = sdk.jsonl.map_or_else(
        || "no JSONL file".to_owned(),
        |s| format!("{} spans written", s.written),
    );
    eprintln!(
        "through-proxy: {} model calls; proxy: {proxy_written}, SDK: {sdk_written}",
        summary.calls
    );
    Ok(())
}
