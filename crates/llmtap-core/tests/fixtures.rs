//! Provider codecs against captured traffic in `tests/fixtures/<provider>/<case>/`:
//!
//! - `case.json`: the request path (model and stream flag come from it for Gemini), the upstream
//!   host (provider name) and, for streams, the response `content_type`;
//! - `request.json`: the request body;
//! - `response.json` (a whole body) or `stream.sse` / `stream.json` (a streamed body, SSE or
//!   Gemini's JSON array);
//! - `expected.json`: the span name and every attribute the codecs derive, content attributes
//!   shown parsed. After a deliberate codec change, rewrite them with
//!   `LLMTAP_REWRITE_FIXTURES=1 cargo test -p llmtap-core --test fixtures` and review the diff
//!   (the test still fails on that run if anything differed, so a rewrite is never silent).
//!
//! Besides the goldens: usage is checked against the provider's own numbers read straight from
//! each capture (independently of the codecs), every stream capture re-chunked at arbitrary byte
//! boundaries must decode identically, and no decoder may panic on arbitrary or mutated bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use llmtap_core::call::LlmCall;
use llmtap_core::capture::CapturePolicy;
use llmtap_core::codec::{
    self, Api, StreamFormat, StreamState, parse_error_body, parse_request, parse_response,
};
use llmtap_core::semconv as sc;
use opentelemetry::{Array, Value as OtelValue};
use proptest::prelude::*;
use serde_json::{Value, json};

const PROVIDERS: &[&str] = &["anthropic", "openai_responses", "gemini"];

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    dir: PathBuf,
    path: String,
    host: String,
    content_type: Option<String>,
    request: Vec<u8>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Whole(Vec<u8>),
    Stream(Vec<u8>),
}

fn read(dir: &Path, file: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(file)).ok()
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for provider in PROVIDERS {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root().join(provider))
            .unwrap_or_else(|e| panic!("fixtures for {provider}: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let meta: Value =
                serde_json::from_slice(&read(&dir, "case.json").expect("case.json")).unwrap();
            let body = match (
                read(&dir, "response.json"),
                read(&dir, "stream.sse").or_else(|| read(&dir, "stream.json")),
            ) {
                (Some(b), None) => Body::Whole(b),
                (None, Some(s)) => Body::Stream(s),
                _ => panic!("{}: exactly one of response.json / stream.*", dir.display()),
            };
            out.push(Case {
                name: format!(
                    "{provider}/{}",
                    dir.file_name().unwrap_or_default().to_string_lossy()
                ),
                path: meta["path"].as_str().expect("path").to_owned(),
                host: meta["host"].as_str().expect("host").to_owned(),
                content_type: meta["content_type"].as_str().map(str::to_owned),
                request: read(&dir, "request.json").expect("request.json"),
                body,
                dir,
            });
        }
    }
    assert!(out.len() >= 15, "fixtures missing: {}", out.len());
    out
}

/// Runs a case through the codecs the way the proxy does; a stream is fed in `chunks`.
fn decode(case: &Case, chunks: &[&[u8]]) -> LlmCall {
    let policy = CapturePolicy::default();
    let route = codec::route(&case.path).expect("fixture path routes");
    let mut call = route.new_call(codec::provider_for(route.api, &case.host));
    parse_request(route.api, &case.request, &policy, &mut call).expect("request parses");
    match &case.body {
        Body::Whole(bytes) => {
            parse_response(route.api, bytes, &policy, &mut call).expect("response parses");
        }
        Body::Stream(_) => {
            let ct = case.content_type.as_deref().unwrap_or("text/event-stream");
            let format = codec::stream_format(route.api, call.request.stream, Some(ct))
                .expect("fixture is a stream");
            let mut state = StreamState::with_format(route.api, format, &policy);
            for chunk in chunks {
                state.feed(chunk);
            }
            state.finish(&policy, &mut call, true);
        }
    }
    call
}

fn decode_whole(case: &Case) -> LlmCall {
    match &case.body {
        Body::Whole(_) => decode(case, &[]),
        Body::Stream(s) => decode(case, &[s]),
    }
}

