//! Spans read back from OTLP/JSON lines, flattened into what the reading commands (`tree`, and
//! later `stats`, `tail`, `export`) need: ids, times, status and the gen_ai facts of a call.
//!
//! Works on any OTLP/JSON file — ours, a Collector `file` exporter's, another instrumentation's —
//! because it reads attributes by their semconv keys and treats everything as optional.

use std::collections::BTreeMap;
use std::path::Path;

use llmtap_core::semconv;
use llmtap_export::proto::{AnyValue, Span, TracesData, any_value, status};
use llmtap_export::{JsonlReader, ReadError, ReadStats};

/// One attribute value, reduced to what the commands display.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// An array of scalars (e.g. `gen_ai.response.finish_reasons`), each as text.
    List(Vec<String>),
    /// Maps, bytes and nested arrays, kept as a short description.
    Other(String),
}

impl AttrValue {
    fn from_proto(value: Option<&AnyValue>) -> Self {
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
            Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
            Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
            Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(any_value::Value::ArrayValue(items)) => AttrValue::List(
                items
                    .values
                    .iter()
                    .map(|v| AttrValue::from_proto(Some(v)).to_string())
                    .collect(),
            ),
            Some(any_value::Value::KvlistValue(_)) => AttrValue::Other("{…}".to_owned()),
            Some(any_value::Value::BytesValue(b)) => {
                AttrValue::Other(format!("<{} bytes>", b.len()))
            }
            _ => AttrValue::Other(String::new()),
        }
    }

    /// Integer view; integral doubles and numeric strings count too (other exporters differ).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            AttrValue::Int(i) => u64::try_from(*i).ok(),
            AttrValue::Double(d) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 => {
                Some(*d as u64)
            }
            AttrValue::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Float view.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Int(i) => Some(*i as f64),
            AttrValue::Double(d) => Some(*d),
            AttrValue::Str(s) => s.parse().ok(),
            _ => None,
        }
    }
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Str(s) | AttrValue::Other(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Double(d) => write!(f, "{d}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::List(items) => f.write_str(&items.join(",")),
        }
    }
}

/// Span status as OTLP encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    Unset,
    Ok,
    Error,
}

/// One span, flattened.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Lower-case hex, 32 chars.
    pub trace_id: String,
    /// Lower-case hex, 16 chars.
    pub span_id: String,
    /// Empty for a root.
    pub parent_span_id: String,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub status: SpanStatus,
    /// `service.name` of the resource that emitted it.
    pub service: Option<String>,
    /// Every attribute except captured content (see [`SpanRecord::content`]).
    pub attributes: BTreeMap<String, AttrValue>,
    /// Captured content as JSON, only when read with [`Content::Keep`].
    pub content: Option<Box<SpanContent>>,
}

/// Whether to keep captured content (`gen_ai.input.messages` …) when flattening spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Skip,
    Keep,
}

/// Captured content of one span, decoded to JSON whether it was written as a JSON string (our
/// proxy, Python instrumentations) or as a structured `kvlistValue`/`arrayValue`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanContent {
    pub input_messages: Option<serde_json::Value>,
    pub output_messages: Option<serde_json::Value>,
    pub system_instructions: Option<serde_json::Value>,
    pub tool_definitions: Option<serde_json::Value>,
}

/// An attribute value as JSON: maps become objects, arrays arrays, and a string holding a JSON
/// array or object is parsed (content attributes on spans are often JSON strings).
pub fn any_value_to_json(value: Option<&AnyValue>) -> serde_json::Value {
    use serde_json::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => {
            let trimmed = s.trim_start();
            if trimmed.starts_with('[') || trimmed.starts_with('{') {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
            } else {
                Value::String(s.clone())
            }
        }
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::ArrayValue(items)) => Value::Array(
            items
                .values
                .iter()
                .map(|v| any_value_to_json(Some(v)))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), any_value_to_json(kv.value.as_ref())))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Value::String(format!("<{} bytes>", b.len())),
        // Dictionary-encoded strings need the batch's table, which a span line does not carry.
        _ => Value::Null,
    }
}

/// Attribute keys whose values are captured content: never needed to draw a tree or count
/// tokens, and by far the largest values, so they are not kept in memory.
const CONTENT_KEYS: [&str; 4] = [
    semconv::GEN_AI_INPUT_MESSAGES,
    semconv::GEN_AI_OUTPUT_MESSAGES,
    semconv::GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv::GEN_AI_TOOL_DEFINITIONS,
];

impl SpanRecord {
    /// Flattens one span; `service` is its resource's `service.name`.
    pub fn from_proto(span: &Span, service: Option<&str>, content: Content) -> Self {
        let attributes = span
            .attributes
            .iter()
            .filter(|kv| !CONTENT_KEYS.contains(&kv.key.as_str()))
            .map(|kv| (kv.key.clone(), AttrValue::from_proto(kv.value.as_ref())))
            .collect();
        let content = match content {
            Content::Skip => None,
            Content::Keep => {
                let get = |key: &str| {
                    span.attributes
                        .iter()
                        .find(|kv| kv.key == key)
                        .map(|kv| any_value_to_json(kv.value.as_ref()))
                };
                let c = SpanContent {
                    input_messages: get(semconv::GEN_AI_INPUT_MESSAGES),
                    output_messages: get(semconv::GEN_AI_OUTPUT_MESSAGES),
                    system_instructions: get(semconv::GEN_AI_SYSTEM_INSTRUCTIONS),
                    tool_definitions: get(semconv::GEN_AI_TOOL_DEFINITIONS),
                };
                (c != SpanContent::default()).then(|| Box::new(c))
            }
        };
        let status = match span.status.as_ref().map(|s| s.code) {
            Some(code) if code == status::StatusCode::Error as i32 => SpanStatus::Error,
            Some(code) if code == status::StatusCode::Ok as i32 => SpanStatus::Ok,
            _ => SpanStatus::Unset,
        };
        Self {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
            name: span.name.clone(),
            start_unix_nanos: span.start_time_unix_nano,
            end_unix_nanos: span.end_time_unix_nano,
            status,
            service: service.map(str::to_owned),
            attributes,
            content,
        }
    }

