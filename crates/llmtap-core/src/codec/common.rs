//! Helpers shared by the OpenAI-shaped codecs: tolerant JSON field access, bounded strings,
//! usage mapping, semconv message parts, and the capture step (redact → budget).

use serde_json::{Map, Value, json};

use crate::budget::truncate_json;
use crate::call::{LlmCall, Usage};
use crate::capture::CapturePolicy;
use crate::semconv::finish_reason;

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

pub(crate) fn bounded(s: &str) -> String {
    if s.len() <= MAX_SHORT_STRING {
        return s.to_owned();
    }
    let mut end = MAX_SHORT_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
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
pub(crate) fn capture(policy: &CapturePolicy, mut value: Value, call: &mut LlmCall) -> String {
    policy.redactor.redact_json(&mut value);
    let (text, cut) = truncate_json(&value, policy.max_content_bytes);
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

fn sanitize_code(raw: &str) -> Option<String> {
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
