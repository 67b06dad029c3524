//! End-to-end, in-process: mock upstream → real proxy on 127.0.0.1:0 → JSONL in a tempdir (and
//! the fake OTLP collector). Every outcome of a call leaves exactly one ended span with the right
//! status and `error.type`, and the client always gets the upstream's bytes unchanged.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::StatusCode;
use llmtap_core::semconv as sc;
use llmtap_core::settings;
use llmtap_proxy::Overrides;
use llmtap_tests::RecordedSpan;
use llmtap_tests::stack::{FixedUpstream, Stack, StackOptions, hang_up_after, read_body};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";

fn chat(model: &str, stream: bool) -> String {
    json!({
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the tracing team."}
        ],
        "temperature": 0.5,
        "max_tokens": 64,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"]
    })
    .to_string()
}

fn chat_with_usage(model: &str) -> String {
    let mut v: Value = serde_json::from_str(&chat(model, true)).unwrap_or_default();
    v["stream_options"] = json!({"include_usage": true});
    v.to_string()
}

/// The single span in `spans`, asserting there is exactly one.
fn only(spans: &[RecordedSpan]) -> &RecordedSpan {
    assert_eq!(
        spans.len(),
        1,
        "expected exactly one span, got {:?}",
        spans.iter().map(RecordedSpan::name).collect::<Vec<_>>()
    );
    &spans[0]
}

fn int(span: &RecordedSpan, key: &str) -> Option<i64> {
    span.attr_i64(key)
}

fn assert_unique_ids(spans: &[RecordedSpan]) {
    let mut ids: Vec<String> = spans.iter().map(RecordedSpan::span_id).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "a span was ended twice");
}

#[tokio::test]
async fn non_streaming_chat_becomes_one_complete_span() -> Result<()> {
    let mut stack = Stack::start().await?;
    let reply = stack
        .post(
            CHAT,
            &chat("gpt-4o-mini", false),
            &[("x-llmtap-agent", "planner")],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&reply.body)?;
    let traceresponse = reply.traceresponse().context("traceresponse missing")?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);

    assert_eq!(span.name(), "chat gpt-4o-mini");
    assert_eq!(
        span.kind(),
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client
    );
    assert_eq!(span.status_code(), OtlpStatus::Unset);
    assert_eq!(
        traceresponse,
        format!("00-{}-{}-01", span.trace_id(), span.span_id())
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_OPERATION_NAME).as_deref(),
        Some("chat")
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
        Some("openai")
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_REQUEST_MODEL).as_deref(),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_MODEL).as_deref(),
        body["model"].as_str()
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        body["id"].as_str()
    );
    assert_eq!(
        span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["stop"]))
    );
    assert_eq!(int(span, sc::GEN_AI_REQUEST_MAX_TOKENS), Some(64));
    assert_eq!(int(span, sc::GEN_AI_REQUEST_SEED), Some(7));
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TEMPERATURE), Some(json!(0.5)));
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TOP_P), Some(json!(0.9)));
    assert_eq!(
        span.attr(sc::GEN_AI_REQUEST_STOP_SEQUENCES),
        Some(json!(["END"]))
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        body["usage"]["prompt_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        body["usage"]["completion_tokens"].as_i64()
    );
    assert_eq!(
        span.attr_str(sc::OPENAI_RESPONSE_SYSTEM_FINGERPRINT)
            .as_deref(),
        body["system_fingerprint"].as_str()
    );
    assert_eq!(
        span.attr_str(sc::OPENAI_RESPONSE_SERVICE_TIER).as_deref(),
        body["service_tier"].as_str()
    );
    assert_eq!(
        span.attr_str(sc::SERVER_ADDRESS).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int(span, sc::SERVER_PORT),
        Some(i64::from(stack.mock.addr().port()))
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_AGENT_NAME).as_deref(),
        Some("planner")
    );
    assert!(span.attr_str(sc::LLMTAP_UPSTREAM_REQUEST_ID).is_some());
    assert!(span.attr(sc::ERROR_TYPE).is_none());

    let input: Value = serde_json::from_str(
        &span
            .attr_str(sc::GEN_AI_INPUT_MESSAGES)
            .context("input messages")?,
    )?;
    assert_eq!(input[1]["role"], "user");
    assert_eq!(
        input[1]["parts"][0]["content"],
        "Say hello to the tracing team."
    );
    let output: Value = serde_json::from_str(
        &span
            .attr_str(sc::GEN_AI_OUTPUT_MESSAGES)
            .context("output messages")?,
    )?;
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(
        output[0]["parts"][0]["content"],
        body["choices"][0]["message"]["content"]
    );
    Ok(())
}

#[tokio::test]
async fn streaming_with_usage_records_ttft_chunks_usage_and_output() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        mock: llmtap_mock::MockConfig {
            chunks: Some(5),
            chunk_delay: Duration::from_millis(5),
            ..Default::default()
        },
        ..Default::default()
    })
    .await?;
    let reply = stack.post(CHAT, &chat_with_usage("gpt-4o"), &[]).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    let mut content = String::new();
    let mut usage = Value::Null;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data)?;
        if let Some(piece) = chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            content.push_str(piece);
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
    let ttft = span
        .attr(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        .and_then(|v| v.as_f64())
        .context("ttft")?;
    assert!(ttft > 0.0 && ttft < 5.0, "ttft {ttft}");
    assert!(int(span, sc::LLMTAP_RESPONSE_CHUNK_COUNT).unwrap_or(0) >= 5);
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        usage["prompt_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        usage["completion_tokens"].as_i64()
    );
    assert!(
        span.attr(sc::LLMTAP_RESPONSE_OUTPUT_TOKENS_PER_SECOND)
            .is_some()
    );
    let output: Value = serde_json::from_str(
        &span
            .attr_str(sc::GEN_AI_OUTPUT_MESSAGES)
            .context("output")?,
    )?;
    assert_eq!(output[0]["parts"][0]["content"], content.as_str());
    assert_eq!(
        span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["stop"]))
    );
    Ok(())
}

