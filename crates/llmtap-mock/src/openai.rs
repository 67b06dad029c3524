//! OpenAI-shaped answers: chat completions (JSON and SSE, tool calls, `n` choices, usage chunk),
//! legacy completions, embeddings, the model list and error bodies.
//!
//! Everything is a pure function of the request (plus a per-server sequence number for ids), so
//! tests can assert exact token counts with [`chat_usage`] and [`estimate_tokens`].

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// Content of every answer starts with this, followed by the first words of the last user message.
pub const ANSWER_PREFIX: &str = "Mock answer to: ";

/// How many words of the last user message the answer repeats.
pub(crate) const ANSWER_WORDS: usize = 8;
/// How many words of the last user message a generated string tool argument carries.
const ARGUMENT_WORDS: usize = 5;
/// Tokens OpenAI charges per chat message for its framing, and once for priming the reply
/// (the cookbook's `num_tokens_from_messages` rule).
pub(crate) const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_REPLY_PRIMING: u64 = 3;
/// Legacy completions default to 16 output tokens when `max_tokens` is absent.
const LEGACY_DEFAULT_MAX_TOKENS: u64 = 16;
/// Upper bound on `n` and on embedding dimensions, so a typo cannot make the mock allocate gigabytes.
const MAX_CHOICES: u64 = 128;
const MAX_DIMENSIONS: u64 = 4096;
/// Stream pieces of tool-call arguments when no chunk count is configured.
const ARGUMENT_PIECE_BYTES: usize = 8;

/// Token counts of one answer, in OpenAI's terms: prompt includes cached, completion includes
/// reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`.
    pub prompt_tokens: u64,
    /// `usage.completion_tokens` (content + tool call + reasoning).
    pub completion_tokens: u64,
    /// `usage.prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    /// `usage.completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// `usage.total_tokens`.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    fn chat_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens(),
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        })
    }

    fn legacy_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens(),
        })
    }
}

/// The mock's tokenizer: one token per four bytes of UTF-8, rounded up.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The model name an answer reports: the dated snapshot OpenAI would report for a known alias,
/// names that already carry a date or are embedding models unchanged, anything else with a fixed
/// dated suffix.
pub fn response_model(request_model: &str) -> String {
    const SNAPSHOTS: &[(&str, &str)] = &[
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o", "gpt-4o-2024-08-06"),
        ("gpt-4.1", "gpt-4.1-2025-04-14"),
        ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"),
        ("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"),
        ("gpt-5", "gpt-5-2025-08-07"),
        ("gpt-5-mini", "gpt-5-mini-2025-08-07"),
        ("gpt-5-nano", "gpt-5-nano-2025-08-07"),
        ("o3", "o3-2025-04-16"),
        ("o3-mini", "o3-mini-2025-01-31"),
        ("o4-mini", "o4-mini-2025-04-16"),
        ("gpt-3.5-turbo", "gpt-3.5-turbo-0125"),
        (
            "gpt-3.5-turbo-instruct",
            "gpt-3.5-turbo-instruct:20230824-v2",
        ),
    ];
    if let Some((_, snapshot)) = SNAPSHOTS.iter().find(|(alias, _)| *alias == request_model) {
        return (*snapshot).to_owned();
    }
    if request_model.starts_with("text-embedding") || has_date_suffix(request_model) {
        return request_model.to_owned();
    }
    format!("{request_model}-2025-01-01")
}

fn has_date_suffix(model: &str) -> bool {
    let bytes = model.as_bytes();
    let Some(tail) = bytes
        .len()
        .checked_sub(11)
        .and_then(|start| bytes.get(start..))
    else {
        return false;
    };
    tail.iter().enumerate().all(|(i, b)| match i {
        0 | 5 | 8 => *b == b'-',
        _ => b.is_ascii_digit(),
    })
}

/// Reasoning models spend hidden tokens: this many per visible output token, by effort.
pub(crate) fn reasoning_factor(model: &str, effort: Option<&str>) -> u64 {
    let reasoning_model = ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|prefix| model.starts_with(prefix));
    if !reasoning_model {
        return 0;
    }
    match effort {
        Some("minimal" | "none") => 0,
        Some("low") => 1,
        Some("high") => 4,
        _ => 2,
    }
}

