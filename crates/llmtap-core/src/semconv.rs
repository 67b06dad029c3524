//! The gen_ai vocabulary llmtap emits and reads, pinned to one convention at a time:
//!
//! - by default **OpenTelemetry semantic conventions v1.41.0** (the last GenAI release of the
//!   main repository, what Phoenix and Jaeger's GenAI view read), schema URL [`SCHEMA_URL`];
//! - with `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` (the convention's own
//!   switch), the newer names of the GenAI repository, schema URL [`SCHEMA_URL_GENAI_LATEST`].
//!
//! Spans are built with the v1.41 names; [`Convention::rename`] lists every difference, and the
//! exporter applies it when the opt-in is set, so one output never mixes the two. Facts v1.41
//! has no name for (reasoning level, previous response id) go under `llmtap.` by default and
//! under their GenAI-repository names with the opt-in.
//!
//! Every attribute key written anywhere in llmtap is a const here, so a convention change is one
//! edit and a typo is a compile error. We own these instead of using
//! `opentelemetry-semantic-conventions` because its gen_ai consts are `#[deprecated]` (moved to the
//! GenAI repo) and break `-D warnings`.
//!
//! The deprecated `gen_ai.system` is deliberately absent: `gen_ai.provider.name` replaced it.
//! Keys under `llmtap.` are our own extensions for facts the conventions have no name for.

/// The convention version emitted by default.
pub const SEMCONV_VERSION: &str = "1.41.0";
/// Schema URL matching [`SEMCONV_VERSION`], for instrumentation scopes and resources.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.41.0";
/// Schema URL the GenAI repository declares for its conventions (README "Schema URL"), used
/// with `gen_ai_latest_experimental`.
pub const SCHEMA_URL_GENAI_LATEST: &str = "https://opentelemetry.io/schemas/gen-ai/1.42.0";
/// The opt-in value for the newest experimental GenAI conventions.
pub const GEN_AI_LATEST_EXPERIMENTAL: &str = "gen_ai_latest_experimental";

/// Which GenAI convention an output follows. One per process: every span, the resource and the
/// instrumentation scope name the same version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Convention {
    /// Semantic conventions v1.41.0 (default).
    #[default]
    V1_41,
    /// The GenAI repository's newest names (`gen_ai_latest_experimental`).
    GenAiLatest,
}

impl Convention {
    /// From the value of `OTEL_SEMCONV_STABILITY_OPT_IN`: the newest names when the list contains
    /// `gen_ai_latest_experimental`, else v1.41. Other entries belong to other conventions
    /// (`http`, `database`, …) and are not ours to judge.
    pub fn from_opt_in(value: Option<&str>) -> Self {
        let latest = value.is_some_and(|v| {
            v.split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(GEN_AI_LATEST_EXPERIMENTAL))
        });
        if latest {
            Self::GenAiLatest
        } else {
            Self::V1_41
        }
    }

    /// The schema URL for resources and scopes.
    pub fn schema_url(self) -> &'static str {
        match self {
            Self::V1_41 => SCHEMA_URL,
            Self::GenAiLatest => SCHEMA_URL_GENAI_LATEST,
        }
    }

    /// How the output names this convention (`semconv 1.41.0`), for banners and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::V1_41 => "semconv 1.41.0",
            Self::GenAiLatest => "gen_ai_latest_experimental (gen-ai 1.42.0)",
        }
    }

    /// The key `key` (as spans are built: v1.41 names) has in this convention, when it differs.
    pub fn rename(self, key: &str) -> Option<&'static str> {
        match self {
            Self::V1_41 => None,
            Self::GenAiLatest => LATEST_RENAMES
                .iter()
                .find(|(from, _)| *from == key)
                .map(|(_, to)| *to),
        }
    }

    /// Whether `gen_ai.request.top_k` is an int here (GenAI repository) rather than a double
    /// (v1.41).
    pub fn top_k_is_int(self) -> bool {
        self == Self::GenAiLatest
    }
}

