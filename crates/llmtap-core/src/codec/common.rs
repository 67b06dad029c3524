//! Helpers shared by the OpenAI-shaped codecs: tolerant JSON field access, bounded strings,
//! usage mapping, semconv message parts, and the capture step (redact → budget).

use serde_json::{Map, Value, json};

use crate::call::{LlmCall, Usage};
use crate::capture::CapturePolicy;
use crate::redact::{Redactor, STRADDLE_MARGIN};
use crate::semconv::{capture_error, error_type, finish_reason};
use std::borrow::Cow;

/// Longest identifier-like string (model, id, fingerprint...) we put in an attribute: these come
/// from untrusted bodies and must not bloat spans.
pub(crate) const MAX_SHORT_STRING: usize = 256;
/// Most entries we keep in a list attribute (stop sequences, finish reasons).
pub(crate) const MAX_LIST_ENTRIES: usize = 128;

pub(crate) fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A short string field, cut to [`MAX_SHORT_STRING`] bytes at a char boundary.
pub(crate) fn short_str(v: &Value, key: &str) -> Option<String> {
    get_str(v, key).map(bounded)
}

/// `s` cut to [`MAX_SHORT_STRING`] bytes at a char boundary. A longer string is redacted before
/// the cut (as far as the cut could show), since a secret cut in two is no longer recognised;
/// short ones are redacted with the rest of the call ([`LlmCall::redact_fields`]).
pub(crate) fn bounded(s: &str) -> String {
    if s.len() <= MAX_SHORT_STRING {
        return s.to_owned();
    }
    let mut s = s.to_owned();
    Redactor::new().redact_prefix(&mut s, MAX_SHORT_STRING.saturating_add(STRADDLE_MARGIN));
    crate::utf8::truncate(&mut s, MAX_SHORT_STRING);
    s
}

/// A non-negative integer; also accepts integral floats (`50.0`) some clients send.
pub(crate) fn get_u64(v: &Value, key: &str) -> Option<u64> {
    let field = v.get(key)?;
    field.as_u64().or_else(|| {
        field
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
            .map(|f| f as u64)
    })
}

pub(crate) fn get_i64(v: &Value, key: &str) -> Option<i64> {
    let field = v.get(key)?;
    field.as_i64().or_else(|| {
        field
            .as_f64()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

pub(crate) fn get_f64(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|f| f.is_finite())
}

/// `stop`: a string or an array of strings.
pub(crate) fn string_or_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![bounded(s)],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .take(MAX_LIST_ENTRIES)
            .map(bounded)
            .collect(),
        _ => Vec::new(),
    }
}

/// OpenAI-style usage (`prompt_tokens`, `completion_tokens` + details) into `usage`, keeping
/// fields the body doesn't mention. OpenAI's `prompt_tokens` already includes cached tokens and
/// `completion_tokens` includes reasoning tokens, exactly as semconv wants.
pub(crate) fn apply_openai_usage(u: &Value, usage: &mut Usage) {
    if !u.is_object() {
        return;
    }
    if let Some(n) = get_u64(u, "prompt_tokens") {
        usage.input_tokens = Some(n);
    }
    if let Some(n) = get_u64(u, "completion_tokens") {
        usage.output_tokens = Some(n);
    }
    let prompt_details = u.get("prompt_tokens_details").unwrap_or(&Value::Null);
    // DeepSeek reports cache hits at top level instead.
    if let Some(n) =
        get_u64(prompt_details, "cached_tokens").or_else(|| get_u64(u, "prompt_cache_hit_tokens"))
    {
        usage.cache_read_input_tokens = Some(n);
    }
    if let Some(n) = get_u64(prompt_details, "cache_write_tokens")
        .or_else(|| get_u64(prompt_details, "cache_creation_tokens"))
    {
        usage.cache_write_input_tokens = Some(n);
    }
    let completion_details = u.get("completion_tokens_details").unwrap_or(&Value::Null);
    if let Some(n) = get_u64(completion_details, "reasoning_tokens") {
        usage.reasoning_output_tokens = Some(n);
    }
}

/// Provider finish reason → semconv output-message finish reason.
pub(crate) fn semconv_finish_reason(raw: Option<&str>) -> String {
    match raw {
        Some("tool_calls" | "function_call") => finish_reason::TOOL_CALL.to_owned(),
        Some(other) => bounded(other),
        None => finish_reason::ERROR.to_owned(),
    }
}

pub(crate) fn text_part(content: &str) -> Value {
    json!({"type": "text", "content": content})
}

