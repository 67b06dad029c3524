//! Provider codecs: turn copies of request/response bodies into an [`LlmCall`].
//!
//! The proxy's flow, per call:
//! 1. [`route`] the request path → [`Route`] (or forward unrecorded when `None`);
//! 2. `let mut call = route.api.new_call(provider_for_host(host));`
//! 3. [`parse_request`] on a copy of the request body;
//! 4. on a 2xx JSON response, [`parse_response`]; on a 2xx SSE response, a [`StreamState`] fed with
//!    every chunk (or with decoded [`SseEvent`]s), then [`StreamState::finish`] exactly once;
//!    on an error status, `call.error_type = parse_error_body(body)` (else `_OTHER`).
//!
//! Parsers never panic on any input. A body that doesn't parse leaves the call's metadata as far
//! as known, sets `call.capture_error` and returns a [`CodecError`]; traffic is never affected.

pub mod anthropic;
mod body;
pub use body::ResponseCapture;
mod common;
mod peek;
pub use peek::peek_model;
pub mod gemini;
pub mod openai_chat;
pub mod openai_completions;
pub mod openai_embeddings;
pub mod openai_responses;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::json_stream::JsonArraySplitter;
use crate::semconv::{capture_error, openai_api_type, operation, provider};
use crate::sse::{SseDecoder, SseEvent};

/// The wire APIs llmtap understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Api {
    /// `POST /v1/chat/completions`
    OpenAiChat,
    /// `POST /v1/completions` (legacy text completions)
    OpenAiCompletions,
    /// `POST /v1/embeddings`
    OpenAiEmbeddings,
    /// `POST /v1/responses` (OpenAI Responses API)
    OpenAiResponses,
    /// `POST /v1/messages` (Anthropic Messages API)
    AnthropicMessages,
    /// `POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent` (Gemini)
    GeminiGenerateContent,
}

impl Api {
    /// The `gen_ai.operation.name` for calls on this API.
    pub fn operation(&self) -> &'static str {
        match self {
            Api::OpenAiChat | Api::OpenAiResponses | Api::AnthropicMessages => operation::CHAT,
            Api::OpenAiCompletions => operation::TEXT_COMPLETION,
            Api::OpenAiEmbeddings => operation::EMBEDDINGS,
            Api::GeminiGenerateContent => operation::GENERATE_CONTENT,
        }
    }

    /// The provider that defines this wire API: what an upstream host we don't recognise is
    /// taken to be (an unknown host speaking the Messages API is an Anthropic-compatible server).
    pub fn native_provider(&self) -> &'static str {
        match self {
            Api::AnthropicMessages => provider::ANTHROPIC,
            Api::GeminiGenerateContent => provider::GCP_GEMINI,
            Api::OpenAiChat
            | Api::OpenAiCompletions
            | Api::OpenAiEmbeddings
            | Api::OpenAiResponses => provider::OPENAI,
        }
    }

    /// The `openai.api.type` value, where semconv defines one (`chat_completions`/`responses`).
    pub fn api_type(&self) -> Option<&'static str> {
        match self {
            Api::OpenAiChat => Some(openai_api_type::CHAT_COMPLETIONS),
            Api::OpenAiResponses => Some(openai_api_type::RESPONSES),
            Api::OpenAiCompletions
            | Api::OpenAiEmbeddings
            | Api::AnthropicMessages
            | Api::GeminiGenerateContent => None,
        }
    }

    /// A fresh [`LlmCall`] for this API with operation and api type set.
    pub fn new_call(&self, provider: impl Into<String>) -> LlmCall {
        let mut call = LlmCall::new(self.operation(), provider);
        call.api_type = self.api_type();
        call
    }
}

