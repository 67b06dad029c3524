//! One flat record per model call: the fields a per-call log line carries (who, which model,
//! what answered, finish reason, tokens, latency, ids to join and to quote in a support
//! ticket), read from any OTLP GenAI span. Used by `export --format jsonl|csv` and
//! `tail --json`.

use std::collections::BTreeMap;

use llmtap_core::semconv;

use crate::spans::SpanRecord;
use crate::timefmt::format_rfc3339_millis;

/// A model call, flattened. Token counts are `None` when the span does not report them (never
/// guessed); `total_tokens` is input + output when both are known.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRow {
    /// Start time, UTC RFC 3339 with milliseconds.
    pub time: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// `gen_ai.conversation.id`.
    pub session_id: Option<String>,
    /// `gen_ai.agent.name`.
    pub agent: Option<String>,
    /// `service.name` of the emitting resource.
    pub service: Option<String>,
    pub operation: Option<String>,
    pub provider: Option<String>,
    /// The model asked for.
    pub request_model: Option<String>,
    /// The model that answered (else the one asked for).
    pub model: Option<String>,
    /// `gen_ai.response.id` (`chatcmpl-…`).
    pub response_id: Option<String>,
    /// One per choice, comma-separated.
    pub finish_reason: Option<String>,
    /// `ok` or `error`.
    pub status: &'static str,
    pub error_type: Option<String>,
    pub http_status: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    /// Wall time of the call, milliseconds (microsecond precision).
    pub latency_ms: f64,
    /// Time to first chunk of a stream, milliseconds.
    pub ttft_ms: Option<f64>,
    /// Output tokens / latency.
    pub output_tokens_per_second: Option<f64>,
    pub streamed: bool,
    pub system_fingerprint: Option<String>,
    /// The provider's request id (`x-request-id`).
    pub request_id: Option<String>,
    pub server_address: Option<String>,
    pub span_name: String,
    /// USD from the price table; `None` when the model is not in it or no usage was reported.
    pub cost_usd: Option<f64>,
    /// The prompt as text (`export --content` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The answer as text (`export --content` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `meta.<key>` → value for every `llmtap.meta.<key>` attribute of the span.
    #[serde(flatten)]
    pub meta: BTreeMap<String, String>,
}

/// Column name prefix of user metadata (`llmtap.meta.team` → `meta.team`).
pub const META_COLUMN_PREFIX: &str = "meta.";
/// Extra columns of `export --content`, after [`COLUMNS`].
pub const CONTENT_COLUMNS: [&str; 2] = ["input", "output"];

/// Column names, in CSV order (same as the JSON keys).
pub const COLUMNS: [&str; 30] = [
    "time",
    "trace_id",
    "span_id",
    "parent_span_id",
    "session_id",
    "agent",
    "service",
    "operation",
    "provider",
    "request_model",
    "model",
    "response_id",
    "finish_reason",
    "status",
    "error_type",
    "http_status",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "total_tokens",
    "latency_ms",
    "ttft_ms",
    "output_tokens_per_second",
    "streamed",
    "system_fingerprint",
    "request_id",
    "server_address",
    "span_name",
    "cost_usd",
];