/// A request the mock refuses with a 400, in OpenAI's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest {
    pub(crate) message: String,
    pub(crate) param: Option<&'static str>,
    pub(crate) code: Option<&'static str>,
}

impl BadRequest {
    /// A 400 with only a message (Anthropic and Gemini name no parameter or code).
    pub(crate) fn anthropic(message: &str) -> Self {
        BadRequest {
            message: message.to_owned(),
            param: None,
            code: None,
        }
    }

    pub(crate) fn missing(param: &'static str) -> Self {
        BadRequest {
            message: format!("Missing required parameter: '{param}'."),
            param: Some(param),
            code: Some("missing_required_parameter"),
        }
    }

    pub(crate) fn invalid(param: &'static str, message: String) -> Self {
        BadRequest {
            message,
            param: Some(param),
            code: Some("invalid_value"),
        }
    }

    pub(crate) fn unparsable_json() -> Self {
        BadRequest {
            message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)".to_owned(),
            param: None,
            code: None,
        }
    }

    pub(crate) fn body(&self) -> Bytes {
        json_bytes(&json!({"error": {
            "message": self.message,
            "type": "invalid_request_error",
            "param": self.param,
            "code": self.code,
        }}))
    }
}

/// An OpenAI-shaped error body for a scripted `error:<status>`, with the `type`/`code` pair the
/// real API uses for that status.
pub(crate) fn error_body(status: u16, model: &str) -> Bytes {
    let (message, kind, code): (String, &str, Option<&str>) = match status {
        400 => (
            "Invalid request (scripted by the mock).".to_owned(),
            "invalid_request_error",
            None,
        ),
        401 => (
            "Incorrect API key provided: sk-mock***. You can find your API key at https://platform.openai.com/account/api-keys.".to_owned(),
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "Project does not have access to this model (scripted by the mock).".to_owned(),
            "invalid_request_error",
            Some("model_not_found"),
        ),
        404 => (
            format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            format!("Rate limit reached for {model} in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."),
            "requests",
            Some("rate_limit_exceeded"),
        ),
        503 => (
            "The engine is currently overloaded, please try again later.".to_owned(),
            "server_error",
            None,
        ),
        s if s >= 500 => (
            "The server had an error while processing your request. Sorry about that!".to_owned(),
            "server_error",
            None,
        ),
        _ => (
            format!("Request failed with status {status} (scripted by the mock)."),
            "invalid_request_error",
            None,
        ),
    };
    json_bytes(&json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))
}

/// The error event OpenAI puts inside a stream when generation fails after the head was sent.
pub(crate) fn stream_error_event() -> Bytes {
    sse_event(&json!({"error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": null,
        "code": null,
    }}))
}

/// The 404 OpenAI gives for a path it does not serve.
pub(crate) fn unknown_path_body(method: &str, path: &str) -> Bytes {
    json_bytes(&json!({"error": {
        "message": format!("Invalid URL ({method} {path})"),
        "type": "invalid_request_error",
        "param": null,
        "code": null,
    }}))
}

/// Ids in OpenAI's formats, derived from a per-server sequence number: unique within a run,
/// identical across runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdSource {
    seed: u64,
}

impl IdSource {
    pub(crate) fn new(sequence: u64) -> Self {
        IdSource {
            seed: splitmix64(sequence.wrapping_add(0x6c6c_6d74_6170)),
        }
    }

    /// `<prefix><len alphanumerics>`; `salt` separates ids drawn from the same request.
    pub(crate) fn base62(&self, prefix: &str, salt: u64, len: usize) -> String {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut state = self.seed ^ splitmix64(salt);
        let mut out = String::with_capacity(prefix.len() + len);
        out.push_str(prefix);
        for _ in 0..len {
            state = splitmix64(state);
            let index = (state % 62) as usize;
            out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'x')));
        }
        out
    }

    /// `req_` + 32 hex digits, like OpenAI's `x-request-id`.
    pub(crate) fn request_id(&self) -> String {
        let a = splitmix64(self.seed ^ 0x5eed);
        let b = splitmix64(a);
        format!("req_{a:016x}{b:016x}")
    }
}

