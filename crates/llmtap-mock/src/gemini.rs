//! Gemini answers (`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`):
//! a `GenerateContentResponse`, or its chunks as SSE (`?alt=sse`, `data: {...}\r\n\r\n`) or as
//! one streamed JSON array (the default, `application/json`); function calls, thinking,
//! cached-content usage and Google's error shapes.
//!
//! Token counts are a pure function of the request ([`gemini_usage`]), in Gemini's terms:
//! - `promptTokenCount`: [`estimate_tokens`] of every text (system instruction, contents, function
//!   call name + args, function responses) plus the tools' JSON; with `cachedContent`, a further
//!   [`CACHED_CONTENT_TOKENS`] served from the cache (`cachedContentTokenCount`, included in the
//!   prompt count as Gemini does);
//! - `candidatesTokenCount`: the answer (or the function call's name + args);
//! - `thoughtsTokenCount`: thinking models (`gemini-2.5*`, `gemini-3*`) think twice the answer's
//!   tokens unless `thinkingConfig.thinkingBudget` is 0; not part of `candidatesTokenCount`;
//! - `totalTokenCount` = prompt + candidates + thoughts.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::openai::{
    ANSWER_PREFIX, ANSWER_WORDS, Answer, AnswerContext, BadRequest, estimate_tokens, first_words,
    json_bytes, pad_for_pieces, split_pieces, tool_arguments, truncate_at_char,
};

/// Tokens a request's `cachedContent` contributes (read from the cache).
pub const CACHED_CONTENT_TOKENS: u64 = 256;

/// `usageMetadata` counts as Gemini reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeminiUsage {
    /// `promptTokenCount` (includes the cached tokens).
    pub prompt_token_count: u64,
    /// `candidatesTokenCount` (excludes thoughts).
    pub candidates_token_count: u64,
    /// `thoughtsTokenCount`.
    pub thoughts_token_count: u64,
    /// `cachedContentTokenCount`.
    pub cached_content_token_count: u64,
}

impl GeminiUsage {
    /// `totalTokenCount`.
    pub fn total_token_count(&self) -> u64 {
        self.prompt_token_count + self.candidates_token_count + self.thoughts_token_count
    }

    fn json(&self) -> Value {
        let mut u = json!({
            "promptTokenCount": self.prompt_token_count,
            "candidatesTokenCount": self.candidates_token_count,
            "totalTokenCount": self.total_token_count(),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_token_count}],
        });
        if let Some(obj) = u.as_object_mut() {
            if self.thoughts_token_count > 0 {
                obj.insert(
                    "thoughtsTokenCount".into(),
                    json!(self.thoughts_token_count),
                );
            }
            if self.cached_content_token_count > 0 {
                obj.insert(
                    "cachedContentTokenCount".into(),
                    json!(self.cached_content_token_count),
                );
            }
        }
        u
    }
}

#[derive(Debug)]
enum Output {
    Text(String),
    Call { name: String, args: String },
}

#[derive(Debug)]
struct Plan {
    output: Output,
    thought: Option<String>,
    finish: &'static str,
    usage: GeminiUsage,
}

fn get<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn part_tokens(p: &Value) -> u64 {
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        return estimate_tokens(t);
    }
    if let Some(c) = get(p, "functionCall", "function_call") {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let args = c.get("args").map(Value::to_string).unwrap_or_default();
        return estimate_tokens(name) + estimate_tokens(&args);
    }
    if let Some(r) = get(p, "functionResponse", "function_response") {
        return estimate_tokens(&r.get("response").map(Value::to_string).unwrap_or_default());
    }
    0
}

fn content_tokens(c: &Value) -> u64 {
    c.get("parts")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().map(part_tokens).sum())
        .unwrap_or(0)
}

fn user_text(contents: &[Value]) -> String {
    contents
        .iter()
        .rev()
        .filter(|c| c.get("role").and_then(Value::as_str) != Some("model"))
        .find_map(|c| {
            let texts: Vec<&str> = c
                .get("parts")
                .and_then(Value::as_array)?
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join(" "))
        })
        .unwrap_or_default()
}

fn function_to_call(request: &Map<String, Value>, contents: &[Value]) -> Option<Value> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    let ends_in_response = contents.last().is_some_and(|c| {
        c.get("parts")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts
                    .iter()
                    .any(|p| get(p, "functionResponse", "function_response").is_some())
            })
    });
    if ends_in_response {
        return None;
    }
    let mode = request
        .get("toolConfig")
        .or_else(|| request.get("tool_config"))
        .and_then(|t| get(t, "functionCallingConfig", "function_calling_config"))
        .and_then(|f| f.get("mode"))
        .and_then(Value::as_str);
    if mode == Some("NONE") {
        return None;
    }
    tools
        .iter()
        .filter_map(|t| get(t, "functionDeclarations", "function_declarations"))
        .filter_map(Value::as_array)
        .flatten()
        .next()
        .cloned()
}

