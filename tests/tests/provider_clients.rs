//! Real provider clients through the proxy against the mock: Python `anthropic` (create,
//! stream with thinking, tools), Python `openai` Responses (create, stream, tools) and Python
//! `google-genai` (generate_content, generate_content_stream, function calls). Every span is
//! checked against what the client itself saw, usage numbers exactly.
//! Missing tools: SKIP outside CI, FAIL in CI (see `llmtap_tests::clients`).

use std::process::Command;

use anyhow::{Context as _, Result};
use llmtap_core::semconv as sc;
use llmtap_tests::RecordedSpan;
use llmtap_tests::clients::run_client;
use llmtap_tests::clients::{python, python_can_import, repo_root, skip_or_fail};
use llmtap_tests::spans::{by_agent, one_by_agent as one};
use llmtap_tests::stack::Stack;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use serde_json::{Value, json};

fn json_attr(span: &RecordedSpan, key: &str) -> Result<Value> {
    let text = span
        .attr_str(key)
        .with_context(|| format!("{key} missing"))?;
    Ok(serde_json::from_str(&text)?)
}

fn int(span: &RecordedSpan, key: &str) -> Option<i64> {
    span.attr_i64(key)
}

fn script(name: &str) -> std::path::PathBuf {
    repo_root().join("scripts/e2e").join(name)
}

/// Anthropic's input excludes cache reads and writes; the span's includes both.
fn anthropic_input(usage: &Value) -> Option<i64> {
    Some(
        usage["input_tokens"].as_i64()?
            + usage["cache_read_input_tokens"].as_i64()?
            + usage["cache_creation_input_tokens"].as_i64()?,
    )
}

