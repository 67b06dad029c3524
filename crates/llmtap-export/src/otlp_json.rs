//! OTLP/JSON encoding of one batch as one line (the OTel file-exporter format).
//!
//! [`encode_batch`] writes the line straight from the SDK's `SpanData` into a caller-owned
//! buffer: no `opentelemetry-proto` structs, no `serde_json::Value`, no per-field
//! allocation. It writes what `serde_json` writes for the `opentelemetry-proto` serde types
//! (same keys in the same order, hex ids including links, integer enums, 64-bit ints as
//! strings, `serde_json`'s number spelling), with one deliberate fix: a non-finite double
//! is written as the string value `"NaN"`, `"Infinity"` or `"-Infinity"`, because serde_json
//! would write `null` (read back as an empty value) and the proto3 spelling `"NaN"` as a
//! `doubleValue` is rejected by the crate's own reader. The unit tests compare it with that
//! proto path on a corpus and on random attributes; `tests/jsonl.rs` checks the OTLP/JSON
//! rules on real written lines (opentelemetry-rust#2065 had bugs here).
//!
//! [`encode_line`] serialises an already-built `TracesData` (used by `llmtap export`).

use std::io;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use serde_json::ser::{CompactFormatter, Formatter as _};

#[cfg(test)]
mod tests;

/// Encodes `data` as one compact OTLP/JSON line, trailing `\n` included. serde_json escapes
/// control characters inside strings, so the only raw newline is the terminator.
pub fn encode_line(data: &TracesData) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(data)?;
    line.push(b'\n');
    Ok(line)
}

/// Appends `batch` to `out` as one OTLP/JSON `TracesData` line, trailing `\n` included.
///
/// One `resourceSpans` entry for `resource`, one `scopeSpans` entry per distinct
/// instrumentation scope in order of first appearance, spans in batch order within their
/// scope: the grouping of `opentelemetry-proto`'s `group_spans_by_resource_and_scope`.
/// An empty batch still gives a line with no `scopeSpans` (callers skip empty batches).
/// Writing into a `Vec` cannot fail; the `io::Result` only carries serde_json's number
/// formatter signature.
pub(crate) fn encode_batch(
    batch: &[SpanData],
    resource: &Resource,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    for (i, (key, value)) in resource.iter().enumerate() {
        comma(out, i);
        write_key_value(out, key.as_str(), value)?;
    }
    out.extend_from_slice(b"],\"droppedAttributesCount\":0,\"entityRefs\":[]},\"scopeSpans\":[");
    write_scope_spans(out, batch)?;
    out.extend_from_slice(b"],\"schemaUrl\":");
    write_str(out, resource.schema_url().unwrap_or_default());
    out.extend_from_slice(b"}]}\n");
    Ok(())
}

/// Groups by scope without hashing: a batch almost always holds one or two scopes, so the
/// previous span's scope is tried first and a linear scan covers the rest.
fn write_scope_spans(out: &mut Vec<u8>, batch: &[SpanData]) -> io::Result<()> {
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    let mut group: Vec<usize> = Vec::with_capacity(batch.len());
    let mut last = 0;
    for span in batch {
        let scope = &span.instrumentation_scope;
        let index = if scopes.get(last).is_some_and(|s| same_scope(s, scope)) {
            last
        } else if let Some(i) = scopes.iter().position(|s| same_scope(s, scope)) {
            i
        } else {
            scopes.push(scope);
            scopes.len() - 1
        };
        group.push(index);
        last = index;
    }
    for (index, scope) in scopes.iter().enumerate() {
        comma(out, index);
        write_scope(out, scope)?;
        out.extend_from_slice(b",\"spans\":[");
        let members = batch.iter().zip(&group).filter(|&(_, &g)| g == index);
        for (i, (span, _)) in members.enumerate() {
            comma(out, i);
            write_span(out, span)?;
        }
        out.extend_from_slice(b"],\"schemaUrl\":");
        write_str(out, scope.schema_url().unwrap_or_default());
        out.push(b'}');
    }
    Ok(())
}

/// `InstrumentationScope`'s `==` (the grouping key) sorts two attribute copies on every
/// call; identical fields in identical order imply `==`, so try that first.
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    let cheap = a.name() == b.name()
        && a.version() == b.version()
        && a.schema_url() == b.schema_url()
        && a.attributes().eq(b.attributes());
    cheap || a == b
}

/// The opening of one `scopeSpans` entry, up to and including the `scope` object.
fn write_scope(out: &mut Vec<u8>, scope: &InstrumentationScope) -> io::Result<()> {
    out.extend_from_slice(b"{\"scope\":{\"name\":");
    write_str(out, scope.name());
    out.extend_from_slice(b",\"version\":");
    write_str(out, scope.version().unwrap_or_default());
    out.extend_from_slice(b",\"attributes\":");
    write_attributes(out, scope.attributes())?;
    out.extend_from_slice(b",\"droppedAttributesCount\":0}");
    Ok(())
}

