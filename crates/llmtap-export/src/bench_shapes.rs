//! Span shapes and the two OTLP/JSON encoders, shared by the encoder's equality tests
//! (`otlp_json/tests.rs`) and the `llmtap-bench encoder` measurement (ADR 0013). Not part of
//! the API: compiled for this crate's tests and behind the non-default `bench-shapes` feature.
//!
//! - [`llmtap_span_shapes`] and [`llmtap_resource`]: the spans llmtap emits, built the way the
//!   proxy and the SDK build them;
//! - [`encode_direct`]: the encoder the exporter uses ([`encode_batch`]);
//! - [`proto_line`]: the path it replaced, kept as the reference.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::common::v1::{AnyValue as ProtoAnyValue, KeyValue as ProtoKv};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::otlp_json::{encode_batch, encode_line};

// ---------------------------------------------------------------------------------------------
// The two encoders.

/// Appends `batch` to `out` as one OTLP/JSON line with the exporter's encoder ([`encode_batch`]).
pub fn encode_direct(batch: &[SpanData], resource: &Resource, out: &mut Vec<u8>) {
    encode_batch(batch, resource, out).expect("writing into a Vec cannot fail");
}

fn proto_traces_data(batch: Vec<SpanData>, resource: &Resource) -> TracesData {
    let resource = ResourceAttributesWithSchema::from(resource);
    let mut data = TracesData {
        resource_spans: group_spans_by_resource_and_scope(batch, &resource),
    };
    for rs in &mut data.resource_spans {
        if let Some(r) = &mut rs.resource {
            fix_key_values(&mut r.attributes);
        }
        for ss in &mut rs.scope_spans {
            if let Some(s) = &mut ss.scope {
                fix_key_values(&mut s.attributes);
            }
            for span in &mut ss.spans {
                fix_key_values(&mut span.attributes);
                for e in &mut span.events {
                    fix_key_values(&mut e.attributes);
                }
                for l in &mut span.links {
                    fix_key_values(&mut l.attributes);
                }
            }
        }
    }
    data
}

fn fix_key_values(kvs: &mut [ProtoKv]) {
    for kv in kvs {
        if let Some(v) = &mut kv.value {
            fix_any_value(v);
        }
    }
}

/// The one known difference between `opentelemetry-proto`'s serde output and the OTLP/JSON spec,
/// normalised here explicitly: OTLP/JSON follows the proto3 JSON mapping, where a non-finite
/// `double` is the string `"NaN"`, `"Infinity"` or `"-Infinity"`; serde_json writes `null`
/// instead, which reads back as an empty value. Every other rule (hex trace and span ids,
/// 64-bit integers as decimal strings, enums as integers, lowerCamelCase keys) the serde
/// output already follows, and the unit tests' `assert_otlp_json_rules` checks it on our lines.
fn fix_any_value(v: &mut ProtoAnyValue) {
    match &mut v.value {
        Some(any_value::Value::DoubleValue(d)) if !d.is_finite() => {
            let spelled = if d.is_nan() {
                "NaN"
            } else if d.is_sign_positive() {
                "Infinity"
            } else {
                "-Infinity"
            };
            v.value = Some(any_value::Value::StringValue(spelled.to_owned()));
        }
        Some(any_value::Value::ArrayValue(a)) => a.values.iter_mut().for_each(fix_any_value),
        Some(any_value::Value::KvlistValue(l)) => fix_key_values(&mut l.values),
        _ => {}
    }
}

/// The proto path: `batch` as one OTLP/JSON line the way the exporter wrote it before
/// [`encode_batch`] (ADR 0013): `opentelemetry-proto`'s transform into owned structs, the
/// non-finite doubles respelled, then `serde_json`. Takes the batch owned, as the SDK hands it
/// to an exporter.
pub fn proto_line(batch: Vec<SpanData>, resource: &Resource) -> Vec<u8> {
    encode_line(&proto_traces_data(batch, resource)).expect("proto path encodes")
}

// ---------------------------------------------------------------------------------------------
// Span building blocks.

/// A string with everything JSON must escape, and non-ASCII.
pub const NASTY: &str =
    "q\"uote b\\ack \n nl \r \t \u{0} \u{1}\u{1f}\u{7f} é 😀 \u{2028} </script>";

/// `nanos` after the Unix epoch.
pub fn t(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// A span context from its parts.
pub fn ctx(
    trace: u128,
    span: u64,
    flags: TraceFlags,
    remote: bool,
    state: TraceState,
) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        remote,
        state,
    )
}

