//! Direct mode: `TracedClient` records model calls with the core codecs — JSON answers, streams
//! read to the end, streams and futures dropped early, upstream failures — and never records a
//! call twice when an llmtap proxy is on the way.

mod support;

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use llmtap_mock::{MockConfig, MockUpstream, SCENARIO_HEADER};
use llmtap_sdk::TracedClient;
use llmtap_tests::spans::RecordedSpan;
use serde_json::{Value, json};
use support::Tree;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn chat(stream: bool) -> Value {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "Say hello to bob@example.com"}],
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn model_span(tree: &Tree) -> &RecordedSpan {
    let spans: Vec<_> = tree
        .spans
        .iter()
        .filter(|s| s.attr_str("gen_ai.operation.name").as_deref() == Some("chat"))
        .collect();
    assert_eq!(spans.len(), 1, "exactly one model span");
    spans[0]
}

#[tokio::test]
async fn json_call_is_one_client_span_under_its_agent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let client = TracedClient::new(reqwest::Client::new());
    let body = chat(false);
    let usage = llmtap_mock::chat_usage(&body).context("usage")?;

    let agent = guard
        .agent("greeter")
        .root()
        .id("g-1")
        .conversation_id("s-1")
        .meta("team", "docs")
        .start();
    let request = client
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .json(&body)
        .build()?;
    let response = client.execute_in(&*agent, request).await?;
    assert!(response.is_recorded());
    let answer: Value = response.json().await?;
    assert_eq!(answer["object"], "chat.completion");
    agent.tool("lookup").start().end();
    agent.end();
    let port = mock.addr().port();
    let tree = Tree::new(support::finish(guard, &path).await?);
    mock.shutdown().await;

    let span = model_span(&tree);
    assert_eq!(span.name(), "chat gpt-4o-mini");
    assert_eq!(llmtap_tests::spans::kind_name(span.kind()), "client");
    assert_eq!(
        llmtap_tests::spans::status_name(span.status_code()),
        "unset"
    );
    assert_eq!(
        tree.parent(span).map(RecordedSpan::name),
        Some("invoke_agent greeter")
    );
    let s = |k: &str| span.attr_str(k);
    assert_eq!(s("gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(s("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(span.attr_i64("server.port"), Some(i64::from(port)));
    assert_eq!(s("gen_ai.agent.name").as_deref(), Some("greeter"));
    assert_eq!(s("gen_ai.agent.id").as_deref(), Some("g-1"));
    assert_eq!(s("gen_ai.conversation.id").as_deref(), Some("s-1"));
    assert_eq!(s("llmtap.meta.team").as_deref(), Some("docs"));
    assert_eq!(
        s("llmtap.http.route").as_deref(),
        Some("/v1/chat/completions")
    );
    assert_eq!(
        s("gen_ai.response.id"),
        answer["id"].as_str().map(str::to_owned)
    );
    assert_eq!(span.attr("gen_ai.request.temperature"), Some(json!(0.2)));
    assert_eq!(
        span.attr_i64("gen_ai.usage.input_tokens"),
        Some(i64::try_from(usage.prompt_tokens)?)
    );
    assert_eq!(
        span.attr_i64("gen_ai.usage.output_tokens"),
        Some(i64::try_from(usage.completion_tokens)?)
    );
    assert_eq!(span.attr_i64("http.response.status_code"), Some(200));
    let input = s("gen_ai.input.messages").context("input captured")?;
    assert!(
        input.contains("[REDACTED:email]") && !input.contains("bob@example.com"),
        "{input}"
    );
    assert!(span.attr("gen_ai.output.messages").is_some());
    let agent_span = tree.one("invoke_agent greeter");
    // Known from its one model call: semconv requires the provider on `invoke_agent`.
    assert_eq!(
        agent_span.attr_str("gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    // The tool span names the agent that ran it.
    let tool_span = tree.one("execute_tool lookup");
    assert_eq!(
        tool_span.attr_str("gen_ai.agent.name").as_deref(),
        Some("greeter")
    );
    assert_eq!(
        tool_span.attr_str("gen_ai.agent.id").as_deref(),
        Some("g-1")
    );
    assert_eq!(
        agent_span.attr_i64("llmtap.usage.total.input_tokens"),
        Some(i64::try_from(usage.prompt_tokens)?)
    );
    Ok(())
}

#[tokio::test]
async fn stream_read_to_the_end_records_usage_ttfc_and_output() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let client = TracedClient::new(reqwest::Client::new());
    let body = chat(true);
    let usage = llmtap_mock::chat_usage(&body).context("usage")?;
    let content = llmtap_mock::chat_content(&body).context("content")?;

    let agent = guard.agent("streamer").root().start();
    let request = client
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .json(&body)
        .build()?;
    let mut stream = client.execute_in(&*agent, request).await?.bytes_stream();
    let mut raw = Vec::new();
    while let Some(chunk) = stream.next().await {
        raw.extend_from_slice(&chunk?);
    }
    drop(stream);
    agent.end();
    let tree = Tree::new(support::finish(guard, &path).await?);
    mock.shutdown().await;

    assert!(String::from_utf8_lossy(&raw).ends_with("data: [DONE]\n\n"));
    let span = model_span(&tree);
    assert_eq!(span.attr("gen_ai.request.stream"), Some(json!(true)));
    assert!(span.attr("error.type").is_none());
    assert_eq!(
        span.attr_i64("gen_ai.usage.output_tokens"),
        Some(i64::try_from(usage.completion_tokens)?)
    );
    assert!(matches!(
        span.attr("gen_ai.response.time_to_first_chunk"),
        Some(Value::Number(_))
    ));
    assert_eq!(
        span.attr("gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
    let output: Value =
        serde_json::from_str(&span.attr_str("gen_ai.output.messages").context("output")?)?;
    // The mock echoes the address; the output is redacted like the input.
    let redacted = content.replace("bob@example.com", "[REDACTED:email]");
    assert_ne!(redacted, content);
    assert_eq!(output[0]["parts"][0]["content"], json!(redacted));
    Ok(())
}

/// Serves one SSE answer in the style of vLLM's `continuous_usage_stats` (usage on every chunk),
/// then holds the connection open without ever ending the stream.
async fn endless_stream_server() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut buf).await;
        let mut out = String::from(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        for (i, piece) in ["Hel", "lo wor"].iter().enumerate() {
            let event = json!({
                "id": "chatcmpl-partial", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}],
                "usage": {"prompt_tokens": 12, "completion_tokens": i + 1, "total_tokens": 13 + i},
            });
            let data = format!("data: {event}\n\n");
            out.push_str(&format!("{:x}\r\n{data}\r\n", data.len()));
        }
        let _ = socket.write_all(out.as_bytes()).await;
        let _ = socket.flush().await;
        // Never finish: only the client can end this exchange.
        let _ = socket.read(&mut buf).await;
    });
    Ok((url, task))
}

