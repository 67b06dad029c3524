//! End-to-end, in-process, for the non-chat APIs: Anthropic Messages, OpenAI Responses and
//! Gemini `generateContent` (SSE and JSON-array streams) through the real proxy to the mock.
//! Usage must equal the provider's own numbers exactly (normalised the semconv way), and every
//! stream outcome (completed, in-stream error, HTTP error, hang-up, client disconnect) must end
//! exactly one span with the right status and `error.type`, for every provider.

use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::StatusCode;
use llmtap_core::semconv as sc;
use llmtap_tests::RecordedSpan;
use llmtap_tests::stack::{Stack, StackOptions, hang_up_after};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use serde_json::{Value, json};

const MESSAGES: &str = "/v1/messages";
const RESPONSES: &str = "/v1/responses";
const GEMINI_KEY: &str = "AIzaSyD-fake-gemini-key-0123456789abcdef";

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

fn json_attr(span: &RecordedSpan, key: &str) -> Result<Value> {
    let text = span
        .attr_str(key)
        .with_context(|| format!("{key} missing"))?;
    Ok(serde_json::from_str(&text)?)
}

/// The `data:` payloads of an SSE body, parsed.
fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

fn anthropic_request(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "temperature": 0.3,
        "top_k": 40,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": stream,
        "system": [{"type": "text", "text": "You are a terse assistant.",
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Say hello to the tracing team.",
             "cache_control": {"type": "ephemeral"}}]}]
    })
}

fn responses_request(stream: bool) -> Value {
    json!({
        "model": "o4-mini",
        "instructions": "You are terse.",
        "input": [
            {"role": "user", "content": "Earlier question."},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Earlier answer."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Say hello to the tracing team."}]}
        ],
        "reasoning": {"effort": "high"},
        "previous_response_id": "resp_previous_0001",
        "prompt_cache_key": "tracing-team",
        "max_output_tokens": 512,
        "temperature": 1.0,
        "stream": stream
    })
}

fn gemini_request() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello to the tracing team."}]}],
        "cachedContent": "cachedContents/abc123",
        "generationConfig": {"temperature": 0.2, "topP": 0.95, "topK": 32, "maxOutputTokens": 300,
                             "stopSequences": ["END"], "candidateCount": 1, "seed": 5,
                             "thinkingConfig": {"includeThoughts": true}}
    })
}

fn gemini_path(method: &str, query: &str) -> String {
    format!("/v1beta/models/gemini-2.5-flash:{method}?{query}key={GEMINI_KEY}")
}

// ---- Anthropic ------------------------------------------------------------------------------