/// v1.41 (or llmtap) key → GenAI-repository key, for every name that differs.
pub const LATEST_RENAMES: [(&str, &str); 4] = [
    (
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    ),
    (
        LLMTAP_REQUEST_REASONING_LEVEL,
        GEN_AI_REQUEST_REASONING_LEVEL,
    ),
    (
        LLMTAP_REQUEST_PREVIOUS_RESPONSE_ID,
        GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID,
    ),
    (
        LLMTAP_USAGE_TOTAL_CACHE_CREATION_INPUT_TOKENS,
        LLMTAP_USAGE_TOTAL_CACHE_WRITE_INPUT_TOKENS,
    ),
];

// ---- gen_ai: operation and provider -------------------------------------------------------

pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";

// ---- gen_ai.request.* ----------------------------------------------------------------------

pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// A double in v1.41, an int in the GenAI repository ([`Convention::top_k_is_int`]). OpenAI
/// `top_logprobs` must NOT map here.
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
/// Only set when the request asks for a count other than 1.
pub const GEN_AI_REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
/// Set (to `true`) only for streaming calls; absent means non-streaming.
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
/// GenAI repository only: the exact reasoning effort sent (`low`/`medium`/`high`...).
pub const GEN_AI_REQUEST_REASONING_LEVEL: &str = "gen_ai.request.reasoning.level";
/// GenAI repository only: OpenAI Responses `previous_response_id`.
pub const GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID: &str = "gen_ai.request.previous_response.id";
/// The reasoning level under v1.41, which has no name for it.
pub const LLMTAP_REQUEST_REASONING_LEVEL: &str = "llmtap.request.reasoning.level";
/// OpenAI Responses `previous_response_id` under v1.41, which has no name for it.
pub const LLMTAP_REQUEST_PREVIOUS_RESPONSE_ID: &str = "llmtap.request.previous_response.id";
pub const GEN_AI_REQUEST_ENCODING_FORMATS: &str = "gen_ai.request.encoding_formats";
pub const GEN_AI_OUTPUT_TYPE: &str = "gen_ai.output.type";

// ---- gen_ai.response.* ---------------------------------------------------------------------

pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// One per choice, in choice order; `error` for a choice that ended abnormally.
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// Seconds (double) from request start to the first response chunk; streaming only.
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

// ---- gen_ai.usage.* ------------------------------------------------------------------------

/// Includes cached input tokens.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Includes reasoning tokens.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// Subset of input tokens.
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// Subset of input tokens written to the provider's cache (v1.41 name).
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str =
    "gen_ai.usage.cache_creation.input_tokens";
/// The GenAI repository's rename of [`GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS`].
pub const GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: &str = "gen_ai.usage.cache_write.input_tokens";
/// Subset of output tokens.
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";

// ---- content (opt-in in semconv; JSON strings on Rust spans) -------------------------------

pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const GEN_AI_TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";

// ---- agents, conversations, tools ----------------------------------------------------------

/// Only from a real session/thread id; never invented.
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
pub const GEN_AI_AGENT_DESCRIPTION: &str = "gen_ai.agent.description";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
pub const GEN_AI_TOOL_DESCRIPTION: &str = "gen_ai.tool.description";
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";

// ---- embeddings ----------------------------------------------------------------------------

pub const GEN_AI_EMBEDDINGS_DIMENSION_COUNT: &str = "gen_ai.embeddings.dimension.count";

// ---- general conventions -------------------------------------------------------------------

pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
/// Low-cardinality failure class; see [`error_type`] for the values llmtap itself produces.
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";

// ---- OpenAI flavour (only on spans whose provider is OpenAI-flavoured) ---------------------

/// `chat_completions` or `responses`.
pub const OPENAI_API_TYPE: &str = "openai.api.type";
/// Only when sent and not `auto`.
pub const OPENAI_REQUEST_SERVICE_TIER: &str = "openai.request.service_tier";
pub const OPENAI_RESPONSE_SERVICE_TIER: &str = "openai.response.service_tier";
pub const OPENAI_RESPONSE_SYSTEM_FINGERPRINT: &str = "openai.response.system_fingerprint";

// ---- llmtap extensions ---------------------------------------------------------------------

