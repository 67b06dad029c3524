//! OTLP/JSON encoding of one batch as one line (the OTel file-exporter format).
//!
//! The serde types of `opentelemetry-proto` (`with-serde`) follow the OTLP/JSON rules (hex
//! ids including links, integer enums, 64-bit ints as strings, camelCase keys); the tests in
//! `tests/jsonl.rs` check that on real written lines instead of trusting it
//! (opentelemetry-rust#2065 had bugs here). One gap is fixed before serialising: a
//! non-finite `doubleValue` would be written as `null` by serde_json (then read back as an
//! empty value), and the proto3 spelling `"NaN"` is rejected by the crate's own reader, so
//! NaN/±Infinity become the string values `"NaN"`, `"Infinity"`, `"-Infinity"`.

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