/// Where a request path goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub api: Api,
    /// Provider named by an explicit first path segment (`/openai/v1/...` → `openai`,
    /// `/anthropic/v1/...` → `anthropic`, `/gemini/v1beta/...` → `gcp.gemini`).
    pub provider_hint: Option<&'static str>,
    /// The path to send upstream: the input with the provider segment removed (query kept).
    pub upstream_path: String,
    /// The model named by the path (Gemini: `/v1beta/models/{model}:generateContent`).
    pub path_model: Option<String>,
    /// The path itself asks for a stream (Gemini `:streamGenerateContent`).
    pub path_stream: bool,
}

impl Route {
    /// A fresh [`LlmCall`] for this route: operation and api type from the API, plus the model
    /// and stream flag when the path carries them (request body parsers never unset them).
    pub fn new_call(&self, provider: impl Into<String>) -> LlmCall {
        let mut call = self.api.new_call(provider);
        call.request.model = self.path_model.clone();
        call.request.stream = self.path_stream;
        call
    }
}

/// Explicit provider prefixes. Only recognised when followed by `/v1` or `/v1beta`, so Azure's
/// `/openai/deployments/...` paths pass through intact.
const PROVIDER_PREFIXES: &[(&str, &str)] = &[
    ("/openai", provider::OPENAI),
    ("/anthropic", provider::ANTHROPIC),
    ("/gemini", provider::GCP_GEMINI),
];

/// Maps a request path (optionally with `?query`) to an API. Matching is by path suffix, so every
/// OpenAI-compatible layout works: `/v1/chat/completions`, `/openai/v1/chat/completions`,
/// `/v1beta/openai/chat/completions` (Gemini), `/openai/deployments/d/chat/completions` (Azure).
/// `None` = not an API we record (the proxy forwards it unrecorded). The HTTP method is the
/// caller's concern (only `POST` creates a model call).
pub fn route(path: &str) -> Option<Route> {
    let (path_only, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut hint = None;
    let mut rest = path_only;
    for (prefix, name) in PROVIDER_PREFIXES {
        if let Some(after) = path_only.strip_prefix(prefix)
            && (after.starts_with("/v1/") || after.starts_with("/v1beta/"))
        {
            hint = Some(*name);
            rest = after;
            break;
        }
    }
    let matched = rest.trim_end_matches('/');
    let mut path_model = None;
    let mut path_stream = false;
    let api = if matched.ends_with("/chat/completions") {
        Api::OpenAiChat
    } else if matched.ends_with("/completions") {
        Api::OpenAiCompletions
    } else if matched.ends_with("/embeddings") {
        Api::OpenAiEmbeddings
    } else if matched.ends_with("/responses") {
        Api::OpenAiResponses
    } else if matched.ends_with("/v1/messages") {
        // Only the top-level path: `/v1/threads/{id}/messages` is OpenAI Assistants.
        Api::AnthropicMessages
    } else if let Some((model, stream)) = gemini_method(matched) {
        path_model = Some(model);
        path_stream = stream;
        Api::GeminiGenerateContent
    } else {
        return None;
    };
    let mut upstream_path = String::with_capacity(path.len());
    upstream_path.push_str(rest);
    if let Some(q) = query {
        upstream_path.push('?');
        upstream_path.push_str(q);
    }
    Some(Route {
        api,
        provider_hint: hint,
        upstream_path,
        path_model,
        path_stream,
    })
}

/// `.../models/{model}:generateContent` → `(model, false)`, `:streamGenerateContent` →
/// `(model, true)`. Also matches Vertex AI's `.../publishers/google/models/{model}:...`.
fn gemini_method(path: &str) -> Option<(String, bool)> {
    let (before, method) = path.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    let (prefix, model) = before.rsplit_once('/')?;
    if !prefix.ends_with("/models") || model.is_empty() {
        return None;
    }
    Some((common::bounded(model), stream))
}

/// A body copy that could not be decoded. Carries no body text (it could hold secrets).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("body is not valid JSON (line {line}, column {column})")]
    InvalidJson { line: usize, column: usize },
    #[error("body is JSON but not an object")]
    NotAnObject,
}

