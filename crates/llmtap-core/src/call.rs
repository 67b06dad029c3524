//! [`LlmCall`]: the provider-neutral record of one model call, and the ONE mapping from it to a
//! span (name, kind, attributes, status). Codecs fill it, the proxy and SDK turn it into spans;
//! nobody else decides attribute names or shapes.
//!
//! ## `error.type` values
//!
//! `error_type` must stay low-cardinality. Producers use exactly one of:
//! - the provider's own error code or type from the error body (`invalid_api_key`,
//!   `rate_limit_error`, `RESOURCE_EXHAUSTED`...), already bounded in length and charset by
//!   `codec::parse_error_body`, also for errors reported inside a stream;
//! - [`error_type::OTHER`] (`_OTHER`) for an upstream HTTP error whose body names no code;
//! - llmtap's own outcomes: [`error_type::STREAM_TRUNCATED`], [`error_type::CLIENT_DISCONNECTED`],
//!   [`error_type::UPSTREAM_TIMEOUT`], [`error_type::UPSTREAM_UNREACHABLE`].
//!
//! Raw error text never goes here.

use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, StringValue, Value};

use crate::redact::Redactor;
use crate::semconv::{self, error_type, provider};

/// One model call, provider-neutral. Every optional field is emitted only when present.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    /// A [`semconv::operation`] value.
    pub operation: &'static str,
    /// `gen_ai.provider.name` (a [`semconv::provider`] value, or a configured override).
    pub provider: String,
    /// `openai.api.type` ([`semconv::openai_api_type`]) when the wire API has one.
    pub api_type: Option<&'static str>,
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
    /// Path as received (without query), e.g. `/v1/chat/completions`.
    pub route: Option<String>,
    pub request: RequestParams,
    pub response: ResponseInfo,
    pub usage: Usage,
    pub timings: Timings,
    /// Low-cardinality failure class; see the module docs for the allowed values.
    pub error_type: Option<String>,
    /// Upstream HTTP status, when a response head arrived.
    pub http_status: Option<u16>,
    pub agent: AgentContext,
    pub content: CapturedContent,
    /// A [`semconv::capture_error`] value when the captured copy couldn't be decoded.
    pub capture_error: Option<&'static str>,
    /// A [`semconv::transport_end`] value: how the connection ended after the terminal event
    /// (informational; the call completed).
    pub transport_end: Option<&'static str>,
}

/// Request parameters as sent by the client. `None`/empty means "not in the request".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParams {
    pub model: Option<String>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub stop_sequences: Vec<String>,
    pub seed: Option<i64>,
    /// Number of choices asked for (`n`); emitted only when ≠ 1.
    pub choice_count: Option<u64>,
    pub stream: bool,
    /// A [`semconv::output_type`] value when the request asks for a format.
    pub output_type: Option<&'static str>,
    pub reasoning_level: Option<String>,
    pub previous_response_id: Option<String>,
    pub service_tier: Option<String>,
    pub encoding_formats: Vec<String>,
}

/// What the response said about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseInfo {
    pub id: Option<String>,
    pub model: Option<String>,
    /// One per choice, in choice order, as the provider spelled them.
    pub finish_reasons: Vec<String>,
    pub system_fingerprint: Option<String>,
    pub service_tier: Option<String>,
    /// The provider's request id header, for support tickets.
    pub upstream_request_id: Option<String>,
    /// Embedding vector length (from the response, else the requested `dimensions`).
    pub embedding_dimensions: Option<u64>,
    /// Rate-limit headers of the response head.
    pub rate_limit: crate::headers::RateLimit,
}

/// Token counts exactly as the conventions define them: `input_tokens` INCLUDES cached tokens
/// (`cache_read` and `cache_write` are subsets of it) and `output_tokens` INCLUDES reasoning
/// tokens (`reasoning_output_tokens` is a subset). Codecs normalise providers that count
/// differently (Anthropic). Never guessed: `None` when the provider didn't say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_write_input_tokens: Option<u64>,
    pub reasoning_output_tokens: Option<u64>,
}

/// Timing facts measured by whoever sees the bytes (the proxy or SDK).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// From request start to the first response body chunk.
    pub time_to_first_chunk: Option<Duration>,
    /// From request start to the end of the response.
    pub duration: Option<Duration>,
    /// SSE data events seen (excluding `[DONE]`); 0 for non-streaming calls.
    pub chunk_count: u64,
}