/// A stable `fp_…` per model, like OpenAI's `system_fingerprint`.
pub(crate) fn system_fingerprint(model: &str) -> String {
    format!("fp_{:010x}", fnv1a(model.as_bytes()) & 0xff_ffff_ffff)
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) fn json_bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

pub(crate) fn sse_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

pub(crate) const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// What an answer is: a finished JSON document or the SSE events of a stream, in order.
#[derive(Debug)]
pub(crate) enum Answer {
    Json(Bytes),
    Sse(Vec<Bytes>),
    /// A streamed JSON array (Gemini without `alt=sse`): pieces of one `application/json` body.
    JsonStream(Vec<Bytes>),
}

/// Per-request inputs that are not in the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerContext {
    pub(crate) ids: IdSource,
    pub(crate) created: u64,
    /// Exact number of content pieces a stream is split into; `None` means one per word.
    pub(crate) chunks: Option<usize>,
    /// Stream even if the request did not ask to (`malformed-sse` needs a stream to break).
    pub(crate) force_stream: bool,
}

/// The model used for an answer: a scenario given as the model name stands in for `gpt-4o-mini`.
pub(crate) fn effective_model(request: &Map<String, Value>) -> Result<String, BadRequest> {
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| BadRequest {
            message: "you must provide a model parameter".to_owned(),
            param: None,
            code: None,
        })?;
    if crate::scenario::Scenario::looks_like_scenario(model) {
        Ok("gpt-4o-mini".to_owned())
    } else {
        Ok(model.to_owned())
    }
}

fn choice_count(request: &Map<String, Value>) -> Result<usize, BadRequest> {
    match request.get("n") {
        None | Some(Value::Null) => Ok(1),
        Some(value) => match value.as_u64() {
            Some(n @ 1..=MAX_CHOICES) => usize::try_from(n).map_err(|_| {
                BadRequest::invalid("n", format!("{n} is greater than the maximum of 128 - 'n'"))
            }),
            _ => Err(BadRequest::invalid(
                "n",
                format!(
                    "Invalid 'n': expected an integer between 1 and {MAX_CHOICES}, got {value}."
                ),
            )),
        },
    }
}

fn include_usage(request: &Map<String, Value>) -> bool {
    request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn wants_stream(request: &Map<String, Value>) -> bool {
    request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The text of a message `content`: a string, or the `text` of each part of an array.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

pub(crate) fn first_words(text: &str, count: usize) -> String {
    text.split_whitespace()
        .take(count)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One chat message's tokens: framing, content, and any tool calls it carries.
fn message_tokens(message: &Value) -> u64 {
    let mut tokens = TOKENS_PER_MESSAGE + estimate_tokens(&content_text(message.get("content")));
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            let function = call.get("function");
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let arguments = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            tokens += estimate_tokens(name) + estimate_tokens(arguments);
        }
    }
    tokens
}

/// What one choice produces.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

impl Output {
    fn tokens(&self) -> u64 {
        match self {
            Output::Text(text) => estimate_tokens(text),
            Output::ToolCall {
                name, arguments, ..
            } => estimate_tokens(name) + estimate_tokens(arguments),
        }
    }
}

#[derive(Debug)]
struct Choice {
    output: Output,
    finish_reason: &'static str,
}

#[derive(Debug)]
struct ChatPlan {
    model: String,
    choices: Vec<Choice>,
    usage: Usage,
}

/// The function a chat request's tools make the mock call, if it should call one: tools are
/// present, `tool_choice` is not `none`, and the conversation does not already end in a tool result.
fn tool_to_call(request: &Map<String, Value>, messages: &[Value]) -> Option<Value> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    let last_role = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    if last_role == Some("tool") {
        return None;
    }
    let functions = || {
        tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .filter_map(|t| t.get("function"))
    };
    match request.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => None,
        Some(Value::Object(choice)) => {
            let wanted = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            functions()
                .find(|f| f.get("name").and_then(Value::as_str) == Some(wanted))
                .cloned()
        }
        _ => functions().next().cloned(),
    }
}

