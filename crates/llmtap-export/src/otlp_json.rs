//! OTLP/JSON encoding of one batch as one line (the OTel file-exporter format).
//!
//! The serde types of `opentelemetry-proto` (`with-serde`) follow the OTLP/JSON rules (hex
//! ids including links, integer enums, 64-bit ints as strings, camelCase keys); the tests in
//! `tests/jsonl.rs` check that on real written lines instead of trusting it
//! (opentelemetry-rust#2065 had bugs here). One gap is fixed before serialising: a
//! non-finite `doubleValue` would be written as `null` by serde_json (then read back as an
//! empty value), and the proto3 spelling `"NaN"` is rejected by the crate's own reader, so
//! NaN/±Infinity become the string values `"NaN"`, `"Infinity"`, `"-Infinity"`.
//!
//! The JSONL exporter writes lines with [`encode_batch`], straight from the SDK's span data into
//! a reused buffer; [`traces_data`] + [`encode_line`] remain for `llmtap export` and as the
//! reference the direct encoder is tested against.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::SpanData;

/// Converts a batch into one `TracesData` (one resource, one scope entry per tracer).
pub fn traces_data(batch: Vec<SpanData>, resource: &ResourceAttributesWithSchema) -> TracesData {
    let mut data = TracesData {
        resource_spans: group_spans_by_resource_and_scope(batch, resource),
    };
    replace_non_finite_doubles(&mut data);
    data
}

/// Encodes `data` as one compact OTLP/JSON line, trailing `\n` included. serde_json escapes
/// control characters inside strings, so the only raw newline is the terminator.
pub fn encode_line(data: &TracesData) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(data)?;
    line.push(b'\n');
    Ok(line)
}

fn replace_non_finite_doubles(data: &mut TracesData) {
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
}

fn fix_key_values(kvs: &mut [KeyValue]) {
    for kv in kvs {
        if let Some(v) = &mut kv.value {
            fix_any_value(v);
        }
    }
}

fn fix_any_value(v: &mut AnyValue) {
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

/// The resource part of every line (`"resource":{…},"schemaUrl":"…"`), rendered once when the
/// resource is set instead of once per batch.
#[derive(Debug, Clone, Default)]
pub struct ResourceJson(Vec<u8>);

impl ResourceJson {
    /// Renders `resource` the way the `opentelemetry-proto` serde types do.
    pub fn new(resource: &ResourceAttributesWithSchema) -> Self {
        let proto = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: resource.attributes.0.clone(),
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"\"resource\":");
        // A serde failure here would be a bug in the proto types; the line then carries an
        // empty resource rather than failing every export.
        if serde_json::to_writer(&mut out, &proto).is_err() {
            out.truncate(b"\"resource\":".len());
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b",\"schemaUrl\":");
        write_str(&mut out, resource.schema_url.as_deref().unwrap_or_default());
        Self(out)
    }
}

/// Appends one OTLP/JSON `TracesData` line for `batch` (trailing `\n` included) to `out`,
/// written straight from the SDK's span data: the same JSON as [`traces_data`] +
/// [`encode_line`] (checked by tests), without building the proto structs first. Spans are
/// grouped by instrumentation scope in order of first appearance, as the proto transform does.
pub fn encode_batch(batch: &[SpanData], resource: &ResourceJson, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"resourceSpans\":[{");
    out.extend_from_slice(&resource.0);
    out.extend_from_slice(b",\"scopeSpans\":[");
    let mut scopes: Vec<&opentelemetry::InstrumentationScope> = Vec::new();
    for span in batch {
        if !scopes.contains(&&span.instrumentation_scope) {
            scopes.push(&span.instrumentation_scope);
        }
    }
    for (i, scope) in scopes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"scope\":{\"name\":");
        write_str(out, scope.name());
        out.extend_from_slice(b",\"version\":");
        write_str(out, scope.version().unwrap_or_default());
        out.extend_from_slice(b",\"attributes\":");
        write_key_values(out, scope.attributes());
        out.extend_from_slice(b",\"droppedAttributesCount\":0},\"spans\":[");
        let mut first = true;
        for span in batch.iter().filter(|s| &&s.instrumentation_scope == scope) {
            if !first {
                out.push(b',');
            }
            first = false;
            write_span(out, span);
        }
        out.extend_from_slice(b"],\"schemaUrl\":");
        write_str(out, scope.schema_url().unwrap_or_default());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}]}\n");
}