/// `SpanEvents` holding `events`.
pub fn events(events: Vec<Event>, dropped_count: u32) -> SpanEvents {
    let mut out = SpanEvents::default();
    out.events = events;
    out.dropped_count = dropped_count;
    out
}

/// `SpanLinks` holding `links`.
pub fn links(links: Vec<Link>, dropped_count: u32) -> SpanLinks {
    let mut out = SpanLinks::default();
    out.links = links;
    out.dropped_count = dropped_count;
    out
}

/// A sampled internal span with no attributes in `scope`: trace id `i << 64 | 0xabcdef`, span
/// id `i + 1`, 350 ms long.
pub fn base_span(i: u64, scope: InstrumentationScope) -> SpanData {
    SpanData {
        span_context: ctx(
            (u128::from(i) << 64) | 0xabcdef,
            i + 1,
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed("span"),
        start_time: t(1_700_000_000_000_000_000 + i),
        end_time: t(1_700_000_000_350_000_000 + i),
        attributes: vec![],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope,
    }
}

// ---------------------------------------------------------------------------------------------
// The span shapes llmtap emits, built the way the proxy and the SDK build them.

/// A model call's span as the proxy and the SDK record it: name, kind, start + end attributes
/// and status all from [`llmtap_core::call::LlmCall`].
fn model_call_span(i: u64, call: &llmtap_core::call::LlmCall, parent: u64) -> SpanData {
    let mut s = base_span(i, llmtap_scope());
    s.name = Cow::Owned(call.span_name());
    s.span_kind = call.span_kind();
    s.attributes = call.all_attributes();
    s.status = call.status();
    s.parent_span_id = SpanId::from(parent);
    s
}

fn llmtap_scope() -> InstrumentationScope {
    InstrumentationScope::builder("llmtap-proxy")
        .with_version("0.1.0")
        .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
        .build()
}

/// One span of every shape llmtap emits: `invoke_agent` (the root, with subtree totals and
/// metadata); model calls (chat with content, streamed, cut off, HTTP error, embeddings);
/// `execute_tool` with an error, an event and a link. Non-ASCII and escaped strings; int,
/// double, bool and array attributes.
pub fn llmtap_span_shapes() -> Vec<SpanData> {
    use llmtap_core::call::LlmCall;
    use llmtap_core::semconv::{self, operation, provider};

    let mut spans = Vec::new();

    // invoke_agent (the root), with subtree totals and metadata, as the SDK ends it.
    let mut agent = base_span(200, llmtap_scope());
    agent.name = Cow::Owned(semconv::agent_span_name(Some("planner")));
    agent.attributes = vec![
        KeyValue::new(semconv::GEN_AI_OPERATION_NAME, operation::INVOKE_AGENT),
        KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, provider::OPENAI),
        KeyValue::new(semconv::GEN_AI_AGENT_NAME, "planner"),
        KeyValue::new(semconv::GEN_AI_AGENT_ID, "agent-1"),
        KeyValue::new(semconv::GEN_AI_AGENT_DESCRIPTION, "plans — ✓ « non-ASCII »"),
        KeyValue::new(semconv::GEN_AI_CONVERSATION_ID, "sess-1"),
        KeyValue::new(semconv::meta_key("user_tier"), "gold"),
        KeyValue::new(semconv::LLMTAP_USAGE_TOTAL_INPUT_TOKENS, 1234_i64),
        KeyValue::new(semconv::LLMTAP_USAGE_TOTAL_OUTPUT_TOKENS, i64::MAX),
    ];
    let agent_span_id = agent.span_context.span_id();
    spans.push(agent);

    // chat, not streamed, with content, under the agent.
    let mut chat = LlmCall::new(operation::CHAT, provider::OPENAI);
    chat.server_address = Some("api.openai.com".into());
    chat.server_port = Some(443);
    chat.route = Some("/v1/chat/completions".into());
    chat.request.model = Some("gpt-4o-mini".into());
    chat.request.temperature = Some(0.1);
    chat.request.top_p = Some(1.0);
    chat.request.max_tokens = Some(50);
    chat.request.seed = Some(-7);
    chat.request.stop_sequences = vec!["END".into(), "\n\n".into()];
    chat.response.id = Some("chatcmpl-1".into());
    chat.response.model = Some("gpt-4o-mini-2024-07-18".into());
    chat.response.finish_reasons = vec!["stop".into()];
    chat.usage.input_tokens = Some(9);
    chat.usage.output_tokens = Some(40);
    chat.usage.cache_read_input_tokens = Some(0);
    chat.timings.duration = Some(Duration::from_millis(350));
    chat.http_status = Some(200);
    chat.agent.agent_name = Some("planner".into());
    chat.agent.conversation_id = Some("sess-1".into());
    chat.agent.meta = vec![("user_tier".into(), "gold".into())];
    chat.content.input_messages = Some(
        r#"[{"role":"user","parts":[{"type":"text","content":"Grüß \"dich\" 😀\n</script>"}]}]"#
            .into(),
    );
    chat.content.output_messages = Some(
        r#"[{"role":"assistant","parts":[{"type":"text","content":"ok"}],"finish_reason":"stop"}]"#
            .into(),
    );
    chat.content.system_instructions = Some(r#"[{"type":"text","content":"be brief"}]"#.into());
    // base_span(i) has span id i + 1: the agent is 201, this call 202.
    spans.push(model_call_span(201, &chat, 201));

    // chat, streamed: time to first chunk, reasoning tokens, tool calls, truncated capture.
    let mut stream = chat.clone();
    stream.request.stream = true;
    stream.usage.reasoning_output_tokens = Some(12);
    stream.timings.time_to_first_chunk = Some(Duration::from_micros(123_456));
    stream.timings.chunk_count = 42;
    stream.response.finish_reasons = vec!["tool_calls".into()];
    stream.content.truncated = true;
    spans.push(model_call_span(202, &stream, 201));

    // A failed call: upstream hang-up mid-stream, and an HTTP error with no response.
    let mut cut = stream.clone();
    cut.error_type = Some("stream_truncated".into());
    cut.transport_end = Some("upstream_hangup");
    spans.push(model_call_span(203, &cut, 201));
    let mut refused = LlmCall::new(operation::CHAT, provider::ANTHROPIC);
    refused.request.model = Some("claude-sonnet-4-5".into());
    refused.http_status = Some(429);
    refused.error_type = Some("429".into());
    spans.push(model_call_span(204, &refused, 0));

    // embeddings.
    let mut embed = LlmCall::new(operation::EMBEDDINGS, provider::OPENAI);
    embed.request.model = Some("text-embedding-3-small".into());
    embed.request.encoding_formats = vec!["float".into(), "base64".into()];
    embed.response.embedding_dimensions = Some(1536);
    embed.usage.input_tokens = Some(8);
    spans.push(model_call_span(205, &embed, 0));

    // execute_tool, with arguments and result, an error, an event and a link to the model
    // call that asked for it (a remote span with trace state).
    let mut tool = base_span(206, llmtap_scope());
    tool.name = Cow::Owned(semconv::tool_span_name("web_search"));
    tool.parent_span_id = agent_span_id;
    tool.attributes = vec![
        KeyValue::new(semconv::GEN_AI_OPERATION_NAME, operation::EXECUTE_TOOL),
        KeyValue::new(semconv::GEN_AI_TOOL_NAME, "web_search"),
        KeyValue::new(semconv::GEN_AI_TOOL_CALL_ID, "call_1"),
        KeyValue::new(semconv::GEN_AI_TOOL_TYPE, "function"),
        KeyValue::new(
            semconv::GEN_AI_TOOL_CALL_ARGUMENTS,
            r#"{"q":"naïve \"café\""}"#,
        ),
        KeyValue::new(semconv::GEN_AI_TOOL_CALL_RESULT, NASTY),
        KeyValue::new(semconv::ERROR_TYPE, "timeout"),
        KeyValue::new("llmtap.test.ratio", 0.25),
        KeyValue::new("llmtap.test.flag", true),
        KeyValue::new(
            "llmtap.test.list",
            Value::Array(Array::String(vec!["a".into(), "ü".into()])),
        ),
    ];
    tool.status = Status::error("timeout");
    tool.events = events(
        vec![Event::new(
            "exception",
            t(1_700_000_000_200_000_000),
            vec![KeyValue::new("exception.message", "timed out ⏱")],
            0,
        )],
        0,
    );
    tool.links = links(
        vec![Link::new(
            ctx(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                TraceFlags::SAMPLED,
                true,
                TraceState::from_key_value([("llmtap", "x")]).expect("valid trace state"),
            ),
            vec![KeyValue::new("llmtap.link", "spawned_by")],
            0,
        )],
        0,
    );
    spans.push(tool);
    spans
}

/// The resource the proxy's spans carry: service name, `OTEL_RESOURCE_ATTRIBUTES`, a schema URL.
pub fn llmtap_resource() -> Resource {
    Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("deployment.environment.name", "prod-é"),
                KeyValue::new("host.cpus", 2_i64),
            ],
            "https://opentelemetry.io/schemas/1.37.0",
        )
        .with_service_name("llmtap")
        .build()
}