#[tokio::test]
async fn python_anthropic_create_stream_and_tools() -> Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let mut stack = Stack::start().await?;
    let mut command = Command::new(python);
    command.arg(script("anthropic_py.py")).arg(stack.root_url());
    let seen = run_client(command).await?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 4, "create, stream, two tool turns");
    for span in &spans {
        assert_eq!(span.status_code(), OtlpStatus::Unset);
        assert_eq!(
            span.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
            Some("anthropic")
        );
        assert_eq!(
            span.attr_str(sc::GEN_AI_OPERATION_NAME).as_deref(),
            Some("chat")
        );
    }

    let create = one(&spans, "py-create")?;
    let c = &seen["create"];
    assert_eq!(create.name(), "chat claude-sonnet-4-5");
    assert_eq!(
        create.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        c["id"].as_str()
    );
    assert_eq!(
        create.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!([c["stop_reason"]]))
    );
    assert_eq!(
        int(create, sc::GEN_AI_USAGE_INPUT_TOKENS),
        anthropic_input(&c["usage"])
    );
    assert_eq!(
        int(create, sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        c["usage"]["cache_read_input_tokens"].as_i64()
    );
    assert!(c["usage"]["cache_read_input_tokens"].as_i64() > Some(0));
    assert_eq!(
        int(create, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        c["usage"]["output_tokens"].as_i64()
    );
    assert_eq!(
        json_attr(create, sc::GEN_AI_SYSTEM_INSTRUCTIONS)?,
        json!([{"type": "text", "content": "You are a terse assistant."}])
    );
    assert_eq!(
        json_attr(create, sc::GEN_AI_INPUT_MESSAGES)?,
        json!([{"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}])
    );
    assert_eq!(
        json_attr(create, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": c["text"]}]}])
    );

    let stream = one(&spans, "py-stream")?;
    let s = &seen["stream"];
    assert_eq!(stream.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
    assert!(
        stream
            .attr(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
            .is_some()
    );
    assert_eq!(
        stream.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        s["id"].as_str()
    );
    assert_eq!(
        int(stream, sc::GEN_AI_USAGE_INPUT_TOKENS),
        anthropic_input(&s["usage"])
    );
    assert_eq!(
        int(stream, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        s["usage"]["output_tokens"].as_i64()
    );
    assert_eq!(
        json_attr(stream, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "reasoning", "content": s["thinking"]},
            {"type": "text", "content": s["text"]}]}])
    );

    let tools = by_agent(&spans, "py-tools");
    assert_eq!(tools.len(), 2);
    let t = &seen["tools"];
    assert_eq!(
        tools[0].attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["tool_use"]))
    );
    let out = json_attr(tools[0], sc::GEN_AI_OUTPUT_MESSAGES)?;
    assert_eq!(
        out[0]["parts"][0],
        json!({"type": "tool_call", "id": t["id"], "name": t["name"], "arguments": t["input"]})
    );
    let input = json_attr(tools[1], sc::GEN_AI_INPUT_MESSAGES)?;
    assert_eq!(
        input[2],
        json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": t["id"], "response": "18C and sunny"}]})
    );
    assert_eq!(
        json_attr(tools[1], sc::GEN_AI_OUTPUT_MESSAGES)?[0]["parts"][0]["content"],
        t["answer"]
    );
    Ok(())
}

#[tokio::test]
async fn python_openai_responses_create_stream_and_tools() -> Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let mut stack = Stack::start().await?;
    let mut command = Command::new(python);
    command
        .arg(script("openai_responses_py.py"))
        .arg(stack.openai_base_url());
    let seen = run_client(command).await?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 4);
    for span in &spans {
        assert_eq!(span.status_code(), OtlpStatus::Unset);
        assert_eq!(
            span.attr_str(sc::OPENAI_API_TYPE).as_deref(),
            Some("responses")
        );
    }
    let create = one(&spans, "py-create")?;
    let c = &seen["create"];
    assert_eq!(create.name(), "chat o4-mini");
    assert_eq!(
        create.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        c["id"].as_str()
    );
    assert_eq!(
        create.attr_str(sc::GEN_AI_RESPONSE_MODEL).as_deref(),
        c["model"].as_str()
    );
    assert_eq!(
        create
            .attr_str(sc::LLMTAP_REQUEST_REASONING_LEVEL)
            .as_deref(),
        Some("low")
    );
    assert_eq!(
        create
            .attr_str(sc::LLMTAP_REQUEST_PREVIOUS_RESPONSE_ID)
            .as_deref(),
        Some("resp_e2e_previous")
    );
    for (key, field) in [
        (sc::GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"),
        (sc::GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens"),
        (sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "reasoning_tokens"),
        (sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cached_tokens"),
    ] {
        assert_eq!(int(create, key), c["usage"][field].as_i64(), "{key}");
    }
    assert!(c["usage"]["reasoning_tokens"].as_i64() > Some(0));
    assert_eq!(
        json_attr(create, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": c["text"]}]}])
    );
    assert_eq!(
        json_attr(create, sc::GEN_AI_SYSTEM_INSTRUCTIONS)?,
        json!([{"type": "text", "content": "You are terse."}])
    );

    let stream = one(&spans, "py-stream")?;
    let s = &seen["stream"];
    assert_eq!(stream.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
    assert_eq!(
        stream.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        s["id"].as_str()
    );
    assert_eq!(
        int(stream, sc::GEN_AI_USAGE_INPUT_TOKENS),
        s["usage"]["input_tokens"].as_i64()
    );
    assert_eq!(
        int(stream, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        s["usage"]["output_tokens"].as_i64()
    );
    assert_eq!(
        json_attr(stream, sc::GEN_AI_OUTPUT_MESSAGES)?[0]["parts"],
        json!([{"type": "text", "content": s["text"]}])
    );

    let tools = by_agent(&spans, "py-tools");
    assert_eq!(tools.len(), 2);
    let t = &seen["tools"];
    assert_eq!(
        tools[0].attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["tool_call"]))
    );
    assert_eq!(
        json_attr(tools[0], sc::GEN_AI_OUTPUT_MESSAGES)?[0]["parts"][0],
        json!({"type": "tool_call", "id": t["call_id"], "name": t["name"], "arguments": t["arguments"]})
    );
    let input = json_attr(tools[1], sc::GEN_AI_INPUT_MESSAGES)?;
    assert_eq!(
        input[2],
        json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": t["call_id"], "response": "18C and sunny"}]})
    );
    Ok(())
}

#[tokio::test]
async fn python_google_genai_create_stream_and_function_call() -> Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    if !python_can_import(&python, "google.genai") {
        let _: Option<()> = skip_or_fail("python google-genai client not installed");
        return Ok(());
    }
    let mut stack = Stack::start().await?;
    let mut command = Command::new(python);
    command.arg(script("gemini_py.py")).arg(stack.root_url());
    let seen = run_client(command).await?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 3);
    let raw = std::fs::read_to_string(&stack.jsonl)?;
    assert!(!raw.contains("AIzaSy-e2e"), "the API key is never recorded");
    for span in &spans {
        assert_eq!(span.status_code(), OtlpStatus::Unset);
        assert_eq!(
            span.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
            Some("gcp.gemini")
        );
        assert_eq!(span.name(), "generate_content gemini-2.5-flash");
    }
    let check_usage = |span: &RecordedSpan, usage: &Value| {
        assert_eq!(
            int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
            usage["prompt"].as_i64()
        );
        assert_eq!(
            int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
            Some(
                usage["candidates"].as_i64().unwrap_or(-1)
                    + usage["thoughts"].as_i64().unwrap_or(-1)
            )
        );
        assert_eq!(
            int(span, sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            usage["thoughts"].as_i64()
        );
        assert_eq!(
            int(span, sc::GEN_AI_USAGE_INPUT_TOKENS).unwrap_or(0)
                + int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS).unwrap_or(0),
            usage["total"].as_i64().unwrap_or(-1)
        );
    };
    let create = one(&spans, "py-create")?;
    let c = &seen["create"];
    assert_eq!(
        create.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        c["id"].as_str()
    );
    assert_eq!(
        create.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!([c["finish_reason"]]))
    );
    assert_eq!(int(create, sc::GEN_AI_REQUEST_MAX_TOKENS), Some(200));
    check_usage(create, &c["usage"]);
    assert_eq!(
        json_attr(create, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": c["text"]}]}])
    );
    assert_eq!(
        json_attr(create, sc::GEN_AI_SYSTEM_INSTRUCTIONS)?,
        json!([{"type": "text", "content": "You are terse."}])
    );

    let stream = one(&spans, "py-stream")?;
    let s = &seen["stream"];
    assert_eq!(stream.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
    assert_eq!(
        stream.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        s["id"].as_str()
    );
    // The path the client chose (google-genai 3.x says `/v1/models/...`), without its query.
    let sent = stack
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":streamGenerateContent"))
        .context("the stream reached the mock")?;
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
    assert_eq!(
        stream.attr_str(sc::LLMTAP_HTTP_ROUTE).as_deref(),
        Some(sent.path.as_str())
    );
    check_usage(stream, &s["usage"]);
    assert_eq!(
        json_attr(stream, sc::GEN_AI_OUTPUT_MESSAGES)?[0]["parts"],
        json!([{"type": "text", "content": s["text"]}])
    );

    let tools = one(&spans, "py-tools")?;
    let t = &seen["tools"];
    assert_eq!(
        json_attr(tools, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "tool_call",
                "parts": [{"type": "tool_call", "name": t["name"], "arguments": t["args"]}]}])
    );
    assert_eq!(
        json_attr(tools, sc::GEN_AI_TOOL_DEFINITIONS)?[0]["name"],
        "get_weather"
    );
    Ok(())
}