#[tokio::test]
async fn streaming_without_usage_still_ends_cleanly() -> Result<()> {
    let mut stack = Stack::start().await?;
    let reply = stack.post(CHAT, &chat("gpt-4o-mini", true), &[]).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("data: [DONE]"));
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.status_code(), OtlpStatus::Unset);
    assert!(span.attr(sc::ERROR_TYPE).is_none());
    // Without include_usage the provider sends no counts; none are invented.
    assert!(span.attr(sc::GEN_AI_USAGE_INPUT_TOKENS).is_none());
    assert!(span.attr(sc::GEN_AI_OUTPUT_MESSAGES).is_some());
    Ok(())
}

#[tokio::test]
async fn streamed_tool_call_arguments_are_assembled() -> Result<()> {
    let mut stack = Stack::start().await?;
    let body = json!({
        "model": "gpt-4o",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    });
    let reply = stack.post(CHAT, &body.to_string(), &[]).await?;
    let mut arguments = String::new();
    for data in reply
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
    {
        if let Ok(chunk) = serde_json::from_str::<Value>(data)
            && let Some(piece) = chunk
                .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        {
            arguments.push_str(piece);
        }
    }
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(
        span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["tool_calls"]))
    );
    let output: Value = serde_json::from_str(
        &span
            .attr_str(sc::GEN_AI_OUTPUT_MESSAGES)
            .context("output")?,
    )?;
    let part = &output[0]["parts"][0];
    assert_eq!(part["type"], "tool_call");
    assert_eq!(part["name"], "get_weather");
    assert_eq!(
        part["arguments"],
        serde_json::from_str::<Value>(&arguments)?
    );
    let tools: Value = serde_json::from_str(
        &span
            .attr_str(sc::GEN_AI_TOOL_DEFINITIONS)
            .context("tool definitions")?,
    )?;
    assert_eq!(tools[0]["name"], "get_weather");
    Ok(())
}

#[tokio::test]
async fn n_choices_response_format_embeddings_and_completions() -> Result<()> {
    let mut stack = Stack::start().await?;
    let body = json!({
        "model": "gpt-4o-mini", "n": 2,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "Two JSON answers please"}]
    });
    assert_eq!(
        stack.post(CHAT, &body.to_string(), &[]).await?.status,
        StatusCode::OK
    );
    let emb =
        json!({"model": "text-embedding-3-small", "input": "hello", "encoding_format": "float"});
    assert_eq!(
        stack
            .post("/v1/embeddings", &emb.to_string(), &[])
            .await?
            .status,
        StatusCode::OK
    );
    let completion =
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon", "max_tokens": 8});
    let completion_reply = stack
        .post("/v1/completions", &completion.to_string(), &[])
        .await?;
    assert_eq!(completion_reply.status, StatusCode::OK);
    let completion_body: Value = serde_json::from_slice(&completion_reply.body)?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 3);
    let by_op = |op: &str| {
        spans
            .iter()
            .find(|s| s.attr_str(sc::GEN_AI_OPERATION_NAME).as_deref() == Some(op))
            .with_context(|| format!("no {op} span"))
    };
    let chat_span = by_op("chat")?;
    assert_eq!(int(chat_span, sc::GEN_AI_REQUEST_CHOICE_COUNT), Some(2));
    assert_eq!(
        chat_span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["stop", "stop"]))
    );
    assert_eq!(
        chat_span.attr_str(sc::GEN_AI_OUTPUT_TYPE).as_deref(),
        Some("json")
    );
    let emb_span = by_op("embeddings")?;
    assert_eq!(emb_span.name(), "embeddings text-embedding-3-small");
    assert!(int(emb_span, sc::GEN_AI_USAGE_INPUT_TOKENS).is_some());
    assert!(int(emb_span, sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT).unwrap_or(0) > 0);
    let text_span = by_op("text_completion")?;
    assert_eq!(
        text_span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!([completion_body["choices"][0]["finish_reason"]]))
    );
    assert_eq!(
        text_span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        completion_body["id"].as_str()
    );
    assert!(int(text_span, sc::GEN_AI_USAGE_OUTPUT_TOKENS).is_some());
    Ok(())
}