    /// A string attribute.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key)? {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer attribute (see [`AttrValue::as_u64`]).
    pub fn u64_attr(&self, key: &str) -> Option<u64> {
        self.attributes.get(key)?.as_u64()
    }

    /// A float attribute.
    pub fn f64_attr(&self, key: &str) -> Option<f64> {
        self.attributes.get(key)?.as_f64()
    }

    /// Whether the call asked for a streamed answer (`gen_ai.request.stream` true).
    pub fn streamed(&self) -> bool {
        matches!(
            self.attributes.get(semconv::GEN_AI_REQUEST_STREAM),
            Some(AttrValue::Bool(true))
        )
    }

    /// Wall time in nanoseconds (0 when the timestamps are inconsistent).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }

    /// `gen_ai.operation.name`.
    pub fn operation(&self) -> Option<&str> {
        self.str_attr(semconv::GEN_AI_OPERATION_NAME)
    }

    /// A model call: any gen_ai operation other than agent and tool spans.
    pub fn is_model_call(&self) -> bool {
        self.operation().is_some_and(|op| {
            op != semconv::operation::INVOKE_AGENT && op != semconv::operation::EXECUTE_TOOL
        })
    }

    /// Failed: status Error, or an `error.type` (some instrumentations set only that).
    pub fn is_error(&self) -> bool {
        self.status == SpanStatus::Error || self.attributes.contains_key(semconv::ERROR_TYPE)
    }

    /// The model asked for, else the one that answered: stable across dated snapshots and
    /// present on failed calls, so it is the grouping key.
    pub fn request_model(&self) -> Option<&str> {
        self.str_attr(semconv::GEN_AI_REQUEST_MODEL)
            .or_else(|| self.str_attr(semconv::GEN_AI_RESPONSE_MODEL))
    }

    /// A list attribute (a single string counts as a one-item list).
    pub fn list_attr(&self, key: &str) -> Vec<String> {
        match self.attributes.get(key) {
            Some(AttrValue::List(items)) => items.clone(),
            Some(AttrValue::Str(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// Start time as the `since`/`until` filters see it.
    pub fn start(&self) -> u64 {
        self.start_unix_nanos
    }

    /// The model that answered, else the one asked for.
    pub fn model(&self) -> Option<&str> {
        self.str_attr(semconv::GEN_AI_RESPONSE_MODEL)
            .or_else(|| self.str_attr(semconv::GEN_AI_REQUEST_MODEL))
    }

    /// The call's own token counts (model calls only carry `gen_ai.usage.*`).
    pub fn tokens(&self) -> Tokens {
        Tokens {
            input: self
                .u64_attr(semconv::GEN_AI_USAGE_INPUT_TOKENS)
                .unwrap_or(0),
            output: self
                .u64_attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS)
                .unwrap_or(0),
            cache_read: self
                .u64_attr(semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
                .unwrap_or(0),
            reasoning: self
                .u64_attr(semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
                .unwrap_or(0),
        }
    }
}

/// Token counts, summed over whatever they describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub reasoning: u64,
}

impl std::ops::AddAssign for Tokens {
    fn add_assign(&mut self, rhs: Self) {
        self.input += rhs.input;
        self.output += rhs.output;
        self.cache_read += rhs.cache_read;
        self.reasoning += rhs.reasoning;
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `service.name` of a resource.
pub fn service_name(rs: &llmtap_export::proto::ResourceSpans) -> Option<&str> {
    rs.resource.as_ref().and_then(|r| {
        r.attributes
            .iter()
            .find(|kv| kv.key == SERVICE_NAME)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
    })
}

/// The resource attribute naming the emitting service (OTel resource semconv).
const SERVICE_NAME: &str = "service.name";

/// Calls `f` with every span of one `TracesData` line, flattened.
pub fn for_each_span(data: &TracesData, content: Content, mut f: impl FnMut(SpanRecord)) {
    for rs in &data.resource_spans {
        let service = service_name(rs);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                f(SpanRecord::from_proto(span, service, content));
            }
        }
    }
}

/// Flattens one `TracesData` line into `out`.
pub fn collect_spans(data: &TracesData, out: &mut Vec<SpanRecord>) {
    for_each_span(data, Content::Skip, |s| out.push(s));
}

/// Reads every span of a JSONL file. Torn and foreign lines are skipped and counted in the
/// returned [`ReadStats`]; only an unreadable file is an error.
pub fn read_file(path: &Path) -> Result<(Vec<SpanRecord>, ReadStats), ReadError> {
    let mut reader = JsonlReader::open(path)?;
    let mut spans = Vec::new();
    for data in reader.by_ref() {
        collect_spans(&data?, &mut spans);
    }
    Ok((spans, reader.stats()))
}