#[tokio::test]
async fn dropped_stream_ends_one_span_with_partial_output_and_usage() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let (url, server) = endless_stream_server().await?;
    let client = TracedClient::new(reqwest::Client::new());

    let agent = guard.agent("impatient").root().start();
    let request = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat(true))
        .build()?;
    let mut stream = client.execute_in(&*agent, request).await?.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("lo wor") {
        let chunk = stream.next().await.context("stream ended early")??;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream); // mid-way: the server never sent the end
    let totals = agent.totals();
    agent.end();
    let tree = Tree::new(support::finish(guard, &path).await?);
    server.abort();

    assert_eq!(
        totals.output_tokens,
        Some(2),
        "partial usage counted in the agent"
    );
    let span = model_span(&tree);
    assert_eq!(
        llmtap_tests::spans::status_name(span.status_code()),
        "error"
    );
    assert_eq!(
        span.attr_str("error.type").as_deref(),
        Some("client_disconnected")
    );
    assert_eq!(span.attr_i64("gen_ai.usage.input_tokens"), Some(12));
    assert_eq!(span.attr_i64("gen_ai.usage.output_tokens"), Some(2));
    assert_eq!(
        span.attr("gen_ai.response.finish_reasons"),
        Some(json!(["error"]))
    );
    assert_eq!(
        span.attr_str("gen_ai.response.id").as_deref(),
        Some("chatcmpl-partial")
    );
    let output: Value =
        serde_json::from_str(&span.attr_str("gen_ai.output.messages").context("output")?)?;
    assert_eq!(output[0]["parts"][0]["content"], json!("Hello wor"));
    assert_eq!(
        tree.one("invoke_agent impatient")
            .attr_i64("llmtap.usage.total.output_tokens"),
        Some(2)
    );
    Ok(())
}