#[tokio::test]
async fn anthropic_create_records_normalised_usage_system_and_headers() -> Result<()> {
    let mut stack = Stack::start().await?;
    let request = anthropic_request(false);
    let reply = stack
        .post(
            MESSAGES,
            &request.to_string(),
            &[
                ("x-api-key", "sk-ant-api03-secret-secret-secret-secret"),
                ("anthropic-version", "2023-06-01"),
                (
                    "anthropic-beta",
                    "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14",
                ),
            ],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body: Value = serde_json::from_slice(&reply.body)?;
    // Headers reach the upstream untouched.
    let seen = stack.mock.requests();
    let upstream = seen.last().context("mock saw the call")?;
    assert_eq!(upstream.path, "/v1/messages");
    assert_eq!(upstream.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        upstream.headers["anthropic-beta"],
        "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    );
    assert_eq!(upstream.body, Bytes::from(request.to_string()));

    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.name(), "chat claude-sonnet-4-5");
    assert_eq!(span.status_code(), OtlpStatus::Unset);
    assert_eq!(
        span.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
        Some("anthropic")
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_OPERATION_NAME).as_deref(),
        Some("chat")
    );
    assert!(span.attr(sc::OPENAI_API_TYPE).is_none());
    assert_eq!(
        span.attr_str(sc::LLMTAP_HTTP_ROUTE).as_deref(),
        Some("/v1/messages")
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        body["id"].as_str()
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_MODEL).as_deref(),
        Some("claude-sonnet-4-5")
    );
    assert_eq!(
        span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["end_turn"]))
    );
    assert_eq!(int(span, sc::GEN_AI_REQUEST_MAX_TOKENS), Some(256));
    // v1.41: top_k is a double.
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TOP_K), Some(json!(40.0)));
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TEMPERATURE), Some(json!(0.3)));
    assert_eq!(
        span.attr(sc::GEN_AI_REQUEST_STOP_SEQUENCES),
        Some(json!(["END"]))
    );

    // Anthropic counts: 3 uncached + 7 read from cache + 8 written to cache.
    let u = &body["usage"];
    assert_eq!(
        (
            u["input_tokens"].as_i64(),
            u["cache_read_input_tokens"].as_i64(),
            u["cache_creation_input_tokens"].as_i64()
        ),
        (Some(3), Some(7), Some(8))
    );
    let expected = llmtap_mock::anthropic_usage(&request).context("usage")?;
    assert_eq!(int(span, sc::GEN_AI_USAGE_INPUT_TOKENS), Some(18));
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        Some(
            (expected.input_tokens
                + expected.cache_read_input_tokens
                + expected.cache_creation_input_tokens) as i64
        )
    );
    assert_eq!(int(span, sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS), Some(7));
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
        Some(8)
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        u["output_tokens"].as_i64()
    );
    assert!(
        span.attr(sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
            .is_none(),
        "never estimated"
    );

    assert_eq!(
        json_attr(span, sc::GEN_AI_SYSTEM_INSTRUCTIONS)?,
        json!([{"type": "text", "content": "You are a terse assistant."}])
    );
    assert_eq!(
        json_attr(span, sc::GEN_AI_INPUT_MESSAGES)?,
        json!([{"role": "user", "parts": [{"type": "text", "content": "Say hello to the tracing team."}]}])
    );
    assert_eq!(
        json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": body["content"][0]["text"]}]}])
    );
    let raw = std::fs::read_to_string(&stack.jsonl)?;
    assert!(
        !raw.contains("sk-ant-api03"),
        "the API key is never recorded"
    );
    Ok(())
}

#[tokio::test]
async fn anthropic_stream_matches_what_the_client_saw() -> Result<()> {
    let mut stack = Stack::start().await?;
    let mut request = anthropic_request(true);
    request["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let reply = stack.post(MESSAGES, &request.to_string(), &[]).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let events = sse_data(&reply.text());
    let start = events
        .iter()
        .find(|e| e["type"] == "message_start")
        .context("start")?;
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .context("delta")?;
    let mut text = String::new();
    let mut thinking = String::new();
    for e in events.iter().filter(|e| e["type"] == "content_block_delta") {
        text.push_str(e["delta"]["text"].as_str().unwrap_or(""));
        thinking.push_str(e["delta"]["thinking"].as_str().unwrap_or(""));
    }
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.status_code(), OtlpStatus::Unset);
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
    assert!(span.attr(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK).is_some());
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        start["message"]["id"].as_str()
    );
    let u = &start["message"]["usage"];
    let input = u["input_tokens"].as_i64().unwrap_or(-1)
        + u["cache_read_input_tokens"].as_i64().unwrap_or(-1)
        + u["cache_creation_input_tokens"].as_i64().unwrap_or(-1);
    assert_eq!(int(span, sc::GEN_AI_USAGE_INPUT_TOKENS), Some(input));
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        delta["usage"]["output_tokens"].as_i64()
    );
    let expected = llmtap_mock::anthropic_usage(&request).context("usage")?;
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        Some(expected.output_tokens as i64)
    );
    assert_eq!(
        int(span, sc::LLMTAP_RESPONSE_CHUNK_COUNT),
        Some(events.len() as i64),
        "every data event counted (ping included)"
    );
    assert_eq!(
        json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "reasoning", "content": thinking},
            {"type": "text", "content": text}]}])
    );
    Ok(())
}

