//! Codec tests: routing, provider detection, the three APIs' request/response parsers, error
//! bodies, and stream accumulation on realistic SSE (plus property tests for chunking
//! independence and robustness against arbitrary bytes).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::semconv::{capture_error, error_type, finish_reason};

const ALL_APIS: [Api; 6] = [
    Api::OpenAiChat,
    Api::OpenAiCompletions,
    Api::OpenAiEmbeddings,
    Api::OpenAiResponses,
    Api::AnthropicMessages,
    Api::GeminiGenerateContent,
];

fn new_call(api: Api) -> LlmCall {
    api.new_call(provider::OPENAI)
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn parse_json(text: Option<&str>) -> Value {
    serde_json::from_str(text.expect("content captured")).unwrap()
}

/// An SSE body: one `data:` event per chunk, then `[DONE]`.
fn sse(chunks: &[Value]) -> String {
    let mut out = String::new();
    for c in chunks {
        out.push_str("data: ");
        out.push_str(&c.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out
}

fn stream_call(api: Api, body: &[u8], policy: &CapturePolicy, complete: bool) -> LlmCall {
    let mut call = new_call(api);
    let mut state = StreamState::with_capture(api, policy);
    state.feed(body);
    state.finish(policy, &mut call, complete);
    call
}

fn chunk(id: &str, choices: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1", "service_tier": "default", "choices": choices})
}

fn delta(index: u64, delta: Value, finish: Option<&str>) -> Value {
    json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish})
}

/// A realistic text stream: role chunk, two content chunks, finish chunk.
fn text_stream() -> Vec<Value> {
    vec![
        chunk(
            "chatcmpl-1",
            json!([delta(
                0,
                json!({"role": "assistant", "content": "", "refusal": null}),
                None
            )]),
        ),
        chunk(
            "chatcmpl-1",
            json!([delta(0, json!({"content": "Hello, "}), None)]),
        ),
        chunk(
            "chatcmpl-1",
            json!([delta(0, json!({"content": "wörld 🌍!"}), None)]),
        ),
        chunk("chatcmpl-1", json!([delta(0, json!({}), Some("stop"))])),
    ]
}

fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06",
        "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 0}}})
}

/// Tool-call arguments split over several chunks, with a multi-byte character.
fn tool_stream() -> Vec<Value> {
    vec![
        chunk(
            "chatcmpl-2",
            json!([delta(
                0,
                json!({"role": "assistant", "content": null, "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": ""}}]}),
                None
            )]),
        ),
        chunk(
            "chatcmpl-2",
            json!([delta(
                0,
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
                None
            )]),
        ),
        chunk(
            "chatcmpl-2",
            json!([delta(
                0,
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Zürich\"}"}}]}),
                None
            )]),
        ),
        chunk(
            "chatcmpl-2",
            json!([delta(
                0,
                json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                "function": {"name": "get_time", "arguments": "{}"}}]}),
                None
            )]),
        ),
        chunk(
            "chatcmpl-2",
            json!([delta(0, json!({}), Some("tool_calls"))]),
        ),
        usage_chunk(),
    ]
}

// ---- route / provider ---------------------------------------------------------------------

#[test]
fn routes() {
    let r = route("/v1/chat/completions").unwrap();
    assert_eq!(r.api, Api::OpenAiChat);
    assert_eq!(r.provider_hint, None);
    assert_eq!(r.upstream_path, "/v1/chat/completions");

    let r = route("/openai/v1/chat/completions?x=1").unwrap();
    assert_eq!(
        (r.api, r.provider_hint),
        (Api::OpenAiChat, Some(provider::OPENAI))
    );
    assert_eq!(r.upstream_path, "/v1/chat/completions?x=1");

    let r = route("/gemini/v1beta/openai/chat/completions").unwrap();
    assert_eq!(r.provider_hint, Some(provider::GCP_GEMINI));
    assert_eq!(r.upstream_path, "/v1beta/openai/chat/completions");

    let azure = "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21";
    let r = route(azure).unwrap();
    assert_eq!((r.api, r.provider_hint), (Api::OpenAiChat, None));
    assert_eq!(r.upstream_path, azure);

    assert_eq!(
        route("/v1/completions/").unwrap().api,
        Api::OpenAiCompletions
    );
    assert_eq!(route("/v1/embeddings").unwrap().api, Api::OpenAiEmbeddings);
    assert_eq!(
        route("/anthropic/v1/embeddings").unwrap().provider_hint,
        Some(provider::ANTHROPIC)
    );
    assert_eq!(route("/v1/models"), None);
    assert_eq!(route("/v1/chat/completions/abc"), None);
    assert_eq!(route(""), None);
    assert_eq!(route("?"), None);
}

#[test]
fn api_calls_carry_operation_and_api_type() {
    let call = Api::OpenAiChat.new_call("openai");
    assert_eq!(call.operation, "chat");
    assert_eq!(call.api_type, Some("chat_completions"));
    let call = Api::OpenAiCompletions.new_call("openai");
    assert_eq!((call.operation, call.api_type), ("text_completion", None));
    let call = Api::OpenAiEmbeddings.new_call("openai");
    assert_eq!((call.operation, call.api_type), ("embeddings", None));
}