/// Arguments that satisfy the function's JSON schema well enough for a demo: strings carry the
/// first words of the user's question, numbers are 3, booleans true. Only required properties are
/// filled when the schema lists them.
pub(crate) fn tool_arguments(function: &Value, user_text: &str) -> String {
    let Some(properties) = function
        .get("parameters")
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
    else {
        return "{}".to_owned();
    };
    let required: Option<Vec<&str>> = function
        .get("parameters")
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect());
    let words = first_words(user_text, ARGUMENT_WORDS);
    let phrase = if words.is_empty() { "mock" } else { &words };
    let mut arguments = Map::new();
    for (name, schema) in properties {
        if required
            .as_ref()
            .is_some_and(|r| !r.contains(&name.as_str()))
        {
            continue;
        }
        let value = if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            first.clone()
        } else {
            match schema.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => json!(3),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(phrase),
            }
        };
        arguments.insert(name.clone(), value);
    }
    Value::Object(arguments).to_string()
}

/// Cuts `text` to at most `max_bytes` at a character boundary.
pub(crate) fn truncate_at_char(text: &mut String, max_bytes: usize) {
    let cut = text.floor_char_boundary(max_bytes);
    text.truncate(cut);
}

/// Pads `text` so it has at least `pieces` characters, so a configured chunk count is honoured
/// with no empty deltas.
pub(crate) fn pad_for_pieces(text: &mut String, pieces: Option<usize>) {
    if let Some(pieces) = pieces {
        while text.chars().count() < pieces {
            text.push_str(" mock");
        }
    }
}

/// Splits `text` into pieces for streaming: exactly `count` pieces when given (fewer only if the
/// text has fewer characters), otherwise one piece per word (each keeps its following space),
/// like a tokenizer's deltas.
pub(crate) fn split_pieces(text: &str, count: Option<usize>) -> Vec<String> {
    match count {
        Some(count) => split_even(text, count),
        None => {
            let mut pieces = Vec::new();
            let mut current = String::new();
            for ch in text.chars() {
                if ch.is_whitespace() && !current.trim().is_empty() {
                    pieces.push(std::mem::take(&mut current));
                }
                current.push(ch);
            }
            if !current.is_empty() {
                pieces.push(current);
            }
            pieces
        }
    }
}

/// Splits `text` into `count` runs of nearly equal character counts (no empty run).
fn split_even(text: &str, count: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let count = count.clamp(1, chars.len().max(1));
    let base = chars.len() / count;
    let extra = chars.len() % count;
    let mut pieces = Vec::with_capacity(count);
    let mut rest = chars.as_slice();
    for i in 0..count {
        let take = (base + usize::from(i < extra)).min(rest.len());
        let (head, tail) = rest.split_at(take);
        pieces.push(head.iter().collect());
        rest = tail;
    }
    pieces
}

/// Splits tool-call arguments into several deltas, as OpenAI streams them.
pub(crate) fn split_arguments(arguments: &str, count: Option<usize>) -> Vec<String> {
    let count = count.unwrap_or_else(|| arguments.len().div_ceil(ARGUMENT_PIECE_BYTES).max(2));
    split_even(arguments, count)
}