#[tokio::test]
async fn dropped_response_future_ends_its_span_as_cancelled() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let client = TracedClient::new(reqwest::Client::new());

    let agent = guard.agent("hasty").root().start();
    let request = client
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header(SCENARIO_HEADER, "hang")
        .json(&chat(false))
        .build()?;
    let outcome = tokio::time::timeout(
        Duration::from_millis(100),
        client.execute_in(&*agent, request),
    )
    .await;
    assert!(
        outcome.is_err(),
        "the mock never answers, so the future is dropped by the timeout"
    );
    agent.end();
    let tree = Tree::new(support::finish(guard, &path).await?);
    mock.shutdown().await;

    let span = model_span(&tree);
    assert_eq!(
        span.attr_str("error.type").as_deref(),
        Some("client_disconnected")
    );
    assert!(span.attr("http.response.status_code").is_none());
    assert_eq!(
        tree.parent(span).map(RecordedSpan::name),
        Some("invoke_agent hasty")
    );
    Ok(())
}

#[tokio::test]
async fn upstream_failures_are_classified() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let client = TracedClient::new(reqwest::Client::new());
    let closed = llmtap_tests::closed_port();
    let agent = guard.agent("unlucky").root().start();

    // A stream the server cuts after two events.
    let request = client
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header(SCENARIO_HEADER, "hangup-after:2")
        .json(&chat(true))
        .build()?;
    let mut stream = client.execute_in(&*agent, request).await?.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        failed |= chunk.is_err();
    }
    assert!(failed, "the cut stream surfaces as an error");
    // A 429 with an OpenAI error body.
    let request = client
        .post(format!("{}/v1/chat/completions", mock.base_url()))
        .header(SCENARIO_HEADER, "error:429")
        .json(&chat(false))
        .build()?;
    let response = client.execute_in(&*agent, request).await?;
    assert_eq!(response.status().as_u16(), 429);
    let _ = response.bytes().await?;
    // Nobody listening.
    let request = client
        .post(format!("{}/v1/chat/completions", closed.url()))
        .json(&chat(false))
        .build()?;
    assert!(client.execute_in(&*agent, request).await.is_err());
    agent.end();
    let tree = Tree::new(support::finish(guard, &path).await?);
    mock.shutdown().await;

    let mut errors: Vec<String> = tree
        .named("chat gpt-4o-mini")
        .iter()
        .map(|s| s.attr_str("error.type").unwrap_or_default())
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "rate_limit_exceeded",
            "stream_truncated",
            "upstream_unreachable"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn non_model_requests_pass_unrecorded() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let client = TracedClient::new(reqwest::Client::new());
    let agent = guard.agent("lister").root().start();
    let request = client
        .inner()
        .get(format!("{}/v1/models", mock.base_url()))
        .build()?;
    let response = client.execute_in(&*agent, request).await?;
    assert!(!response.is_recorded());
    assert_eq!(response.status().as_u16(), 200);
    let _ = response.bytes().await?;
    agent.end();
    let tree = Tree::new(support::finish(guard, &path).await?);
    mock.shutdown().await;
    assert_eq!(tree.spans.len(), 1, "only the agent span");
    Ok(())
}

/// A tool call named by the model carries captured strings too: name, call id and description
/// are redacted like the arguments.
#[tokio::test]
async fn tool_name_call_id_and_description_are_redacted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let secret = format!("ghp_{}", "a1B2c3D4e5".repeat(4));
    let agent = guard.agent("caller").start();
    agent
        .tool(format!("lookup_{secret}"))
        .call_id(format!("call {secret}"))
        .description(format!("uses {secret}"))
        .arguments(&json!({"token": secret}))
        .start()
        .end();
    agent.end();
    let spans = support::finish(guard, &path).await?;
    let text = std::fs::read_to_string(&path)?;
    anyhow::ensure!(spans.len() == 2, "{} spans", spans.len());
    anyhow::ensure!(!text.contains(&secret), "leaked: {text}");
    anyhow::ensure!(text.contains("[REDACTED:github_token]"), "{text}");
    Ok(())
}