#[test]
fn providers_by_host() {
    let cases = [
        ("api.openai.com", provider::OPENAI),
        ("API.OpenAI.com:443", provider::OPENAI),
        ("api.anthropic.com", provider::ANTHROPIC),
        ("generativelanguage.googleapis.com", provider::GCP_GEMINI),
        (
            "us-central1-aiplatform.googleapis.com",
            provider::GCP_VERTEX_AI,
        ),
        ("aiplatform.googleapis.com", provider::GCP_VERTEX_AI),
        ("api.groq.com", provider::GROQ),
        ("api.mistral.ai", provider::MISTRAL_AI),
        ("api.deepseek.com.", provider::DEEPSEEK),
        ("api.x.ai", provider::X_AI),
        ("api.perplexity.ai", provider::PERPLEXITY),
        ("api.cohere.ai", provider::COHERE),
        ("api.moonshot.cn", provider::MOONSHOT_AI),
        ("myres.openai.azure.com", provider::AZURE_AI_OPENAI),
        ("x.services.ai.azure.com", provider::AZURE_AI_INFERENCE),
        ("x.inference.ai.azure.com", provider::AZURE_AI_INFERENCE),
        (
            "bedrock-runtime.us-east-1.amazonaws.com",
            provider::AWS_BEDROCK,
        ),
        ("openrouter.ai", provider::OPENROUTER),
        ("api.together.xyz", provider::TOGETHER_AI),
        ("localhost:11434", provider::OLLAMA),
        ("[::1]:11434", provider::OLLAMA),
        ("::1", provider::OPENAI),
        ("localhost:8000", provider::OPENAI),
        ("", provider::OPENAI),
        ("evil-api.openai.com.attacker.net", provider::OPENAI),
    ];
    for (host, expected) in cases {
        assert_eq!(provider_for_host(host), expected, "{host}");
    }
}

// ---- chat ---------------------------------------------------------------------------------

#[test]
fn chat_request_via_public_api() {
    let mut call = new_call(Api::OpenAiChat);
    let req =
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    parse_request(
        Api::OpenAiChat,
        &body(&req),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert_eq!(call.request.model.as_deref(), Some("gpt-4o"));
    assert!(call.request.stream);
    assert_eq!(
        parse_json(call.content.input_messages.as_deref()),
        json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
    );
}

#[test]
fn chat_response() {
    let resp = json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_44709d6fcb", "service_tier": "default",
        "choices": [
            {"index": 1, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}},
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                "content": "Hi there", "reasoning_content": "think", "refusal": null}},
            {"index": 2, "finish_reason": "content_filter", "message": {"role": "assistant",
                "content": null, "refusal": "I can't help with that."}}
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 4}}
    });
    let mut call = new_call(Api::OpenAiChat);
    parse_response(
        Api::OpenAiChat,
        &body(&resp),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    let r = &call.response;
    assert_eq!(r.id.as_deref(), Some("chatcmpl-abc"));
    assert_eq!(r.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(r.system_fingerprint.as_deref(), Some("fp_44709d6fcb"));
    assert_eq!(r.service_tier.as_deref(), Some("default"));
    assert_eq!(r.finish_reasons, ["stop", "tool_calls", "content_filter"]);
    assert_eq!(call.usage.input_tokens, Some(20));
    assert_eq!(call.usage.output_tokens, Some(10));
    assert_eq!(call.usage.cache_read_input_tokens, Some(8));
    assert_eq!(call.usage.reasoning_output_tokens, Some(4));
    assert_eq!(call.error_type, None);
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([
            {"role": "assistant", "finish_reason": "stop", "parts": [
                {"type": "reasoning", "content": "think"},
                {"type": "text", "content": "Hi there"}]},
            {"role": "assistant", "finish_reason": "tool_call", "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"role": "assistant", "finish_reason": "content_filter", "parts": [
                {"type": "refusal", "content": "I can't help with that."}]}
        ])
    );
    assert!(!call.content.truncated);
}