fn plan_chat(
    request: &Map<String, Value>,
    ids: Option<&IdSource>,
    chunks: Option<usize>,
) -> Result<ChatPlan, BadRequest> {
    let model = effective_model(request)?;
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| BadRequest::missing("messages"))?;
    let n = choice_count(request)?;

    let mut prompt_tokens = TOKENS_REPLY_PRIMING;
    let mut cached_tokens = 0;
    for (i, message) in messages.iter().enumerate() {
        let tokens = message_tokens(message);
        prompt_tokens += tokens;
        if i + 1 < messages.len() {
            cached_tokens += tokens;
        }
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        prompt_tokens += estimate_tokens(&tools.to_string());
    }
    // OpenAI reports a cache hit only when the caller keys the prompt; the mock then counts
    // everything before the last message as served from the cache.
    if !request.contains_key("prompt_cache_key") {
        cached_tokens = 0;
    }

    let user_text = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let max_tokens = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64);
    let tool = tool_to_call(request, messages);

    let mut choices = Vec::with_capacity(n);
    for index in 0..n {
        let choice = match &tool {
            Some(function) => Choice {
                output: Output::ToolCall {
                    id: ids
                        .map(|ids| ids.base62("call_", 1000 + index as u64, 24))
                        .unwrap_or_default(),
                    name: function
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: tool_arguments(function, &user_text),
                },
                finish_reason: "tool_calls",
            },
            None => {
                let words = first_words(&user_text, ANSWER_WORDS);
                let mut text = if words.is_empty() {
                    "Mock answer.".to_owned()
                } else {
                    format!("{ANSWER_PREFIX}{words}")
                };
                if index > 0 {
                    text.push_str(&format!(" (choice {})", index + 1));
                }
                pad_for_pieces(&mut text, chunks);
                let mut finish_reason = "stop";
                if let Some(max) = max_tokens
                    && estimate_tokens(&text) > max
                {
                    truncate_at_char(&mut text, usize::try_from(max * 4).unwrap_or(usize::MAX));
                    finish_reason = "length";
                }
                Choice {
                    output: Output::Text(text),
                    finish_reason,
                }
            }
        };
        choices.push(choice);
    }

    let visible: u64 = choices.iter().map(|c| c.output.tokens()).sum();
    let effort = request.get("reasoning_effort").and_then(Value::as_str);
    let reasoning_tokens = visible * reasoning_factor(&model, effort);
    Ok(ChatPlan {
        model,
        choices,
        usage: Usage {
            prompt_tokens,
            completion_tokens: visible + reasoning_tokens,
            cached_tokens,
            reasoning_tokens,
        },
    })
}

/// The usage the mock reports for a chat completion request (with no chunk count configured),
/// so tests elsewhere can assert exact token attributes without copying the rules.
pub fn chat_usage(request: &Value) -> Option<Usage> {
    plan_chat(request.as_object()?, None, None)
        .ok()
        .map(|p| p.usage)
}

/// The visible text of the first choice the mock gives a chat request (no chunk count configured),
/// `None` when it answers with a tool call or the request is invalid.
pub fn chat_content(request: &Value) -> Option<String> {
    let plan = plan_chat(request.as_object()?, None, None).ok()?;
    match plan.choices.into_iter().next()?.output {
        Output::Text(text) => Some(text),
        Output::ToolCall { .. } => None,
    }
}

pub(crate) fn chat_completion(
    request: &Map<String, Value>,
    context: &AnswerContext,
) -> Result<Answer, BadRequest> {
    let plan = plan_chat(request, Some(&context.ids), context.chunks)?;
    let id = context.ids.base62("chatcmpl-", 0, 29);
    let model = response_model(&plan.model);
    let fingerprint = system_fingerprint(&model);

    if !(wants_stream(request) || context.force_stream) {
        let choices: Vec<Value> = plan
            .choices
            .iter()
            .enumerate()
            .map(|(index, choice)| {
                let message = match &choice.output {
                    Output::Text(text) => json!({
                        "role": "assistant",
                        "content": text,
                        "refusal": null,
                        "annotations": [],
                    }),
                    Output::ToolCall {
                        id,
                        name,
                        arguments,
                    } => json!({
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [{
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }],
                        "refusal": null,
                        "annotations": [],
                    }),
                };
                json!({
                    "index": index,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": choice.finish_reason,
                })
            })
            .collect();
        return Ok(Answer::Json(json_bytes(&json!({
            "id": id,
            "object": "chat.completion",
            "created": context.created,
            "model": model,
            "choices": choices,
            "usage": plan.usage.chat_json(),
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        }))));
    }

    let with_usage = include_usage(request);
    let chunk = |choices: Value| -> Bytes {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": context.created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
            "choices": choices,
        });
        if with_usage && let Some(object) = chunk.as_object_mut() {
            object.insert("usage".to_owned(), Value::Null);
        }
        sse_event(&chunk)
    };
    let delta = |index: usize, delta: Value, finish: Option<&str>| -> Value {
        json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}])
    };

    let mut events = Vec::new();
    for (index, choice) in plan.choices.iter().enumerate() {
        match &choice.output {
            Output::Text(text) => {
                events.push(chunk(delta(
                    index,
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                )));
                for piece in split_pieces(text, context.chunks) {
                    events.push(chunk(delta(index, json!({"content": piece}), None)));
                }
            }
            Output::ToolCall {
                id: call_id,
                name,
                arguments,
            } => {
                events.push(chunk(delta(
                    index,
                    json!({
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [{
                            "index": 0,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }],
                        "refusal": null,
                    }),
                    None,
                )));
                for piece in split_arguments(arguments, context.chunks) {
                    events.push(chunk(delta(
                        index,
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                        None,
                    )));
                }
            }
        }
        events.push(chunk(delta(index, json!({}), Some(choice.finish_reason))));
    }
    if with_usage {
        events.push(sse_event(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": context.created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
            "choices": [],
            "usage": plan.usage.chat_json(),
        })));
    }
    events.push(Bytes::from_static(SSE_DONE));
    Ok(Answer::Sse(events))
}

