//! Google Gemini (`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`,
//! the latter as SSE with `alt=sse` or as one streamed JSON array without it).
//!
//! The model is in the path, not the body, and `:streamGenerateContent` is what makes a call
//! streaming: both come from [`route`](crate::codec::route) ([`Route::new_call`](crate::codec::Route::new_call)).
//! The REST API accepts camelCase and snake_case field names; both are read.
//!
//! Mapping to the semconv vocabulary:
//! - `systemInstruction` → `gen_ai.system_instructions`; `contents` → `gen_ai.input.messages`
//!   (role `model` → `assistant`; a user turn made only of function responses → `tool`);
//!   `tools[].functionDeclarations` → `gen_ai.tool.definitions`, built-in tools (`googleSearch`,
//!   `codeExecution`...) → `{type, name}`;
//! - parts: `text` → `text` (`thought: true` → `reasoning`), `inlineData` → `blob`, `fileData`
//!   → `uri`, `functionCall` → `tool_call`, `functionResponse` → `tool_call_response`, others
//!   kept as generic parts;
//! - `generationConfig`: temperature, topP, topK, maxOutputTokens, stopSequences,
//!   candidateCount, seed, penalties, `responseMimeType: application/json` → output type `json`,
//!   `thinkingConfig.thinkingLevel` → reasoning level;
//! - one output message per candidate; `finishReason` as spelled (`STOP`, `MAX_TOKENS`,
//!   `SAFETY`...) in `gen_ai.response.finish_reasons`, semconv values in output messages;
//! - `usageMetadata` the semconv way: Gemini's `candidatesTokenCount` excludes thinking, so
//!   `output_tokens = candidatesTokenCount + thoughtsTokenCount` with the thoughts as the
//!   reasoning subset; `input_tokens = promptTokenCount (+ toolUsePromptTokenCount)`, which
//!   already includes `cachedContentTokenCount` (the cache-read subset). The two sums equal
//!   Gemini's `totalTokenCount`.

pub mod request;
pub mod response;
pub mod stream;

use serde_json::{Map, Value, json};

use crate::call::Usage;
use crate::codec::common::{
    blob_part, bounded, get_any, get_str, get_u64, modality_for_mime, reasoning_part, text_part,
    tool_call_value_part, tool_response_part, uri_part,
};
use crate::semconv::finish_reason;

/// `usageMetadata` counts as Gemini reports them; fields a chunk doesn't carry keep their value.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawUsage {
    prompt: Option<u64>,
    tool_use_prompt: Option<u64>,
    candidates: Option<u64>,
    thoughts: Option<u64>,
    cached: Option<u64>,
}

impl RawUsage {
    pub(crate) fn apply(&mut self, u: &Value) {
        if !u.is_object() {
            return;
        }
        let n = |keys: &[&str]| keys.iter().find_map(|k| get_u64(u, k));
        self.prompt = n(&["promptTokenCount", "prompt_token_count"]).or(self.prompt);
        self.tool_use_prompt =
            n(&["toolUsePromptTokenCount", "tool_use_prompt_token_count"]).or(self.tool_use_prompt);
        self.candidates =
            n(&["candidatesTokenCount", "candidates_token_count"]).or(self.candidates);
        self.thoughts = n(&["thoughtsTokenCount", "thoughts_token_count"]).or(self.thoughts);
        self.cached = n(&["cachedContentTokenCount", "cached_content_token_count"]).or(self.cached);
    }

    pub(crate) fn normalised(&self) -> Usage {
        let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        Usage {
            input_tokens: sum(self.prompt, self.tool_use_prompt),
            output_tokens: sum(self.candidates, self.thoughts),
            cache_read_input_tokens: self.cached,
            cache_write_input_tokens: None,
            reasoning_output_tokens: self.thoughts,
        }
    }
}

/// One Gemini `Part` → one semconv part; `None` for a part with nothing we recognise or keep.
pub(crate) fn part(p: &Value) -> Option<Value> {
    if let Some(text) = get_str(p, "text") {
        let thought = p.get("thought").and_then(Value::as_bool) == Some(true);
        return Some(if thought {
            reasoning_part(text)
        } else {
            text_part(text)
        });
    }
    if let Some(data) = get_any(p, &["inlineData", "inline_data"]) {
        let mime = get_any(data, &["mimeType", "mime_type"]).and_then(Value::as_str);
        return Some(blob_part(
            modality_for_mime(mime),
            mime,
            get_str(data, "data").unwrap_or_default(),
        ));
    }
    if let Some(file) = get_any(p, &["fileData", "file_data"]) {
        let mime = get_any(file, &["mimeType", "mime_type"]).and_then(Value::as_str);
        let uri = get_any(file, &["fileUri", "file_uri"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Some(uri_part(modality_for_mime(mime), mime, uri));
    }
    if let Some(call) = get_any(p, &["functionCall", "function_call"]) {
        return Some(tool_call_value_part(
            get_str(call, "id"),
            get_str(call, "name").unwrap_or_default(),
            call.get("args"),
        ));
    }
    if let Some(resp) = get_any(p, &["functionResponse", "function_response"]) {
        let mut part = tool_response_part(
            get_str(resp, "id"),
            resp.get("response").cloned().unwrap_or(Value::Null),
        );
        if let (Some(obj), Some(name)) = (part.as_object_mut(), get_str(resp, "name")) {
            obj.insert("name".into(), bounded(name).into());
        }
        return Some(part);
    }
    for (key, kind) in [
        ("executableCode", "executable_code"),
        ("executable_code", "executable_code"),
        ("codeExecutionResult", "code_execution_result"),
        ("code_execution_result", "code_execution_result"),
    ] {
        if let Some(inner) = p.get(key) {
            let mut part = Map::new();
            part.insert("type".into(), kind.into());
            part.insert("content".into(), inner.clone());
            return Some(Value::Object(part));
        }
    }
    None
}

/// A `Content` → `(role, parts)`.
pub(crate) fn content(c: &Value) -> (&str, Vec<Value>) {
    let role = match get_str(c, "role") {
        Some("model") => "assistant",
        Some(other) => other,
        None => "user",
    };
    let parts = match c.get("parts") {
        Some(Value::Array(parts)) => parts.iter().filter_map(part).collect(),
        _ => Vec::new(),
    };
    (role, parts)
}

/// `finishReason` → semconv output-message finish reason.
pub(crate) fn semconv_finish(reason: Option<&str>, calls_tool: bool) -> String {
    match reason {
        Some("STOP") if calls_tool => finish_reason::TOOL_CALL.to_owned(),
        Some("STOP") => finish_reason::STOP.to_owned(),
        Some("MAX_TOKENS") => finish_reason::LENGTH.to_owned(),
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => finish_reason::CONTENT_FILTER.to_owned(),
        Some(other) => bounded(&other.to_ascii_lowercase()),
        None => finish_reason::ERROR.to_owned(),
    }
}

/// A built-in tool entry (`{"googleSearch": {}}`) → `{type, name}`.
pub(crate) fn builtin_tool(key: &str) -> Value {
    json!({"type": bounded(key), "name": bounded(key)})
}