#[test]
fn chat_response_without_content_capture() {
    let resp = json!({"id": "x", "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "secret"}}]});
    let mut call = new_call(Api::OpenAiChat);
    parse_response(
        Api::OpenAiChat,
        &body(&resp),
        &CapturePolicy::no_content(),
        &mut call,
    )
    .unwrap();
    assert_eq!(call.response.finish_reasons, ["stop"]);
    assert_eq!(call.content, Default::default());
}

#[test]
fn chat_response_oddities() {
    // Missing finish reason → `error`; non-object choices skipped; strings bounded.
    let resp = json!({"id": "i".repeat(1000), "model": 7, "choices": [
        {"message": {"content": "a"}}, 3, {"finish_reason": "length", "message": {"content": "b"}}]});
    let mut call = new_call(Api::OpenAiChat);
    parse_response(
        Api::OpenAiChat,
        &body(&resp),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert_eq!(call.response.finish_reasons, ["error", "length"]);
    assert_eq!(call.response.id.as_ref().map(String::len), Some(256));
    assert_eq!(call.response.model, None);
    let out = parse_json(call.content.output_messages.as_deref());
    assert_eq!(out[0]["finish_reason"], "error");
    assert_eq!(out[1]["parts"][0]["content"], "b");
}

#[test]
fn invalid_bodies_set_capture_error() {
    for api in ALL_APIS {
        let mut call = new_call(api);
        let err = parse_response(api, b"{\"id\": ", &CapturePolicy::default(), &mut call);
        assert!(matches!(err, Err(CodecError::InvalidJson { .. })));
        assert_eq!(call.capture_error, Some(capture_error::INVALID_JSON));

        let mut call = new_call(api);
        let err = parse_request(api, b"[1,2]", &CapturePolicy::default(), &mut call);
        assert!(matches!(err, Err(CodecError::NotAnObject)));
        assert_eq!(call.capture_error, Some(capture_error::INVALID_JSON));
    }
}

#[test]
fn error_object_in_ok_response_sets_error_type() {
    let mut call = new_call(Api::OpenAiChat);
    call.error_type = None;
    let b = br#"{"error": {"message": "overloaded", "type": "server_error", "code": null}}"#;
    parse_response(Api::OpenAiChat, b, &CapturePolicy::default(), &mut call).unwrap();
    assert_eq!(call.error_type.as_deref(), Some("server_error"));
}

#[test]
fn error_bodies() {
    let openai = br#"{"error": {"message": "Incorrect API key provided: sk-xx", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}"#;
    assert_eq!(parse_error_body(openai).as_deref(), Some("invalid_api_key"));
    let anthropic =
        br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
    assert_eq!(
        parse_error_body(anthropic).as_deref(),
        Some("overloaded_error")
    );
    let gemini = br#"[{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}]"#;
    assert_eq!(
        parse_error_body(gemini).as_deref(),
        Some("RESOURCE_EXHAUSTED")
    );
    let vllm = br#"{"object": "error", "message": "m", "type": "NotFoundError", "code": 404}"#;
    assert_eq!(parse_error_body(vllm).as_deref(), Some("NotFoundError"));
    assert_eq!(parse_error_body(b"<html>502 Bad Gateway</html>"), None);
    assert_eq!(parse_error_body(b""), None);
    assert_eq!(parse_error_body(br#"{"detail": "Not Found"}"#), None);
}

// ---- legacy completions -------------------------------------------------------------------

#[test]
fn completions_request() {
    let req = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test",
        "max_tokens": 7, "temperature": 0, "top_p": 1, "n": 2, "stream": false, "stop": ["\n"],
        "seed": 3, "frequency_penalty": 0.5, "presence_penalty": 0.25, "logprobs": null});
    let mut call = new_call(Api::OpenAiCompletions);
    parse_request(
        Api::OpenAiCompletions,
        &body(&req),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    let r = &call.request;
    assert_eq!(r.model.as_deref(), Some("gpt-3.5-turbo-instruct"));
    assert_eq!(r.max_tokens, Some(7));
    assert_eq!(r.temperature, Some(0.0));
    assert_eq!(r.top_p, Some(1.0));
    assert_eq!(r.choice_count, Some(2));
    assert_eq!(r.stop_sequences, ["\n"]);
    assert_eq!(r.seed, Some(3));
    assert_eq!(r.frequency_penalty, Some(0.5));
    assert_eq!(r.presence_penalty, Some(0.25));
    assert!(!r.stream);
    assert_eq!(
        parse_json(call.content.input_messages.as_deref()),
        json!([{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}])
    );

    let req = json!({"model": "m", "prompt": ["a", "b", [1, 2]], "stream": true});
    let mut call = new_call(Api::OpenAiCompletions);
    parse_request(
        Api::OpenAiCompletions,
        &body(&req),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert!(call.request.stream);
    assert_eq!(
        parse_json(call.content.input_messages.as_deref()),
        json!([
            {"role": "user", "parts": [{"type": "text", "content": "a"}]},
            {"role": "user", "parts": [{"type": "text", "content": "b"}]},
            {"role": "user", "parts": [{"type": "token_ids", "content": [1, 2]}]}
        ])
    );

    let req = json!({"model": "m", "prompt": "secret"});
    let mut call = new_call(Api::OpenAiCompletions);
    parse_request(
        Api::OpenAiCompletions,
        &body(&req),
        &CapturePolicy::no_content(),
        &mut call,
    )
    .unwrap();
    assert_eq!(call.content, Default::default());
}

#[test]
fn completions_response() {
    let resp = json!({"id": "cmpl-1", "object": "text_completion", "created": 1,
        "model": "gpt-3.5-turbo-instruct", "system_fingerprint": "fp_x",
        "choices": [
            {"text": "\n\nThis is indeed a test", "index": 0, "logprobs": null, "finish_reason": "length"},
            {"text": "Yes", "index": 1, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}});
    let mut call = new_call(Api::OpenAiCompletions);
    parse_response(
        Api::OpenAiCompletions,
        &body(&resp),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert_eq!(call.response.id.as_deref(), Some("cmpl-1"));
    assert_eq!(
        call.response.model.as_deref(),
        Some("gpt-3.5-turbo-instruct")
    );
    assert_eq!(call.response.system_fingerprint.as_deref(), Some("fp_x"));
    assert_eq!(call.response.finish_reasons, ["length", "stop"]);
    assert_eq!(call.usage.input_tokens, Some(5));
    assert_eq!(call.usage.output_tokens, Some(7));
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([
            {"role": "assistant", "finish_reason": "length",
             "parts": [{"type": "text", "content": "\n\nThis is indeed a test"}]},
            {"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": "Yes"}]}
        ])
    );
}

// ---- embeddings ---------------------------------------------------------------------------

#[test]
fn embeddings_request_and_response() {
    let req = json!({"model": "text-embedding-3-small", "input": ["secret text"],
        "encoding_format": "float", "dimensions": 256});
    let mut call = new_call(Api::OpenAiEmbeddings);
    parse_request(
        Api::OpenAiEmbeddings,
        &body(&req),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert_eq!(
        call.request.model.as_deref(),
        Some("text-embedding-3-small")
    );
    assert_eq!(call.request.encoding_formats, ["float"]);
    assert_eq!(call.response.embedding_dimensions, Some(256));
    assert_eq!(
        call.content,
        Default::default(),
        "inputs are never captured"
    );

    let resp = json!({"object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]}],
        "usage": {"prompt_tokens": 8, "total_tokens": 8}});
    parse_response(
        Api::OpenAiEmbeddings,
        &body(&resp),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert_eq!(
        call.response.model.as_deref(),
        Some("text-embedding-3-small")
    );
    assert_eq!(call.response.embedding_dimensions, Some(3));
    assert_eq!(call.usage.input_tokens, Some(8));
    assert_eq!(call.usage.output_tokens, None);
}

#[test]
fn embeddings_dimensions_from_base64_or_request() {
    // Three little-endian f32s (12 bytes) → 16 base64 chars; and 2 f32s (8 bytes) → padded.
    let cases = [
        ("AACAPwAAAEAAAEBA", Some(3)),
        ("AACAPwAAAEA=", Some(2)),
        ("AAA=", None),
    ];
    for (b64, dims) in cases {
        let resp = json!({"model": "m", "data": [{"embedding": b64}]});
        let mut call = new_call(Api::OpenAiEmbeddings);
        parse_response(
            Api::OpenAiEmbeddings,
            &body(&resp),
            &CapturePolicy::default(),
            &mut call,
        )
        .unwrap();
        assert_eq!(call.response.embedding_dimensions, dims, "{b64}");
    }

    let mut call = new_call(Api::OpenAiEmbeddings);
    let req = json!({"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 64});
    parse_request(
        Api::OpenAiEmbeddings,
        &body(&req),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    let resp = json!({"model": "m", "data": [{"embedding": "@@@"}]});
    parse_response(
        Api::OpenAiEmbeddings,
        &body(&resp),
        &CapturePolicy::default(),
        &mut call,
    )
    .unwrap();
    assert_eq!(call.response.embedding_dimensions, Some(64));
}

// ---- streams ------------------------------------------------------------------------------

#[test]
fn stream_text_without_usage() {
    let call = stream_call(
        Api::OpenAiChat,
        sse(&text_stream()).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.id.as_deref(), Some("chatcmpl-1"));
    assert_eq!(call.response.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(call.response.system_fingerprint.as_deref(), Some("fp_1"));
    assert_eq!(call.response.service_tier.as_deref(), Some("default"));
    assert_eq!(call.response.finish_reasons, ["stop"]);
    assert_eq!(call.timings.chunk_count, 4);
    assert_eq!(call.usage, Default::default());
    assert_eq!(call.capture_error, None);
    assert_eq!(call.error_type, None);
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "text", "content": "Hello, wörld 🌍!"}]}])
    );
}

#[test]
fn stream_with_include_usage() {
    let mut chunks = text_stream();
    chunks.push(usage_chunk());
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.timings.chunk_count, 5);
    assert_eq!(call.usage.input_tokens, Some(12));
    assert_eq!(call.usage.output_tokens, Some(5));
    assert_eq!(call.usage.cache_read_input_tokens, Some(4));
    assert_eq!(call.usage.reasoning_output_tokens, Some(0));
    assert_eq!(call.response.finish_reasons, ["stop"]);
}

#[test]
fn stream_tool_call_arguments_across_chunks() {
    let call = stream_call(
        Api::OpenAiChat,
        sse(&tool_stream()).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.finish_reasons, ["tool_calls"]);
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([{"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Zürich"}},
            {"type": "tool_call", "id": "call_2", "name": "get_time", "arguments": {}}
        ]}])
    );
}