#[tokio::test]
async fn anthropic_tool_use_and_tool_result_round_trip() -> Result<()> {
    let mut stack = Stack::start().await?;
    let tools = json!([{"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let ask = json!({"role": "user", "content": "Weather in Paris?"});
    for stream in [false, true] {
        let first = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "tools": tools,
            "messages": [ask], "stream": stream});
        stack
            .post(MESSAGES, &first.to_string(), &[("x-llmtap-agent", "tools")])
            .await?;
    }
    let followup = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "tools": tools, "messages": [
        ask,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C and sunny"}]}
    ]});
    stack
        .post(
            MESSAGES,
            &followup.to_string(),
            &[("x-llmtap-agent", "tools")],
        )
        .await?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 3);
    for span in &spans[..2] {
        assert_eq!(
            span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(json!(["tool_use"]))
        );
        let out = json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?;
        assert_eq!(out[0]["finish_reason"], "tool_call");
        let part = &out[0]["parts"][0];
        assert_eq!(part["type"], "tool_call");
        assert_eq!(part["name"], "get_weather");
        assert_eq!(part["arguments"], json!({"city": "Weather in Paris?"}));
        assert!(part["id"].as_str().unwrap_or("").starts_with("toolu_01"));
        assert_eq!(
            json_attr(span, sc::GEN_AI_TOOL_DEFINITIONS)?,
            json!([{"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
        );
    }
    let last = &spans[2];
    assert_eq!(
        last.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["end_turn"]))
    );
    let input = json_attr(last, sc::GEN_AI_INPUT_MESSAGES)?;
    assert_eq!(
        input[1],
        json!({"role": "assistant", "parts": [{"type": "tool_call", "id": "toolu_01A", "name": "get_weather", "arguments": {"city": "Paris"}}]})
    );
    assert_eq!(
        input[2],
        json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": "toolu_01A", "response": "18C and sunny"}]})
    );
    Ok(())
}

// ---- OpenAI Responses -----------------------------------------------------------------------

#[tokio::test]
async fn responses_create_records_reasoning_cache_and_previous_id() -> Result<()> {
    let mut stack = Stack::start().await?;
    let request = responses_request(false);
    let reply = stack.post(RESPONSES, &request.to_string(), &[]).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body: Value = serde_json::from_slice(&reply.body)?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.name(), "chat o4-mini");
    assert_eq!(
        span.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
        Some("openai")
    );
    assert_eq!(
        span.attr_str(sc::OPENAI_API_TYPE).as_deref(),
        Some("responses")
    );
    assert_eq!(
        span.attr_str(sc::LLMTAP_REQUEST_REASONING_LEVEL).as_deref(),
        Some("high")
    );
    assert_eq!(
        span.attr_str(sc::LLMTAP_REQUEST_PREVIOUS_RESPONSE_ID)
            .as_deref(),
        Some("resp_previous_0001")
    );
    assert_eq!(int(span, sc::GEN_AI_REQUEST_MAX_TOKENS), Some(512));
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        body["id"].as_str()
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_MODEL).as_deref(),
        Some("o4-mini-2025-04-16")
    );
    assert_eq!(
        span.attr_str(sc::OPENAI_RESPONSE_SERVICE_TIER).as_deref(),
        Some("default")
    );
    assert_eq!(
        span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["stop"]))
    );
    let u = &body["usage"];
    let expected = llmtap_mock::responses_usage(&request).context("usage")?;
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        u["input_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        Some(expected.prompt_tokens as i64)
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        u["input_tokens_details"]["cached_tokens"].as_i64()
    );
    assert!(expected.cached_tokens > 0 && expected.reasoning_tokens > 0);
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        u["output_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        u["output_tokens_details"]["reasoning_tokens"].as_i64()
    );
    assert_eq!(
        json_attr(span, sc::GEN_AI_SYSTEM_INSTRUCTIONS)?,
        json!([{"type": "text", "content": "You are terse."}])
    );
    let input = json_attr(span, sc::GEN_AI_INPUT_MESSAGES)?;
    assert_eq!(input.as_array().map(Vec::len), Some(3));
    assert_eq!(
        input[1],
        json!({"role": "assistant", "parts": [{"type": "text", "content": "Earlier answer."}]})
    );
    let text = body["output"]
        .as_array()
        .and_then(|o| o.iter().find(|i| i["type"] == "message"))
        .map(|m| m["content"][0]["text"].clone())
        .context("message item")?;
    assert_eq!(
        json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?,
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": text}]}])
    );
    Ok(())
}

