//! One flat view of a span with its resource and scope, whatever way it arrived (gRPC, HTTP, a
//! JSONL line), so assertions never walk the `resourceSpans/scopeSpans/spans` nesting by hand.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, TracesData, span, status};
use serde_json::Value as Json;

/// How a request reached the fake collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        })
    }
}

/// A span with the resource and scope it was exported under.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSpan {
    /// `None` for spans read from a file rather than received over the wire.
    pub protocol: Option<OtlpProtocol>,
    pub resource_attributes: Vec<KeyValue>,
    pub scope_name: String,
    pub scope_version: String,
    pub span: Span,
}

impl RecordedSpan {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id, or `None` for a root (an empty id on the wire).
    pub fn parent_span_id(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| hex(&self.span.parent_span_id))
    }

    pub fn kind(&self) -> span::SpanKind {
        span::SpanKind::try_from(self.span.kind).unwrap_or(span::SpanKind::Unspecified)
    }

    pub fn status_code(&self) -> status::StatusCode {
        self.span
            .status
            .as_ref()
            .and_then(|s| status::StatusCode::try_from(s.code).ok())
            .unwrap_or(status::StatusCode::Unset)
    }

    pub fn status_message(&self) -> &str {
        self.span.status.as_ref().map_or("", |s| s.message.as_str())
    }

    /// A span attribute as plain JSON (see [`any_value_to_json`]).
    pub fn attr(&self, key: &str) -> Option<Json> {
        find_attr(&self.span.attributes, key)
    }

    /// A string span attribute; `None` when absent or not a string.
    pub fn attr_str(&self, key: &str) -> Option<String> {
        match self.attr(key)? {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// An integer span attribute; `None` when absent or not an `intValue`.
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attr(key)?.as_i64()
    }

    pub fn resource_attr(&self, key: &str) -> Option<Json> {
        find_attr(&self.resource_attributes, key)
    }

    /// Every span attribute key, in wire order.
    pub fn attr_keys(&self) -> impl Iterator<Item = &str> {
        self.span.attributes.iter().map(|kv| kv.key.as_str())
    }
}

/// Flattens one `ResourceSpans` list (the body of a `TracesData` or an export request).
pub fn flatten_resource_spans(
    resource_spans: &[ResourceSpans],
    protocol: Option<OtlpProtocol>,
) -> Vec<RecordedSpan> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let resource_attributes = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let (scope_name, scope_version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.clone(), s.version.clone()))
                .unwrap_or_default();
            for span in &ss.spans {
                out.push(RecordedSpan {
                    protocol,
                    resource_attributes: resource_attributes.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    span: span.clone(),
                });
            }
        }
    }
    out
}

/// Anything spans can be read from: the comparator and the helpers accept all of these.
pub trait SpanSource {
    fn recorded_spans(&self) -> Vec<RecordedSpan>;
}

impl SpanSource for [RecordedSpan] {
    fn recorded_spans(&self) -> Vec<RecordedSpan> {
        self.to_vec()
    }
}

impl SpanSource for Vec<RecordedSpan> {
    fn recorded_spans(&self) -> Vec<RecordedSpan> {
        self.clone()
    }
}

impl SpanSource for TracesData {
    fn recorded_spans(&self) -> Vec<RecordedSpan> {
        flatten_resource_spans(&self.resource_spans, None)
    }
}

impl SpanSource for [TracesData] {
    fn recorded_spans(&self) -> Vec<RecordedSpan> {
        self.iter().flat_map(SpanSource::recorded_spans).collect()
    }
}

impl SpanSource for Vec<TracesData> {
    fn recorded_spans(&self) -> Vec<RecordedSpan> {
        self.as_slice().recorded_spans()
    }
}

impl SpanSource for ExportTraceServiceRequest {
    fn recorded_spans(&self) -> Vec<RecordedSpan> {
        flatten_resource_spans(&self.resource_spans, None)
    }
}

fn find_attr(attrs: &[KeyValue], key: &str) -> Option<Json> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_ref().map_or(Json::Null, any_value_to_json))
}

/// OTLP `AnyValue` as plain JSON: strings, `intValue` as a JSON integer, `doubleValue` as a JSON
/// float (so `12` and `12.0` stay distinguishable), arrays, kvlists as objects, bytes as hex.
pub fn any_value_to_json(value: &AnyValue) -> Json {
    match &value.value {
        None => Json::Null,
        Some(any_value::Value::StringValue(s)) => Json::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Json::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Json::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(d.to_string())),
        Some(any_value::Value::ArrayValue(a)) => {
            Json::Array(a.values.iter().map(any_value_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Json::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map_or(Json::Null, any_value_to_json);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Json::String(hex(b)),
        Some(any_value::Value::StringValueStrindex(i)) => Json::from(*i),
    }
}

/// Lower-case hex, the way OTLP/JSON and every trace UI print ids.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The OTLP enum name without its prefix, lower-case (`client`, `internal`).
pub fn kind_name(kind: span::SpanKind) -> &'static str {
    match kind {
        span::SpanKind::Unspecified => "unspecified",
        span::SpanKind::Internal => "internal",
        span::SpanKind::Server => "server",
        span::SpanKind::Client => "client",
        span::SpanKind::Producer => "producer",
        span::SpanKind::Consumer => "consumer",
    }
}

/// The OTLP status code name, lower-case (`unset`, `ok`, `error`).
pub fn status_name(code: status::StatusCode) -> &'static str {
    match code {
        status::StatusCode::Unset => "unset",
        status::StatusCode::Ok => "ok",
        status::StatusCode::Error => "error",
    }
}