#[test]
fn stream_tool_calls_without_index() {
    // Some compatible servers omit `index`: a new id starts a new call.
    let chunks = vec![
        chunk(
            "c",
            json!([delta(
                0,
                json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}),
                None
            )]),
        ),
        chunk(
            "c",
            json!([delta(
                0,
                json!({"tool_calls": [{"function": {"arguments": ":1}"}}]}),
                None
            )]),
        ),
        chunk(
            "c",
            json!([delta(
                0,
                json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
                Some("tool_calls")
            )]),
        ),
    ];
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    let out = parse_json(call.content.output_messages.as_deref());
    assert_eq!(
        out[0]["parts"],
        json!([
            {"type": "tool_call", "id": "a", "name": "f", "arguments": {"x": 1}},
            {"type": "tool_call", "id": "b", "name": "g", "arguments": {}}
        ])
    );
}

#[test]
fn stream_two_choices() {
    let chunks = vec![
        chunk(
            "c",
            json!([
                delta(0, json!({"role": "assistant", "content": ""}), None),
                delta(1, json!({"role": "assistant", "content": ""}), None)
            ]),
        ),
        chunk("c", json!([delta(1, json!({"content": "B1"}), None)])),
        chunk("c", json!([delta(0, json!({"content": "A1"}), None)])),
        chunk(
            "c",
            json!([delta(1, json!({"content": "B2"}), Some("length"))]),
        ),
        chunk(
            "c",
            json!([delta(0, json!({"content": "A2"}), Some("stop"))]),
        ),
    ];
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.finish_reasons, ["stop", "length"]);
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([
            {"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": "A1A2"}]},
            {"role": "assistant", "finish_reason": "length", "parts": [{"type": "text", "content": "B1B2"}]}
        ])
    );
}