#[tokio::test]
async fn upstream_http_error_keeps_body_and_records_provider_code() -> Result<()> {
    let mut stack = Stack::start().await?;
    let reply = stack
        .post(
            CHAT,
            &chat("gpt-4o", false),
            &[("x-mock-scenario", "error:429")],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let body: Value = serde_json::from_slice(&reply.body)?;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let (report, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.status_code(), OtlpStatus::Error);
    assert_eq!(
        span.attr_str(sc::ERROR_TYPE).as_deref(),
        Some("rate_limit_exceeded")
    );
    assert_eq!(int(span, sc::HTTP_RESPONSE_STATUS_CODE), Some(429));
    assert_eq!(report.proxy.calls_failed, 1);
    Ok(())
}

#[tokio::test]
async fn upstream_hangup_mid_stream_is_stream_truncated_with_partial_output() -> Result<()> {
    let mut stack = Stack::start().await?;
    let response = stack
        .open_stream(CHAT, chat_with_usage("gpt-4o"), "chunks:8,hangup-after:3")
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    // The client sees the cut too (an error or an early end), never a made-up [DONE].
    if let Ok(body) = read_body(response.into_body()).await {
        assert!(!String::from_utf8_lossy(&body).contains("[DONE]"));
    }
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.status_code(), OtlpStatus::Error);
    assert_eq!(
        span.attr_str(sc::ERROR_TYPE).as_deref(),
        Some("stream_truncated")
    );
    let output: Value = serde_json::from_str(
        &span
            .attr_str(sc::GEN_AI_OUTPUT_MESSAGES)
            .context("partial output kept")?,
    )?;
    assert!(
        !output[0]["parts"][0]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn client_disconnect_mid_stream_ends_the_span_with_partial_output() -> Result<()> {
    let mut stack = Stack::start().await?;
    let response = stack
        .open_stream(CHAT, chat_with_usage("gpt-4o"), "chunks:50,slow:40")
        .await?;
    // Read a few chunks, then hang up.
    hang_up_after(response, 3).await;
    let spans = stack
        .wait_for_jsonl_spans(1, Duration::from_secs(10))
        .await?;
    let span = only(&spans);
    assert_eq!(span.status_code(), OtlpStatus::Error);
    assert_eq!(
        span.attr_str(sc::ERROR_TYPE).as_deref(),
        Some("client_disconnected")
    );
    assert!(
        span.attr(sc::GEN_AI_OUTPUT_MESSAGES).is_some(),
        "partial output kept"
    );
    let (report, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 1, "ended exactly once");
    assert_eq!(report.abandoned_calls, 0);
    Ok(())
}

#[tokio::test]
async fn upstream_header_timeout_is_504_and_upstream_timeout() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        overrides: Overrides::new().with(&settings::UPSTREAM_TIMEOUT_SECS, "1"),
        ..Default::default()
    })
    .await?;
    let reply = stack
        .post(CHAT, &chat("gpt-4o", false), &[("x-mock-scenario", "hang")])
        .await?;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    let body: Value = serde_json::from_slice(&reply.body)?;
    assert!(
        body["error"]["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("llmtap_")
    );
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(
        span.attr_str(sc::ERROR_TYPE).as_deref(),
        Some("upstream_timeout")
    );
    assert_eq!(span.status_code(), OtlpStatus::Error);
    Ok(())
}

#[tokio::test]
async fn unreachable_upstream_is_502_naming_it() -> Result<()> {
    let closed = llmtap_tests::closed_port();
    let mut stack = Stack::start_with(StackOptions {
        upstream_openai: Some(closed.url()),
        ..Default::default()
    })
    .await?;
    let reply = stack.post(CHAT, &chat("gpt-4o", false), &[]).await?;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&reply.body)?;
    assert!(
        body["error"]["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("llmtap_")
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&closed.addr().port().to_string()),
        "the message names the upstream: {message}"
    );
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(
        span.attr_str(sc::ERROR_TYPE).as_deref(),
        Some("upstream_unreachable")
    );
    Ok(())
}