#[tokio::test]
async fn responses_stream_and_incomplete_and_function_calls() -> Result<()> {
    let mut stack = Stack::start().await?;
    let request = responses_request(true);
    let reply = stack.post(RESPONSES, &request.to_string(), &[]).await?;
    let events = sse_data(&reply.text());
    let completed = events
        .iter()
        .find(|e| e["type"] == "response.completed")
        .context("completed")?;
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();

    let mut short = responses_request(false);
    short["max_output_tokens"] = json!(2);
    stack
        .post(
            RESPONSES,
            &short.to_string(),
            &[("x-llmtap-agent", "short")],
        )
        .await?;
    short["stream"] = json!(true);
    stack
        .post(
            RESPONSES,
            &short.to_string(),
            &[("x-llmtap-agent", "short")],
        )
        .await?;

    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"type": "web_search"}]);
    let call =
        json!({"model": "gpt-4.1", "input": "Weather in Paris?", "tools": tools, "stream": true});
    stack
        .post(RESPONSES, &call.to_string(), &[("x-llmtap-agent", "tools")])
        .await?;

    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 4);
    let span = &spans[0];
    let u = &completed["response"]["usage"];
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        completed["response"]["id"].as_str()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        u["input_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        u["output_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        u["input_tokens_details"]["cached_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        u["output_tokens_details"]["reasoning_tokens"].as_i64()
    );
    assert_eq!(
        int(span, sc::LLMTAP_RESPONSE_CHUNK_COUNT),
        Some(events.len() as i64)
    );
    assert_eq!(
        json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?[0]["parts"],
        json!([{"type": "text", "content": text}])
    );

    for short_span in &spans[1..3] {
        assert_eq!(
            short_span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(json!(["length"]))
        );
        assert_eq!(
            short_span.status_code(),
            OtlpStatus::Unset,
            "incomplete is not an error"
        );
    }
    let tool_span = &spans[3];
    assert_eq!(
        tool_span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["tool_call"]))
    );
    let out = json_attr(tool_span, sc::GEN_AI_OUTPUT_MESSAGES)?;
    assert_eq!(out[0]["parts"][0]["type"], "tool_call");
    assert_eq!(
        out[0]["parts"][0]["arguments"],
        json!({"city": "Weather in Paris?"})
    );
    assert!(
        out[0]["parts"][0]["id"]
            .as_str()
            .unwrap_or("")
            .starts_with("call_")
    );
    assert_eq!(
        json_attr(tool_span, sc::GEN_AI_TOOL_DEFINITIONS)?[1],
        json!({"type": "web_search", "name": "web_search"})
    );
    Ok(())
}

// ---- Gemini ---------------------------------------------------------------------------------