fn thinks(model: &str, request: &Map<String, Value>) -> bool {
    let thinking_model = model.starts_with("gemini-2.5") || model.starts_with("gemini-3");
    let budget = request
        .get("generationConfig")
        .or_else(|| request.get("generation_config"))
        .and_then(|g| get(g, "thinkingConfig", "thinking_config"))
        .and_then(|t| get(t, "thinkingBudget", "thinking_budget"))
        .and_then(Value::as_i64);
    thinking_model && budget != Some(0)
}

fn include_thoughts(request: &Map<String, Value>) -> bool {
    request
        .get("generationConfig")
        .or_else(|| request.get("generation_config"))
        .and_then(|g| get(g, "thinkingConfig", "thinking_config"))
        .and_then(|t| get(t, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn plan(
    model: &str,
    request: &Map<String, Value>,
    chunks: Option<usize>,
) -> Result<Plan, BadRequest> {
    let contents = request
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            BadRequest::anthropic("* GenerateContentRequest.contents: contents is not specified")
        })?;
    let mut prompt: u64 = contents.iter().map(content_tokens).sum();
    if let Some(system) = get_map(request, "systemInstruction", "system_instruction") {
        prompt += match system {
            Value::String(s) => estimate_tokens(s),
            other => content_tokens(other),
        };
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        prompt += estimate_tokens(&tools.to_string());
    }
    let cached = if get_map(request, "cachedContent", "cached_content").is_some() {
        CACHED_CONTENT_TOKENS
    } else {
        0
    };
    prompt += cached;
    let text_in = user_text(contents);
    let max = request
        .get("generationConfig")
        .or_else(|| request.get("generation_config"))
        .and_then(|g| get(g, "maxOutputTokens", "max_output_tokens"))
        .and_then(Value::as_u64);
    let mut finish = "STOP";
    let output = match function_to_call(request, contents) {
        Some(f) => {
            let schema = json!({"parameters": get(&f, "parameters", "parametersJsonSchema").cloned().unwrap_or(Value::Null)});
            Output::Call {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                args: tool_arguments(&lowercase_types(&schema), &text_in),
            }
        }
        None => {
            let words = first_words(&text_in, ANSWER_WORDS);
            let mut text = if words.is_empty() {
                "Mock answer.".to_owned()
            } else {
                format!("{ANSWER_PREFIX}{words}")
            };
            pad_for_pieces(&mut text, chunks);
            if let Some(max) = max
                && estimate_tokens(&text) > max
            {
                truncate_at_char(&mut text, usize::try_from(max * 4).unwrap_or(usize::MAX));
                finish = "MAX_TOKENS";
            }
            Output::Text(text)
        }
    };
    let visible = match &output {
        Output::Text(t) => estimate_tokens(t),
        Output::Call { name, args } => estimate_tokens(name) + estimate_tokens(args),
    };
    let thoughts = if thinks(model, request) {
        visible * 2
    } else {
        0
    };
    let thought = (thoughts > 0 && include_thoughts(request)).then(|| {
        format!(
            "**Answering** The user asks: {}.",
            first_words(&text_in, ANSWER_WORDS)
        )
    });
    Ok(Plan {
        output,
        thought,
        finish,
        usage: GeminiUsage {
            prompt_token_count: prompt,
            candidates_token_count: visible,
            thoughts_token_count: thoughts,
            cached_content_token_count: cached,
        },
    })
}

fn get_map<'a>(m: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    m.get(camel)
        .or_else(|| m.get(snake))
        .filter(|v| !v.is_null())
}

/// Gemini schemas spell types in upper case (`STRING`); the argument generator reads lower case.
fn lowercase_types(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        _ => lowercase_types(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(lowercase_types).collect()),
        other => other.clone(),
    }
}

/// The usage the mock reports for a Gemini request on `model` (no chunk count configured).
pub fn gemini_usage(model: &str, request: &Value) -> Option<GeminiUsage> {
    plan(model, request.as_object()?, None)
        .ok()
        .map(|p| p.usage)
}

/// How a streamed answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Not streamed (`:generateContent`).
    Whole,
    /// `:streamGenerateContent?alt=sse`.
    Sse,
    /// `:streamGenerateContent` (a streamed JSON array).
    JsonArray,
}