/// Subtree token totals on agent spans. Kept out of `gen_ai.usage.*` because backends sum those
/// across spans and would double count.
pub const LLMTAP_USAGE_TOTAL_INPUT_TOKENS: &str = "llmtap.usage.total.input_tokens";
pub const LLMTAP_USAGE_TOTAL_OUTPUT_TOKENS: &str = "llmtap.usage.total.output_tokens";
pub const LLMTAP_USAGE_TOTAL_CACHE_READ_INPUT_TOKENS: &str =
    "llmtap.usage.total.cache_read.input_tokens";
/// Subtree total of cache writes, named after v1.41's `cache_creation`.
pub const LLMTAP_USAGE_TOTAL_CACHE_CREATION_INPUT_TOKENS: &str =
    "llmtap.usage.total.cache_creation.input_tokens";
/// The same total under `gen_ai_latest_experimental`, named after `cache_write`.
pub const LLMTAP_USAGE_TOTAL_CACHE_WRITE_INPUT_TOKENS: &str =
    "llmtap.usage.total.cache_write.input_tokens";
pub const LLMTAP_USAGE_TOTAL_REASONING_OUTPUT_TOKENS: &str =
    "llmtap.usage.total.reasoning.output_tokens";
/// Prefix for user metadata (`x-llmtap-meta-<k>` header → `llmtap.meta.<k>`).
pub const LLMTAP_META_PREFIX: &str = "llmtap.meta.";
/// Number of SSE data events in a streamed response (excluding the `[DONE]` sentinel).
pub const LLMTAP_RESPONSE_CHUNK_COUNT: &str = "llmtap.response.chunk_count";
/// Output tokens per second over the generation window of a streamed response.
pub const LLMTAP_RESPONSE_OUTPUT_TOKENS_PER_SECOND: &str =
    "llmtap.response.output_tokens_per_second";
/// The provider's own request id (`x-request-id`, `request-id`...), for support tickets.
pub const LLMTAP_UPSTREAM_REQUEST_ID: &str = "llmtap.upstream.request_id";
/// Bool: some captured content was cut to fit its byte budget.
pub const LLMTAP_CAPTURE_TRUNCATED: &str = "llmtap.capture.truncated";
/// Why captured content is missing or partial; values in [`capture_error`].
pub const LLMTAP_CAPTURE_ERROR: &str = "llmtap.capture.error";
/// The request path as received by the proxy (without query), e.g. `/v1/chat/completions`.
pub const LLMTAP_HTTP_ROUTE: &str = "llmtap.http.route";
/// How the connection ended after the terminal event (see [`transport_end`]).
pub const LLMTAP_TRANSPORT_END: &str = "llmtap.transport.end";

/// Rate-limit state the provider reported on the response head (`x-ratelimit-*` from OpenAI and
/// most compatibles, `anthropic-ratelimit-*`): the window's limit, what is left of it, and when
/// it resets, as the provider wrote it (`6m0s`, an RFC 3339 time).
pub const LLMTAP_RATELIMIT_REQUESTS_LIMIT: &str = "llmtap.ratelimit.requests.limit";
pub const LLMTAP_RATELIMIT_REQUESTS_REMAINING: &str = "llmtap.ratelimit.requests.remaining";
pub const LLMTAP_RATELIMIT_REQUESTS_RESET: &str = "llmtap.ratelimit.requests.reset";
pub const LLMTAP_RATELIMIT_TOKENS_LIMIT: &str = "llmtap.ratelimit.tokens.limit";
pub const LLMTAP_RATELIMIT_TOKENS_REMAINING: &str = "llmtap.ratelimit.tokens.remaining";
pub const LLMTAP_RATELIMIT_TOKENS_RESET: &str = "llmtap.ratelimit.tokens.reset";
/// The `retry-after` response header as sent (seconds, or an HTTP date).
pub const LLMTAP_RATELIMIT_RETRY_AFTER: &str = "llmtap.ratelimit.retry_after";

/// `llmtap.meta.<key>` for a user metadata key.
pub fn meta_key(key: &str) -> String {
    let mut k = String::with_capacity(LLMTAP_META_PREFIX.len() + key.len());
    k.push_str(LLMTAP_META_PREFIX);
    k.push_str(key);
    k
}