#[tokio::test]
async fn gemini_generate_content_model_from_path_usage_and_no_key() -> Result<()> {
    let mut stack = Stack::start().await?;
    let request = gemini_request();
    let reply = stack
        .post(
            &gemini_path("generateContent", ""),
            &request.to_string(),
            &[("x-goog-api-key", GEMINI_KEY)],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body: Value = serde_json::from_slice(&reply.body)?;
    let upstream = stack.mock.requests().pop().context("mock saw it")?;
    assert_eq!(
        upstream.query.as_deref(),
        Some(format!("key={GEMINI_KEY}").as_str()),
        "query forwarded untouched"
    );
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    let span = only(&spans);
    assert_eq!(span.name(), "generate_content gemini-2.5-flash");
    assert_eq!(
        span.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
        Some("gcp.gemini")
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_REQUEST_MODEL).as_deref(),
        Some("gemini-2.5-flash")
    );
    assert!(span.attr(sc::GEN_AI_REQUEST_STREAM).is_none());
    assert_eq!(
        span.attr_str(sc::LLMTAP_HTTP_ROUTE).as_deref(),
        Some("/v1beta/models/gemini-2.5-flash:generateContent")
    );
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TOP_K), Some(json!(32.0)));
    assert_eq!(int(span, sc::GEN_AI_REQUEST_MAX_TOKENS), Some(300));
    assert_eq!(int(span, sc::GEN_AI_REQUEST_SEED), Some(5));
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TOP_P), Some(json!(0.95)));
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_ID).as_deref(),
        body["responseId"].as_str()
    );
    assert_eq!(
        span.attr_str(sc::GEN_AI_RESPONSE_MODEL).as_deref(),
        body["modelVersion"].as_str()
    );
    assert_eq!(
        span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
        Some(json!(["STOP"]))
    );
    let u = &body["usageMetadata"];
    let expected = llmtap_mock::gemini_usage("gemini-2.5-flash", &request).context("usage")?;
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
        u["promptTokenCount"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        u["cachedContentTokenCount"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        Some(llmtap_mock::CACHED_CONTENT_TOKENS as i64)
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
        Some((expected.candidates_token_count + expected.thoughts_token_count) as i64)
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        u["thoughtsTokenCount"].as_i64()
    );
    assert_eq!(
        int(span, sc::GEN_AI_USAGE_INPUT_TOKENS).unwrap_or(0)
            + int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS).unwrap_or(0),
        u["totalTokenCount"].as_i64().unwrap_or(-1),
        "input + output = Gemini's total"
    );
    let out = json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?;
    assert_eq!(out[0]["finish_reason"], "stop");
    assert_eq!(out[0]["parts"][0]["type"], "reasoning");
    assert_eq!(
        out[0]["parts"][1],
        json!({"type": "text", "content": body["candidates"][0]["content"]["parts"][1]["text"]})
    );
    assert_eq!(
        json_attr(span, sc::GEN_AI_SYSTEM_INSTRUCTIONS)?,
        json!([{"type": "text", "content": "You are terse."}])
    );
    let raw = std::fs::read_to_string(&stack.jsonl)?;
    assert!(
        !raw.contains(GEMINI_KEY),
        "the key= query parameter and header never reach the JSONL"
    );
    assert!(!raw.contains("key="), "no query string is recorded");
    Ok(())
}