#[test]
fn stream_cut_midway_keeps_partial_output() {
    let full = sse(&text_stream());
    // Cut inside the third event's JSON (after "Hello, " arrived).
    let cut_at = full.find("wörld").unwrap();
    let call = stream_call(
        Api::OpenAiChat,
        &full.as_bytes()[..cut_at],
        &CapturePolicy::default(),
        false,
    );
    assert_eq!(call.response.finish_reasons, [finish_reason::ERROR]);
    assert_eq!(
        call.timings.chunk_count, 3,
        "the cut event is still a data event"
    );
    assert_eq!(call.capture_error, None, "a cut is not bad data");
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([{"role": "assistant", "finish_reason": "error",
            "parts": [{"type": "text", "content": "Hello, "}]}])
    );

    // The same bytes on a stream that claims completion: the broken last event is bad data.
    let call = stream_call(
        Api::OpenAiChat,
        &full.as_bytes()[..cut_at],
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.finish_reasons, [finish_reason::ERROR]);
    assert_eq!(call.capture_error, Some(capture_error::INVALID_SSE));
}

#[test]
fn stream_cut_at_event_boundary() {
    let chunks = text_stream();
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks[..2])
            .trim_end_matches("data: [DONE]\n\n")
            .as_bytes(),
        &CapturePolicy::default(),
        false,
    );
    assert_eq!(call.response.finish_reasons, ["error"]);
    assert_eq!(call.timings.chunk_count, 2);
    assert_eq!(call.capture_error, None);
}

#[test]
fn stream_in_stream_error() {
    let mut text = sse(&text_stream()[..2]);
    text = text.replace(
        "data: [DONE]\n\n",
        "event: error\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\"code\":\"server_overloaded\"}}\n\n",
    );
    let call = stream_call(
        Api::OpenAiChat,
        text.as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.error_type.as_deref(), Some("server_overloaded"));
    assert_eq!(call.response.finish_reasons, ["error"]);
    assert_eq!(call.timings.chunk_count, 3);
    assert_eq!(call.capture_error, None);
    let out = parse_json(call.content.output_messages.as_deref());
    assert_eq!(out[0]["parts"][0]["content"], "Hello, ");

    // An error that names no code still marks the call; an existing error type wins.
    let text = "data: {\"error\": {\"message\": \"boom\"}}\n\n";
    let call = stream_call(
        Api::OpenAiChat,
        text.as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.error_type.as_deref(), Some(error_type::OTHER));
    let mut call = new_call(Api::OpenAiChat);
    call.error_type = Some(error_type::CLIENT_DISCONNECTED.to_owned());
    let mut state = StreamState::new(Api::OpenAiChat);
    state.feed(text.as_bytes());
    state.finish(&CapturePolicy::default(), &mut call, false);
    assert_eq!(
        call.error_type.as_deref(),
        Some(error_type::CLIENT_DISCONNECTED)
    );
}

#[test]
fn stream_garbage_lines() {
    let mut text = String::from("data: not json\n\n: keep-alive comment\n\ndata: 42\n\n");
    text.push_str(&sse(&text_stream()));
    let call = stream_call(
        Api::OpenAiChat,
        text.as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.capture_error, Some(capture_error::INVALID_SSE));
    assert_eq!(call.timings.chunk_count, 6);
    assert_eq!(call.response.finish_reasons, ["stop"]);
    let out = parse_json(call.content.output_messages.as_deref());
    assert_eq!(out[0]["parts"][0]["content"], "Hello, wörld 🌍!");
}

#[test]
fn stream_reasoning_and_refusal() {
    let chunks = vec![
        chunk(
            "c",
            json!([delta(
                0,
                json!({"role": "assistant", "reasoning_content": "Let me "}),
                None
            )]),
        ),
        chunk("c", json!([delta(0, json!({"reasoning": "think."}), None)])),
        chunk("c", json!([delta(0, json!({"refusal": "No."}), None)])),
        chunk(
            "c",
            json!([delta(0, json!({"content": "Answer"}), Some("stop"))]),
        ),
    ];
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "reasoning", "content": "Let me think."},
            {"type": "text", "content": "Answer"},
            {"type": "refusal", "content": "No."}
        ]}])
    );
}