fn otel_to_json(v: &OtelValue) -> Value {
    match v {
        OtelValue::Bool(b) => json!(b),
        OtelValue::I64(i) => json!(i),
        OtelValue::F64(f) => json!(f),
        OtelValue::String(s) => json!(s.as_str()),
        OtelValue::Array(Array::Bool(a)) => json!(a),
        OtelValue::Array(Array::I64(a)) => json!(a),
        OtelValue::Array(Array::F64(a)) => json!(a),
        OtelValue::Array(Array::String(a)) => {
            Value::Array(a.iter().map(|s| json!(s.as_str())).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

const CONTENT_KEYS: &[&str] = &[
    sc::GEN_AI_INPUT_MESSAGES,
    sc::GEN_AI_OUTPUT_MESSAGES,
    sc::GEN_AI_SYSTEM_INSTRUCTIONS,
    sc::GEN_AI_TOOL_DEFINITIONS,
];

/// The span name and attributes as a stable JSON document (content shown parsed).
fn snapshot(call: &LlmCall) -> Value {
    let mut attrs = BTreeMap::new();
    for kv in call.all_attributes() {
        let key = kv.key.as_str().to_owned();
        let mut value = otel_to_json(&kv.value);
        if CONTENT_KEYS.contains(&key.as_str())
            && let Some(parsed) = value.as_str().and_then(|s| serde_json::from_str(s).ok())
        {
            value = parsed;
        }
        attrs.insert(key, value);
    }
    json!({"span_name": call.span_name(), "status_error": call.effective_error_type(), "attributes": attrs})
}

/// Set to rewrite every `expected.json` from the current codecs instead of only comparing.
const REWRITE_ENV: &str = "LLMTAP_REWRITE_FIXTURES";

#[test]
fn fixtures_decode_to_their_expected_attributes() {
    let rewrite = std::env::var_os(REWRITE_ENV).is_some();
    let mut differed = Vec::new();
    for case in cases() {
        let got = snapshot(&decode_whole(&case));
        let expected: Option<Value> =
            read(&case.dir, "expected.json").map(|b| serde_json::from_slice(&b).unwrap());
        if expected.as_ref() == Some(&got) {
            continue;
        }
        if !rewrite {
            let Some(expected) = expected else {
                panic!("{}: no expected.json; run with {REWRITE_ENV}=1", case.name);
            };
            assert_eq!(got, expected, "{}", case.name);
        }
        let mut text = serde_json::to_string_pretty(&got).unwrap();
        text.push('\n');
        std::fs::write(case.dir.join("expected.json"), text).unwrap();
        differed.push(case.name.clone());
    }
    assert!(
        differed.is_empty(),
        "rewrote expected.json of {differed:?}; review the diff and run again without {REWRITE_ENV}"
    );
}

// ---- usage equals the provider's own numbers, read straight from the capture ---------------

/// Every JSON document in a body: the whole body, each SSE data payload, or each array element.
fn documents(case: &Case) -> Vec<Value> {
    match &case.body {
        Body::Whole(b) => vec![serde_json::from_slice(b).unwrap()],
        Body::Stream(s) => {
            let text = String::from_utf8_lossy(s);
            if text.trim_start().starts_with('[') {
                serde_json::from_str::<Vec<Value>>(&text).unwrap()
            } else {
                text.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .filter_map(|d| serde_json::from_str(d.trim()).ok())
                    .collect()
            }
        }
    }
}

/// `(input, output, cache_read, cache_write, reasoning)` as the provider reported them, turned
/// into semconv terms by the plain arithmetic the conventions prescribe.
fn provider_usage(case: &Case) -> [Option<i64>; 5] {
    let docs = documents(case);
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64);
    if case.name.starts_with("anthropic/") {
        // The last value of each field over message.usage / message_start / message_delta.
        let mut u: BTreeMap<&str, i64> = BTreeMap::new();
        for d in &docs {
            let usage = d
                .get("usage")
                .or_else(|| d.get("message").and_then(|m| m.get("usage")));
            for k in [
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ] {
                if let Some(v) = usage.and_then(|u| n(u, k)) {
                    u.insert(k, v);
                }
            }
        }
        let get = |k| u.get(k).copied();
        let input = match (
            get("input_tokens"),
            get("cache_read_input_tokens"),
            get("cache_creation_input_tokens"),
        ) {
            (Some(a), Some(b), Some(c)) => Some(a + b + c),
            _ => None,
        };
        return [
            input,
            get("output_tokens"),
            get("cache_read_input_tokens"),
            get("cache_creation_input_tokens"),
            None,
        ];
    }
    if case.name.starts_with("openai_responses/") {
        let usage = docs
            .iter()
            .rev()
            .find_map(|d| {
                d.get("usage")
                    .or_else(|| d.get("response").and_then(|r| r.get("usage")))
                    .filter(|u| u.is_object())
            })
            .cloned()
            .unwrap_or(Value::Null);
        return [
            n(&usage, "input_tokens"),
            n(&usage, "output_tokens"),
            usage["input_tokens_details"]["cached_tokens"].as_i64(),
            None,
            usage["output_tokens_details"]["reasoning_tokens"].as_i64(),
        ];
    }
    let usage = docs
        .iter()
        .rev()
        .find_map(|d| d.get("usageMetadata"))
        .cloned()
        .unwrap_or(Value::Null);
    let prompt = n(&usage, "promptTokenCount");
    let candidates = n(&usage, "candidatesTokenCount").unwrap_or(0);
    let thoughts = n(&usage, "thoughtsTokenCount");
    let output = candidates + thoughts.unwrap_or(0);
    let total = n(&usage, "totalTokenCount").expect("Gemini reports a total");
    assert_eq!(
        prompt.unwrap_or(0) + output,
        total,
        "{}: capture adds up",
        case.name
    );
    [
        prompt,
        Some(output),
        n(&usage, "cachedContentTokenCount"),
        None,
        thoughts,
    ]
}

#[test]
fn usage_matches_the_providers_numbers_in_every_fixture() {
    for case in cases() {
        if case.name.contains("error") || case.name.contains("failed") {
            continue;
        }
        let call = decode_whole(&case);
        let u = call.usage;
        let ours = [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_write_input_tokens,
            u.reasoning_output_tokens,
        ]
        .map(|v| v.map(|n| n as i64));
        assert_eq!(ours, provider_usage(&case), "{}", case.name);
        assert!(
            u.input_tokens.is_some() && u.output_tokens.is_some(),
            "{}",
            case.name
        );
    }
}

#[test]
fn failures_in_fixtures_are_errors_with_provider_codes() {
    let by_name = |n: &str| cases().into_iter().find(|c| c.name == n).expect(n);
    let call = decode_whole(&by_name("anthropic/stream_overloaded_error"));
    assert_eq!(call.error_type.as_deref(), Some("overloaded_error"));
    assert_eq!(call.response.finish_reasons, vec!["error".to_owned()]);
    let call = decode_whole(&by_name("openai_responses/stream_failed"));
    assert_eq!(call.error_type.as_deref(), Some("server_error"));
    assert_eq!(call.response.finish_reasons, vec!["error".to_owned()]);
    let call = decode_whole(&by_name("gemini/stream_safety_json_array"));
    assert_eq!(call.error_type, None);
    assert_eq!(call.response.finish_reasons, vec!["SAFETY".to_owned()]);
}

// ---- re-chunking and robustness ------------------------------------------------------------

fn stream_cases() -> Vec<Case> {
    cases()
        .into_iter()
        .filter(|c| matches!(c.body, Body::Stream(_)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every SSE / JSON-array capture, cut at arbitrary byte boundaries (inside UTF-8
    /// characters, `\r\n` pairs, JSON strings), decodes exactly like the whole body.
    #[test]
    fn every_stream_capture_rechunked_decodes_identically(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        for case in stream_cases() {
            let Body::Stream(bytes) = &case.body else { continue };
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            points.dedup();
            let mut pieces = Vec::new();
            let mut start = 0;
            for p in points {
                pieces.push(&bytes[start..p]);
                start = p;
            }
            pieces.push(&bytes[start..]);
            let whole = snapshot(&decode_whole(&case));
            let chunked = snapshot(&decode(&case, &pieces));
            prop_assert_eq!(chunked, whole, "{}", case.name);
        }
    }

    /// Arbitrary bytes, in arbitrary chunks, into every decoder of every API and framing, and
    /// into every body parser: never a panic.
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..96), 0..8),
        complete in any::<bool>(),
    ) {
        let policy = CapturePolicy::default();
        let all: Vec<u8> = chunks.concat();
        for api in ALL_APIS {
            for format in [StreamFormat::Sse, StreamFormat::JsonArray] {
                let mut call = api.new_call("openai");
                let mut state = StreamState::with_format(api, format, &policy);
                for c in &chunks {
                    state.feed(c);
                }
                state.finish(&policy, &mut call, complete);
                let _ = call.all_attributes();
            }
            let mut call = api.new_call("openai");
            let _ = parse_request(api, &all, &policy, &mut call);
            let _ = parse_response(api, &all, &policy, &mut call);
            let _ = call.all_attributes();
        }
        let _ = parse_error_body(&all);
    }

    /// Real captures with bytes flipped, dropped or duplicated, and cut short: still no panic,
    /// and a cut capture still ends with a span's worth of attributes.
    #[test]
    fn mutated_captures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = cases();
        let case = &all[which.index(all.len())];
        let mut bytes = match &case.body { Body::Whole(b) | Body::Stream(b) => b.clone() };
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let policy = CapturePolicy::default();
        let route = codec::route(&case.path).expect("routes");
        for format in [StreamFormat::Sse, StreamFormat::JsonArray] {
            let mut call = route.new_call("x");
            let _ = parse_request(route.api, &case.request, &policy, &mut call);
            let mut state = StreamState::with_format(route.api, format, &policy);
            state.feed(&bytes);
            state.finish(&policy, &mut call, false);
            prop_assert!(!call.all_attributes().is_empty());
        }
        let mut call = route.new_call("x");
        let _ = parse_response(route.api, &bytes, &policy, &mut call);
        let _ = parse_error_body(&bytes);
    }
}

const ALL_APIS: [Api; 6] = [
    Api::OpenAiChat,
    Api::OpenAiCompletions,
    Api::OpenAiEmbeddings,
    Api::OpenAiResponses,
    Api::AnthropicMessages,
    Api::GeminiGenerateContent,
];