/// Well-known `gen_ai.operation.name` values.
pub mod operation {
    pub const CHAT: &str = "chat";
    pub const TEXT_COMPLETION: &str = "text_completion";
    pub const EMBEDDINGS: &str = "embeddings";
    pub const GENERATE_CONTENT: &str = "generate_content";
    pub const INVOKE_AGENT: &str = "invoke_agent";
    pub const EXECUTE_TOOL: &str = "execute_tool";
}

/// `gen_ai.provider.name` values. The first group is semconv's well-known list; the second are
/// custom values (allowed by the convention) for popular OpenAI-compatible hosts it doesn't name.
pub mod provider {
    pub const OPENAI: &str = "openai";
    pub const ANTHROPIC: &str = "anthropic";
    /// generativelanguage.googleapis.com
    pub const GCP_GEMINI: &str = "gcp.gemini";
    /// aiplatform.googleapis.com
    pub const GCP_VERTEX_AI: &str = "gcp.vertex_ai";
    pub const GROQ: &str = "groq";
    pub const MISTRAL_AI: &str = "mistral_ai";
    pub const DEEPSEEK: &str = "deepseek";
    pub const X_AI: &str = "x_ai";
    pub const PERPLEXITY: &str = "perplexity";
    pub const AZURE_AI_OPENAI: &str = "azure.ai.openai";
    pub const AZURE_AI_INFERENCE: &str = "azure.ai.inference";
    pub const COHERE: &str = "cohere";
    pub const AWS_BEDROCK: &str = "aws.bedrock";
    pub const MOONSHOT_AI: &str = "moonshot_ai";

    /// Custom (not in semconv): openrouter.ai.
    pub const OPENROUTER: &str = "openrouter";
    /// Custom (not in semconv): api.together.xyz.
    pub const TOGETHER_AI: &str = "together_ai";
    /// Custom (not in semconv): a local Ollama server.
    pub const OLLAMA: &str = "ollama";

    /// Whether `openai.*` attributes may appear on a span with this provider (semconv's
    /// "flavour discriminator" rule: no `openai.*` on e.g. `aws.bedrock` spans).
    pub fn is_openai_flavoured(provider: &str) -> bool {
        provider == OPENAI || provider == AZURE_AI_OPENAI
    }
}

/// `gen_ai.output.type` values.
pub mod output_type {
    pub const TEXT: &str = "text";
    pub const JSON: &str = "json";
    pub const IMAGE: &str = "image";
    pub const SPEECH: &str = "speech";
}

/// `openai.api.type` values.
pub mod openai_api_type {
    pub const CHAT_COMPLETIONS: &str = "chat_completions";
    pub const RESPONSES: &str = "responses";
}

/// Output message `finish_reason` values of the semconv message schema.
pub mod finish_reason {
    pub const STOP: &str = "stop";
    pub const LENGTH: &str = "length";
    pub const CONTENT_FILTER: &str = "content_filter";
    pub const TOOL_CALL: &str = "tool_call";
    /// A choice that ended abnormally (stream cut, in-stream error).
    pub const ERROR: &str = "error";
}

/// The `error.type` values llmtap produces itself. Besides these, `error.type` carries the
/// provider's error code/type from the error body (see `codec::parse_error_body`).
pub mod error_type {
    /// Semconv fallback when nothing more specific is known (e.g. an HTTP error with no code).
    pub const OTHER: &str = "_OTHER";
    /// Upstream closed a streamed response before it was complete.
    pub const STREAM_TRUNCATED: &str = "stream_truncated";
    /// The client went away before the response was fully delivered.
    pub const CLIENT_DISCONNECTED: &str = "client_disconnected";
    /// The proxy had its limit of calls in flight and refused this one (503, `retry-after`).
    pub const OVERLOADED: &str = "overloaded";
    /// Upstream did not answer in time (proxy replies 504).
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    /// Upstream could not be reached (proxy replies 502).
    pub const UPSTREAM_UNREACHABLE: &str = "upstream_unreachable";
    /// The upstream's response head was larger than the proxy accepts (proxy replies 502).
    pub const UPSTREAM_RESPONSE_HEAD_TOO_LARGE: &str = "upstream_response_head_too_large";
    /// The client's request body stalled past the proxy's body timeout (proxy replies 408).
    pub const CLIENT_BODY_TIMEOUT: &str = "client_body_timeout";
    /// The call was still open when the proxy's shutdown grace ran out.
    pub const SHUTDOWN_GRACE_EXCEEDED: &str = "shutdown_grace_exceeded";
}