#[test]
fn stream_without_content_capture() {
    let call = stream_call(
        Api::OpenAiChat,
        sse(&tool_stream()).as_bytes(),
        &CapturePolicy::no_content(),
        true,
    );
    assert_eq!(call.response.finish_reasons, ["tool_calls"]);
    assert_eq!(call.usage.input_tokens, Some(12));
    assert_eq!(call.content, Default::default());

    // A state that accumulated content still records none under a no-content policy.
    let mut call = new_call(Api::OpenAiChat);
    let mut state = StreamState::new(Api::OpenAiChat);
    state.feed(sse(&text_stream()).as_bytes());
    state.finish(&CapturePolicy::no_content(), &mut call, true);
    assert_eq!(call.content, Default::default());
    assert_eq!(call.response.finish_reasons, ["stop"]);
}

#[test]
fn stream_accumulation_is_bounded() {
    let policy = CapturePolicy {
        max_content_bytes: 200,
        ..CapturePolicy::default()
    };
    let piece = "é".repeat(50); // 100 bytes
    let mut chunks: Vec<Value> = (0..100)
        .map(|_| chunk("c", json!([delta(0, json!({"content": piece,
            "tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": piece}}]}), None)])))
        .collect();
    chunks.push(chunk("c", json!([delta(0, json!({}), Some("length"))])));
    let call = stream_call(Api::OpenAiChat, sse(&chunks).as_bytes(), &policy, true);
    assert!(call.content.truncated);
    let text = call.content.output_messages.unwrap();
    assert!(text.len() <= 200, "{}", text.len());
    assert!(serde_json::from_str::<Value>(&text).is_ok());
    assert_eq!(call.response.finish_reasons, ["length"]);

    // Internal state stays small too: many choices and tool calls are capped.
    let choices: Vec<Value> = (0..1000u64)
        .map(|i| delta(i, json!({"content": "x"}), None))
        .collect();
    let calls: Vec<Value> = (0..1000u64)
        .map(|i| json!({"index": i, "function": {"name": "f", "arguments": "{}"}}))
        .collect();
    let chunks = vec![
        chunk("c", Value::Array(choices)),
        chunk("c", json!([delta(0, json!({"tool_calls": calls}), None)])),
    ];
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.finish_reasons.len(), 128);
    assert!(call.content.truncated);
}