/// Who made the call, from `x-llmtap-*` headers or the SDK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentContext {
    pub agent_name: Option<String>,
    pub agent_id: Option<String>,
    /// Only a real session/thread id; never invented.
    pub conversation_id: Option<String>,
    /// User metadata, emitted as `llmtap.meta.<key>`.
    pub meta: Vec<(String, String)>,
}

/// Captured content as JSON text in the semconv parts schema, already redacted and budgeted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedContent {
    pub input_messages: Option<String>,
    pub output_messages: Option<String>,
    pub system_instructions: Option<String>,
    pub tool_definitions: Option<String>,
    /// Some content was cut to its byte budget.
    pub truncated: bool,
}

impl LlmCall {
    /// An empty record for `operation` (a [`semconv::operation`] value) on `provider`.
    pub fn new(operation: &'static str, provider: impl Into<String>) -> Self {
        Self {
            operation,
            provider: provider.into(),
            api_type: None,
            server_address: None,
            server_port: None,
            route: None,
            request: RequestParams::default(),
            response: ResponseInfo::default(),
            usage: Usage::default(),
            timings: Timings::default(),
            error_type: None,
            http_status: None,
            agent: AgentContext::default(),
            content: CapturedContent::default(),
            capture_error: None,
            transport_end: None,
        }
    }

    /// Redacts every free-text string the call carries besides captured content (which
    /// [`CapturePolicy::budgeted_json`](crate::capture::CapturePolicy::budgeted_json) redacts):
    /// request and response model, stop sequences, ids, fingerprints, tiers, the route, agent
    /// name and id, session, meta keys and values, and the error type, which becomes `_OTHER`
    /// when it held a secret so `error.type` stays a bounded value. One regex check per clean
    /// string; idempotent. Producers call it before a field is turned into an attribute.
    pub fn redact_fields(&mut self, redactor: &Redactor) {
        let one = |s: &mut String| {
            redactor.redact_in_place(s);
        };
        let req = &mut self.request;
        req.model.as_mut().map(one);
        req.stop_sequences.iter_mut().for_each(one);
        req.reasoning_level.as_mut().map(one);
        req.previous_response_id.as_mut().map(one);
        req.service_tier.as_mut().map(one);
        req.encoding_formats.iter_mut().for_each(one);
        let resp = &mut self.response;
        resp.id.as_mut().map(one);
        resp.model.as_mut().map(one);
        resp.finish_reasons.iter_mut().for_each(one);
        resp.system_fingerprint.as_mut().map(one);
        resp.service_tier.as_mut().map(one);
        resp.upstream_request_id.as_mut().map(one);
        self.route.as_mut().map(one);
        let agent = &mut self.agent;
        agent.agent_name.as_mut().map(one);
        agent.agent_id.as_mut().map(one);
        agent.conversation_id.as_mut().map(one);
        for (key, value) in &mut agent.meta {
            one(key);
            one(value);
        }
        if let Some(error) = self.error_type.as_mut()
            && redactor.redact_in_place(error)
        {
            *error = error_type::OTHER.to_owned();
        }
    }

    /// `{operation} {request model}`, or `{operation}` when the model is unknown.
    pub fn span_name(&self) -> String {
        semconv::model_span_name(self.operation, self.request.model.as_deref())
    }

    /// Model calls cross a process boundary, so CLIENT.
    pub fn span_kind(&self) -> SpanKind {
        SpanKind::Client
    }

