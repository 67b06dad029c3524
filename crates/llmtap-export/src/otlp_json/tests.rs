//! `encode_batch` against the proto path it replaced (`group_spans_by_resource_and_scope`,
//! non-finite doubles spelled as strings, `serde_json::to_vec`): on a corpus of span shapes
//! and on random attributes, both lines must parse to the same JSON value. They are in fact
//! byte-identical (same key order, same number and escape spelling), which is asserted too.
//! The proto path and the llmtap span shapes live in `crate::bench_shapes`, shared with the
//! `llmtap-bench encoder` measurement.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{Event, Link, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use proptest::prelude::*;
use serde_json::Value as Json;

use super::{encode_batch, write_str};
use crate::bench_shapes::{
    NASTY, base_span, ctx, encode_direct, events, links, llmtap_resource, llmtap_span_shapes,
    proto_line, t,
};

fn new_line(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    encode_direct(batch, resource, &mut out);
    out
}

/// The spec: same JSON value as the proto path, one line, exactly one trailing `\n`.
fn assert_equivalent(batch: &[SpanData], resource: &Resource) {
    let new = new_line(batch, resource);
    let old = proto_line(batch.to_vec(), resource);
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
// The span shapes llmtap emits (`crate::bench_shapes`).

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