/// Whether a span is a model call (not an `invoke_agent` or `execute_tool` span).
pub fn is_model_call(span: &RecordedSpan) -> bool {
    use llmtap_core::semconv::{GEN_AI_OPERATION_NAME, operation};
    !matches!(
        span.attr_str(GEN_AI_OPERATION_NAME).as_deref(),
        Some(operation::INVOKE_AGENT | operation::EXECUTE_TOOL)
    )
}

/// The model-call spans among `spans`.
pub fn model_calls(spans: &[RecordedSpan]) -> Vec<&RecordedSpan> {
    spans.iter().filter(|s| is_model_call(s)).collect()
}

/// The `invoke_agent` spans among `spans`.
pub fn agent_spans(spans: &[RecordedSpan]) -> Vec<&RecordedSpan> {
    spans.iter().filter(|s| !is_model_call(s)).collect()
}

/// The model calls whose `gen_ai.agent.name` is `agent`.
pub fn by_agent<'a>(spans: &'a [RecordedSpan], agent: &str) -> Vec<&'a RecordedSpan> {
    spans
        .iter()
        .filter(|s| {
            is_model_call(s)
                && s.attr_str(llmtap_core::semconv::GEN_AI_AGENT_NAME)
                    .as_deref()
                    == Some(agent)
        })
        .collect()
}

/// Every model call that names an agent has, as its parent, an `invoke_agent` span of that agent
/// in the same trace (the proxy's agent spans, ADR 0014); returns how many calls were checked.
pub fn check_calls_under_their_agents(spans: &[RecordedSpan]) -> anyhow::Result<usize> {
    use llmtap_core::semconv::GEN_AI_AGENT_NAME;
    let mut checked = 0;
    for call in spans.iter().filter(|s| is_model_call(s)) {
        let Some(agent) = call.attr_str(GEN_AI_AGENT_NAME) else {
            continue;
        };
        let parent_id = call.parent_span_id();
        let parent = spans
            .iter()
            .find(|s| Some(s.span_id()) == parent_id)
            .ok_or_else(|| anyhow::anyhow!("{}: its parent span is missing", call.name()))?;
        anyhow::ensure!(
            !is_model_call(parent) && parent.attr_str(GEN_AI_AGENT_NAME) == Some(agent.clone()),
            "{} of {agent}: parent is {}",
            call.name(),
            parent.name()
        );
        anyhow::ensure!(parent.trace_id() == call.trace_id(), "{agent}: two traces");
        checked += 1;
    }
    Ok(checked)
}

/// Orders spans by start time (stable: equal starts keep their order).
pub fn sort_by_start(spans: &mut [RecordedSpan]) {
    spans.sort_by_key(|s| s.span.start_time_unix_nano);
}

/// The model calls of `spans`, after checking that each one naming an agent sits under an
/// `invoke_agent` span of that agent ([`check_calls_under_their_agents`]).
pub fn checked_calls(spans: Vec<RecordedSpan>) -> anyhow::Result<Vec<RecordedSpan>> {
    check_calls_under_their_agents(&spans)?;
    Ok(spans.into_iter().filter(is_model_call).collect())
}

/// The one `invoke_agent` span of `agent`; an error when there are none or several.
pub fn one_agent_span<'a>(
    spans: &'a [RecordedSpan],
    agent: &str,
) -> anyhow::Result<&'a RecordedSpan> {
    let found: Vec<&RecordedSpan> = spans
        .iter()
        .filter(|s| {
            !is_model_call(s)
                && s.attr_str(llmtap_core::semconv::GEN_AI_AGENT_NAME)
                    .as_deref()
                    == Some(agent)
        })
        .collect();
    anyhow::ensure!(found.len() == 1, "{agent}: {} agent spans", found.len());
    Ok(found[0])
}

/// The one model call of `agent`; an error when there are none or several.
pub fn one_by_agent<'a>(
    spans: &'a [RecordedSpan],
    agent: &str,
) -> anyhow::Result<&'a RecordedSpan> {
    let found = by_agent(spans, agent);
    anyhow::ensure!(found.len() == 1, "{agent}: {} spans", found.len());
    Ok(found[0])
}