fn write_span(out: &mut Vec<u8>, span: &SpanData) {
    use opentelemetry::trace::{SpanId, SpanKind, Status};
    let sc = &span.span_context;
    out.extend_from_slice(b"{\"traceId\":");
    write_hex(out, &sc.trace_id().to_bytes());
    out.extend_from_slice(b",\"spanId\":");
    write_hex(out, &sc.span_id().to_bytes());
    out.extend_from_slice(b",\"traceState\":");
    write_str(out, &sc.trace_state().header());
    out.extend_from_slice(b",\"parentSpanId\":");
    if span.parent_span_id == SpanId::INVALID {
        out.extend_from_slice(b"\"\"");
    } else {
        write_hex(out, &span.parent_span_id.to_bytes());
    }
    out.extend_from_slice(b",\"flags\":");
    write_display(
        out,
        span_flags(span.parent_span_is_remote, sc.trace_flags().to_u8()),
    );
    out.extend_from_slice(b",\"name\":");
    write_str(out, &span.name);
    out.extend_from_slice(b",\"kind\":");
    let kind: u8 = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    write_display(out, kind);
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    write_nanos(out, span.start_time);
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    write_nanos(out, span.end_time);
    out.extend_from_slice(b",\"attributes\":");
    write_key_values(out, &span.attributes);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    write_display(out, span.dropped_attributes_count);
    out.extend_from_slice(b",\"events\":[");
    for (i, event) in span.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"timeUnixNano\":");
        write_nanos(out, event.timestamp);
        out.extend_from_slice(b",\"name\":");
        write_str(out, &event.name);
        out.extend_from_slice(b",\"attributes\":");
        write_key_values(out, &event.attributes);
        out.extend_from_slice(b",\"droppedAttributesCount\":");
        write_display(out, event.dropped_attributes_count);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"droppedEventsCount\":");
    write_display(out, span.events.dropped_count);
    out.extend_from_slice(b",\"links\":[");
    for (i, link) in span.links.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let lc = &link.span_context;
        out.extend_from_slice(b"{\"traceId\":");
        write_hex(out, &lc.trace_id().to_bytes());
        out.extend_from_slice(b",\"spanId\":");
        write_hex(out, &lc.span_id().to_bytes());
        out.extend_from_slice(b",\"traceState\":");
        write_str(out, &lc.trace_state().header());
        out.extend_from_slice(b",\"attributes\":");
        write_key_values(out, &link.attributes);
        out.extend_from_slice(b",\"droppedAttributesCount\":");
        write_display(out, link.dropped_attributes_count);
        out.extend_from_slice(b",\"flags\":");
        write_display(out, span_flags(lc.is_remote(), lc.trace_flags().to_u8()));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"droppedLinksCount\":");
    write_display(out, span.links.dropped_count);
    out.extend_from_slice(b",\"status\":{\"message\":");
    match &span.status {
        Status::Error { description } => write_str(out, description),
        _ => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b",\"code\":");
    let code: u8 = match span.status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error { .. } => 2,
    };
    write_display(out, code);
    out.extend_from_slice(b"}}");
}

/// W3C trace flags plus OTLP's "has is-remote" (0x100) and "is remote" (0x200) bits.
fn span_flags(parent_is_remote: bool, trace_flags: u8) -> u32 {
    let mut flags = u32::from(trace_flags) | 0x100;
    if parent_is_remote {
        flags |= 0x200;
    }
    flags
}

fn write_key_values<'a>(
    out: &mut Vec<u8>,
    kvs: impl IntoIterator<Item = &'a opentelemetry::KeyValue>,
) {
    out.push(b'[');
    for (i, kv) in kvs.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        write_str(out, kv.key.as_str());
        out.extend_from_slice(b",\"value\":");
        write_value(out, &kv.value);
        out.push(b'}');
    }
    out.push(b']');
}