#[tokio::test]
async fn gemini_sse_and_json_array_streams_decode_alike() -> Result<()> {
    let mut stack = Stack::start().await?;
    let request = gemini_request();
    let sse = stack
        .post(
            &gemini_path("streamGenerateContent", "alt=sse&"),
            &request.to_string(),
            &[("x-llmtap-agent", "sse")],
        )
        .await?;
    assert!(
        sse.headers["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let array = stack
        .post(
            &gemini_path("streamGenerateContent", ""),
            &request.to_string(),
            &[("x-llmtap-agent", "array")],
        )
        .await?;
    assert!(
        array.headers["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    let elements: Value = serde_json::from_slice(&array.body)?;
    let chunks = elements.as_array().context("a JSON array")?;
    let last = chunks.last().context("chunks")?;
    let text: String = chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p["thought"] != json!(true))
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect();
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span.status_code(), OtlpStatus::Unset);
        assert_eq!(span.attr(sc::GEN_AI_REQUEST_STREAM), Some(json!(true)));
        assert!(span.attr(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK).is_some());
        assert_eq!(
            int(span, sc::LLMTAP_RESPONSE_CHUNK_COUNT),
            Some(chunks.len() as i64)
        );
        assert_eq!(
            span.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(json!(["STOP"]))
        );
        assert_eq!(
            int(span, sc::GEN_AI_USAGE_INPUT_TOKENS),
            last["usageMetadata"]["promptTokenCount"].as_i64()
        );
        assert_eq!(
            int(span, sc::GEN_AI_USAGE_OUTPUT_TOKENS),
            Some(
                last["usageMetadata"]["candidatesTokenCount"]
                    .as_i64()
                    .unwrap_or(0)
                    + last["usageMetadata"]["thoughtsTokenCount"]
                        .as_i64()
                        .unwrap_or(0)
            )
        );
        let out = json_attr(span, sc::GEN_AI_OUTPUT_MESSAGES)?;
        assert_eq!(out[0]["parts"][1], json!({"type": "text", "content": text}));
        assert!(span.attr(sc::LLMTAP_CAPTURE_ERROR).is_none());
        assert_eq!(
            span.attr_str(sc::LLMTAP_HTTP_ROUTE).as_deref(),
            Some("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
        );
    }
    let a: Vec<_> = spans[0]
        .attr_keys()
        .filter(|k| *k != sc::GEN_AI_AGENT_NAME)
        .map(str::to_owned)
        .collect();
    let b: Vec<_> = spans[1]
        .attr_keys()
        .filter(|k| *k != sc::GEN_AI_AGENT_NAME)
        .map(str::to_owned)
        .collect();
    assert_eq!(a.len(), b.len(), "same attributes from both framings");
    Ok(())
}

#[tokio::test]
async fn gemini_function_call_and_response() -> Result<()> {
    let mut stack = Stack::start().await?;
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]},
        {"googleSearch": {}}]);
    let ask = json!({"role": "user", "parts": [{"text": "Weather in Paris?"}]});
    let first = json!({"contents": [ask], "tools": tools});
    let reply = stack
        .post(&gemini_path("generateContent", ""), &first.to_string(), &[])
        .await?;
    let body: Value = serde_json::from_slice(&reply.body)?;
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    let second = json!({"contents": [ask,
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": "18C"}}}]}],
        "tools": tools});
    stack
        .post(
            &gemini_path("streamGenerateContent", "alt=sse&"),
            &second.to_string(),
            &[],
        )
        .await?;
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 2);
    let out = json_attr(&spans[0], sc::GEN_AI_OUTPUT_MESSAGES)?;
    assert_eq!(out[0]["finish_reason"], "tool_call");
    assert_eq!(
        out[0]["parts"][0],
        json!({"type": "tool_call", "name": "get_weather", "arguments": {"city": "Weather in Paris?"}})
    );
    assert_eq!(
        json_attr(&spans[0], sc::GEN_AI_TOOL_DEFINITIONS)?,
        json!([{"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
            {"type": "googleSearch", "name": "googleSearch"}])
    );
    let input = json_attr(&spans[1], sc::GEN_AI_INPUT_MESSAGES)?;
    assert_eq!(
        input[1],
        json!({"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}]})
    );
    assert_eq!(
        input[2],
        json!({"role": "tool", "parts": [{"type": "tool_call_response", "name": "get_weather", "response": {"temp": "18C"}}]})
    );
    Ok(())
}

// ---- Every stream outcome, every provider ---------------------------------------------------

/// A streaming call per provider (Gemini twice: SSE and JSON array), with the error codes each
/// provider's error event and its 429 carry.
struct Case {
    name: &'static str,
    path: String,
    body: String,
    in_stream_error: &'static str,
    http_429: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "anthropic",
            path: MESSAGES.into(),
            body: anthropic_request(true).to_string(),
            in_stream_error: "overloaded_error",
            http_429: "rate_limit_error",
        },
        Case {
            name: "responses",
            path: RESPONSES.into(),
            body: responses_request(true).to_string(),
            in_stream_error: "server_error",
            http_429: "rate_limit_exceeded",
        },
        Case {
            name: "gemini-sse",
            path: gemini_path("streamGenerateContent", "alt=sse&"),
            body: gemini_request().to_string(),
            in_stream_error: "INTERNAL",
            http_429: "RESOURCE_EXHAUSTED",
        },
        Case {
            name: "gemini-array",
            path: gemini_path("streamGenerateContent", ""),
            body: gemini_request().to_string(),
            in_stream_error: "INTERNAL",
            http_429: "RESOURCE_EXHAUSTED",
        },
    ]
}