/// The legacy `/v1/completions` API (still served by vLLM, Ollama and most OpenAI-compatible servers).
pub(crate) fn text_completion(
    request: &Map<String, Value>,
    context: &AnswerContext,
) -> Result<Answer, BadRequest> {
    let model = effective_model(request)?;
    let prompts: Vec<String> = match request.get("prompt") {
        Some(Value::String(p)) => vec![p.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        _ => return Err(BadRequest::missing("prompt")),
    };
    let n = choice_count(request)?;
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(LEGACY_DEFAULT_MAX_TOKENS);

    let mut texts = Vec::new();
    for prompt in &prompts {
        for index in 0..n {
            let words = first_words(prompt, ANSWER_WORDS);
            let mut text = format!(" {ANSWER_PREFIX}{words}");
            if index > 0 {
                text.push_str(&format!(" (choice {})", index + 1));
            }
            pad_for_pieces(&mut text, context.chunks);
            let mut finish = "stop";
            if estimate_tokens(&text) > max_tokens {
                truncate_at_char(
                    &mut text,
                    usize::try_from(max_tokens * 4).unwrap_or(usize::MAX),
                );
                finish = "length";
            }
            texts.push((text, finish));
        }
    }
    let usage = Usage {
        prompt_tokens: prompts.iter().map(|p| estimate_tokens(p)).sum(),
        completion_tokens: texts.iter().map(|(t, _)| estimate_tokens(t)).sum(),
        cached_tokens: 0,
        reasoning_tokens: 0,
    };
    let id = context.ids.base62("cmpl-", 0, 29);
    let model = response_model(&model);

    if !(wants_stream(request) || context.force_stream) {
        let choices: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(index, (text, finish))| {
                json!({"text": text, "index": index, "logprobs": null, "finish_reason": finish})
            })
            .collect();
        return Ok(Answer::Json(json_bytes(&json!({
            "id": id,
            "object": "text_completion",
            "created": context.created,
            "model": model,
            "choices": choices,
            "usage": usage.legacy_json(),
        }))));
    }

    let with_usage = include_usage(request);
    let chunk = |index: usize, text: &str, finish: Option<&str>| -> Bytes {
        let mut chunk = json!({
            "id": id,
            "object": "text_completion",
            "created": context.created,
            "choices": [{"text": text, "index": index, "logprobs": null, "finish_reason": finish}],
            "model": model,
        });
        if with_usage && let Some(object) = chunk.as_object_mut() {
            object.insert("usage".to_owned(), Value::Null);
        }
        sse_event(&chunk)
    };
    let mut events = Vec::new();
    for (index, (text, finish)) in texts.iter().enumerate() {
        for piece in split_pieces(text, context.chunks) {
            events.push(chunk(index, &piece, None));
        }
        events.push(chunk(index, "", Some(finish)));
    }
    if with_usage {
        events.push(sse_event(&json!({
            "id": id,
            "object": "text_completion",
            "created": context.created,
            "choices": [],
            "model": model,
            "usage": usage.legacy_json(),
        })));
    }
    events.push(Bytes::from_static(SSE_DONE));
    Ok(Answer::Sse(events))
}