#[tokio::test]
async fn malformed_json_and_sse_are_forwarded_unchanged_and_marked() -> Result<()> {
    let mut stack = Stack::start().await?;
    let bad_json = stack
        .post(
            CHAT,
            &chat("gpt-4o", false),
            &[("x-mock-scenario", "malformed-json")],
        )
        .await?;
    assert_eq!(bad_json.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&bad_json.body).is_err());
    let bad_sse = stack
        .post(
            CHAT,
            &chat("gpt-4o", true),
            &[("x-mock-scenario", "malformed-sse")],
        )
        .await?;
    assert_eq!(bad_sse.status, StatusCode::OK);
    // A request body that is not JSON: forwarded, the upstream answers, the span is marked.
    let bad_request = stack.post(CHAT, "{not json", &[]).await?;
    assert_eq!(bad_request.status, StatusCode::BAD_REQUEST);
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 3);
    assert_unique_ids(&spans);
    for span in &spans {
        assert!(
            span.attr_str(sc::LLMTAP_CAPTURE_ERROR).is_some(),
            "{} not marked: {:?}",
            span.name(),
            span.attr_keys().collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[tokio::test]
async fn bodies_are_byte_identical_to_calling_upstream_directly() -> Result<()> {
    let json_body = Bytes::from_static(
        b"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-2024-08-06\",\
\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"h\xc3\xa9llo \\u00e9\"},\
\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}   \n",
    );
    let sse: Vec<Bytes> = vec![
        Bytes::from_static(b": keep-alive comment\n\n"),
        Bytes::from_static(b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"he"),
        Bytes::from_static(b"y\"}}]}\r\n\r\ndata: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    for (content_type, chunks, stream) in [
        ("application/json", vec![json_body.clone()], false),
        ("text/event-stream", sse.clone(), true),
    ] {
        let upstream =
            FixedUpstream::start(200, content_type, chunks, Duration::from_millis(5)).await?;
        let mut stack = Stack::start_with(StackOptions {
            upstream_openai: Some(upstream.base_url()),
            ..Default::default()
        })
        .await?;
        let direct = {
            let response = stack
                .client
                .request(
                    http::Request::post(format!("{}{CHAT}", upstream.base_url()))
                        .body(http_body_util::Full::new(Bytes::from(chat("m", stream))))?,
                )
                .await?;
            read_body(response.into_body()).await?
        };
        let proxied = stack.post(CHAT, &chat("m", stream), &[]).await?;
        assert_eq!(proxied.body, direct, "{content_type} bodies differ");
        let (_, spans) = stack.stop().await?;
        let spans = llmtap_tests::spans::checked_calls(spans)?;
        assert_eq!(only(&spans).status_code(), OtlpStatus::Unset);
    }
    Ok(())
}

#[tokio::test]
async fn agent_headers_are_read_stripped_and_trace_context_flows() -> Result<()> {
    let mut stack = Stack::start().await?;
    let root = stack
        .post(
            CHAT,
            &chat("gpt-4o", false),
            &[
                ("x-llmtap-agent", "orchestrator"),
                ("x-llmtap-session", "sess-42"),
                ("x-llmtap-meta-team", "research"),
            ],
        )
        .await?;
    let level1 = root.traceresponse().context("traceresponse")?;
    let child = stack
        .post(
            CHAT,
            &chat("gpt-4o", true),
            &[("x-llmtap-agent", "researcher"), ("traceparent", &level1)],
        )
        .await?;
    let level2 = child.traceresponse().context("traceresponse")?;
    let grandchild = stack
        .post(
            CHAT,
            &chat("gpt-4o-mini", false),
            &[("x-llmtap-agent", "checker"), ("traceparent", &level2)],
        )
        .await?;
    assert!(grandchild.traceresponse().is_some());

    let forwarded = stack.mock.requests();
    assert_eq!(forwarded.len(), 3);
    for request in &forwarded {
        assert!(
            request
                .headers
                .keys()
                .all(|k| !k.as_str().starts_with("x-llmtap-")),
            "llmtap headers leaked upstream: {:?}",
            request.headers
        );
        assert!(
            request.headers.contains_key("authorization"),
            "credentials forwarded"
        );
    }
    let (_, all) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(all.clone())?;
    assert_eq!(spans.len(), 3);
    let find = |agent: &str| {
        spans
            .iter()
            .find(|s| s.attr_str(sc::GEN_AI_AGENT_NAME).as_deref() == Some(agent))
            .with_context(|| format!("no span of {agent}"))
    };
    let agent = |name: &str| llmtap_tests::spans::one_agent_span(&all, name);
    let (orch, res, chk) = (find("orchestrator")?, find("researcher")?, find("checker")?);
    // Each agent's invocation is the parent of its call, and nests under the call whose
    // traceresponse it was handed.
    let (orch_agent, res_agent, chk_agent) = (
        agent("orchestrator")?,
        agent("researcher")?,
        agent("checker")?,
    );
    assert_eq!(orch_agent.parent_span_id(), None);
    assert_eq!(orch.parent_span_id(), Some(orch_agent.span_id()));
    assert_eq!(res_agent.parent_span_id(), Some(orch.span_id()));
    assert_eq!(chk_agent.parent_span_id(), Some(res.span_id()));
    assert_eq!(
        orch_agent.attr_str(sc::GEN_AI_CONVERSATION_ID).as_deref(),
        Some("sess-42")
    );
    assert_eq!(res.trace_id(), orch.trace_id());
    assert_eq!(chk.trace_id(), orch.trace_id());
    assert_eq!(
        orch.attr_str(sc::GEN_AI_CONVERSATION_ID).as_deref(),
        Some("sess-42")
    );
    assert_eq!(
        orch.attr_str("llmtap.meta.team").as_deref(),
        Some("research")
    );
    // The upstream saw our span as its parent.
    let upstream_parent = forwarded[0]
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .context("traceparent upstream")?;
    assert_eq!(
        upstream_parent,
        format!("00-{}-{}-01", orch.trace_id(), orch.span_id())
    );
    Ok(())
}

#[tokio::test]
async fn credentials_never_reach_jsonl_or_otlp() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        collector: true,
        ..Default::default()
    })
    .await?;
    let secrets = [
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",
        "sk-ant-api03-ZZZZyyyyXXXXwwwwVVVVuuuuTTTTssss",
        "AIzaSyD-FAKEFAKEFAKEFAKEFAKEFAKEFAKE12",
        "azure-key-0f9e8d7c6b5a49382716",
        "session=cookie-secret-value-123",
        "query-secret-key-98765",
    ];
    let user_text = format!(
        "my key is {} and mail me at someone@example.com",
        secrets[0]
    );
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": user_text}]});
    let reply = stack
        .post(
            &format!("{CHAT}?key={}&api-version=2024-06-01", secrets[5]),
            &body.to_string(),
            &[
                ("x-api-key", secrets[1]),
                ("x-goog-api-key", secrets[2]),
                ("api-key", secrets[3]),
                ("cookie", secrets[4]),
                ("proxy-authorization", "Basic c2VjcmV0OnNlY3JldA=="),
                ("x-llmtap-agent", "leaky"),
            ],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    let collector = stack.collector.take().context("collector")?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 1);
    let file = std::fs::read_to_string(&stack.jsonl)?;
    let otlp = collector.wait_for_spans(1, Duration::from_secs(10)).await?;
    let otlp_text = format!("{otlp:?}");
    for secret in secrets
        .iter()
        .chain(["someone@example.com", "c2VjcmV0OnNlY3JldA=="].iter())
    {
        assert!(!file.contains(secret), "{secret} in JSONL");
        assert!(!otlp_text.contains(secret), "{secret} in OTLP");
    }
    // The proxy-auth header was meant for us and never forwarded; credentials for the upstream were.
    let forwarded = stack.mock.requests();
    assert!(forwarded[0].headers.get("proxy-authorization").is_none());
    assert!(forwarded[0].headers.get("x-api-key").is_some());
    assert_eq!(
        forwarded[0].query.as_deref(),
        Some(format!("key={}&api-version=2024-06-01", secrets[5]).as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&stack.jsonl)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    Ok(())
}

#[tokio::test]
async fn unknown_paths_pass_unrecorded_and_healthz_counts() -> Result<()> {
    let mut stack = Stack::start().await?;
    let models = stack.get("/v1/models").await?;
    assert_eq!(models.status, StatusCode::OK);
    let missing = stack.get("/v1/definitely-not-an-endpoint").await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    stack.post(CHAT, &chat("gpt-4o", false), &[]).await?;
    stack
        .post(
            CHAT,
            &chat("gpt-4o", false),
            &[("x-mock-scenario", "error:500")],
        )
        .await?;
    let health = stack
        .health_when(Duration::from_secs(10), |h| h["calls_in_flight"] == 0)
        .await?;
    assert_eq!(health["calls_in_flight"], 0, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["unrecorded_requests"], 2, "{health}");
    assert_eq!(health["requests_by_provider"]["openai"], 2, "{health}");
    assert!(
        health["upstream_errors"].as_u64().unwrap_or(0) >= 1,
        "{health}"
    );
    assert!(health["uptime_secs"].is_number(), "{health}");
    assert!(health["sinks"]["jsonl"]["written"].is_number(), "{health}");
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 2);
    Ok(())
}