/// A `reasoning` part (DeepSeek/OpenRouter/vLLM `reasoning_content`/`reasoning`).
pub(crate) fn reasoning_part(content: &str) -> Value {
    json!({"type": "reasoning", "content": content})
}

/// A generic `refusal` part: semconv has no dedicated type, and a refusal is not model text.
pub(crate) fn refusal_part(content: &str) -> Value {
    json!({"type": "refusal", "content": content})
}

/// A `tool_call` part; arguments become a JSON value when they parse as an object, else stay text.
pub(crate) fn tool_call_part(id: Option<&str>, name: &str, arguments: Option<&str>) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "tool_call".into());
    if let Some(id) = id {
        part.insert("id".into(), id.into());
    }
    part.insert("name".into(), name.into());
    if let Some(args) = arguments.filter(|a| !a.is_empty()) {
        let value = match serde_json::from_str::<Value>(args) {
            Ok(parsed @ Value::Object(_)) => parsed,
            _ => Value::String(args.to_owned()),
        };
        part.insert("arguments".into(), value);
    }
    Value::Object(part)
}

/// `{role, parts, finish_reason}` output message.
pub(crate) fn output_message(parts: Vec<Value>, finish: String) -> Value {
    json!({"role": "assistant", "parts": parts, "finish_reason": finish})
}

/// Redacts and budgets one content value into JSON text, noting truncation on the call.
pub(crate) fn capture(policy: &CapturePolicy, value: Value, call: &mut LlmCall) -> String {
    let (text, cut) = policy.budgeted_json(value);
    if cut {
        call.content.truncated = true;
    }
    text
}

/// Provider error code/type from an error JSON, sanitized for `error.type`: the `error` object's
/// string `code`, else its `type`, else its `status` (Gemini), else a top-level `type` of an
/// `{"object":"error"}` body (vLLM). Bounded to 64 chars of `[A-Za-z0-9_.-]` (others become `_`).
pub(crate) fn error_code(v: &Value) -> Option<String> {
    let v = match v {
        Value::Array(items) => items.first()?,
        other => other,
    };
    let candidates = |obj: &Value| -> Option<String> {
        ["code", "type", "status"]
            .iter()
            .filter_map(|k| get_str(obj, k))
            .filter(|s| *s != "error")
            .find_map(sanitize_code)
    };
    if let Some(err) = v.get("error").filter(|e| e.is_object())
        && let Some(code) = candidates(err)
    {
        return Some(code);
    }
    if get_str(v, "object") == Some("error") {
        return candidates(v);
    }
    None
}

pub(crate) fn sanitize_code(raw: &str) -> Option<String> {
    // Checked before the charset mapping, which could hide a secret from the patterns. A code
    // holding one is no code: `_OTHER`, so `error.type` stays a bounded value.
    if matches!(Redactor::new().redact(raw), Cow::Owned(_)) {
        return Some(error_type::OTHER.to_owned());
    }
    let code: String = raw
        .trim()
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    code.chars()
        .any(|c| c.is_ascii_alphanumeric())
        .then_some(code)
}

/// Caps on text accumulated from a stream: per field and for the whole stream. Whatever a stream
/// sends, what is kept stays within twice the capture budget (the budget step would cut the rest
/// anyway; the slack leaves room for redaction shrinking what is kept).
#[derive(Debug)]
pub(crate) struct TextBudget {
    pub(crate) per_field: usize,
    /// Bytes that may still be kept across all fields.
    pub(crate) left: usize,
    /// Something was not kept.
    pub(crate) truncated: bool,
}

impl TextBudget {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            per_field: max_bytes,
            left: max_bytes.saturating_mul(2),
            truncated: false,
        }
    }

    /// Appends as much of `s` as fits in `cap` (for this field) and the stream-wide allowance,
    /// cut at a char boundary; any cut marks truncation and further appends keep nothing more.
    pub(crate) fn append(&mut self, buf: &mut String, s: &str, cap: usize) {
        let room = cap.saturating_sub(buf.len()).min(self.left);
        if s.len() <= room {
            buf.push_str(s);
            self.left -= s.len();
            return;
        }
        self.truncated = true;
        let prefix = crate::utf8::prefix(s, room);
        buf.push_str(prefix);
        self.left -= prefix.len();
    }

    /// Appends to a field bounded by the per-field cap.
    pub(crate) fn append_field(&mut self, buf: &mut String, s: &str) {
        let cap = self.per_field;
        self.append(buf, s, cap);
    }

    /// Charges a whole JSON value (a part kept as sent) against the stream-wide allowance;
    /// `false` (and truncation marked) when it does not fit.
    pub(crate) fn take_value(&mut self, v: &Value) -> bool {
        let size = serde_json::to_string(v).map_or(usize::MAX, |s| s.len());
        if size <= self.left && size <= self.per_field {
            self.left -= size;
            true
        } else {
            self.truncated = true;
            false
        }
    }
}