fn write_value(out: &mut Vec<u8>, value: &opentelemetry::Value) {
    use opentelemetry::{Array, Value};
    match value {
        Value::Bool(b) => {
            out.extend_from_slice(if *b {
                b"{\"boolValue\":true}"
            } else {
                b"{\"boolValue\":false}"
            });
        }
        Value::I64(n) => {
            out.extend_from_slice(b"{\"intValue\":\"");
            write_display(out, n);
            out.extend_from_slice(b"\"}");
        }
        Value::F64(f) => write_double(out, *f),
        Value::String(s) => {
            out.extend_from_slice(b"{\"stringValue\":");
            write_str(out, s.as_str());
            out.push(b'}');
        }
        Value::Array(array) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
            match array {
                Array::Bool(items) => write_items(out, items, |out, b| {
                    write_value(out, &Value::Bool(*b));
                }),
                Array::I64(items) => write_items(out, items, |out, n| {
                    write_value(out, &Value::I64(*n));
                }),
                Array::F64(items) => write_items(out, items, |out, f| write_double(out, *f)),
                Array::String(items) => write_items(out, items, |out, s| {
                    out.extend_from_slice(b"{\"stringValue\":");
                    write_str(out, s.as_str());
                    out.push(b'}');
                }),
                // A kind added to the API after this was written: keep its text, never panic.
                other => write_items(out, &[other.to_string()], |out, s| {
                    out.extend_from_slice(b"{\"stringValue\":");
                    write_str(out, s);
                    out.push(b'}');
                }),
            }
            out.extend_from_slice(b"]}}");
        }
        other => {
            out.extend_from_slice(b"{\"stringValue\":");
            write_str(out, &other.to_string());
            out.push(b'}');
        }
    }
}

fn write_items<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
}