#[tokio::test]
async fn spans_reach_the_collector_and_the_file_alike() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        collector: true,
        ..Default::default()
    })
    .await?;
    for i in 0..5 {
        stack.post(CHAT, &chat("gpt-4o", i % 2 == 0), &[]).await?;
    }
    let collector = stack.collector.take().context("collector")?;
    let (report, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let received = collector.wait_for_spans(5, Duration::from_secs(10)).await?;
    assert_eq!(spans.len(), 5);
    assert_eq!(received.len(), 5);
    let mut file_ids: Vec<_> = spans.iter().map(RecordedSpan::span_id).collect();
    let mut otlp_ids: Vec<_> = received.iter().map(RecordedSpan::span_id).collect();
    file_ids.sort();
    otlp_ids.sort();
    assert_eq!(file_ids, otlp_ids);
    let otlp = report.telemetry.otlp.context("otlp sink")?;
    assert_eq!(otlp.written, 5);
    assert_eq!(report.telemetry.jsonl.context("jsonl sink")?.written, 5);
    Ok(())
}

#[tokio::test]
async fn big_request_bodies_pass_through_with_capture_skipped() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        overrides: Overrides::default(),
        env: vec![("LLMTAP_MAX_CAPTURE_BYTES".into(), "65536".into())],
        ..Default::default()
    })
    .await?;
    let filler = "x".repeat(3 * 1024 * 1024);
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": filler}]}).to_string();
    let reply = stack.post(CHAT, &body, &[]).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let forwarded = stack.mock.requests();
    assert_eq!(
        forwarded[0].body.len(),
        body.len(),
        "request bytes unchanged"
    );
    assert_eq!(forwarded[0].body, Bytes::from(body));
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert!(span.attr_str(sc::LLMTAP_CAPTURE_ERROR).is_some());
    assert!(span.attr(sc::GEN_AI_INPUT_MESSAGES).is_none());
    Ok(())
}

/// Nagle + delayed ACK would add ~40 ms per small call: 20 sequential calls over one keep-alive
/// connection must have a median well under that.
#[tokio::test]
async fn keep_alive_calls_do_not_stall() -> Result<()> {
    let mut stack = Stack::start().await?;
    stack.post(CHAT, &chat("gpt-4o", false), &[]).await?;
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let reply = stack.post(CHAT, &chat("gpt-4o", false), &[]).await?;
        assert_eq!(reply.status, StatusCode::OK);
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median {median:?}: a stall"
    );
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 21);
    assert_unique_ids(&spans);
    Ok(())
}

#[tokio::test]
async fn shutdown_drains_in_flight_streams_and_ends_their_spans() -> Result<()> {
    let mut stack = Stack::start().await?;
    let url = stack.url(CHAT);
    let client = stack.client.clone();
    let in_flight = tokio::spawn(async move {
        let response = client
            .request(
                http::Request::post(url)
                    .header("content-type", "application/json")
                    .header("x-mock-scenario", "chunks:10,slow:50")
                    .body(http_body_util::Full::new(Bytes::from(chat_with_usage(
                        "gpt-4o",
                    ))))?,
            )
            .await?;
        let body = read_body(response.into_body()).await?;
        anyhow::Ok(body)
    });
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (report, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let body = in_flight.await??;
    assert!(
        String::from_utf8_lossy(&body).contains("[DONE]"),
        "stream drained to its end"
    );
    let span = only(&spans);
    assert!(span.attr(sc::ERROR_TYPE).is_none());
    assert_eq!(report.abandoned_calls, 0);
    assert_eq!(report.proxy.calls_finished, 1);
    Ok(())
}

/// A three-level agent tree built only from `traceresponse` → `traceparent` hand-offs has the
/// right parents in JSONL and at a real collector (rotel).
#[tokio::test]
async fn handoff_tree_reaches_a_real_collector_with_parents() -> Result<()> {
    let Some(rotel) = llmtap_tests::rotel::Rotel::start().await else {
        return Ok(());
    };
    let mut stack = Stack::start_with(StackOptions {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), rotel.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
            ("OTEL_SERVICE_NAME".into(), "handoff-e2e".into()),
        ],
        ..Default::default()
    })
    .await?;
    let root = stack
        .post(CHAT, &chat("gpt-4o", false), &[("x-llmtap-agent", "lead")])
        .await?;
    let level1 = root.traceresponse().context("traceresponse")?;
    let child = stack
        .post(
            CHAT,
            &chat_with_usage("gpt-4o"),
            &[("x-llmtap-agent", "worker"), ("traceparent", &level1)],
        )
        .await?;
    let level2 = child.traceresponse().context("traceresponse")?;
    stack
        .post(
            CHAT,
            &chat("gpt-4o-mini", false),
            &[("x-llmtap-agent", "helper"), ("traceparent", &level2)],
        )
        .await?;
    let (_, spans) = stack.stop().await?;
    assert_eq!(llmtap_tests::spans::checked_calls(spans.clone())?.len(), 3);
    // Three calls under three agent invocations.
    assert_eq!(spans.len(), 6);
    let trace_id = spans[0].trace_id();
    let at_rotel = rotel
        .wait_for_trace(&trace_id, 6, Duration::from_secs(20))
        .await?;
    for ours in &spans {
        let theirs = at_rotel
            .iter()
            .find(|s| s.span_id.eq_ignore_ascii_case(&ours.span_id()))
            .with_context(|| format!("{} missing at rotel", ours.span_id()))?;
        assert_eq!(
            theirs
                .parent_span_id
                .as_deref()
                .map(str::to_ascii_lowercase),
            ours.parent_span_id()
        );
        assert_eq!(theirs.name, ours.name());
    }
    let depth = |id: Option<String>| {
        let mut depth = 0;
        let mut cursor = id;
        while let Some(parent) = cursor {
            depth += 1;
            cursor = spans
                .iter()
                .find(|s| s.span_id() == parent)
                .and_then(RecordedSpan::parent_span_id);
        }
        depth
    };
    let deepest = spans
        .iter()
        .map(|s| depth(s.parent_span_id()))
        .max()
        .unwrap_or(0);
    assert_eq!(
        deepest, 5,
        "three levels of agents, each over its call: lead, worker, helper"
    );
    Ok(())
}

