//! `encode_batch` against the proto path it replaced (`group_spans_by_resource_and_scope`,
//! non-finite doubles spelled as strings, `serde_json::to_vec`): on a corpus of span shapes
//! and on random attributes, both lines must parse to the same JSON value. They are in fact
//! byte-identical (same key order, same number and escape spelling), which is asserted too.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::common::v1::{AnyValue as ProtoAnyValue, KeyValue as ProtoKv};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use proptest::prelude::*;
use serde_json::Value as Json;

use super::{encode_batch, encode_line, write_str};

// ---------------------------------------------------------------------------------------------
// The old path, kept here as the reference.

fn old_traces_data(batch: Vec<SpanData>, resource: &Resource) -> TracesData {
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
/// output already follows, and [`assert_otlp_json_rules`] checks it on our lines.
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

fn old_line(batch: Vec<SpanData>, resource: &Resource) -> Vec<u8> {
    encode_line(&old_traces_data(batch, resource)).expect("proto path encodes")
}

fn new_line(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(batch, resource, &mut out).expect("writing into a Vec cannot fail");
    out
}

/// The spec: same JSON value as the proto path, one line, exactly one trailing `\n`.
fn assert_equivalent(batch: &[SpanData], resource: &Resource) {
    let new = new_line(batch, resource);
    let old = old_line(batch.to_vec(), resource);
    assert_eq!(new.last(), Some(&b'\n'), "line ends with a newline");
    assert_eq!(
        new.iter().filter(|&&b| b == b'\n').count(),
        1,
        "no raw newline inside the line"
    );
    let new_json: Json = serde_json::from_slice(&new).expect("new line is JSON");
    let old_json: Json = serde_json::from_slice(&old).expect("old line is JSON");
    assert_eq!(new_json, old_json);
    assert_eq!(
        String::from_utf8_lossy(&new),
        String::from_utf8_lossy(&old),
        "byte-identical to the proto path"
    );
}

// ---------------------------------------------------------------------------------------------
// Corpus

const BIG_INT: i64 = (1 << 53) + 1;
const NASTY: &str = "q\"uote b\\ack \n nl \r \t \u{0} \u{1}\u{1f}\u{7f} é 😀 \u{2028} </script>";

fn t(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn ctx(trace: u128, span: u64, flags: TraceFlags, remote: bool, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        remote,
        state,
    )
}

/// Every attribute value the SDK can hold, with the edge cases of each.
fn every_value() -> Vec<KeyValue> {
    let strings = |v: &[&str]| -> Vec<StringValue> {
        v.iter().map(|s| StringValue::from(s.to_string())).collect()
    };
    vec![
        KeyValue::new("bool.true", true),
        KeyValue::new("bool.false", false),
        KeyValue::new("int.zero", 0_i64),
        KeyValue::new("int.neg", -1_i64),
        KeyValue::new("int.min", i64::MIN),
        KeyValue::new("int.max", i64::MAX),
        KeyValue::new("int.2^53+1", BIG_INT),
        KeyValue::new("f.zero", 0.0),
        KeyValue::new("f.negzero", -0.0),
        KeyValue::new("f.half", 1.5),
        KeyValue::new("f.tenth", 0.1),
        KeyValue::new("f.big", 1e300),
        KeyValue::new("f.tiny", -1e-300),
        KeyValue::new("f.subnormal", 5e-324),
        KeyValue::new("f.max", f64::MAX),
        KeyValue::new("f.int", 3.0),
        KeyValue::new("f.nan", f64::NAN),
        KeyValue::new("f.inf", f64::INFINITY),
        KeyValue::new("f.neginf", f64::NEG_INFINITY),
        KeyValue::new("s.empty", ""),
        KeyValue::new("s.nasty", NASTY),
        KeyValue::new("s.long", NASTY.repeat(7)),
        KeyValue::new(NASTY, "key needs escaping too"),
        KeyValue::new("a.bool", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new(
            "a.int",
            Value::Array(Array::I64(vec![i64::MIN, -1, 0, BIG_INT, i64::MAX])),
        ),
        KeyValue::new(
            "a.f64",
            Value::Array(Array::F64(vec![
                -0.0,
                1e300,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                2.5,
            ])),
        ),
        KeyValue::new(
            "a.string",
            Value::Array(Array::String(strings(&["", "plain", NASTY]))),
        ),
        KeyValue::new("a.empty.bool", Value::Array(Array::Bool(vec![]))),
        KeyValue::new("a.empty.int", Value::Array(Array::I64(vec![]))),
        KeyValue::new("a.empty.f64", Value::Array(Array::F64(vec![]))),
        KeyValue::new("a.empty.string", Value::Array(Array::String(vec![]))),
    ]
}

fn scope_plain() -> InstrumentationScope {
    InstrumentationScope::builder("llmtap-proxy").build()
}

fn scope_full() -> InstrumentationScope {
    InstrumentationScope::builder("llmtap-sdk")
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
        .with_attributes([
            KeyValue::new("scope.a", 1_i64),
            KeyValue::new("scope.b", NASTY),
        ])
        .build()
}

/// `scope_full` with its attributes in the other order: `==` to it, so grouped with it.
fn scope_full_reordered() -> InstrumentationScope {
    InstrumentationScope::builder("llmtap-sdk")
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
        .with_attributes([
            KeyValue::new("scope.b", NASTY),
            KeyValue::new("scope.a", 1_i64),
        ])
        .build()
}

fn scope_every_value() -> InstrumentationScope {
    InstrumentationScope::builder(NASTY)
        .with_version(NASTY)
        .with_attributes(every_value())
        .build()
}

/// A scope with a NaN attribute is not `==` to itself, so every span gets its own entry.
fn scope_nan() -> InstrumentationScope {
    InstrumentationScope::builder("nan-scope")
        .with_attributes([KeyValue::new("x", f64::NAN)])
        .build()
}

fn events(events: Vec<Event>, dropped_count: u32) -> SpanEvents {
    let mut out = SpanEvents::default();
    out.events = events;
    out.dropped_count = dropped_count;
    out
}

fn links(links: Vec<Link>, dropped_count: u32) -> SpanLinks {
    let mut out = SpanLinks::default();
    out.links = links;
    out.dropped_count = dropped_count;
    out
}

fn base_span(i: u64, scope: InstrumentationScope) -> SpanData {
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

fn corpus() -> Vec<SpanData> {
    let kinds = [
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ];
    let statuses = [
        Status::Unset,
        Status::Ok,
        Status::error(""),
        Status::error(NASTY),
    ];
    let state = TraceState::from_key_value([("vendor", "q\"u\\o\nte"), ("other@x", "x 😀")])
        .expect("valid trace state");
    let mut spans = Vec::new();

    // Every kind × status, root and child, local and remote parents, both trace flags.
    for (i, kind) in kinds.iter().enumerate() {
        for (j, status) in statuses.iter().enumerate() {
            let n = (i * statuses.len() + j) as u64;
            let mut s = base_span(n, scope_plain());
            s.span_kind = kind.clone();
            s.status = status.clone();
            if n % 2 == 1 {
                s.parent_span_id = SpanId::from(0x00f0_67aa_0ba9_02b7 + n);
                s.parent_span_is_remote = n % 4 == 1;
            }
            if n.is_multiple_of(3) {
                s.span_context = ctx(
                    u128::MAX - u128::from(n),
                    u64::MAX - n,
                    TraceFlags::NOT_SAMPLED,
                    true,
                    state.clone(),
                );
            }
            spans.push(s);
        }
    }

    // Attributes, events and links with everything in them; dropped counts.
    let mut s = base_span(100, scope_full());
    s.name = Cow::Owned(format!("chat {NASTY}"));
    s.attributes = every_value();
    s.dropped_attributes_count = 3;
    s.events = events(
        vec![
            Event::new(
                "gen_ai.choice",
                t(1_700_000_000_100_000_000),
                every_value(),
                2,
            ),
            Event::new(NASTY, t(0), vec![], 0),
        ],
        5,
    );
    s.links = links(
        vec![
            Link::new(
                ctx(
                    0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                    0x00f0_67aa_0ba9_02b7,
                    TraceFlags::SAMPLED,
                    true,
                    state.clone(),
                ),
                every_value(),
                4,
            ),
            Link::new(
                ctx(1, 2, TraceFlags::NOT_SAMPLED, false, TraceState::NONE),
                vec![],
                0,
            ),
        ],
        6,
    );
    spans.push(s);

    // Scopes interleaved: plain, full, full reordered (same group), every value, NaN.
    spans.push(base_span(101, scope_every_value()));
    spans.push(base_span(102, scope_full_reordered()));
    spans.push(base_span(103, scope_plain()));
    spans.push(base_span(104, scope_nan()));
    spans.push(base_span(105, scope_nan()));
    spans.push(base_span(106, scope_full()));

    // Times: before the epoch (0), the epoch, past u64 nanoseconds (cut to 64 bits).
    let mut s = base_span(107, scope_plain());
    s.start_time = UNIX_EPOCH - Duration::from_secs(1);
    s.end_time = UNIX_EPOCH;
    spans.push(s);
    let mut s = base_span(108, scope_plain());
    s.end_time = UNIX_EPOCH + Duration::from_nanos(u64::MAX) + Duration::from_secs(5);
    spans.push(s);
    spans
}

fn resource_full() -> Resource {
    Resource::builder_empty()
        .with_schema_url(every_value(), "https://opentelemetry.io/schemas/1.37.0")
        .with_service_name("encoding-test")
        .build()
}

#[test]
fn corpus_matches_the_proto_path() {
    let spans = corpus();
    for resource in [Resource::builder_empty().build(), resource_full()] {
        assert_equivalent(&spans, &resource);
        // One span at a time too: each shape on its own line.
        for span in &spans {
            assert_equivalent(std::slice::from_ref(span), &resource);
        }
    }
}

#[test]
fn empty_batch_matches_the_proto_path() {
    assert_equivalent(&[], &resource_full());
    assert_equivalent(&[], &Resource::builder_empty().build());
}

#[test]
fn scopes_are_grouped_in_order_of_first_appearance() {
    let line = new_line(&corpus(), &Resource::builder_empty().build());
    let json: Json = serde_json::from_slice(&line).expect("JSON");
    let names: Vec<(&str, usize)> = json["resourceSpans"][0]["scopeSpans"]
        .as_array()
        .expect("scopeSpans")
        .iter()
        .map(|ss| {
            (
                ss["scope"]["name"].as_str().expect("name"),
                ss["spans"].as_array().expect("spans").len(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("llmtap-proxy", 23),
            ("llmtap-sdk", 3),
            (NASTY, 1),
            ("nan-scope", 1),
            ("nan-scope", 1),
        ]
    );
}

#[test]
fn non_finite_doubles_are_strings() {
    let mut span = base_span(1, scope_plain());
    span.attributes = vec![
        KeyValue::new("nan", f64::NAN),
        KeyValue::new("inf", f64::INFINITY),
        KeyValue::new("ninf", f64::NEG_INFINITY),
    ];
    let line =
        String::from_utf8(new_line(&[span], &Resource::builder_empty().build())).expect("UTF-8");
    for expected in [
        r#"{"key":"nan","value":{"stringValue":"NaN"}}"#,
        r#"{"key":"inf","value":{"stringValue":"Infinity"}}"#,
        r#"{"key":"ninf","value":{"stringValue":"-Infinity"}}"#,
    ] {
        assert!(line.contains(expected), "{expected} missing in {line}");
    }
}

#[test]
fn buffer_is_appended_to() {
    let resource = Resource::builder_empty().build();
    let spans = corpus();
    let mut out = b"kept".to_vec();
    encode_batch(&spans, &resource, &mut out).expect("encodes");
    assert!(out.starts_with(b"kept{"));
    assert_eq!(&out[4..], new_line(&spans, &resource).as_slice());
}

// ---------------------------------------------------------------------------------------------
// Properties

fn json_string(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_str(&mut out, s);
    out
}

#[test]
fn every_single_char_escapes_like_serde_json() {
    for c in (0..=0x7f)
        .filter_map(char::from_u32)
        .chain(['é', '😀', '\u{2028}', '\u{fffd}'])
    {
        // At every offset of the 8-byte scanner, and at the end.
        for pad in 0..10 {
            let s = format!("{}{c}{}", "a".repeat(pad), "b".repeat(9 - pad));
            assert_eq!(
                json_string(&s),
                serde_json::to_vec(&s).expect("serialises"),
                "{s:?}"
            );
        }
    }
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let text = || prop_oneof![any::<String>(), "[\"\\\\\\x00-\\x1fa-z é😀]{0,40}"];
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_map(Value::F64),
        text().prop_map(|s| Value::String(s.into())),
        prop::collection::vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
        prop::collection::vec(any::<f64>(), 0..4).prop_map(|v| Value::Array(Array::F64(v))),
        prop::collection::vec(text(), 0..4)
            .prop_map(|v| { Value::Array(Array::String(v.into_iter().map(Into::into).collect())) }),
    ]
}

fn attributes_strategy() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (
            prop_oneof![any::<String>(), "[a-z._\"\\\\\\n]{0,12}"],
            value_strategy(),
        ),
        0..12,
    )
    .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn strings_escape_like_serde_json(
        s in prop_oneof![any::<String>(), "[\"\\\\\\x00-\\x1f\\x7f a-zé😀\u{2028}]{0,64}"],
    ) {
        prop_assert_eq!(json_string(&s), serde_json::to_vec(&s).expect("serialises"));
    }

    #[test]
    fn random_attributes_match_the_proto_path(
        span_attrs in attributes_strategy(),
        event_attrs in attributes_strategy(),
        link_attrs in attributes_strategy(),
        scope_attrs in attributes_strategy(),
        resource_attrs in attributes_strategy(),
        second_scope in any::<bool>(),
    ) {
        let scope = InstrumentationScope::builder("random")
            .with_attributes(scope_attrs)
            .build();
        let resource = Resource::builder_empty().with_attributes(resource_attrs).build();
        let mut span = base_span(1, scope.clone());
        span.attributes = span_attrs;
        span.events = events(
            vec![Event::new("e", t(5), event_attrs, 0)],
            0,
        );
        span.links = links(
            vec![Link::new(
                ctx(7, 8, TraceFlags::SAMPLED, false, TraceState::NONE),
                link_attrs,
                0,
            )],
            0,
        );
        let mut batch = vec![span.clone()];
        if second_scope {
            batch.push(base_span(2, scope_plain()));
        }
        batch.push(span);
        assert_equivalent(&batch, &resource);
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

fn llmtap_span_shapes() -> Vec<SpanData> {
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
fn llmtap_resource() -> Resource {
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

#[test]
fn llmtap_span_shapes_match_the_proto_path() {
    let batch = llmtap_span_shapes();
    let resource = llmtap_resource();
    assert_equivalent(&batch, &resource);
    let line: Json = serde_json::from_slice(&new_line(&batch, &resource)).expect("JSON");
    assert_otlp_json_rules(&line);
    // Each shape on its own line too (a batch of one is the common case at low traffic).
    for span in &batch {
        assert_equivalent(std::slice::from_ref(span), &resource);
    }
}

#[test]
fn corpus_follows_the_otlp_json_rules() {
    let line: Json = serde_json::from_slice(&new_line(&corpus(), &resource_full())).expect("JSON");
    assert_otlp_json_rules(&line);
}

/// The OTLP/JSON rules (`opentelemetry-proto` `docs/specification.md`, "JSON Protobuf
/// Encoding"), checked on the value rather than trusted from the encoder: trace and span ids
/// as lowercase hex (not base64), enums as integers, 64-bit integers as decimal strings, keys
/// in lowerCamelCase.
fn assert_otlp_json_rules(line: &Json) {
    fn is_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    fn walk(path: &str, v: &Json) {
        match v {
            Json::Object(map) => {
                for (k, v) in map {
                    assert!(
                        !k.contains('_')
                            && k.chars().next().is_some_and(|c| c.is_ascii_lowercase()),
                        "{path}.{k}: not lowerCamelCase"
                    );
                    let here = format!("{path}.{k}");
                    match (k.as_str(), v) {
                        ("traceId", Json::String(s)) => assert!(is_hex(s, 32), "{here}: {s}"),
                        ("spanId", Json::String(s)) => assert!(is_hex(s, 16), "{here}: {s}"),
                        ("parentSpanId", Json::String(s)) => {
                            assert!(s.is_empty() || is_hex(s, 16), "{here}: {s}")
                        }
                        ("kind" | "code", n) => assert!(n.is_u64(), "{here}: enum not an int"),
                        (
                            "intValue" | "startTimeUnixNano" | "endTimeUnixNano" | "timeUnixNano",
                            s,
                        ) => {
                            let text = s.as_str().unwrap_or_else(|| panic!("{here}: not a string"));
                            assert!(text.parse::<i128>().is_ok(), "{here}: {text}");
                        }
                        ("traceId" | "spanId" | "parentSpanId", other) => {
                            panic!("{here}: id is not a string: {other}")
                        }
                        _ => walk(&here, v),
                    }
                }
            }
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), item);
                }
            }
            _ => {}
        }
    }
    walk("", line);
}

/// The measurement behind docs/adr/0013-a-direct-otlp-json-encoder.md: a batch of 512
/// llmtap-shaped spans encoded by `encode_batch` and by the proto path (`opentelemetry-proto`
/// transform + `serde_json`), alternating, best of 7 rounds each. Not a test: run it with
/// `cargo test -p llmtap-export --lib -- --ignored --nocapture encoder_cost` (add `--release`
/// for the numbers that matter; a debug build slows both paths, not equally).
#[test]
#[ignore = "a measurement, run by hand"]
fn encoder_cost() {
    use std::time::Instant;
    let shapes = llmtap_span_shapes();
    let batch: Vec<SpanData> = shapes.iter().cycle().take(512).cloned().collect();
    let resource = llmtap_resource();
    let rounds = 7;
    let reps = 20;
    let (mut direct, mut proto) = (f64::MAX, f64::MAX);
    let mut out = Vec::new();
    let mut bytes = (0, 0);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..reps {
            out.clear();
            encode_batch(&batch, &resource, &mut out).expect("encodes");
        }
        direct = direct.min(start.elapsed().as_nanos() as f64 / f64::from(reps * 512));
        bytes.0 = out.len();
        // The SDK hands the exporter an owned batch: clone outside the clock.
        let owned: Vec<Vec<SpanData>> = (0..reps).map(|_| batch.clone()).collect();
        let start = Instant::now();
        for batch in owned {
            // What the exporter did before: build the proto structs, then serialise them.
            let line = old_line(batch, &resource);
            bytes.1 = line.len();
        }
        proto = proto.min(start.elapsed().as_nanos() as f64 / f64::from(reps * 512));
    }
    println!(
        "direct: {direct:.0} ns/span, proto+serde: {proto:.0} ns/span ({:.2}x); {} vs {} bytes/span",
        proto / direct,
        bytes.0 / 512,
        bytes.1 / 512
    );
}