/// Most parts kept per streamed message; later ones are dropped and mark truncation.
pub(crate) const MAX_STREAM_PARTS: usize = 256;

/// One part of a message being assembled from stream deltas.
#[derive(Debug)]
pub(crate) enum AccPart {
    Text(String),
    Reasoning(String),
    Refusal(String),
    ToolCall {
        id: Option<String>,
        name: String,
        /// JSON text, assembled from fragments.
        arguments: String,
    },
    /// A part that arrives whole (already in the semconv shape).
    Other(Value),
}

impl AccPart {
    pub(crate) fn to_value(&self) -> Value {
        match self {
            AccPart::Text(t) => text_part(t),
            AccPart::Reasoning(t) => reasoning_part(t),
            AccPart::Refusal(t) => refusal_part(t),
            AccPart::ToolCall {
                id,
                name,
                arguments,
            } => tool_call_part(id.as_deref(), name, Some(arguments)),
            AccPart::Other(v) => v.clone(),
        }
    }
}

/// The parts of one streamed message, in order, bounded by a [`TextBudget`].
#[derive(Debug, Default)]
pub(crate) struct PartsAcc {
    pub(crate) parts: Vec<AccPart>,
}

impl PartsAcc {
    /// Appends text to the last part when it is of the same kind (consecutive deltas), else
    /// starts a new part.
    pub(crate) fn push_text(&mut self, kind: TextKind, s: &str, budget: &mut TextBudget) {
        if s.is_empty() {
            return;
        }
        let same = matches!(
            (self.parts.last(), kind),
            (Some(AccPart::Text(_)), TextKind::Text)
                | (Some(AccPart::Reasoning(_)), TextKind::Reasoning)
                | (Some(AccPart::Refusal(_)), TextKind::Refusal)
        );
        if !same {
            if !self.room(budget) {
                return;
            }
            self.parts.push(match kind {
                TextKind::Text => AccPart::Text(String::new()),
                TextKind::Reasoning => AccPart::Reasoning(String::new()),
                TextKind::Refusal => AccPart::Refusal(String::new()),
            });
        }
        if let Some(AccPart::Text(buf) | AccPart::Reasoning(buf) | AccPart::Refusal(buf)) =
            self.parts.last_mut()
        {
            budget.append_field(buf, s);
        }
    }

    /// Starts a tool call; its arguments grow with [`push_arguments`](Self::push_arguments).
    pub(crate) fn start_tool_call(
        &mut self,
        id: Option<&str>,
        name: &str,
        arguments: &str,
        budget: &mut TextBudget,
    ) {
        if !self.room(budget) {
            return;
        }
        let mut kept_id = None;
        if let Some(id) = id {
            let mut s = String::new();
            budget.append(&mut s, id, MAX_SHORT_STRING);
            kept_id = Some(s);
        }
        let mut kept_name = String::new();
        budget.append(&mut kept_name, name, MAX_SHORT_STRING);
        let mut args = String::new();
        budget.append_field(&mut args, arguments);
        self.parts.push(AccPart::ToolCall {
            id: kept_id,
            name: kept_name,
            arguments: args,
        });
    }

    /// Appends an arguments fragment to the latest tool call (no-op without one).
    pub(crate) fn push_arguments(&mut self, fragment: &str, budget: &mut TextBudget) {
        if let Some(AccPart::ToolCall { arguments, .. }) = self
            .parts
            .iter_mut()
            .rev()
            .find(|p| matches!(p, AccPart::ToolCall { .. }))
        {
            budget.append_field(arguments, fragment);
        }
    }

    /// A part that arrives whole.
    pub(crate) fn push_value(&mut self, v: Value, budget: &mut TextBudget) {
        if self.room(budget) && budget.take_value(&v) {
            self.parts.push(AccPart::Other(v));
        }
    }

    fn room(&self, budget: &mut TextBudget) -> bool {
        if self.parts.len() >= MAX_STREAM_PARTS {
            budget.truncated = true;
            return false;
        }
        true
    }

    pub(crate) fn values(&self) -> Vec<Value> {
        self.parts.iter().map(AccPart::to_value).collect()
    }
}