/// A stack whose proxy ends a call after `secs` of upstream silence mid-body.
async fn stack_with_idle_limit_secs(secs: &str) -> Result<Stack> {
    Stack::start_with(StackOptions {
        overrides: Overrides::new().with(&settings::STREAM_IDLE_TIMEOUT_SECS, secs),
        ..Default::default()
    })
    .await
}

/// An upstream that goes silent mid-stream ends the call as `upstream_timeout` after the idle
/// limit, with the output so far kept; the client's stream is ended, not left hanging.
#[tokio::test]
async fn upstream_silent_mid_stream_ends_as_upstream_timeout() -> Result<()> {
    let mut stack = stack_with_idle_limit_secs("1").await?;
    let started = Instant::now();
    let reply = stack
        .post(
            CHAT,
            &chat_with_usage("gpt-4o"),
            &[("x-mock-scenario", "chunks:4,slow:30000")],
        )
        .await;
    // However the cut reaches the client (an error or an early end), it comes within the limit.
    assert!(started.elapsed() < Duration::from_secs(15));
    if let Ok(reply) = reply {
        assert!(!reply.text().contains("[DONE]"));
    }
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.status_code(), OtlpStatus::Error);
    assert_eq!(
        span.attr_str(sc::ERROR_TYPE).as_deref(),
        Some("upstream_timeout")
    );
    Ok(())
}

/// Clients that speak HTTP/2 (prior knowledge, as gRPC-style clients do) get the same service.
#[tokio::test]
async fn http2_clients_are_served_and_recorded() -> Result<()> {
    let mut stack = Stack::start().await?;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let response = h2
        .request(
            http::Request::post(stack.url(CHAT))
                .header("content-type", "application/json")
                .header("x-llmtap-agent", "h2-client")
                .body(http_body_util::Full::new(Bytes::from(chat_with_usage(
                    "gpt-4o",
                ))))?,
        )
        .await?;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body = read_body(response.into_body()).await?;
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(
        span.attr_str(sc::GEN_AI_AGENT_NAME).as_deref(),
        Some("h2-client")
    );
    assert!(span.attr_i64(sc::GEN_AI_USAGE_OUTPUT_TOKENS).unwrap_or(0) > 0);
    Ok(())
}

/// Sampling is parent-based by default: a caller that decided not to sample keeps its whole
/// subtree out, a sampled caller gets every call, and `OTEL_TRACES_SAMPLER=always_off` records
/// nothing — the traffic is the same in every case.
#[tokio::test]
async fn sampling_is_parent_based_and_configurable() -> Result<()> {
    // With the file following the sampler (LLMTAP_JSONL_SAMPLED=true), the file shows exactly
    // what the sampler decided; by default it keeps every call (see the test below).
    let follow = || vec![("LLMTAP_JSONL_SAMPLED".to_owned(), "true".to_owned())];
    let mut stack = Stack::start_with(StackOptions {
        env: follow(),
        ..Default::default()
    })
    .await?;
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b8-01";
    let skipped = stack
        .post(CHAT, &chat("gpt-4o", false), &[("traceparent", unsampled)])
        .await?;
    assert_eq!(skipped.status, StatusCode::OK);
    let handed = skipped.traceresponse().context("traceresponse")?;
    assert!(handed.ends_with("-00"), "the decision travels on: {handed}");
    stack
        .post(CHAT, &chat("gpt-4o", false), &[("traceparent", &handed)])
        .await?;
    stack
        .post(CHAT, &chat("gpt-4o", false), &[("traceparent", sampled)])
        .await?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 1, "only the sampled caller's call is sampled");
    assert_eq!(spans[0].trace_id(), "4bf92f3577b34da6a3ce929d0e0e4737");

    // Default: the same three calls are all in the file, the unsampled decision still travels.
    let mut all = Stack::start().await?;
    let skipped = all
        .post(CHAT, &chat("gpt-4o", false), &[("traceparent", unsampled)])
        .await?;
    let handed = skipped.traceresponse().context("traceresponse")?;
    assert!(handed.ends_with("-00"), "the decision travels on: {handed}");
    all.post(CHAT, &chat("gpt-4o", false), &[("traceparent", &handed)])
        .await?;
    all.post(CHAT, &chat("gpt-4o", false), &[("traceparent", sampled)])
        .await?;
    let (_, spans) = all.stop().await?;
    assert_eq!(spans.len(), 3, "the file is the local record");

    let mut off = Stack::start_with(StackOptions {
        env: [
            follow(),
            vec![("OTEL_TRACES_SAMPLER".into(), "always_off".into())],
        ]
        .concat(),
        ..Default::default()
    })
    .await?;
    let reply = off.post(CHAT, &chat("gpt-4o", true), &[]).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("[DONE]"));
    let (report, spans) = off.stop().await?;
    assert!(spans.is_empty());
    assert_eq!(
        report.proxy.calls_finished, 1,
        "the call itself still went through"
    );
    Ok(())
}