    /// The sampling-relevant attributes, to be set when the span starts: operation, provider,
    /// request model, server address and port (port only alongside an address).
    pub fn start_attributes(&self) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(5);
        attrs.push(KeyValue::new(
            semconv::GEN_AI_OPERATION_NAME,
            self.operation,
        ));
        attrs.push(KeyValue::new(
            semconv::GEN_AI_PROVIDER_NAME,
            self.provider.clone(),
        ));
        push_str(
            &mut attrs,
            semconv::GEN_AI_REQUEST_MODEL,
            &self.request.model,
        );
        if let Some(address) = &self.server_address {
            attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, address.clone()));
            if let Some(port) = self.server_port {
                attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        attrs
    }

    /// Everything else that is known, to be set when the span ends. Never repeats a
    /// [`start_attributes`](Self::start_attributes) key.
    pub fn end_attributes(&self) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(32);
        let openai_flavoured = provider::is_openai_flavoured(&self.provider);

        if let Some(api_type) = self.api_type {
            attrs.push(KeyValue::new(semconv::OPENAI_API_TYPE, api_type));
        }
        if let Some(route) = &self.route {
            attrs.push(KeyValue::new(semconv::LLMTAP_HTTP_ROUTE, route.clone()));
        }

        // Request parameters, only those present in the request.
        let req = &self.request;
        push_u64(
            &mut attrs,
            semconv::GEN_AI_REQUEST_MAX_TOKENS,
            req.max_tokens,
        );
        push_f64(
            &mut attrs,
            semconv::GEN_AI_REQUEST_TEMPERATURE,
            req.temperature,
        );
        push_f64(&mut attrs, semconv::GEN_AI_REQUEST_TOP_P, req.top_p);
        // A double in v1.41; the exporter makes it an int for the GenAI repository's names.
        push_f64(
            &mut attrs,
            semconv::GEN_AI_REQUEST_TOP_K,
            req.top_k.map(|k| k as f64),
        );
        push_f64(
            &mut attrs,
            semconv::GEN_AI_REQUEST_FREQUENCY_PENALTY,
            req.frequency_penalty,
        );
        push_f64(
            &mut attrs,
            semconv::GEN_AI_REQUEST_PRESENCE_PENALTY,
            req.presence_penalty,
        );
        push_str_array(
            &mut attrs,
            semconv::GEN_AI_REQUEST_STOP_SEQUENCES,
            &req.stop_sequences,
        );
        if let Some(seed) = req.seed {
            attrs.push(KeyValue::new(semconv::GEN_AI_REQUEST_SEED, seed));
        }
        push_u64(
            &mut attrs,
            semconv::GEN_AI_REQUEST_CHOICE_COUNT,
            req.choice_count.filter(|&n| n != 1),
        );
        if req.stream {
            attrs.push(KeyValue::new(semconv::GEN_AI_REQUEST_STREAM, true));
        }
        if let Some(output_type) = req.output_type {
            attrs.push(KeyValue::new(semconv::GEN_AI_OUTPUT_TYPE, output_type));
        }
        // v1.41 has no names for these two; see `semconv::Convention`.
        push_str(
            &mut attrs,
            semconv::LLMTAP_REQUEST_REASONING_LEVEL,
            &req.reasoning_level,
        );
        push_str(
            &mut attrs,
            semconv::LLMTAP_REQUEST_PREVIOUS_RESPONSE_ID,
            &req.previous_response_id,
        );
        push_str_array(
            &mut attrs,
            semconv::GEN_AI_REQUEST_ENCODING_FORMATS,
            &req.encoding_formats,
        );
        if openai_flavoured {
            // Semconv: only when sent and not `auto`.
            if let Some(tier) = req.service_tier.as_deref().filter(|t| *t != "auto") {
                attrs.push(KeyValue::new(
                    semconv::OPENAI_REQUEST_SERVICE_TIER,
                    tier.to_owned(),
                ));
            }
        }

        // Response.
        let resp = &self.response;
        push_str(&mut attrs, semconv::GEN_AI_RESPONSE_ID, &resp.id);
        push_str(&mut attrs, semconv::GEN_AI_RESPONSE_MODEL, &resp.model);
        push_str_array(
            &mut attrs,
            semconv::GEN_AI_RESPONSE_FINISH_REASONS,
            &resp.finish_reasons,
        );
        push_u64(
            &mut attrs,
            semconv::GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
            resp.embedding_dimensions,
        );
        push_str(
            &mut attrs,
            semconv::LLMTAP_UPSTREAM_REQUEST_ID,
            &resp.upstream_request_id,
        );
        let limit = &resp.rate_limit;
        push_u64(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_REQUESTS_LIMIT,
            limit.requests_limit,
        );
        push_u64(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_REQUESTS_REMAINING,
            limit.requests_remaining,
        );
        push_str(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_REQUESTS_RESET,
            &limit.requests_reset,
        );
        push_u64(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_TOKENS_LIMIT,
            limit.tokens_limit,
        );
        push_u64(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_TOKENS_REMAINING,
            limit.tokens_remaining,
        );
        push_str(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_TOKENS_RESET,
            &limit.tokens_reset,
        );
        push_str(
            &mut attrs,
            semconv::LLMTAP_RATELIMIT_RETRY_AFTER,
            &limit.retry_after,
        );
        if openai_flavoured {
            push_str(
                &mut attrs,
                semconv::OPENAI_RESPONSE_SERVICE_TIER,
                &resp.service_tier,
            );
            push_str(
                &mut attrs,
                semconv::OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
                &resp.system_fingerprint,
            );
        }

        // Usage.
        let usage = &self.usage;
        push_u64(
            &mut attrs,
            semconv::GEN_AI_USAGE_INPUT_TOKENS,
            usage.input_tokens,
        );
        push_u64(
            &mut attrs,
            semconv::GEN_AI_USAGE_OUTPUT_TOKENS,
            usage.output_tokens,
        );
        push_u64(
            &mut attrs,
            semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            usage.cache_read_input_tokens,
        );
        push_u64(
            &mut attrs,
            semconv::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
            usage.cache_write_input_tokens,
        );
        push_u64(
            &mut attrs,
            semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
            usage.reasoning_output_tokens,
        );

        // Timings.
        if let Some(ttfc) = self.timings.time_to_first_chunk {
            attrs.push(KeyValue::new(
                semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                ttfc.as_secs_f64(),
            ));
        }
        if self.timings.chunk_count > 0 {
            push_u64(
                &mut attrs,
                semconv::LLMTAP_RESPONSE_CHUNK_COUNT,
                Some(self.timings.chunk_count),
            );
        }
        if let Some(rate) = self.output_tokens_per_second() {
            attrs.push(KeyValue::new(
                semconv::LLMTAP_RESPONSE_OUTPUT_TOKENS_PER_SECOND,
                rate,
            ));
        }

        // Errors.
        if let Some(error) = self.effective_error_type() {
            attrs.push(KeyValue::new(semconv::ERROR_TYPE, error.to_owned()));
        }
        if let Some(status) = self.http_status {
            attrs.push(KeyValue::new(
                semconv::HTTP_RESPONSE_STATUS_CODE,
                i64::from(status),
            ));
        }

        // Agent context.
        let agent = &self.agent;
        push_str(&mut attrs, semconv::GEN_AI_AGENT_NAME, &agent.agent_name);
        push_str(&mut attrs, semconv::GEN_AI_AGENT_ID, &agent.agent_id);
        push_str(
            &mut attrs,
            semconv::GEN_AI_CONVERSATION_ID,
            &agent.conversation_id,
        );
        for (key, value) in &agent.meta {
            attrs.push(KeyValue::new(semconv::meta_key(key), value.clone()));
        }

        // Content.
        let content = &self.content;
        push_str(
            &mut attrs,
            semconv::GEN_AI_SYSTEM_INSTRUCTIONS,
            &content.system_instructions,
        );
        push_str(
            &mut attrs,
            semconv::GEN_AI_INPUT_MESSAGES,
            &content.input_messages,
        );
        push_str(
            &mut attrs,
            semconv::GEN_AI_OUTPUT_MESSAGES,
            &content.output_messages,
        );
        push_str(
            &mut attrs,
            semconv::GEN_AI_TOOL_DEFINITIONS,
            &content.tool_definitions,
        );
        if content.truncated {
            attrs.push(KeyValue::new(semconv::LLMTAP_CAPTURE_TRUNCATED, true));
        }
        if let Some(capture_error) = self.capture_error {
            attrs.push(KeyValue::new(semconv::LLMTAP_CAPTURE_ERROR, capture_error));
        }
        if let Some(transport_end) = self.transport_end {
            attrs.push(KeyValue::new(semconv::LLMTAP_TRANSPORT_END, transport_end));
        }
        attrs
    }

    /// `start_attributes` followed by `end_attributes`, for callers that set everything at once.
    pub fn all_attributes(&self) -> Vec<KeyValue> {
        let mut attrs = self.start_attributes();
        attrs.extend(self.end_attributes());
        attrs
    }

    /// Error (described by `error.type`) when the call failed, else Unset (semconv: instrumentations
    /// leave success Unset).
    pub fn status(&self) -> Status {
        match self.effective_error_type() {
            Some(error) => Status::error(error.to_owned()),
            None => Status::Unset,
        }
    }

    /// Attributes of the gen_ai client metrics for this call: operation, provider, request and
    /// response model, server address and port, and `error.type` on failure — low-cardinality
    /// facts only, never ids or content.
    pub fn metric_attributes(&self) -> Vec<KeyValue> {
        let mut out = vec![
            KeyValue::new(semconv::GEN_AI_OPERATION_NAME, self.operation),
            KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, self.provider.clone()),
        ];
        if let Some(model) = &self.request.model {
            out.push(KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, model.clone()));
        }
        if let Some(model) = &self.response.model {
            out.push(KeyValue::new(semconv::GEN_AI_RESPONSE_MODEL, model.clone()));
        }
        if let Some(address) = &self.server_address {
            out.push(KeyValue::new(semconv::SERVER_ADDRESS, address.clone()));
        }
        if let Some(port) = self.server_port {
            out.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        }
        if let Some(error) = self.effective_error_type() {
            out.push(KeyValue::new(semconv::ERROR_TYPE, error.to_owned()));
        }
        out
    }

    /// `error_type`, or `_OTHER` for an HTTP error status nobody classified, so an error never
    /// goes unmarked.
    pub fn effective_error_type(&self) -> Option<&str> {
        match &self.error_type {
            Some(error) => Some(error.as_str()),
            None if self.http_status.is_some_and(|s| s >= 400) => Some(error_type::OTHER),
            None => None,
        }
    }

    /// Output tokens per second over the generation window of a streamed call: from the first
    /// chunk to the end when time-to-first-chunk is known (decode speed), else over the whole
    /// duration. `None` unless streaming with both output tokens and duration known and a
    /// non-zero window.
    pub fn output_tokens_per_second(&self) -> Option<f64> {
        if !self.request.stream {
            return None;
        }
        let tokens = self.usage.output_tokens?;
        let duration = self.timings.duration?;
        let window = match self.timings.time_to_first_chunk {
            Some(ttfc) => duration.checked_sub(ttfc)?,
            None => duration,
        };
        let secs = window.as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        Some(tokens as f64 / secs)
    }
}