impl CodecError {
    /// The bounded `llmtap.capture.error` value for this error.
    pub fn capture_error(&self) -> &'static str {
        capture_error::INVALID_JSON
    }
}

fn parse_object(body: &[u8], call: &mut LlmCall) -> Result<Value, CodecError> {
    let result = match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(CodecError::NotAnObject),
        Err(e) => Err(CodecError::InvalidJson {
            line: e.line(),
            column: e.column(),
        }),
    };
    if let Err(e) = &result {
        call.capture_error = Some(e.capture_error());
    }
    result
}

/// Reads a request body copy: model and parameters, the stream flag, and (when the policy
/// captures content) input messages, system instructions and tool definitions — redacted and
/// within budget. Every string field of `call` is redacted on return, parsed or not
/// ([`LlmCall::redact_fields`]); so it is after [`parse_response`] and the `finish` methods.
pub fn parse_request(
    api: Api,
    body: &[u8],
    policy: &CapturePolicy,
    call: &mut LlmCall,
) -> Result<(), CodecError> {
    let parsed = parse_object(body, call);
    call.redact_fields(&policy.redactor);
    let v = parsed?;
    match api {
        Api::OpenAiChat => openai_chat::request::parse(&v, policy, call),
        Api::OpenAiCompletions => openai_completions::parse_request(&v, policy, call),
        Api::OpenAiEmbeddings => openai_embeddings::parse_request(&v, call),
        Api::OpenAiResponses => openai_responses::request::parse(&v, policy, call),
        Api::AnthropicMessages => anthropic::request::parse(&v, policy, call),
        Api::GeminiGenerateContent => gemini::request::parse(&v, policy, call),
    }
    call.redact_fields(&policy.redactor);
    Ok(())
}

/// Reads a non-streaming 2xx response body copy: id, model, finish reasons, usage, provider
/// extras and (when captured) output messages.
pub fn parse_response(
    api: Api,
    body: &[u8],
    policy: &CapturePolicy,
    call: &mut LlmCall,
) -> Result<(), CodecError> {
    let parsed = parse_object(body, call);
    call.redact_fields(&policy.redactor);
    let v = parsed?;
    if let Some(code) = common::error_code(&v) {
        call.error_type.get_or_insert(code);
    }
    match api {
        Api::OpenAiChat => openai_chat::response::parse(&v, policy, call),
        Api::OpenAiCompletions => openai_completions::parse_response(&v, policy, call),
        Api::OpenAiEmbeddings => openai_embeddings::parse_response(&v, call),
        Api::OpenAiResponses => openai_responses::response::parse(&v, policy, call),
        Api::AnthropicMessages => anthropic::response::parse(&v, policy, call),
        Api::GeminiGenerateContent => gemini::response::parse(&v, policy, call),
    }
    call.redact_fields(&policy.redactor);
    Ok(())
}

/// The provider's error code/type from an error response body, for `error.type`: bounded to 64
/// chars of `[A-Za-z0-9_.-]`. `None` when the body names none (use `_OTHER` then).
/// Understands OpenAI (`error.code`/`error.type`), Anthropic (`error.type`), Gemini
/// (`error.status`) and vLLM (`type` of an `{"object":"error"}` body).
pub fn parse_error_body(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    common::error_code(&v)
}