/// Which text part a delta extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextKind {
    Text,
    Reasoning,
    Refusal,
}

/// Bookkeeping every stream shares: data events seen, undecodable ones, the first in-stream
/// error. Hands each decodable JSON object to the provider's accumulator.
#[derive(Debug, Default)]
pub(crate) struct StreamBook {
    /// Data events, excluding `[DONE]`.
    pub(crate) chunks: u64,
    /// Data events that were not a JSON object.
    pub(crate) invalid: u64,
    /// Whether the most recent data event was one of the `invalid` ones.
    pub(crate) last_invalid: bool,
    /// The first in-stream error's code (or `_OTHER` when it names none).
    pub(crate) error: Option<String>,
}

impl StreamBook {
    /// Parses one event's data; `None` for empty data, `[DONE]` and undecodable events (counted).
    pub(crate) fn parse(&mut self, data: &str) -> Option<Value> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return None;
        }
        self.chunks += 1;
        match serde_json::from_str::<Value>(data) {
            Ok(v) if v.is_object() => {
                self.last_invalid = false;
                Some(v)
            }
            _ => {
                self.invalid += 1;
                self.last_invalid = true;
                None
            }
        }
    }

    /// Records an in-stream error (first one wins).
    pub(crate) fn set_error(&mut self, code: Option<String>) {
        self.error
            .get_or_insert_with(|| code.unwrap_or_else(|| error_type::OTHER.to_owned()));
    }

    /// Writes the shared facts into `call`: error type (unless one is set), chunk count and
    /// `invalid_sse`. When the stream was cut, an undecodable last event is the cut itself, not
    /// bad data, so it alone does not mark `invalid_sse`.
    pub(crate) fn finish(self, call: &mut LlmCall, complete: bool) {
        if let Some(code) = self.error {
            call.error_type.get_or_insert(code);
        }
        call.timings.chunk_count = self.chunks;
        let cut_event = u64::from(!complete && self.last_invalid);
        if self.invalid > cut_event {
            call.capture_error.get_or_insert(capture_error::INVALID_SSE);
        }
    }
}

/// Overwrites `slot` with a non-empty bounded string field of `v`.
pub(crate) fn set_str(slot: &mut Option<String>, v: &Value, key: &str) {
    if let Some(s) = get_str(v, key).filter(|s| !s.is_empty()) {
        *slot = Some(bounded(s));
    }
}

/// Copies every known count of `from` over `into`.
pub(crate) fn merge_usage(from: Usage, into: &mut Usage) {
    into.input_tokens = from.input_tokens.or(into.input_tokens);
    into.output_tokens = from.output_tokens.or(into.output_tokens);
    into.cache_read_input_tokens = from
        .cache_read_input_tokens
        .or(into.cache_read_input_tokens);
    into.cache_write_input_tokens = from
        .cache_write_input_tokens
        .or(into.cache_write_input_tokens);
    into.reasoning_output_tokens = from
        .reasoning_output_tokens
        .or(into.reasoning_output_tokens);
}

/// The semconv modality for a MIME type (`image/png` → `image`), `document` for the rest.
pub(crate) fn modality_for_mime(mime: Option<&str>) -> &'static str {
    match mime.and_then(|m| m.split('/').next()) {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "document",
    }
}

/// A `blob` part (inline base64 data).
pub(crate) fn blob_part(modality: &str, mime: Option<&str>, content: &str) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "blob".into());
    part.insert("modality".into(), modality.into());
    if let Some(mime) = mime {
        part.insert("mime_type".into(), mime.into());
    }
    part.insert("content".into(), content.into());
    Value::Object(part)
}

/// A `uri` part.
pub(crate) fn uri_part(modality: &str, mime: Option<&str>, uri: &str) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "uri".into());
    part.insert("modality".into(), modality.into());
    if let Some(mime) = mime {
        part.insert("mime_type".into(), mime.into());
    }
    part.insert("uri".into(), uri.into());
    Value::Object(part)
}

/// A `file` part (a provider-side file id).
pub(crate) fn file_part(modality: &str, mime: Option<&str>, file_id: &str) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "file".into());
    part.insert("modality".into(), modality.into());
    if let Some(mime) = mime {
        part.insert("mime_type".into(), mime.into());
    }
    part.insert("file_id".into(), file_id.into());
    Value::Object(part)
}