/// Opens a span or link object with its `traceId`, `spanId` and `traceState` members.
fn write_ids_opening(out: &mut Vec<u8>, cx: &opentelemetry::trace::SpanContext) {
    out.extend_from_slice(b"{\"traceId\":\"");
    write_hex(out, &cx.trace_id().to_bytes());
    out.extend_from_slice(b"\",\"spanId\":\"");
    write_hex(out, &cx.span_id().to_bytes());
    out.extend_from_slice(b"\",\"traceState\":");
    write_trace_state(out, cx.trace_state());
}

fn write_span(out: &mut Vec<u8>, span: &SpanData) -> io::Result<()> {
    let cx = &span.span_context;
    write_ids_opening(out, cx);
    out.extend_from_slice(b",\"parentSpanId\":\"");
    if span.parent_span_id != SpanId::INVALID {
        write_hex(out, &span.parent_span_id.to_bytes());
    }
    out.extend_from_slice(b"\",\"flags\":");
    let flags = span_flags(span.parent_span_is_remote, cx.trace_flags().to_u8());
    CompactFormatter.write_u32(out, flags)?;
    out.extend_from_slice(b",\"name\":");
    write_str(out, &span.name);
    out.extend_from_slice(b",\"kind\":");
    out.push(kind_digit(&span.span_kind));
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    write_nanos(out, span.start_time)?;
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    write_nanos(out, span.end_time)?;
    out.extend_from_slice(b",\"attributes\":");
    write_attributes(out, &span.attributes)?;
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    CompactFormatter.write_u32(out, span.dropped_attributes_count)?;
    out.extend_from_slice(b",\"events\":[");
    for (i, event) in span.events.iter().enumerate() {
        comma(out, i);
        out.extend_from_slice(b"{\"timeUnixNano\":");
        write_nanos(out, event.timestamp)?;
        out.extend_from_slice(b",\"name\":");
        write_str(out, &event.name);
        out.extend_from_slice(b",\"attributes\":");
        write_attributes(out, &event.attributes)?;
        out.extend_from_slice(b",\"droppedAttributesCount\":");
        CompactFormatter.write_u32(out, event.dropped_attributes_count)?;
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"droppedEventsCount\":");
    CompactFormatter.write_u32(out, span.events.dropped_count)?;
    out.extend_from_slice(b",\"links\":[");
    for (i, link) in span.links.iter().enumerate() {
        let lcx = &link.span_context;
        comma(out, i);
        write_ids_opening(out, lcx);
        out.extend_from_slice(b",\"attributes\":");
        write_attributes(out, &link.attributes)?;
        out.extend_from_slice(b",\"droppedAttributesCount\":");
        CompactFormatter.write_u32(out, link.dropped_attributes_count)?;
        out.extend_from_slice(b",\"flags\":");
        let flags = span_flags(lcx.is_remote(), lcx.trace_flags().to_u8());
        CompactFormatter.write_u32(out, flags)?;
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"droppedLinksCount\":");
    CompactFormatter.write_u32(out, span.links.dropped_count)?;
    out.extend_from_slice(b",\"status\":{\"message\":");
    let (message, code) = match &span.status {
        Status::Unset => ("", b'0'),
        Status::Ok => ("", b'1'),
        Status::Error { description } => (description.as_ref(), b'2'),
    };
    write_str(out, message);
    out.extend_from_slice(b",\"code\":");
    out.push(code);
    out.extend_from_slice(b"}}");
    Ok(())
}

/// OTLP span flags: the W3C trace flags plus "has is-remote" and, when set, "is remote"
/// (as `opentelemetry-proto`'s `build_span_flags`).
fn span_flags(is_remote: bool, trace_flags: u8) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    let remote = if is_remote { IS_REMOTE } else { 0 };
    u32::from(trace_flags) | HAS_IS_REMOTE | remote
}

/// The OTLP `SpanKind` number (0, unspecified, is never produced by the SDK).
fn kind_digit(kind: &SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => b'1',
        SpanKind::Server => b'2',
        SpanKind::Client => b'3',
        SpanKind::Producer => b'4',
        SpanKind::Consumer => b'5',
    }
}

/// A `fixed64` timestamp as a JSON string; times before the epoch are 0 and the nanosecond
/// count is cut to 64 bits, as in `opentelemetry-proto`'s `to_nanos`.
fn write_nanos(out: &mut Vec<u8>, time: std::time::SystemTime) -> io::Result<()> {
    let nanos = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    out.push(b'"');
    CompactFormatter.write_u64(out, nanos)?;
    out.push(b'"');
    Ok(())
}

fn write_trace_state(out: &mut Vec<u8>, state: &TraceState) {
    // `header()` allocates only for a non-empty state, which spans rarely carry.
    if *state == TraceState::NONE {
        out.extend_from_slice(b"\"\"");
    } else {
        write_str(out, &state.header());
    }
}