/// `gen_ai.provider.name` for an upstream host (`host` or `host:port`, any case):
///
/// | host | provider |
/// |---|---|
/// | api.openai.com | `openai` |
/// | api.anthropic.com | `anthropic` |
/// | generativelanguage.googleapis.com | `gcp.gemini` |
/// | *aiplatform.googleapis.com | `gcp.vertex_ai` |
/// | api.groq.com | `groq` |
/// | api.mistral.ai | `mistral_ai` |
/// | api.deepseek.com | `deepseek` |
/// | api.x.ai | `x_ai` |
/// | api.perplexity.ai | `perplexity` |
/// | api.cohere.com / api.cohere.ai | `cohere` |
/// | api.moonshot.ai / api.moonshot.cn | `moonshot_ai` |
/// | *.openai.azure.com | `azure.ai.openai` |
/// | *.services.ai.azure.com, *.inference.ai.azure.com | `azure.ai.inference` |
/// | bedrock-runtime.*.amazonaws.com | `aws.bedrock` |
/// | openrouter.ai | `openrouter` (custom) |
/// | api.together.xyz / api.together.ai | `together_ai` (custom) |
/// | any host on port 11434 (Ollama's default port) | `ollama` (custom) |
/// | anything else | `openai` (an OpenAI-compatible server: vLLM, LM Studio, llama.cpp...) |
pub fn provider_for_host(host: &str) -> &'static str {
    known_provider_for_host(host).unwrap_or(provider::OPENAI)
}

/// `gen_ai.provider.name` for a call on `api` to an upstream `host`: the host's provider when
/// the host is recognised (table above), else the API's own provider
/// ([`Api::native_provider`]): an unknown host serving `/v1/messages` is Anthropic-compatible,
/// one serving `/v1/chat/completions` OpenAI-compatible.
pub fn provider_for(api: Api, host: &str) -> &'static str {
    known_provider_for_host(host).unwrap_or_else(|| api.native_provider())
}

/// The provider of a recognised host; `None` for any other host.
pub fn known_provider_for_host(host: &str) -> Option<&'static str> {
    let (name, port) = split_host_port(host);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let exact: &[(&str, &'static str)] = &[
        ("api.openai.com", provider::OPENAI),
        ("api.anthropic.com", provider::ANTHROPIC),
        ("generativelanguage.googleapis.com", provider::GCP_GEMINI),
        ("aiplatform.googleapis.com", provider::GCP_VERTEX_AI),
        ("api.groq.com", provider::GROQ),
        ("api.mistral.ai", provider::MISTRAL_AI),
        ("api.deepseek.com", provider::DEEPSEEK),
        ("api.x.ai", provider::X_AI),
        ("api.perplexity.ai", provider::PERPLEXITY),
        ("api.cohere.com", provider::COHERE),
        ("api.cohere.ai", provider::COHERE),
        ("api.moonshot.ai", provider::MOONSHOT_AI),
        ("api.moonshot.cn", provider::MOONSHOT_AI),
        ("openrouter.ai", provider::OPENROUTER),
        ("api.together.xyz", provider::TOGETHER_AI),
        ("api.together.ai", provider::TOGETHER_AI),
    ];
    if let Some((_, p)) = exact.iter().find(|(h, _)| *h == name) {
        return Some(p);
    }
    if name.ends_with("-aiplatform.googleapis.com") {
        return Some(provider::GCP_VERTEX_AI);
    }
    if name.ends_with(".openai.azure.com") {
        return Some(provider::AZURE_AI_OPENAI);
    }
    if name.ends_with(".services.ai.azure.com") || name.ends_with(".inference.ai.azure.com") {
        return Some(provider::AZURE_AI_INFERENCE);
    }
    if name.starts_with("bedrock-runtime.") && name.ends_with(".amazonaws.com") {
        return Some(provider::AWS_BEDROCK);
    }
    if port == Some(11434) {
        return Some(provider::OLLAMA);
    }
    None
}

/// Splits `host[:port]`, including bracketed IPv6 (`[::1]:8080`).
fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

/// Cap on text accumulated per stream field when the capture budget is not known
/// ([`StreamState::new`]): generous but bounded.
const DEFAULT_STREAM_ACCUMULATE_BYTES: usize = 1024 * 1024;

/// How a streamed response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// Server-Sent Events (`text/event-stream`): every provider's streams, Gemini with `alt=sse`.
    Sse,
    /// One JSON array whose elements arrive one by one: Gemini `:streamGenerateContent` without
    /// `alt=sse` (served as `application/json`).
    JsonArray,
}