/// gen_ai metrics come from the same record as the spans: names, units, attributes and bucket
/// boundaries as semconv says, and totals equal to the spans' totals for the same run.
#[tokio::test]
async fn gen_ai_metrics_match_the_spans() -> Result<()> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let mut stack = Stack::start_with(StackOptions {
        collector: true,
        env: vec![("OTEL_METRIC_EXPORT_INTERVAL".into(), "100".into())],
        ..Default::default()
    })
    .await?;
    stack.post(CHAT, &chat("gpt-4o", false), &[]).await?;
    stack.post(CHAT, &chat_with_usage("gpt-4o"), &[]).await?;
    stack
        .post(CHAT, &chat_with_usage("gpt-4o-mini"), &[])
        .await?;
    stack
        .post(
            CHAT,
            &chat("gpt-4o", false),
            &[("x-mock-scenario", "error:429")],
        )
        .await?;
    let collector = stack.collector.take().context("collector")?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 4);
    // Shutdown flushed the last metrics; take the newest export of each metric (cumulative).
    collector
        .wait_for_metric(sc::GEN_AI_CLIENT_TOKEN_USAGE, Duration::from_secs(10))
        .await?;
    let exports = collector.metric_requests();
    let latest = |name: &str| {
        exports
            .iter()
            .rev()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .find(|m| m.name == name)
            .cloned()
            .with_context(|| format!("no {name}"))
    };
    let attr = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(llmtap_tests::spans::any_value_to_json)
    };

    let tokens = latest(sc::GEN_AI_CLIENT_TOKEN_USAGE)?;
    assert_eq!(tokens.unit, "{token}");
    let Some(Data::Histogram(tokens)) = tokens.data else {
        anyhow::bail!("token usage is not a histogram");
    };
    let sum_of = |token_type: &str| -> f64 {
        tokens
            .data_points
            .iter()
            .filter(|p| attr(&p.attributes, sc::GEN_AI_TOKEN_TYPE) == Some(json!(token_type)))
            .map(|p| p.sum.unwrap_or(0.0))
            .sum()
    };
    let span_total = |key: &str| -> f64 {
        spans
            .iter()
            .filter_map(|s| s.attr_i64(key))
            .map(|v| v as f64)
            .sum()
    };
    assert_eq!(sum_of("input"), span_total(sc::GEN_AI_USAGE_INPUT_TOKENS));
    assert_eq!(sum_of("output"), span_total(sc::GEN_AI_USAGE_OUTPUT_TOKENS));
    for point in &tokens.data_points {
        assert_eq!(point.explicit_bounds, sc::TOKEN_BUCKETS.to_vec());
        assert_eq!(
            attr(&point.attributes, sc::GEN_AI_OPERATION_NAME),
            Some(json!("chat"))
        );
        assert_eq!(
            attr(&point.attributes, sc::GEN_AI_PROVIDER_NAME),
            Some(json!("openai"))
        );
    }

    let duration = latest(sc::GEN_AI_CLIENT_OPERATION_DURATION)?;
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(duration)) = duration.data else {
        anyhow::bail!("duration is not a histogram");
    };
    let calls: u64 = duration.data_points.iter().map(|p| p.count).sum();
    assert_eq!(calls, 4, "one duration per call, errors included");
    let errors: u64 = duration
        .data_points
        .iter()
        .filter(|p| attr(&p.attributes, sc::ERROR_TYPE) == Some(json!("rate_limit_exceeded")))
        .map(|p| p.count)
        .sum();
    assert_eq!(errors, 1);
    assert!(
        duration
            .data_points
            .iter()
            .all(|p| p.explicit_bounds == sc::DURATION_BUCKETS.to_vec())
    );

    let ttft = latest(sc::GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK)?;
    let Some(Data::Histogram(ttft)) = ttft.data else {
        anyhow::bail!("ttft is not a histogram");
    };
    let streamed: u64 = ttft.data_points.iter().map(|p| p.count).sum();
    assert_eq!(
        streamed, 2,
        "only the two successful streams have a first chunk"
    );

    // One value per successful stream (the mean gap after the first chunk), below its duration.
    let per_chunk = latest(sc::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK)?;
    assert_eq!(per_chunk.unit, "s");
    let Some(Data::Histogram(per_chunk)) = per_chunk.data else {
        anyhow::bail!("time_per_output_chunk is not a histogram");
    };
    let points = &per_chunk.data_points;
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 2);
    assert!(
        points
            .iter()
            .all(|p| p.explicit_bounds == sc::DURATION_BUCKETS.to_vec())
    );
    assert!(
        points
            .iter()
            .all(|p| p.sum.is_some_and(|s| s > 0.0 && s < 5.0)),
        "{points:?}"
    );
    Ok(())
}

/// `OTEL_METRICS_EXPORTER=none` turns metrics off and leaves traces alone.
#[tokio::test]
async fn metrics_can_be_turned_off() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        collector: true,
        env: vec![
            ("OTEL_METRIC_EXPORT_INTERVAL".into(), "50".into()),
            ("OTEL_METRICS_EXPORTER".into(), "none".into()),
        ],
        ..Default::default()
    })
    .await?;
    stack.post(CHAT, &chat("gpt-4o", false), &[]).await?;
    let collector = stack.collector.take().context("collector")?;
    let (report, _) = stack.stop().await?;
    assert_eq!(report.telemetry.otlp.map(|s| s.written), Some(1));
    collector.wait_for_spans(1, Duration::from_secs(10)).await?;
    assert!(collector.metric_requests().is_empty());
    Ok(())
}