fn write_attributes<'a>(
    out: &mut Vec<u8>,
    attributes: impl IntoIterator<Item = &'a KeyValue>,
) -> io::Result<()> {
    out.push(b'[');
    for (i, kv) in attributes.into_iter().enumerate() {
        comma(out, i);
        write_key_value(out, kv.key.as_str(), &kv.value)?;
    }
    out.push(b']');
    Ok(())
}

fn write_key_value(out: &mut Vec<u8>, key: &str, value: &Value) -> io::Result<()> {
    out.extend_from_slice(b"{\"key\":");
    write_str(out, key);
    out.extend_from_slice(b",\"value\":");
    write_value(out, value)?;
    out.push(b'}');
    Ok(())
}

/// One `AnyValue` object. The SDK's `Value` has no bytes, maps or nested arrays; a variant
/// added by a later SDK is written as the empty value `{}` rather than failing the batch.
fn write_value(out: &mut Vec<u8>, value: &Value) -> io::Result<()> {
    match value {
        Value::Bool(b) => write_bool(out, *b),
        Value::I64(i) => write_int(out, *i)?,
        Value::F64(f) => write_double(out, *f)?,
        Value::String(s) => {
            out.extend_from_slice(b"{\"stringValue\":");
            write_str(out, s.as_str());
            out.push(b'}');
        }
        Value::Array(array) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
            match array {
                Array::Bool(values) => {
                    for (i, b) in values.iter().enumerate() {
                        comma(out, i);
                        write_bool(out, *b);
                    }
                }
                Array::I64(values) => {
                    for (i, n) in values.iter().enumerate() {
                        comma(out, i);
                        write_int(out, *n)?;
                    }
                }
                Array::F64(values) => {
                    for (i, f) in values.iter().enumerate() {
                        comma(out, i);
                        write_double(out, *f)?;
                    }
                }
                Array::String(values) => {
                    for (i, s) in values.iter().enumerate() {
                        comma(out, i);
                        out.extend_from_slice(b"{\"stringValue\":");
                        write_str(out, s.as_str());
                        out.push(b'}');
                    }
                }
                _ => {}
            }
            out.extend_from_slice(b"]}}");
        }
        _ => out.extend_from_slice(b"{}"),
    }
    Ok(())
}

fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b {
        b"{\"boolValue\":true}"
    } else {
        b"{\"boolValue\":false}"
    });
}

/// `intValue` is an int64: a JSON string, so readers going through f64 keep every digit.
fn write_int(out: &mut Vec<u8>, n: i64) -> io::Result<()> {
    out.extend_from_slice(b"{\"intValue\":\"");
    CompactFormatter.write_i64(out, n)?;
    out.extend_from_slice(b"\"}");
    Ok(())
}

/// Finite doubles in serde_json's spelling; NaN and ±Infinity as string values (see the
/// module docs).
fn write_double(out: &mut Vec<u8>, f: f64) -> io::Result<()> {
    if f.is_finite() {
        out.extend_from_slice(b"{\"doubleValue\":");
        CompactFormatter.write_f64(out, f)?;
        out.push(b'}');
    } else if f.is_nan() {
        out.extend_from_slice(b"{\"stringValue\":\"NaN\"}");
    } else if f.is_sign_positive() {
        out.extend_from_slice(b"{\"stringValue\":\"Infinity\"}");
    } else {
        out.extend_from_slice(b"{\"stringValue\":\"-Infinity\"}");
    }
    Ok(())
}

fn comma(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex, as OTLP/JSON wants ids.
fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
    }
}

/// Escape for each byte: 0 = none, `u` = `\u00XX`, else the character after the backslash.
/// The same escapes as serde_json (short forms for `\b \t \n \f \r`, lowercase hex).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` that is `"`, `\` or below 0x20 (the has-zero-byte
/// trick; `!word` stands in for `!(word ^ c)` as neither constant has the high bit set).
/// Exact for the lowest flagged byte (borrows only run upwards), which is all the scanner
/// uses; bytes of 0x80 and above (UTF-8) are never flagged.
fn escape_mask(word: u64) -> u64 {
    let control = word.wrapping_sub(LOW_BITS * 0x20);
    let quote = (word ^ (LOW_BITS * u64::from(b'"'))).wrapping_sub(LOW_BITS);
    let backslash = (word ^ (LOW_BITS * u64::from(b'\\'))).wrapping_sub(LOW_BITS);
    (control | quote | backslash) & !word & HIGH_BITS
}

/// A JSON string: UTF-8 copied through, escapes as serde_json writes them. Long runs of
/// plain text (captured prompts) are scanned eight bytes at a time and copied in one go.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let mask = escape_mask(u64::from_le_bytes(word));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        let escape = ESCAPE[usize::from(b)];
        if escape != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if escape == b'u' {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