/// Whether a 2xx response is a stream, and how it is framed: `text/event-stream` is SSE for
/// every API; a Gemini call whose path asked for a stream (`request_stream`) and whose body is
/// anything else is the JSON-array stream. `None`: a plain body, to be buffered and parsed whole.
pub fn stream_format(
    api: Api,
    request_stream: bool,
    content_type: Option<&str>,
) -> Option<StreamFormat> {
    let is_sse = content_type.is_some_and(|ct| {
        ct.trim_start()
            .get(..17)
            .is_some_and(|p| p.eq_ignore_ascii_case("text/event-stream"))
    });
    if is_sse {
        Some(StreamFormat::Sse)
    } else if api == Api::GeminiGenerateContent && request_stream {
        Some(StreamFormat::JsonArray)
    } else {
        None
    }
}

/// The accumulator for one streamed response. Feed it raw body chunks ([`feed`](Self::feed)) or
/// already-decoded events ([`on_event`](Self::on_event)) — not both — then call
/// [`finish`](Self::finish) exactly once.
#[derive(Debug)]
pub struct StreamState {
    api: Api,
    framing: Framing,
    inner: StreamInner,
}

/// The one decoder a stream owns.
#[derive(Debug)]
enum Framing {
    Sse(SseDecoder),
    JsonArray(JsonArraySplitter),
}

#[derive(Debug)]
enum StreamInner {
    /// Chat and legacy completions share the chunk shape (`choices[].delta` / `choices[].text`).
    /// Boxed: the accumulators are large and embeddings streams need none of it.
    Choices(Box<openai_chat::stream::ChoicesStream>),
    Responses(Box<openai_responses::stream::ResponsesStream>),
    Anthropic(Box<anthropic::stream::MessagesStream>),
    Gemini(Box<gemini::stream::GeminiStream>),
    /// Embeddings never stream; events are counted and otherwise ignored.
    Ignored {
        events: u64,
    },
}

impl StreamState {
    /// An SSE stream accumulating content up to a generous fixed bound (1 MiB per field).
    pub fn new(api: Api) -> Self {
        Self::build(
            api,
            StreamFormat::Sse,
            true,
            DEFAULT_STREAM_ACCUMULATE_BYTES,
        )
    }

    /// An SSE stream accumulating only what `policy` will record: nothing when content is off,
    /// else up to the content budget. Prefer this over [`new`](Self::new) when the policy is at
    /// hand.
    pub fn with_capture(api: Api, policy: &CapturePolicy) -> Self {
        Self::with_format(api, StreamFormat::Sse, policy)
    }

    /// Like [`with_capture`](Self::with_capture) for a stream framed as `format` (see
    /// [`stream_format`]).
    pub fn with_format(api: Api, format: StreamFormat, policy: &CapturePolicy) -> Self {
        Self::build(api, format, policy.content, policy.max_content_bytes)
    }

    fn build(api: Api, format: StreamFormat, content: bool, max_bytes: usize) -> Self {
        let inner = match api {
            Api::OpenAiChat | Api::OpenAiCompletions => StreamInner::Choices(Box::new(
                openai_chat::stream::ChoicesStream::new(content, max_bytes),
            )),
            Api::OpenAiResponses => StreamInner::Responses(Box::new(
                openai_responses::stream::ResponsesStream::new(content, max_bytes),
            )),
            Api::AnthropicMessages => StreamInner::Anthropic(Box::new(
                anthropic::stream::MessagesStream::new(content, max_bytes),
            )),
            Api::GeminiGenerateContent => StreamInner::Gemini(Box::new(
                gemini::stream::GeminiStream::new(content, max_bytes),
            )),
            Api::OpenAiEmbeddings => StreamInner::Ignored { events: 0 },
        };
        let framing = match format {
            StreamFormat::Sse => Framing::Sse(SseDecoder::new()),
            StreamFormat::JsonArray => Framing::JsonArray(JsonArraySplitter::new()),
        };
        Self {
            api,
            framing,
            inner,
        }
    }