pub(crate) fn generate_content(
    model: &str,
    framing: Framing,
    request: &Map<String, Value>,
    context: &AnswerContext,
) -> Result<Answer, BadRequest> {
    let model = if crate::scenario::Scenario::looks_like_scenario(model) {
        "gemini-2.5-flash"
    } else {
        model
    };
    let plan = plan(model, request, context.chunks)?;
    let response_id = context.ids.base62("", 0, 23);
    let chunk = |parts: Vec<Value>, finish: Option<&str>, usage: Value| -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let (Some(obj), Some(finish)) = (candidate.as_object_mut(), finish) {
            obj.insert("finishReason".into(), json!(finish));
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        })
    };
    let output_part = |o: &Output| -> Value {
        match o {
            Output::Text(t) => json!({"text": t}),
            Output::Call { name, args } => json!({"functionCall": {
                "name": name,
                "args": serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!({})),
            }}),
        }
    };
    let framing = if context.force_stream && framing == Framing::Whole {
        Framing::Sse
    } else {
        framing
    };
    if framing == Framing::Whole {
        let mut parts = Vec::new();
        if let Some(t) = &plan.thought {
            parts.push(json!({"text": t, "thought": true}));
        }
        parts.push(output_part(&plan.output));
        let body = chunk(parts, Some(plan.finish), plan.usage.json());
        return Ok(Answer::Json(json_bytes(&body)));
    }

    // Running usage: the prompt is known from the first chunk, the rest arrives at the end.
    let running = json!({
        "promptTokenCount": plan.usage.prompt_token_count,
        "totalTokenCount": plan.usage.prompt_token_count,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.usage.prompt_token_count}],
    });
    let mut chunks: Vec<Value> = Vec::new();
    if let Some(t) = &plan.thought {
        chunks.push(chunk(
            vec![json!({"text": t, "thought": true})],
            None,
            running.clone(),
        ));
    }
    match &plan.output {
        Output::Text(text) => {
            let pieces = split_pieces(text, context.chunks);
            let last = pieces.len().saturating_sub(1);
            for (i, piece) in pieces.into_iter().enumerate() {
                if i == last {
                    chunks.push(chunk(
                        vec![json!({"text": piece})],
                        Some(plan.finish),
                        plan.usage.json(),
                    ));
                } else {
                    chunks.push(chunk(vec![json!({"text": piece})], None, running.clone()));
                }
            }
        }
        call => chunks.push(chunk(
            vec![output_part(call)],
            Some(plan.finish),
            plan.usage.json(),
        )),
    }
    let events = match framing {
        Framing::Sse => chunks
            .iter()
            .map(|c| Bytes::from(format!("data: {c}\r\n\r\n")))
            .collect(),
        _ => json_array_pieces(&chunks),
    };
    Ok(match framing {
        Framing::Sse => Answer::Sse(events),
        _ => Answer::JsonStream(events),
    })
}

/// A JSON array sent one element per piece, the way Gemini frames it:
/// `[{...}` then `\n,\r\n{...}` … then `\n]`.
fn json_array_pieces(elements: &[Value]) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(elements.len() + 1);
    for (i, e) in elements.iter().enumerate() {
        let pretty = serde_json::to_string_pretty(e).unwrap_or_default();
        let sep = if i == 0 { "[" } else { "\n,\r\n" };
        pieces.push(Bytes::from(format!("{sep}{pretty}")));
    }
    pieces.push(Bytes::from_static(b"\n]"));
    pieces
}

/// Google's canonical status for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// A Google-shaped error body.
pub(crate) fn error_body(status: u16, message: &str) -> Bytes {
    json_bytes(&error_value(status, message))
}

fn error_value(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
}

/// The error a Gemini stream reports mid-way: an SSE event or a JSON-array element.
pub(crate) fn stream_error_piece(sse: bool) -> Bytes {
    let e = error_value(
        500,
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    );
    if sse {
        Bytes::from(format!("data: {e}\r\n\r\n"))
    } else {
        Bytes::from(format!("\n,\r\n{e}\n]"))
    }
}

/// A message for a scripted `error:<status>`.
pub(crate) fn error_message(status: u16) -> String {
    match status {
        400 => "API key not valid. Please pass a valid API key.".to_owned(),
        429 => "Resource has been exhausted (e.g. check quota).".to_owned(),
        503 => "The model is overloaded. Please try again later.".to_owned(),
        _ => format!("Request failed with status {status} (scripted by the mock)."),
    }
}