/// `llmtap.capture.error` values: why a captured copy could not be (fully) decoded. The traffic
/// itself is never affected.
pub mod capture_error {
    /// A JSON body (request or non-streaming response) did not parse.
    pub const INVALID_JSON: &str = "invalid_json";
    /// A stream had undecodable events (bad JSON in `data:`, invalid UTF-8, oversized event).
    pub const INVALID_SSE: &str = "invalid_sse";
    /// A body was larger than the capture budget: it passed through, its copy was not parsed.
    pub const BODY_OVER_BUDGET: &str = "body_over_capture_budget";
    /// Copies of stream chunks were dropped because the recorder fell behind (traffic first).
    pub const CHUNK_COPIES_LOST: &str = "chunk_copies_lost";
    /// A body's `content-encoding` is not one the capture can undo (or several stacked).
    pub const CONTENT_ENCODING_UNSUPPORTED: &str = "content_encoding_unsupported";
    /// A body did not decode as its `content-encoding` said.
    pub const CONTENT_ENCODING_INVALID: &str = "content_encoding_invalid";
    /// The proxy's shared capture buffer (`LLMTAP_MAX_BUFFERED_BYTES`) was full: the request
    /// passed through uncaptured.
    pub const CAPTURE_BUFFER_FULL: &str = "capture_buffer_full";
    /// A request body streamed upstream did not reach its end (the client broke the upload off,
    /// or the upstream answered and stopped reading it first): its partial copy was not parsed.
    pub const UPLOAD_INCOMPLETE: &str = "upload_incomplete";
}

/// `llmtap.transport.end` values: how the connection ended *after* the protocol's terminal event
/// (`[DONE]`, `response.completed`, `message_stop`, Gemini's last event) had reached the client.
/// Informational, never an error: real clients close right after the terminal event.
pub mod transport_end {
    /// The client closed (or stopped reading) once it had the terminal event.
    pub const CLIENT_CLOSED: &str = "client_closed";
    /// The upstream broke the connection off after its terminal event.
    pub const UPSTREAM_CLOSED: &str = "upstream_closed";
    /// The upstream went silent after its terminal event and the idle timeout closed it.
    pub const UPSTREAM_IDLE: &str = "upstream_idle";
}

/// `gen_ai.token.type` on `gen_ai.client.token.usage`.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";

/// Metric: histogram of operation durations, unit `s`.
pub const GEN_AI_CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Metric: histogram of tokens per operation and `gen_ai.token.type`, unit `{token}`.
pub const GEN_AI_CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Metric: histogram of time to the first chunk of streamed responses, unit `s`.
pub const GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK: &str =
    "gen_ai.client.operation.time_to_first_chunk";
/// Metric: histogram of the time between output chunks after the first, unit `s` (v1.41).
pub const GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK: &str =
    "gen_ai.client.operation.time_per_output_chunk";

/// Bucket boundaries advised for the duration metrics (seconds).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Bucket boundaries advised for `gen_ai.client.token.usage`.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.token.type` values.
pub mod token_type {
    pub const INPUT: &str = "input";
    pub const OUTPUT: &str = "output";
}

/// Keys of other conventions, emitted only when a compatibility set is switched on
/// (`LLMTAP_COMPAT`); gen_ai attributes are always emitted too.
pub mod compat_keys {
    /// OpenInference span kind (`LLM`, `EMBEDDING`, `AGENT`, `TOOL`), read by Arize Phoenix.
    pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";
    pub const LLM_MODEL_NAME: &str = "llm.model_name";
    pub const LLM_PROVIDER: &str = "llm.provider";
    pub const LLM_TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
    pub const LLM_TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
    pub const LLM_TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
    pub const INPUT_VALUE: &str = "input.value";
    pub const INPUT_MIME_TYPE: &str = "input.mime_type";
    pub const OUTPUT_VALUE: &str = "output.value";
    pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
    /// Langfuse: when the first chunk arrived (RFC 3339), its time-to-first-token source.
    pub const LANGFUSE_COMPLETION_START_TIME: &str = "langfuse.observation.completion_start_time";
}