    /// The API this stream belongs to.
    pub fn api(&self) -> Api {
        self.api
    }

    /// Decodes a raw response body chunk (any split) with the stream's own decoder.
    pub fn feed(&mut self, chunk: &[u8]) {
        let Self { framing, inner, .. } = self;
        match framing {
            Framing::Sse(decoder) => decoder.feed(chunk, |ev| inner.on_event(&ev)),
            Framing::JsonArray(splitter) => splitter.feed(chunk, |element| {
                inner.on_event(&SseEvent {
                    event: None,
                    data: element,
                    id: None,
                });
            }),
        }
    }

    /// Whether the protocol's terminal event reached the decoder: `[DONE]` (chat, completions),
    /// `response.completed|incomplete|failed` (Responses), `message_stop` (Anthropic), Gemini's
    /// final chunk (SSE) or the array's closing `]`, or an in-stream error after which nothing
    /// follows. A client that closes after it is done, not gone.
    pub fn reached_end(&self) -> bool {
        match (&self.framing, &self.inner) {
            (Framing::JsonArray(splitter), _) => splitter.closed(),
            (Framing::Sse(_), StreamInner::Choices(s)) => s.reached_end(),
            (Framing::Sse(_), StreamInner::Responses(s)) => s.reached_end(),
            (Framing::Sse(_), StreamInner::Anthropic(s)) => s.reached_end(),
            (Framing::Sse(_), StreamInner::Gemini(s)) => s.reached_end(),
            (Framing::Sse(_), StreamInner::Ignored { .. }) => false,
        }
    }

    /// One decoded SSE event (when the caller runs its own [`SseDecoder`]).
    pub fn on_event(&mut self, ev: &SseEvent<'_>) {
        self.inner.on_event(ev);
    }

    /// Writes what the stream said into `call`: response id, model, provider extras, one finish
    /// reason per choice (choices still open get `error` — they did not end normally, whether
    /// `complete` or not), usage, an in-stream error's code as `error_type` (unless one is set),
    /// `timings.chunk_count` (data events, excluding `[DONE]`), `capture_error = invalid_sse`
    /// when events were undecodable, and (per `policy`) output messages as accumulated so far.
    /// `complete` is `false` when the stream was cut (upstream hang-up, client disconnect).
    pub fn finish(mut self, policy: &CapturePolicy, call: &mut LlmCall, complete: bool) {
        let Self { framing, inner, .. } = &mut self;
        let decoder_errors = match framing {
            Framing::Sse(decoder) => {
                decoder.finish(|ev| inner.on_event(&ev));
                decoder.stats().had_errors()
            }
            Framing::JsonArray(splitter) => {
                splitter.finish();
                let stats = splitter.stats();
                // An element left open by a cut is the cut, not bad data.
                stats.had_errors() || (complete && stats.unterminated)
            }
        };
        match self.inner {
            StreamInner::Choices(stream) => stream.finish(policy, call, complete, self.api),
            StreamInner::Responses(stream) => stream.finish(policy, call, complete),
            StreamInner::Anthropic(stream) => stream.finish(policy, call, complete),
            StreamInner::Gemini(stream) => stream.finish(policy, call, complete),
            StreamInner::Ignored { events } => {
                call.timings.chunk_count = events;
            }
        }
        if decoder_errors {
            call.capture_error.get_or_insert(capture_error::INVALID_SSE);
        }
        call.redact_fields(&policy.redactor);
    }
}

impl StreamInner {
    fn on_event(&mut self, ev: &SseEvent<'_>) {
        match self {
            StreamInner::Choices(stream) => stream.on_event(ev),
            StreamInner::Responses(stream) => stream.on_event(ev),
            StreamInner::Anthropic(stream) => stream.on_event(ev),
            StreamInner::Gemini(stream) => stream.on_data(ev.data),
            StreamInner::Ignored { events } => {
                if ev.data != "[DONE]" {
                    *events += 1;
                }
            }
        }
    }
}