/// Converts a count to an OTel int, saturating (counts never approach i64::MAX in practice).
pub(crate) fn count_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn push_u64(attrs: &mut Vec<KeyValue>, key: &'static str, value: Option<u64>) {
    if let Some(n) = value {
        attrs.push(KeyValue::new(key, count_value(n)));
    }
}

fn push_f64(attrs: &mut Vec<KeyValue>, key: &'static str, value: Option<f64>) {
    if let Some(x) = value.filter(|x| x.is_finite()) {
        attrs.push(KeyValue::new(key, x));
    }
}

fn push_str(attrs: &mut Vec<KeyValue>, key: &'static str, value: &Option<String>) {
    if let Some(s) = value {
        attrs.push(KeyValue::new(key, s.clone()));
    }
}

fn push_str_array(attrs: &mut Vec<KeyValue>, key: &'static str, values: &[String]) {
    if !values.is_empty() {
        let array: Vec<StringValue> = values.iter().map(|s| s.clone().into()).collect();
        attrs.push(KeyValue::new(key, Value::Array(Array::String(array))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::{openai_api_type, operation, output_type};
    use std::collections::HashMap;

    fn as_map(attrs: &[KeyValue]) -> HashMap<String, Value> {
        attrs
            .iter()
            .map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
            .collect()
    }

    fn full_call() -> LlmCall {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        call.api_type = Some(openai_api_type::CHAT_COMPLETIONS);
        call.server_address = Some("api.openai.com".into());
        call.server_port = Some(443);
        call.route = Some("/v1/chat/completions".into());
        call.request.model = Some("gpt-4o-mini".into());
        call.request.temperature = Some(0.2);
        call.request.max_tokens = Some(50);
        call.request.stop_sequences = vec!["END".into()];
        call.request.seed = Some(-7);
        call.request.choice_count = Some(2);
        call.request.stream = true;
        call.request.output_type = Some(output_type::JSON);
        call.request.service_tier = Some("default".into());
        call.response.id = Some("chatcmpl-1".into());
        call.response.model = Some("gpt-4o-mini-2024-07-18".into());
        call.response.finish_reasons = vec!["stop".into(), "length".into()];
        call.response.system_fingerprint = Some("fp_1".into());
        call.response.service_tier = Some("default".into());
        call.response.upstream_request_id = Some("req_1".into());
        call.usage.input_tokens = Some(9);
        call.usage.output_tokens = Some(40);
        call.usage.cache_read_input_tokens = Some(0);
        call.timings.time_to_first_chunk = Some(Duration::from_millis(250));
        call.timings.duration = Some(Duration::from_millis(2250));
        call.timings.chunk_count = 12;
        call.http_status = Some(200);
        call.agent.agent_name = Some("planner".into());
        call.agent.conversation_id = Some("sess-1".into());
        call.agent.meta = vec![("team".into(), "search".into())];
        call.content.input_messages = Some("[]".into());
        call.content.truncated = true;
        call
    }

    #[test]
    fn name_kind_and_start_attributes() {
        let call = full_call();
        assert_eq!(call.span_name(), "chat gpt-4o-mini");
        assert_eq!(call.span_kind(), SpanKind::Client);
        let start = call.start_attributes();
        let keys: Vec<&str> = start.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                semconv::GEN_AI_OPERATION_NAME,
                semconv::GEN_AI_PROVIDER_NAME,
                semconv::GEN_AI_REQUEST_MODEL,
                semconv::SERVER_ADDRESS,
                semconv::SERVER_PORT
            ]
        );
        assert_eq!(as_map(&start)[semconv::SERVER_PORT], Value::I64(443));
    }

    #[test]
    fn end_attributes_carry_everything_once() {
        let call = full_call();
        let end = call.end_attributes();
        let m = as_map(&end);
        assert_eq!(m.len(), end.len(), "no duplicate keys");
        for kv in call.start_attributes() {
            assert!(!m.contains_key(kv.key.as_str()), "{} repeated", kv.key);
        }
        assert_eq!(m[semconv::GEN_AI_REQUEST_TEMPERATURE], Value::F64(0.2));
        assert_eq!(m[semconv::GEN_AI_REQUEST_MAX_TOKENS], Value::I64(50));
        assert_eq!(m[semconv::GEN_AI_REQUEST_SEED], Value::I64(-7));
        assert_eq!(m[semconv::GEN_AI_REQUEST_CHOICE_COUNT], Value::I64(2));
        assert_eq!(m[semconv::GEN_AI_REQUEST_STREAM], Value::Bool(true));
        assert_eq!(m[semconv::GEN_AI_OUTPUT_TYPE], Value::from("json"));
        assert_eq!(
            m[semconv::GEN_AI_RESPONSE_FINISH_REASONS],
            Value::Array(Array::String(vec!["stop".into(), "length".into()]))
        );
        assert_eq!(
            m[semconv::GEN_AI_REQUEST_STOP_SEQUENCES],
            Value::Array(Array::String(vec!["END".into()]))
        );
        assert_eq!(m[semconv::GEN_AI_USAGE_INPUT_TOKENS], Value::I64(9));
        assert_eq!(
            m[semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS],
            Value::I64(0)
        );
        assert_eq!(
            m[semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK],
            Value::F64(0.25)
        );
        // 40 tokens over the 2 s after the first chunk.
        assert_eq!(
            m[semconv::LLMTAP_RESPONSE_OUTPUT_TOKENS_PER_SECOND],
            Value::F64(20.0)
        );
        assert_eq!(m[semconv::LLMTAP_RESPONSE_CHUNK_COUNT], Value::I64(12));
        assert!(
            !m.keys().any(|k| k.starts_with("llmtap.ratelimit.")),
            "no rate-limit attributes without the headers"
        );
        assert_eq!(
            m[semconv::OPENAI_REQUEST_SERVICE_TIER],
            Value::from("default")
        );
        assert_eq!(
            m[semconv::OPENAI_RESPONSE_SYSTEM_FINGERPRINT],
            Value::from("fp_1")
        );
        assert_eq!(m[semconv::OPENAI_API_TYPE], Value::from("chat_completions"));
        assert_eq!(m["llmtap.meta.team"], Value::from("search"));
        assert_eq!(m[semconv::GEN_AI_AGENT_NAME], Value::from("planner"));
        assert_eq!(m[semconv::GEN_AI_CONVERSATION_ID], Value::from("sess-1"));
        assert_eq!(m[semconv::LLMTAP_CAPTURE_TRUNCATED], Value::Bool(true));
        assert_eq!(m[semconv::HTTP_RESPONSE_STATUS_CODE], Value::I64(200));
        assert!(!m.contains_key(semconv::ERROR_TYPE));
        assert!(!m.keys().any(|k| k == "gen_ai.system"));
        assert_eq!(call.status(), Status::Unset);
    }

    #[test]
    fn default_names_are_all_v1_41() {
        let mut call = full_call();
        call.request.top_k = Some(40);
        call.request.reasoning_level = Some("high".into());
        call.request.previous_response_id = Some("resp_1".into());
        call.usage.cache_write_input_tokens = Some(7);
        let m = as_map(&call.end_attributes());
        assert_eq!(m["gen_ai.request.top_k"], Value::F64(40.0));
        assert_eq!(m["gen_ai.usage.cache_creation.input_tokens"], Value::I64(7));
        assert_eq!(m["llmtap.request.reasoning.level"], Value::from("high"));
        assert_eq!(
            m["llmtap.request.previous_response.id"],
            Value::from("resp_1")
        );
        for newer in [
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.request.reasoning.level",
            "gen_ai.request.previous_response.id",
        ] {
            assert!(!m.contains_key(newer), "{newer} is not a v1.41 name");
        }
    }

    #[test]
    fn absent_values_are_not_emitted() {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        call.request.choice_count = Some(1);
        assert_eq!(call.span_name(), "chat");
        assert_eq!(call.start_attributes().len(), 2);
        assert!(
            call.end_attributes().is_empty(),
            "{:?}",
            call.end_attributes()
        );
    }

    #[test]
    fn openai_attributes_only_on_openai_flavoured_providers() {
        let mut call = full_call();
        call.provider = provider::GROQ.to_owned();
        let m = as_map(&call.end_attributes());
        assert!(!m.contains_key(semconv::OPENAI_RESPONSE_SYSTEM_FINGERPRINT));
        assert!(!m.contains_key(semconv::OPENAI_RESPONSE_SERVICE_TIER));
        assert!(!m.contains_key(semconv::OPENAI_REQUEST_SERVICE_TIER));
        // The wire API type still describes the request shape.
        assert!(m.contains_key(semconv::OPENAI_API_TYPE));
    }

    #[test]
    fn auto_service_tier_is_not_recorded() {
        let mut call = full_call();
        call.request.service_tier = Some("auto".into());
        let m = as_map(&call.end_attributes());
        assert!(!m.contains_key(semconv::OPENAI_REQUEST_SERVICE_TIER));
    }

    #[test]
    fn errors_set_status_and_type() {
        let mut call = full_call();
        call.error_type = Some(error_type::STREAM_TRUNCATED.into());
        assert_eq!(call.status(), Status::error("stream_truncated"));
        assert_eq!(
            as_map(&call.end_attributes())[semconv::ERROR_TYPE],
            Value::from("stream_truncated")
        );

        let mut http_error = LlmCall::new(operation::CHAT, provider::OPENAI);
        http_error.http_status = Some(503);
        assert_eq!(http_error.status(), Status::error("_OTHER"));
        assert_eq!(
            as_map(&http_error.end_attributes())[semconv::ERROR_TYPE],
            Value::from("_OTHER")
        );
    }

    #[test]
    fn every_string_field_is_redacted() {
        let r = Redactor::new();
        for planted in crate::redact::secret_corpus::corpus() {
            let secret = planted.text.as_str();
            let mut call = full_call();
            call.request.model = Some(secret.into());
            call.request.stop_sequences = vec!["END".into(), secret.into()];
            call.request.reasoning_level = Some(secret.into());
            call.request.previous_response_id = Some(secret.into());
            call.request.service_tier = Some(secret.into());
            call.request.encoding_formats = vec![secret.into()];
            call.response.id = Some(secret.into());
            call.response.model = Some(secret.into());
            call.response.finish_reasons = vec![secret.into()];
            call.response.system_fingerprint = Some(secret.into());
            call.response.service_tier = Some(secret.into());
            call.response.upstream_request_id = Some(secret.into());
            call.route = Some(format!("/v1beta/models/{secret}:generateContent"));
            call.agent.agent_name = Some(secret.into());
            call.agent.agent_id = Some(secret.into());
            call.agent.conversation_id = Some(secret.into());
            call.agent.meta = vec![(secret.into(), secret.into())];
            call.error_type = Some(secret.into());
            call.redact_fields(&r);

            let mut shown = format!("{} {:?}", call.span_name(), call.status());
            for kv in call
                .all_attributes()
                .into_iter()
                .chain(call.metric_attributes())
            {
                shown.push_str(&format!(" {}={}", kv.key, kv.value));
            }
            assert!(
                !shown.contains(planted.secret.as_str()),
                "{} leaked: {shown}",
                planted.kind
            );
            assert_eq!(call.error_type.as_deref(), Some(error_type::OTHER));
            // Idempotent: a second pass (the proxy and codecs each call it) changes nothing.
            let before = call.clone();
            call.redact_fields(&r);
            assert_eq!(call, before);
        }
    }

    #[test]
    fn tokens_per_second_needs_streaming_and_a_window() {
        let mut call = full_call();
        call.request.stream = false;
        assert_eq!(call.output_tokens_per_second(), None);
        call.request.stream = true;
        call.timings.time_to_first_chunk = None;
        assert_eq!(call.output_tokens_per_second(), Some(40.0 / 2.25));
        call.timings.duration = Some(Duration::ZERO);
        assert_eq!(call.output_tokens_per_second(), None);
        call.timings.duration = None;
        assert_eq!(call.output_tokens_per_second(), None);
    }

    #[test]
    fn peer_superset_non_streaming() {
        // Every attribute the openai-v2 peer records for its non-streaming mock call
        // (shared/reference/peer-spans-openai-v2.json) must be present with the same value.
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        call.server_address = Some("127.0.0.1".into());
        call.server_port = Some(8089);
        call.request.model = Some("gpt-4o-mini".into());
        call.request.temperature = Some(0.2);
        call.request.max_tokens = Some(50);
        call.response.finish_reasons = vec!["stop".into()];
        call.response.model = Some("gpt-4o-mini-2024-07-18".into());
        call.response.id = Some("chatcmpl-mock123".into());
        call.usage.input_tokens = Some(9);
        call.usage.output_tokens = Some(4);
        call.response.system_fingerprint = Some("fp_mock".into());
        let m = as_map(&call.all_attributes());
        let expected: [(&str, Value); 13] = [
            ("gen_ai.operation.name", "chat".into()),
            ("gen_ai.request.model", "gpt-4o-mini".into()),
            ("gen_ai.provider.name", "openai".into()),
            ("server.address", "127.0.0.1".into()),
            ("server.port", 8089_i64.into()),
            ("gen_ai.request.temperature", 0.2.into()),
            ("gen_ai.request.max_tokens", 50_i64.into()),
            (
                "gen_ai.response.finish_reasons",
                Value::Array(Array::String(vec!["stop".into()])),
            ),
            ("gen_ai.response.model", "gpt-4o-mini-2024-07-18".into()),
            ("gen_ai.response.id", "chatcmpl-mock123".into()),
            ("gen_ai.usage.input_tokens", 9_i64.into()),
            ("gen_ai.usage.output_tokens", 4_i64.into()),
            ("openai.response.system_fingerprint", "fp_mock".into()),
        ];
        for (key, value) in expected {
            assert_eq!(m.get(key), Some(&value), "{key}");
        }
    }

    #[test]
    fn rate_limit_headers_become_llmtap_attributes() {
        let mut call = full_call();
        call.response.rate_limit = crate::headers::RateLimit {
            requests_remaining: Some(0),
            tokens_remaining: Some(1200),
            tokens_reset: Some("6m0s".into()),
            retry_after: Some("20".into()),
            ..Default::default()
        };
        let m = as_map(&call.end_attributes());
        assert_eq!(
            m[semconv::LLMTAP_RATELIMIT_REQUESTS_REMAINING],
            Value::I64(0)
        );
        assert_eq!(
            m[semconv::LLMTAP_RATELIMIT_TOKENS_REMAINING],
            Value::I64(1200)
        );
        assert_eq!(
            m[semconv::LLMTAP_RATELIMIT_TOKENS_RESET],
            Value::from("6m0s")
        );
        assert_eq!(m[semconv::LLMTAP_RATELIMIT_RETRY_AFTER], Value::from("20"));
        assert!(!m.contains_key(semconv::LLMTAP_RATELIMIT_REQUESTS_LIMIT));
    }
}