/// Rounds to 3 decimals (milliseconds to microseconds).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl CallRow {
    /// Flattens `span` (any span; callers pick model calls).
    pub fn from_span(span: &SpanRecord) -> Self {
        let s = |key: &str| span.str_attr(key).map(str::to_owned);
        let n = |key: &str| span.u64_attr(key);
        let input = n(semconv::GEN_AI_USAGE_INPUT_TOKENS);
        let output = n(semconv::GEN_AI_USAGE_OUTPUT_TOKENS);
        let latency_ms = round3(span.duration_nanos() as f64 / 1e6);
        let reasons = span.list_attr(semconv::GEN_AI_RESPONSE_FINISH_REASONS);
        Self {
            time: format_rfc3339_millis(span.start_unix_nanos),
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
            parent_span_id: (!span.parent_span_id.is_empty()).then(|| span.parent_span_id.clone()),
            session_id: s(semconv::GEN_AI_CONVERSATION_ID),
            agent: s(semconv::GEN_AI_AGENT_NAME),
            service: span.service.clone(),
            operation: s(semconv::GEN_AI_OPERATION_NAME),
            provider: s(semconv::GEN_AI_PROVIDER_NAME),
            request_model: s(semconv::GEN_AI_REQUEST_MODEL),
            model: span.model().map(str::to_owned),
            response_id: s(semconv::GEN_AI_RESPONSE_ID),
            finish_reason: (!reasons.is_empty()).then(|| reasons.join(",")),
            status: if span.is_error() { "error" } else { "ok" },
            error_type: s(semconv::ERROR_TYPE),
            http_status: n(semconv::HTTP_RESPONSE_STATUS_CODE),
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: n(semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            reasoning_tokens: n(semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            total_tokens: input.zip(output).map(|(i, o)| i + o),
            latency_ms,
            ttft_ms: span
                .f64_attr(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
                .map(|secs| round3(secs * 1000.0)),
            output_tokens_per_second: output
                .filter(|&o| o > 0 && latency_ms > 0.0)
                .map(|o| round3(o as f64 * 1000.0 / latency_ms)),
            streamed: span.streamed(),
            system_fingerprint: s(semconv::OPENAI_RESPONSE_SYSTEM_FINGERPRINT),
            request_id: s(semconv::LLMTAP_UPSTREAM_REQUEST_ID),
            server_address: s(semconv::SERVER_ADDRESS),
            span_name: span.name.clone(),
            cost_usd: None,
            input: None,
            output: None,
            meta: span
                .attributes
                .iter()
                .filter_map(|(key, value)| {
                    let name = key.strip_prefix(semconv::LLMTAP_META_PREFIX)?;
                    Some((format!("{META_COLUMN_PREFIX}{name}"), value.to_string()))
                })
                .collect(),
        }
    }

    /// Adds the call's cost in picodollars (see [`crate::cost`]).
    pub fn with_cost(mut self, picodollars: Option<u128>) -> Self {
        self.cost_usd = picodollars.map(crate::cost::usd);
        self
    }

    /// Adds the prompt and answer as text (empty when nothing was captured).
    pub fn with_content(mut self, span: &SpanRecord) -> Self {
        let content = span.content.as_deref();
        self.input = Some(content.map(crate::content::input_text).unwrap_or_default());
        self.output = Some(content.map(crate::content::output_text).unwrap_or_default());
        self
    }

    /// [`csv_values`](Self::csv_values), then the content columns when `content`, then one
    /// value per `meta_columns` entry (empty when the span lacks it).
    pub fn csv_values_with(&self, content: bool, meta_columns: &[String]) -> Vec<String> {
        let mut values = self.csv_values();
        if content {
            values.push(self.input.clone().unwrap_or_default());
            values.push(self.output.clone().unwrap_or_default());
        }
        for column in meta_columns {
            values.push(self.meta.get(column).cloned().unwrap_or_default());
        }
        values
    }

    /// The values in [`COLUMNS`] order, as CSV text (empty for unknown).
    pub fn csv_values(&self) -> Vec<String> {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map(ToString::to_string).unwrap_or_default()
        }
        vec![
            self.time.clone(),
            self.trace_id.clone(),
            self.span_id.clone(),
            opt(&self.parent_span_id),
            opt(&self.session_id),
            opt(&self.agent),
            opt(&self.service),
            opt(&self.operation),
            opt(&self.provider),
            opt(&self.request_model),
            opt(&self.model),
            opt(&self.response_id),
            opt(&self.finish_reason),
            self.status.to_owned(),
            opt(&self.error_type),
            opt(&self.http_status),
            opt(&self.input_tokens),
            opt(&self.output_tokens),
            opt(&self.cached_input_tokens),
            opt(&self.reasoning_tokens),
            opt(&self.total_tokens),
            self.latency_ms.to_string(),
            opt(&self.ttft_ms),
            opt(&self.output_tokens_per_second),
            self.streamed.to_string(),
            opt(&self.system_fingerprint),
            opt(&self.request_id),
            opt(&self.server_address),
            self.span_name.clone(),
            opt(&self.cost_usd),
        ]
    }
}

/// One CSV record per RFC 4180: fields with a comma, quote, CR or LF are quoted and inner
/// quotes doubled; records end in CRLF.
pub fn csv_record(fields: &[impl AsRef<str>]) -> String {
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_per_rfc4180() {
        assert_eq!(csv_record(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(
            csv_record(&["x,y", "say \"hi\"", "two\nlines", "cr\r"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\"\r\n"
        );
    }

    #[test]
    fn columns_match_the_csv_values() {
        let span = SpanRecord {
            trace_id: "t".into(),
            span_id: "s".into(),
            parent_span_id: String::new(),
            name: "chat".into(),
            start_unix_nanos: 0,
            end_unix_nanos: 1_500_000,
            status: crate::spans::SpanStatus::Unset,
            service: None,
            attributes: Default::default(),
            content: None,
        };
        let row = CallRow::from_span(&span);
        assert_eq!(row.csv_values().len(), COLUMNS.len());
        assert_eq!(row.latency_ms, 1.5);
        assert_eq!(row.total_tokens, None, "unknown counts are not guessed");
        // The JSON keys are the CSV columns, in the same order.
        let json = serde_json::to_string(&row).unwrap_or_default();
        let mut at = 0;
        for column in COLUMNS {
            let found = json[at..].find(&format!("\"{column}\":"));
            assert!(
                found.is_some(),
                "{column} missing or out of order in {json}"
            );
            at += found.unwrap_or(0);
        }
    }
}