#[tokio::test]
async fn every_stream_outcome_for_every_provider() -> Result<()> {
    for case in cases() {
        let mut stack = Stack::start().await?;
        let name = case.name;
        // Completed.
        stack
            .post(&case.path, &case.body, &[("x-llmtap-agent", "ok")])
            .await?;
        // In-stream error event.
        stack
            .post(
                &case.path,
                &case.body,
                &[
                    ("x-llmtap-agent", "event"),
                    ("x-mock-scenario", "chunks:6,stream-error"),
                ],
            )
            .await?;
        // HTTP error.
        let r = stack
            .post(
                &case.path,
                &case.body,
                &[("x-llmtap-agent", "http"), ("x-mock-scenario", "error:429")],
            )
            .await?;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{name}");
        // Upstream hang-up after 7 events/elements (some text already streamed).
        let _ = stack
            .post(
                &case.path,
                &case.body,
                &[
                    ("x-llmtap-agent", "hangup"),
                    ("x-mock-scenario", "chunks:8,hangup-after:7"),
                ],
            )
            .await;
        let (_, spans) = stack.stop().await?;
        let spans = llmtap_tests::spans::checked_calls(spans)?;
        assert_eq!(spans.len(), 4, "{name}: one span per call");
        let by = |agent: &str| {
            spans
                .iter()
                .find(|s| s.attr_str(sc::GEN_AI_AGENT_NAME).as_deref() == Some(agent))
                .with_context(|| format!("{name}: {agent} span"))
        };
        let ok = by("ok")?;
        assert_eq!(ok.status_code(), OtlpStatus::Unset, "{name}");
        assert!(ok.attr(sc::ERROR_TYPE).is_none(), "{name}");
        assert!(ok.attr(sc::LLMTAP_CAPTURE_ERROR).is_none(), "{name}");

        let event = by("event")?;
        assert_eq!(event.status_code(), OtlpStatus::Error, "{name}");
        assert_eq!(
            event.attr_str(sc::ERROR_TYPE).as_deref(),
            Some(case.in_stream_error),
            "{name}"
        );
        assert_eq!(
            event.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(json!(["error"])),
            "{name}"
        );

        let http = by("http")?;
        assert_eq!(http.status_code(), OtlpStatus::Error, "{name}");
        assert_eq!(
            http.attr_str(sc::ERROR_TYPE).as_deref(),
            Some(case.http_429),
            "{name}"
        );
        assert_eq!(
            int(http, sc::HTTP_RESPONSE_STATUS_CODE),
            Some(429),
            "{name}"
        );

        let cut = by("hangup")?;
        assert_eq!(cut.status_code(), OtlpStatus::Error, "{name}");
        assert_eq!(
            cut.attr_str(sc::ERROR_TYPE).as_deref(),
            Some("stream_truncated"),
            "{name}"
        );
        assert_eq!(
            cut.attr(sc::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(json!(["error"])),
            "{name}"
        );
        let partial = json_attr(cut, sc::GEN_AI_OUTPUT_MESSAGES)?;
        let kept = partial[0]["parts"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["type"] == "text"))
            .and_then(|p| p["content"].as_str())
            .unwrap_or("");
        assert!(!kept.is_empty(), "{name}: partial output kept: {partial}");
        assert!(
            cut.attr(sc::LLMTAP_CAPTURE_ERROR).is_none(),
            "{name}: a cut is not bad data"
        );
    }
    Ok(())
}

#[tokio::test]
async fn client_disconnect_mid_stream_for_every_provider() -> Result<()> {
    for case in cases() {
        let mut stack = Stack::start().await?;
        let response = stack
            .open_stream(&case.path, case.body.clone(), "chunks:50,slow:40")
            .await?;
        // Read a few chunks, then hang up.
        hang_up_after(response, 5).await;
        let spans = stack
            .wait_for_jsonl_spans(1, Duration::from_secs(10))
            .await?;
        let span = only(&spans);
        assert_eq!(span.status_code(), OtlpStatus::Error, "{}", case.name);
        assert_eq!(
            span.attr_str(sc::ERROR_TYPE).as_deref(),
            Some("client_disconnected"),
            "{}",
            case.name
        );
        assert!(
            span.attr(sc::GEN_AI_OUTPUT_MESSAGES).is_some(),
            "{}: partial output kept",
            case.name
        );
        assert!(
            int(span, sc::GEN_AI_USAGE_INPUT_TOKENS).is_some() || case.name == "responses",
            "{}: usage so far kept",
            case.name
        );
        let (report, spans) = stack.stop().await?;
        let spans = llmtap_tests::spans::checked_calls(spans)?;
        assert_eq!(spans.len(), 1, "{}: ended exactly once", case.name);
        assert_eq!(report.abandoned_calls, 0);
    }
    Ok(())
}