/// The compatibility switch adds OpenInference and Langfuse keys next to gen_ai; off by default.
#[tokio::test]
async fn compat_keys_only_when_switched_on() -> Result<()> {
    use llmtap_core::semconv::compat_keys as ck;
    let mut plain = Stack::start().await?;
    plain.post(CHAT, &chat_with_usage("gpt-4o"), &[]).await?;
    let (_, spans) = plain.stop().await?;
    assert!(only(&spans).attr(ck::OPENINFERENCE_SPAN_KIND).is_none());
    assert!(
        only(&spans)
            .attr(ck::LANGFUSE_COMPLETION_START_TIME)
            .is_none()
    );

    let mut compat = Stack::start_with(StackOptions {
        env: vec![("LLMTAP_COMPAT".into(), "openinference,langfuse".into())],
        ..Default::default()
    })
    .await?;
    compat.post(CHAT, &chat_with_usage("gpt-4o"), &[]).await?;
    let (_, spans) = compat.stop().await?;
    let span = only(&spans);
    assert_eq!(
        span.attr_str(ck::OPENINFERENCE_SPAN_KIND).as_deref(),
        Some("LLM")
    );
    let total = span.attr_i64(ck::LLM_TOKEN_COUNT_TOTAL).context("total")?;
    assert_eq!(
        Some(total),
        span.attr_i64(sc::GEN_AI_USAGE_INPUT_TOKENS)
            .zip(span.attr_i64(sc::GEN_AI_USAGE_OUTPUT_TOKENS))
            .map(|(i, o)| i + o)
    );
    assert_eq!(
        span.attr_str(ck::INPUT_VALUE),
        span.attr_str(sc::GEN_AI_INPUT_MESSAGES)
    );
    // Completion start = span start + time to first chunk, as RFC 3339.
    let start = span
        .attr_str(ck::LANGFUSE_COMPLETION_START_TIME)
        .context("start")?;
    assert!(start.ends_with('Z') && start.len() == 27, "{start}");
    // gen_ai stays canonical.
    assert_eq!(
        span.attr_str(sc::GEN_AI_OPERATION_NAME).as_deref(),
        Some("chat")
    );

    let bad = llmtap_proxy::Config::load(&Overrides::default(), &[("LLMTAP_COMPAT", "datadog")]);
    let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("LLMTAP_COMPAT"), "{message}");
    Ok(())
}

/// The idle limit is about silence, not length: a stream that keeps sending chunks for longer
/// than the limit runs to its end.
#[tokio::test]
async fn a_busy_stream_outlives_the_idle_limit() -> Result<()> {
    let mut stack = stack_with_idle_limit_secs("1").await?;
    let started = Instant::now();
    let reply = stack
        .post(
            CHAT,
            &chat_with_usage("gpt-4o"),
            &[("x-mock-scenario", "chunks:25,slow:100")],
        )
        .await?;
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "the stream ran past the limit"
    );
    assert!(reply.text().contains("[DONE]"), "not cut: {}", reply.text());
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert!(span.attr(sc::ERROR_TYPE).is_none());
    assert_eq!(span.status_code(), OtlpStatus::Unset);
    Ok(())
}

/// Sampling decides what is forwarded, not what is recorded locally: with `always_off` the JSONL
/// has every call, the collector none, `/healthz` counts every call and shows the OTLP sink's
/// `sampled_out`, and `traceresponse` says "not sampled" so a hand-off keeps the decision.
#[tokio::test]
async fn always_off_sampler_keeps_every_call_in_the_file_and_forwards_none() -> Result<()> {
    let mut stack = Stack::start_with(StackOptions {
        collector: true,
        env: vec![("OTEL_TRACES_SAMPLER".into(), "always_off".into())],
        ..Default::default()
    })
    .await?;
    let mut flags = Vec::new();
    for i in 0..4 {
        let reply = stack.post(CHAT, &chat("gpt-4o", i % 2 == 0), &[]).await?;
        flags.push(reply.traceresponse().context("traceresponse")?);
    }
    assert!(flags.iter().all(|t| t.ends_with("-00")), "{flags:?}");
    // Spans end in the recorder task just after the body: poll until all four are counted.
    let health = stack
        .health_when(Duration::from_secs(2), |h| {
            h["sinks"]["otlp"]["sampled_out"] == json!(4)
        })
        .await?;
    let collector = stack.collector.take().context("collector")?;
    let (report, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 4, "the file is the local record");
    assert_eq!(report.proxy.calls_finished, 4);
    let otlp = report.telemetry.otlp.context("otlp sink")?;
    assert_eq!((otlp.written, otlp.sampled_out), (0, 4));
    assert_eq!(report.telemetry.jsonl.context("jsonl sink")?.written, 4);
    // Give a (wrong) late export time to show up before asserting nothing came.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());
    assert_eq!(health["sinks"]["otlp"]["sampled_out"], json!(4), "{health}");
    assert_eq!(
        health["sinks"]["jsonl"]["sampled_out"],
        json!(0),
        "{health}"
    );
    assert_eq!(health["calls_finished"], json!(4), "{health}");
    // Metrics count every call whatever the sampler said (flushed at shutdown).
    let exports = collector
        .wait_for_metric(
            sc::GEN_AI_CLIENT_OPERATION_DURATION,
            Duration::from_secs(10),
        )
        .await?;
    let counted: u64 = exports
        .iter()
        .rev()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .find(|m| m.name == sc::GEN_AI_CLIENT_OPERATION_DURATION)
        .and_then(|m| match &m.data {
            Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) => {
                Some(h.data_points.iter().map(|p| p.count).sum())
            }
            _ => None,
        })
        .context("duration histogram")?;
    assert_eq!(counted, 4);
    Ok(())
}