#[test]
fn stream_legacy_completions() {
    let chunks = vec![
        json!({"id": "cmpl-9", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
            "choices": [{"text": "Once", "index": 0, "logprobs": null, "finish_reason": null}]}),
        json!({"id": "cmpl-9", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
            "choices": [{"text": " upon", "index": 0, "logprobs": null, "finish_reason": "length"}]}),
        json!({"id": "cmpl-9", "object": "text_completion", "model": "gpt-3.5-turbo-instruct", "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ];
    let call = stream_call(
        Api::OpenAiCompletions,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.id.as_deref(), Some("cmpl-9"));
    assert_eq!(call.response.finish_reasons, ["length"]);
    assert_eq!(call.usage.output_tokens, Some(2));
    assert_eq!(call.timings.chunk_count, 3);
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([{"role": "assistant", "finish_reason": "length",
            "parts": [{"type": "text", "content": "Once upon"}]}])
    );
}

#[test]
fn stream_azure_preamble_and_secrets() {
    // Azure's first chunk has blank id/model and no choices; content is redacted.
    let mut chunks = vec![
        json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
    ];
    chunks.push(chunk(
        "chatcmpl-az",
        json!([delta(
            0,
            json!({"content": "key: sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"}),
            Some("stop")
        )]),
    ));
    let call = stream_call(
        Api::OpenAiChat,
        sse(&chunks).as_bytes(),
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.response.id.as_deref(), Some("chatcmpl-az"));
    assert_eq!(call.response.model.as_deref(), Some("gpt-4o-2024-08-06"));
    let text = call.content.output_messages.unwrap();
    assert!(!text.contains("abcdefghijklmnop"), "{text}");
}

#[test]
fn stream_events_fed_directly() {
    let mut state = StreamState::new(Api::OpenAiChat);
    assert_eq!(state.api(), Api::OpenAiChat);
    let mut decoder = SseDecoder::new();
    decoder.feed(sse(&text_stream()).as_bytes(), |ev| state.on_event(&ev));
    let mut call = new_call(Api::OpenAiChat);
    state.finish(&CapturePolicy::default(), &mut call, true);
    assert_eq!(call.response.finish_reasons, ["stop"]);
    assert_eq!(call.timings.chunk_count, 4);
}

#[test]
fn embeddings_streams_are_only_counted() {
    let call = stream_call(
        Api::OpenAiEmbeddings,
        b"data: {\"a\":1}\n\ndata: junk\n\ndata: [DONE]\n\n",
        &CapturePolicy::default(),
        true,
    );
    assert_eq!(call.timings.chunk_count, 2);
    assert_eq!(call.response, Default::default());
}

// ---- properties ---------------------------------------------------------------------------

/// A stream exercising every accumulated field, with multi-byte text and CRLF line endings.
fn rich_stream() -> Vec<u8> {
    let mut chunks = text_stream();
    chunks.extend(tool_stream());
    chunks.insert(
        2,
        chunk(
            "chatcmpl-1",
            json!([delta(1, json!({"reasoning_content": "ünïcödé 思考"}), None)]),
        ),
    );
    let mut text = sse(&chunks).replace("\n", "\r\n");
    text.insert_str(0, ": ping\r\n\r\ndata: garbage\r\n\r\n");
    text.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn rechunking_does_not_change_the_result(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
        complete in any::<bool>(),
    ) {
        let bytes = rich_stream();
        let policy = CapturePolicy::default();
        let whole = stream_call(Api::OpenAiChat, &bytes, &policy, complete);

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut call = new_call(Api::OpenAiChat);
        let mut state = StreamState::with_capture(Api::OpenAiChat, &policy);
        let mut start = 0;
        for p in points {
            state.feed(&bytes[start..p]);
            start = p;
        }
        state.feed(&bytes[start..]);
        state.finish(&policy, &mut call, complete);
        prop_assert_eq!(&call, &whole);
        prop_assert_eq!(whole.capture_error, Some(capture_error::INVALID_SSE));
        prop_assert_eq!(whole.response.finish_reasons.len(), 2);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        complete in any::<bool>(),
        content in any::<bool>(),
    ) {
        let policy = if content {
            CapturePolicy { max_content_bytes: 64, ..CapturePolicy::default() }
        } else {
            CapturePolicy::no_content()
        };
        let all: Vec<u8> = chunks.concat();
        for api in ALL_APIS {
            let mut state = StreamState::with_capture(api, &policy);
            for c in &chunks {
                state.feed(c);
            }
            let mut call = new_call(api);
            state.finish(&policy, &mut call, complete);
            let mut call = new_call(api);
            let _ = parse_request(api, &all, &policy, &mut call);
            let _ = parse_response(api, &all, &policy, &mut call);
            let _ = parse_error_body(&all);
        }
    }

    #[test]
    fn arbitrary_json_chunks_never_panic(
        values in proptest::collection::vec(arb_json(), 0..6),
        complete in any::<bool>(),
    ) {
        let policy = CapturePolicy { max_content_bytes: 64, ..CapturePolicy::default() };
        for api in ALL_APIS {
            let text = sse(&values);
            let call = stream_call(api, text.as_bytes(), &policy, complete);
            if let Some(out) = &call.content.output_messages {
                prop_assert!(out.len() <= 64);
            }
            for v in &values {
                let mut call = new_call(api);
                let _ = parse_request(api, &body(v), &policy, &mut call);
                let _ = parse_response(api, &body(v), &policy, &mut call);
            }
        }
    }
}

/// JSON shaped like OpenAI chunks and bodies, with wrong types mixed in.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\\[\\]{}\"é ]{0,12}".prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("id"),
        Just("model"),
        Just("choices"),
        Just("index"),
        Just("delta"),
        Just("content"),
        Just("text"),
        Just("tool_calls"),
        Just("function"),
        Just("name"),
        Just("arguments"),
        Just("finish_reason"),
        Just("usage"),
        Just("prompt_tokens"),
        Just("error"),
        Just("code"),
        Just("message"),
        Just("data"),
        Just("embedding"),
        Just("prompt"),
        Just("reasoning"),
        Just("refusal"),
        Just("function_call"),
        Just("object"),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

// ---- Responses, Anthropic, Gemini: routing, providers, stream framing ------------------------

#[test]
fn routes_for_responses_messages_and_gemini() {
    let r = route("/v1/responses").unwrap();
    assert_eq!(
        (r.api, r.path_model.as_deref(), r.path_stream),
        (Api::OpenAiResponses, None, false)
    );
    assert_eq!(Api::OpenAiResponses.api_type(), Some("responses"));
    assert_eq!(Api::OpenAiResponses.operation(), "chat");

    let r = route("/anthropic/v1/messages").unwrap();
    assert_eq!(
        (r.api, r.provider_hint),
        (Api::AnthropicMessages, Some(provider::ANTHROPIC))
    );
    assert_eq!(r.upstream_path, "/v1/messages");
    assert_eq!(Api::AnthropicMessages.operation(), "chat");
    assert_eq!(Api::AnthropicMessages.api_type(), None);
    // OpenAI Assistants' thread messages and Anthropic's token counter are not model calls.
    assert_eq!(route("/v1/threads/thread_abc/messages"), None);
    assert_eq!(route("/v1/messages/count_tokens"), None);

    let r = route("/v1beta/models/gemini-2.5-flash:streamGenerateContent").unwrap();
    assert_eq!(r.api, Api::GeminiGenerateContent);
    assert_eq!(r.path_model.as_deref(), Some("gemini-2.5-flash"));
    assert!(r.path_stream);
    assert_eq!(Api::GeminiGenerateContent.operation(), "generate_content");
    let call = r.new_call(provider::GCP_GEMINI);
    assert_eq!(call.request.model.as_deref(), Some("gemini-2.5-flash"));
    assert!(call.request.stream);
    assert_eq!(call.span_name(), "generate_content gemini-2.5-flash");

    let r = route("/gemini/v1beta/models/gemini-2.0-flash:generateContent?key=AIza").unwrap();
    assert_eq!(
        (r.path_model.as_deref(), r.path_stream),
        (Some("gemini-2.0-flash"), false)
    );
    assert_eq!(r.provider_hint, Some(provider::GCP_GEMINI));
    // Vertex AI's publisher path has the same shape.
    let r = route("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent").unwrap();
    assert_eq!(r.path_model.as_deref(), Some("gemini-2.5-pro"));
    assert_eq!(route("/v1beta/models/gemini-2.5-flash:countTokens"), None);
    assert_eq!(route("/v1beta/models:generateContent"), None);
}

#[test]
fn provider_for_an_api_prefers_a_known_host_else_the_apis_own() {
    assert_eq!(
        provider_for(Api::AnthropicMessages, "127.0.0.1:9999"),
        provider::ANTHROPIC
    );
    assert_eq!(
        provider_for(Api::GeminiGenerateContent, "localhost"),
        provider::GCP_GEMINI
    );
    assert_eq!(
        provider_for(Api::OpenAiResponses, "localhost:8000"),
        provider::OPENAI
    );
    assert_eq!(
        provider_for(Api::AnthropicMessages, "api.deepseek.com"),
        provider::DEEPSEEK
    );
    assert_eq!(
        provider_for(
            Api::GeminiGenerateContent,
            "us-central1-aiplatform.googleapis.com"
        ),
        provider::GCP_VERTEX_AI
    );
    assert_eq!(
        provider_for(Api::OpenAiChat, "api.groq.com"),
        provider::GROQ
    );
    assert_eq!(known_provider_for_host("vllm.internal:8000"), None);
    assert_eq!(provider_for_host("vllm.internal:8000"), provider::OPENAI);
}

#[test]
fn stream_framing_by_content_type_and_route() {
    use StreamFormat::*;
    let g = Api::GeminiGenerateContent;
    assert_eq!(stream_format(g, true, Some("text/event-stream")), Some(Sse));
    assert_eq!(
        stream_format(g, true, Some("application/json; charset=UTF-8")),
        Some(JsonArray)
    );
    assert_eq!(stream_format(g, false, Some("application/json")), None);
    assert_eq!(
        stream_format(
            Api::AnthropicMessages,
            true,
            Some("text/event-stream; charset=utf-8")
        ),
        Some(Sse)
    );
    assert_eq!(
        stream_format(Api::AnthropicMessages, true, Some("application/json")),
        None
    );
    assert_eq!(
        stream_format(Api::OpenAiResponses, true, Some("TEXT/EVENT-STREAM")),
        Some(Sse)
    );
    assert_eq!(stream_format(Api::OpenAiChat, false, None), None);
}

#[test]
fn anthropic_stream_cut_keeps_partial_output_and_usage_so_far() {
    let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_bl";
    let policy = CapturePolicy::default();
    let call = stream_call(Api::AnthropicMessages, body.as_bytes(), &policy, false);
    assert_eq!(call.usage.input_tokens, Some(17));
    assert_eq!(call.usage.cache_read_input_tokens, Some(5));
    assert_eq!(call.usage.cache_write_input_tokens, Some(2));
    assert_eq!(call.usage.output_tokens, Some(1));
    assert_eq!(call.response.finish_reasons, vec!["error".to_owned()]);
    assert_eq!(
        parse_json(call.content.output_messages.as_deref()),
        json!([{"role": "assistant", "finish_reason": "error", "parts": [{"type": "text", "content": "Hel"}]}])
    );
    assert_eq!(
        call.capture_error, None,
        "a cut last event is the cut, not bad data"
    );
}

#[test]
fn new_streams_accumulate_nothing_without_content_capture() {
    let policy = CapturePolicy::no_content();
    let anthropic = "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"secret\"}}\n\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n";
    let call = stream_call(Api::AnthropicMessages, anthropic.as_bytes(), &policy, true);
    assert_eq!(call.content, Default::default());
    assert_eq!(
        (call.usage.input_tokens, call.usage.output_tokens),
        (Some(3), Some(9))
    );
    let gemini = "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"secret\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"totalTokenCount\":6}}]";
    let mut call = Api::GeminiGenerateContent.new_call(provider::GCP_GEMINI);
    let mut state =
        StreamState::with_format(Api::GeminiGenerateContent, StreamFormat::JsonArray, &policy);
    state.feed(gemini.as_bytes());
    state.finish(&policy, &mut call, true);
    assert_eq!(call.content, Default::default());
    assert_eq!(
        (call.usage.input_tokens, call.usage.output_tokens),
        (Some(4), Some(2))
    );
    assert_eq!(call.response.finish_reasons, vec!["STOP".to_owned()]);
}