/// A `tool_call` part whose arguments are already a JSON value (Anthropic `input`, Gemini `args`).
pub(crate) fn tool_call_value_part(
    id: Option<&str>,
    name: &str,
    arguments: Option<&Value>,
) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "tool_call".into());
    if let Some(id) = id {
        part.insert("id".into(), id.into());
    }
    part.insert("name".into(), name.into());
    if let Some(args) = arguments.filter(|a| !a.is_null()) {
        part.insert("arguments".into(), args.clone());
    }
    Value::Object(part)
}

/// A `tool_call_response` part.
pub(crate) fn tool_response_part(id: Option<&str>, response: Value) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "tool_call_response".into());
    if let Some(id) = id {
        part.insert("id".into(), id.into());
    }
    part.insert("response".into(), response);
    Value::Object(part)
}

/// `{role, parts}` input message. A user turn made only of tool results reads as role `tool`,
/// which is how the semconv schema (and the chat API) names tool results.
pub(crate) fn input_message_of(role: &str, parts: Vec<Value>) -> Value {
    let all_tool_results = !parts.is_empty()
        && parts
            .iter()
            .all(|p| get_str(p, "type") == Some("tool_call_response"));
    let role = if all_tool_results && role == "user" {
        "tool"
    } else {
        role
    };
    json!({"role": bounded(role), "parts": parts})
}

/// A tool definition `{type, name, description?, parameters?}`.
pub(crate) fn tool_definition(
    kind: &str,
    name: &str,
    description: Option<&Value>,
    parameters: Option<&Value>,
) -> Value {
    let mut def = Map::new();
    def.insert("type".into(), kind.into());
    def.insert("name".into(), name.into());
    if let Some(d) = description.filter(|d| !d.is_null()) {
        def.insert("description".into(), d.clone());
    }
    if let Some(p) = parameters.filter(|p| !p.is_null()) {
        def.insert("parameters".into(), p.clone());
    }
    Value::Object(def)
}

/// The first present key of `keys` (Gemini's REST API accepts camelCase and snake_case).
pub(crate) fn get_any<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        let openai = json!({"error": {"message": "Incorrect API key provided: sk-xxxx", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        assert_eq!(error_code(&openai).as_deref(), Some("invalid_api_key"));
        let no_code = json!({"error": {"message": "m", "type": "server_error", "code": null}});
        assert_eq!(error_code(&no_code).as_deref(), Some("server_error"));
        let anthropic =
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "m"}});
        assert_eq!(error_code(&anthropic).as_deref(), Some("rate_limit_error"));
        let gemini =
            json!([{"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED"}}]);
        assert_eq!(error_code(&gemini).as_deref(), Some("RESOURCE_EXHAUSTED"));
        let vllm =
            json!({"object": "error", "message": "m", "type": "BadRequestError", "code": 400});
        assert_eq!(error_code(&vllm).as_deref(), Some("BadRequestError"));
        let weird = json!({"error": {"code": "bad code\n<script>"}});
        assert_eq!(error_code(&weird).as_deref(), Some("bad_code__script_"));
        let long = json!({"error": {"code": "x".repeat(500)}});
        assert_eq!(error_code(&long).map(|s| s.len()), Some(64));
        assert_eq!(error_code(&json!({"error": "model not found"})), None);
        assert_eq!(error_code(&json!({"error": {"code": "!!!"}})), None);
        assert_eq!(error_code(&json!(3)), None);
    }

    #[test]
    fn numbers_are_tolerant() {
        let v = json!({"a": 50.0, "b": -1, "c": 1.5, "d": "7", "e": 3});
        assert_eq!(get_u64(&v, "a"), Some(50));
        assert_eq!(get_u64(&v, "b"), None);
        assert_eq!(get_u64(&v, "c"), None);
        assert_eq!(get_u64(&v, "d"), None);
        assert_eq!(get_i64(&v, "b"), Some(-1));
        assert_eq!(get_f64(&v, "e"), Some(3.0));
    }

    #[test]
    fn bounded_cuts_at_char_boundary() {
        let s = "é".repeat(200);
        let b = bounded(&s);
        assert!(b.len() <= MAX_SHORT_STRING && s.starts_with(&b));
    }

    #[test]
    fn tool_call_arguments() {
        assert_eq!(
            tool_call_part(Some("c1"), "f", Some("{\"a\":1}")),
            json!({"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}})
        );
        assert_eq!(
            tool_call_part(None, "f", Some("{\"a\":")),
            json!({"type": "tool_call", "name": "f", "arguments": "{\"a\":"})
        );
        assert_eq!(
            tool_call_part(None, "f", Some("")),
            json!({"type": "tool_call", "name": "f"})
        );
    }
}