/// `/v1/embeddings`: deterministic unit vectors, as floats or (the Python SDK's default) base64.
pub(crate) fn embeddings(request: &Map<String, Value>) -> Result<Answer, BadRequest> {
    let model = effective_model(request)?;
    let inputs: Vec<(String, u64)> = match request.get("input") {
        Some(Value::String(s)) => vec![(s.clone(), estimate_tokens(s))],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                // One input given as token ids.
                vec![(Value::Array(items.clone()).to_string(), items.len() as u64)]
            } else {
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => (s.clone(), estimate_tokens(s)),
                        Value::Array(tokens) => (item.to_string(), tokens.len() as u64),
                        other => (other.to_string(), estimate_tokens(&other.to_string())),
                    })
                    .collect()
            }
        }
        _ => return Err(BadRequest::missing("input")),
    };
    let default_dimensions = if model.contains("large") { 3072 } else { 1536 };
    let dimensions = match request.get("dimensions") {
        None | Some(Value::Null) => default_dimensions,
        Some(value) => match value.as_u64() {
            Some(d @ 1..=MAX_DIMENSIONS) => d,
            _ => {
                return Err(BadRequest::invalid(
                    "dimensions",
                    format!(
                        "Invalid 'dimensions': expected an integer between 1 and {MAX_DIMENSIONS}, got {value}."
                    ),
                ));
            }
        },
    };
    let base64 = request.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, (text, _))| {
            let vector = unit_vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::String(base64_encode(&bytes))
            } else {
                Value::Array(vector.iter().map(|v| json!(v)).collect())
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|(_, t)| t).sum();
    Ok(Answer::Json(json_bytes(&json!({
        "object": "list",
        "data": data,
        "model": response_model(&model),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))))
}

fn unit_vector(text: &str, dimensions: u64) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let mut vector: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = splitmix64(state);
            // Top 24 bits -> [-1, 1).
            ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for v in &mut vector {
            *v /= norm;
        }
    }
    vector
}

/// Standard base64 with padding (RFC 4648), the encoding OpenAI uses for embeddings.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol =
        |index: u32| char::from(ALPHABET.get((index & 63) as usize).copied().unwrap_or(b'A'));
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b0 = u32::from(group.first().copied().unwrap_or(0));
        let b1 = u32::from(group.get(1).copied().unwrap_or(0));
        let b2 = u32::from(group.get(2).copied().unwrap_or(0));
        let triple = (b0 << 16) | (b1 << 8) | b2;
        out.push(symbol(triple >> 18));
        out.push(symbol(triple >> 12));
        out.push(if group.len() > 1 {
            symbol(triple >> 6)
        } else {
            '='
        });
        out.push(if group.len() > 2 { symbol(triple) } else { '=' });
    }
    out
}

/// Models `GET /v1/models` lists.
pub const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "o3-mini",
    "o4-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