/// Model-call span name: `{operation} {model}` (`chat gpt-4o`), or just `{operation}` when the
/// model is unknown or empty.
pub fn model_span_name(operation: &str, model: Option<&str>) -> String {
    name_with_suffix(operation, model)
}

/// Agent span name: `invoke_agent {name}`, or `invoke_agent` when unnamed.
pub fn agent_span_name(agent_name: Option<&str>) -> String {
    name_with_suffix(operation::INVOKE_AGENT, agent_name)
}

/// Tool span name: `execute_tool {name}`.
pub fn tool_span_name(tool_name: &str) -> String {
    name_with_suffix(operation::EXECUTE_TOOL, Some(tool_name))
}

fn name_with_suffix(prefix: &str, suffix: Option<&str>) -> String {
    match suffix.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            let mut name = String::with_capacity(prefix.len() + 1 + s.len());
            name.push_str(prefix);
            name.push(' ');
            name.push_str(s);
            name
        }
        None => prefix.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names() {
        assert_eq!(
            model_span_name(operation::CHAT, Some("gpt-4o")),
            "chat gpt-4o"
        );
        assert_eq!(model_span_name(operation::CHAT, None), "chat");
        assert_eq!(
            model_span_name(operation::EMBEDDINGS, Some("  ")),
            "embeddings"
        );
        assert_eq!(agent_span_name(Some("planner")), "invoke_agent planner");
        assert_eq!(agent_span_name(None), "invoke_agent");
        assert_eq!(tool_span_name("get_weather"), "execute_tool get_weather");
    }

    #[test]
    fn keys_are_the_published_names() {
        // Spot checks against the spec text of both conventions.
        assert_eq!(
            GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
            "gen_ai.usage.cache_creation.input_tokens"
        );
        assert_eq!(
            GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
            "gen_ai.usage.cache_write.input_tokens"
        );
        assert_eq!(
            GEN_AI_REQUEST_REASONING_LEVEL,
            "gen_ai.request.reasoning.level"
        );
        assert_eq!(
            GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
            "gen_ai.response.time_to_first_chunk"
        );
        assert_eq!(
            GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID,
            "gen_ai.request.previous_response.id"
        );
        assert_eq!(meta_key("team"), "llmtap.meta.team");
    }

    #[test]
    fn opt_in_selects_the_convention_and_its_schema() {
        assert_eq!(Convention::from_opt_in(None), Convention::V1_41);
        assert_eq!(
            Convention::from_opt_in(Some("http,database")),
            Convention::V1_41
        );
        let latest = Convention::from_opt_in(Some("http, gen_ai_latest_experimental"));
        assert_eq!(latest, Convention::GenAiLatest);
        assert_eq!(
            Convention::V1_41.schema_url(),
            "https://opentelemetry.io/schemas/1.41.0"
        );
        assert_eq!(
            latest.schema_url(),
            "https://opentelemetry.io/schemas/gen-ai/1.42.0"
        );
        assert_eq!(
            latest.rename(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
            Some("gen_ai.usage.cache_write.input_tokens")
        );
        assert_eq!(
            latest.rename(LLMTAP_REQUEST_REASONING_LEVEL),
            Some("gen_ai.request.reasoning.level")
        );
        assert_eq!(latest.rename(GEN_AI_USAGE_INPUT_TOKENS), None);
        assert_eq!(
            Convention::V1_41.rename(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
            None
        );
    }

    #[test]
    fn deprecated_system_key_is_never_defined() {
        let src = include_str!("semconv.rs");
        let needle = ["gen_ai", ".system\""].concat();
        assert!(!src.contains(&needle), "deprecated key must not be defined");
    }

    #[test]
    fn flavour_rule() {
        assert!(provider::is_openai_flavoured(provider::OPENAI));
        assert!(provider::is_openai_flavoured(provider::AZURE_AI_OPENAI));
        assert!(!provider::is_openai_flavoured(provider::AWS_BEDROCK));
        assert!(!provider::is_openai_flavoured(provider::GROQ));
    }
}