#[tokio::test]
async fn provider_prefixes_and_default_upstreams() -> Result<()> {
    // The OpenAI upstream is dead: Messages and Gemini calls must go to their own upstreams.
    let closed = llmtap_tests::closed_port();
    let mut stack = Stack::start_with(StackOptions {
        upstream_openai: Some(closed.url()),
        ..Default::default()
    })
    .await?;
    let r = stack
        .post(MESSAGES, &anthropic_request(false).to_string(), &[])
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let r = stack
        .post(
            &gemini_path("generateContent", ""),
            &gemini_request().to_string(),
            &[],
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let r = stack
        .post(RESPONSES, &responses_request(false).to_string(), &[])
        .await?;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "Responses is OpenAI's");
    stack.mock.clear_requests();
    let r = stack
        .post(
            "/anthropic/v1/messages",
            &anthropic_request(false).to_string(),
            &[],
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let r = stack
        .post(
            "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
            &gemini_request().to_string(),
            &[],
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let paths: Vec<String> = stack
        .mock
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        vec![
            "/v1/messages",
            "/v1beta/models/gemini-2.0-flash:generateContent"
        ]
    );
    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert_eq!(spans.len(), 5);
    assert_eq!(
        spans[2].attr_str(sc::ERROR_TYPE).as_deref(),
        Some("upstream_unreachable")
    );
    assert_eq!(
        spans[3].attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
        Some("anthropic")
    );
    assert_eq!(
        spans[4].attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
        Some("gcp.gemini")
    );
    assert_eq!(
        spans[4].attr_str(sc::GEN_AI_REQUEST_MODEL).as_deref(),
        Some("gemini-2.0-flash")
    );
    Ok(())
}

// ---- One semconv version per output -----------------------------------------------------------

/// The proxy's output for an Anthropic call with a cache write: v1.41 names and schema URL by
/// default (what Phoenix and Jaeger's GenAI view read), the GenAI repository's names and schema
/// URL with `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` — never a mix.
#[tokio::test]
async fn anthropic_cache_write_follows_the_selected_convention() -> Result<()> {
    async fn run(opt_in: Option<&str>) -> Result<(Value, RecordedSpan)> {
        let mut stack = Stack::start_with(StackOptions {
            env: opt_in
                .map(|v| vec![("OTEL_SEMCONV_STABILITY_OPT_IN".to_owned(), v.to_owned())])
                .unwrap_or_default(),
            ..Default::default()
        })
        .await?;
        let reply = stack
            .post(
                MESSAGES,
                &anthropic_request(false).to_string(),
                &[("anthropic-version", "2023-06-01")],
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let (_, spans) = stack.stop().await?;
        let spans = llmtap_tests::spans::checked_calls(spans)?;
        let text = std::fs::read_to_string(&stack.jsonl)?;
        let line: Value = serde_json::from_str(text.lines().next().context("a line")?)?;
        Ok((line, only(&spans).clone()))
    }

    let (line, span) = run(None).await?;
    let v141 = "https://opentelemetry.io/schemas/1.41.0";
    assert_eq!(line["resourceSpans"][0]["schemaUrl"], v141);
    assert_eq!(line["resourceSpans"][0]["scopeSpans"][0]["schemaUrl"], v141);
    assert_eq!(
        line["resourceSpans"][0]["scopeSpans"][0]["scope"]["version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        int(&span, sc::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
        Some(8)
    );
    assert_eq!(span.attr(sc::GEN_AI_REQUEST_TOP_K), Some(json!(40.0)));
    assert!(
        span.attr(sc::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)
            .is_none()
    );

    let (line, span) = run(Some("gen_ai_latest_experimental")).await?;
    let latest = "https://opentelemetry.io/schemas/gen-ai/1.42.0";
    assert_eq!(line["resourceSpans"][0]["schemaUrl"], latest);
    assert_eq!(
        line["resourceSpans"][0]["scopeSpans"][0]["schemaUrl"],
        latest
    );
    assert_eq!(
        int(&span, sc::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
        Some(8)
    );
    assert_eq!(int(&span, sc::GEN_AI_REQUEST_TOP_K), Some(40));
    assert!(
        span.attr(sc::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
            .is_none()
    );
    Ok(())
}