pub(crate) fn models() -> Answer {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_721_172_741, "owned_by": "system"}))
        .collect();
    Answer::Json(json_bytes(&json!({"object": "list", "data": data})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn tokens_round_up_per_four_bytes() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }

    #[test]
    fn response_models_are_dated_snapshots() {
        assert_eq!(response_model("gpt-4o-mini"), "gpt-4o-mini-2024-07-18");
        assert_eq!(response_model("gpt-4o-2024-05-13"), "gpt-4o-2024-05-13");
        assert_eq!(
            response_model("text-embedding-3-small"),
            "text-embedding-3-small"
        );
        assert_eq!(response_model("llama3"), "llama3-2025-01-01");
    }

    #[test]
    fn chat_usage_follows_the_documented_rule() -> Result<(), BadRequest> {
        let request = object(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the capital of France?"}
            ]
        }));
        let plan = plan_chat(&request, None, None)?;
        // 3 priming + (3 + 3 "Be brief.") + (3 + 8 for 30 bytes).
        assert_eq!(plan.usage.prompt_tokens, 3 + 6 + 11);
        assert_eq!(plan.usage.cached_tokens, 0);
        let text = "Mock answer to: What is the capital of France?";
        assert_eq!(plan.choices.len(), 1);
        assert!(
            matches!(&plan.choices.first().map(|c| &c.output), Some(Output::Text(t)) if t == text)
        );
        assert_eq!(plan.usage.completion_tokens, estimate_tokens(text));
        assert_eq!(plan.usage.reasoning_tokens, 0);
        Ok(())
    }

    #[test]
    fn cache_key_and_reasoning_models_add_subsets() -> Result<(), BadRequest> {
        let request = object(json!({
            "model": "o4-mini",
            "prompt_cache_key": "demo",
            "reasoning_effort": "high",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}
            ]
        }));
        let plan = plan_chat(&request, None, None)?;
        assert_eq!(plan.usage.cached_tokens, 6);
        let visible = estimate_tokens("Mock answer to: Hi");
        assert_eq!(plan.usage.reasoning_tokens, 4 * visible);
        assert_eq!(plan.usage.completion_tokens, 5 * visible);
        Ok(())
    }

    #[test]
    fn tools_produce_a_call_until_a_tool_result_arrives() -> Result<(), BadRequest> {
        let tools = json!([{"type": "function", "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {
                "query": {"type": "string"}, "limit": {"type": "integer"}, "unit": {"enum": ["c", "f"]}
            }, "required": ["query", "unit"]}
        }}]);
        let request = object(json!({
            "model": "gpt-4o",
            "tools": tools,
            "messages": [{"role": "user", "content": "find rust tracing crates please now"}]
        }));
        let plan = plan_chat(&request, None, None)?;
        let first = plan.choices.first().map(|c| (&c.output, c.finish_reason));
        let Some((
            Output::ToolCall {
                name, arguments, ..
            },
            "tool_calls",
        )) = first
        else {
            panic!("expected a tool call, got {first:?}");
        };
        assert_eq!(name, "search");
        assert_eq!(
            serde_json::from_str::<Value>(arguments).ok(),
            Some(json!({"query": "find rust tracing crates please", "unit": "c"}))
        );

        let request = object(json!({
            "model": "gpt-4o",
            "tools": tools,
            "messages": [
                {"role": "user", "content": "find crates"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "tracing, opentelemetry"}
            ]
        }));
        let plan = plan_chat(&request, None, None)?;
        assert!(matches!(
            plan.choices.first().map(|c| &c.output),
            Some(Output::Text(_))
        ));
        let none = object(json!({
            "model": "gpt-4o", "tools": tools, "tool_choice": "none",
            "messages": [{"role": "user", "content": "x"}]
        }));
        assert!(matches!(
            plan_chat(&none, None, None)?
                .choices
                .first()
                .map(|c| &c.output),
            Some(Output::Text(_))
        ));
        Ok(())
    }

    #[test]
    fn max_tokens_truncates_with_length() -> Result<(), BadRequest> {
        let request = object(json!({
            "model": "gpt-4o-mini", "max_tokens": 2,
            "messages": [{"role": "user", "content": "tell me a long story"}]
        }));
        let plan = plan_chat(&request, None, None)?;
        assert_eq!(
            plan.choices.first().map(|c| c.finish_reason),
            Some("length")
        );
        assert_eq!(plan.usage.completion_tokens, 2);
        Ok(())
    }

    #[test]
    fn pieces_cover_the_text_exactly() {
        let text = "Mock answer to: hello wide world";
        assert_eq!(split_pieces(text, None).concat(), text);
        assert_eq!(
            split_pieces(text, None),
            vec!["Mock", " answer", " to:", " hello", " wide", " world"]
        );
        for n in 1..40 {
            let pieces = split_pieces(text, Some(n));
            assert_eq!(pieces.concat(), text);
            assert_eq!(pieces.len(), n.min(text.len()));
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert!(split_arguments("{\"query\":\"abc def\"}", None).len() >= 2);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn embeddings_are_unit_vectors() {
        let v = unit_vector("hello", 64);
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(v, unit_vector("hello", 64));
        assert_ne!(v, unit_vector("hellp", 64));
    }
}