/// Finite doubles as JSON numbers; NaN and ±Infinity as the strings `traces_data` uses.
fn write_double(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(b"{\"doubleValue\":");
        if serde_json::to_writer(&mut *out, &f).is_err() {
            out.push(b'0');
        }
        out.push(b'}');
    } else {
        let spelled = if f.is_nan() {
            "NaN"
        } else if f.is_sign_positive() {
            "Infinity"
        } else {
            "-Infinity"
        };
        out.extend_from_slice(b"{\"stringValue\":\"");
        out.extend_from_slice(spelled.as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// A JSON string, escaped as serde_json escapes it (a `Vec` writer cannot fail).
fn write_str(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
    out.push(b'"');
}

fn write_nanos(out: &mut Vec<u8>, time: std::time::SystemTime) {
    let nanos = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    out.push(b'"');
    write_display(out, nanos);
    out.push(b'"');
}

fn write_display(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn at(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    fn every_value_kind() -> Vec<KeyValue> {
        vec![
            KeyValue::new("bool", true),
            KeyValue::new("int.min", i64::MIN),
            KeyValue::new("int.max", i64::MAX),
            KeyValue::new("int.2^53+1", 9_007_199_254_740_993_i64),
            KeyValue::new("double", 0.1),
            KeyValue::new("double.neg_zero", -0.0),
            KeyValue::new("double.big", 1e300),
            KeyValue::new("double.nan", f64::NAN),
            KeyValue::new("double.inf", f64::INFINITY),
            KeyValue::new("double.neg_inf", f64::NEG_INFINITY),
            KeyValue::new(
                "string",
                "quote \" backslash \\ newline \n nul \u{0} emoji 🦀",
            ),
            KeyValue::new("empty", ""),
            KeyValue::new("array.bool", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("array.int", Value::Array(Array::I64(vec![1, -2, i64::MAX]))),
            KeyValue::new(
                "array.double",
                Value::Array(Array::F64(vec![1.5, f64::NAN])),
            ),
            KeyValue::new(
                "array.string",
                Value::Array(Array::String(vec![StringValue::from("a"), "\"b\"".into()])),
            ),
            KeyValue::new("array.empty", Value::Array(Array::String(Vec::new()))),
        ]
    }

    fn span(i: u64, scope: &InstrumentationScope, parent: bool) -> SpanData {
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "gen_ai.choice",
            at(1_700_000_000_000_000_500 + i),
            vec![KeyValue::new("index", 0_i64), KeyValue::new("x", "y\t")],
            1,
        ));
        events.dropped_count = 2;
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            SpanContext::new(
                TraceId::from(0xabc_u128 + u128::from(i)),
                SpanId::from(0xdef_u64),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_key_value([("vendor", "v1")]).unwrap_or_default(),
            ),
            vec![KeyValue::new("link.kind", "follows")],
            3,
        ));
        links.dropped_count = 4;
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
            Status::error("rate_limit_exceeded: \"slow down\""),
        ];
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::MAX - u128::from(i)),
                SpanId::from(i + 1),
                if i.is_multiple_of(2) {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                false,
                TraceState::default(),
            ),
            parent_span_id: if parent {
                SpanId::from(0x0102_0304_0506_0708)
            } else {
                SpanId::INVALID
            },
            parent_span_is_remote: parent && i % 2 == 1,
            span_kind: kinds[(i % 5) as usize].clone(),
            name: format!("chat model-{i} \"quoted\"").into(),
            start_time: at(1_700_000_000_000_000_000 + i),
            end_time: at(1_700_000_000_123_456_789 + i),
            attributes: every_value_kind(),
            dropped_attributes_count: 5,
            events,
            links,
            status: statuses[(i % 3) as usize].clone(),
            instrumentation_scope: scope.clone(),
        }
    }

    /// The old path: proto structs, then serde.
    fn via_proto(batch: &[SpanData], resource: &ResourceAttributesWithSchema) -> serde_json::Value {
        let line = encode_line(&traces_data(batch.to_vec(), resource)).expect("encode");
        serde_json::from_slice(&line).expect("parse")
    }

    fn direct(
        batch: &[SpanData],
        resource: &ResourceAttributesWithSchema,
    ) -> (Vec<u8>, serde_json::Value) {
        let mut line = Vec::new();
        encode_batch(batch, &ResourceJson::new(resource), &mut line);
        let value = serde_json::from_slice(&line).expect("direct line parses");
        (line, value)
    }

    #[test]
    fn direct_encoding_equals_the_proto_path() {
        let proxy = InstrumentationScope::builder("llmtap-proxy").build();
        let sdk = InstrumentationScope::builder("llmtap-sdk")
            .with_version("0.1.0")
            .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
            .with_attributes([KeyValue::new("scope.attr", 7_i64)])
            .build();
        let batch: Vec<SpanData> = (0..12)
            .map(|i| span(i, if i % 3 == 0 { &sdk } else { &proxy }, i % 4 != 0))
            .collect();
        let resource: ResourceAttributesWithSchema = (&opentelemetry_sdk::Resource::builder()
            .with_service_name("llmtap-proxy")
            .with_schema_url(
                [KeyValue::new("deployment.environment.name", "test")],
                "https://opentelemetry.io/schemas/1.37.0",
            )
            .build())
            .into();
        let (line, value) = direct(&batch, &resource);
        assert_eq!(value, via_proto(&batch, &resource));
        assert!(line.ends_with(b"}\n"));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        // Both scopes, in order of first appearance, each with its own spans.
        let scopes = value["resourceSpans"][0]["scopeSpans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0]["scope"]["name"], "llmtap-sdk");
        assert_eq!(scopes[0]["spans"].as_array().map(Vec::len), Some(4));
        assert_eq!(scopes[1]["spans"].as_array().map(Vec::len), Some(8));
        // The default (empty) resource renders the same way too.
        let empty = ResourceAttributesWithSchema::default();
        assert_eq!(
            direct(&batch[..1], &empty).1,
            via_proto(&batch[..1], &empty)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_string_attribute_round_trips_like_the_proto_path(
            key in "\\PC{0,12}",
            text in "\\PC{0,64}",
            n in proptest::num::i64::ANY,
            f in proptest::num::f64::ANY,
        ) {
            let scope = InstrumentationScope::builder("s").build();
            let mut s = span(1, &scope, true);
            s.attributes = vec![
                KeyValue::new(key.clone(), text.clone()),
                KeyValue::new("n", n),
                KeyValue::new("f", f),
            ];
            s.name = text.clone().into();
            let resource = ResourceAttributesWithSchema::default();
            proptest::prop_assert_eq!(direct(&[s.clone()], &resource).1, via_proto(&[s], &resource));
        }
    }
}
