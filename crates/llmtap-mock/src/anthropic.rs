//! Anthropic Messages answers (`POST /v1/messages`): a `message` object, or the named SSE events
//! `message_start`, `content_block_start`/`_delta`/`_stop`, `ping`, `message_delta`,
//! `message_stop`; tool use, extended thinking, prompt-cache usage and Anthropic's error shapes.
//!
//! Token counts are a pure function of the request ([`anthropic_usage`]), in Anthropic's terms:
//! `input_tokens` EXCLUDES the cached tokens, which are reported separately:
//! - every text (system blocks, message text, tool results, tool-use name + input JSON) costs
//!   [`estimate_tokens`], plus [`TOKENS_PER_MESSAGE`] per message and the tools' JSON;
//! - system blocks marked `cache_control` count as `cache_read_input_tokens` (a warm cache);
//!   message blocks marked `cache_control` count as `cache_creation_input_tokens` (written now);
//! - output: the answer text (or tool-use name + input JSON), plus, when `thinking` is enabled,
//!   the thinking text.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::openai::{
    ANSWER_PREFIX, ANSWER_WORDS, Answer, AnswerContext, BadRequest, TOKENS_PER_MESSAGE,
    estimate_tokens, first_words, json_bytes, pad_for_pieces, split_arguments, split_pieces,
    tool_arguments, truncate_at_char,
};

/// Usage in Anthropic's own terms (input excludes both cache counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnthropicUsage {
    /// `usage.input_tokens` (uncached input only).
    pub input_tokens: u64,
    /// `usage.output_tokens` (text, tool use and thinking).
    pub output_tokens: u64,
    /// `usage.cache_read_input_tokens`.
    pub cache_read_input_tokens: u64,
    /// `usage.cache_creation_input_tokens`.
    pub cache_creation_input_tokens: u64,
}

impl AnthropicUsage {
    fn json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
            "service_tier": "standard",
        })
    }
}

#[derive(Debug)]
enum Block {
    Thinking(String),
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: String,
    },
}

#[derive(Debug)]
struct Plan {
    model: String,
    blocks: Vec<Block>,
    stop_reason: &'static str,
    usage: AnthropicUsage,
}

fn block_text_tokens(block: &Value) -> u64 {
    let text_of = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
    match block.get("type").and_then(Value::as_str) {
        Some("text") => estimate_tokens(text_of("text")),
        Some("thinking") => estimate_tokens(text_of("thinking")),
        Some("tool_use") => {
            estimate_tokens(text_of("name"))
                + estimate_tokens(&block.get("input").map(Value::to_string).unwrap_or_default())
        }
        Some("tool_result") => match block.get("content") {
            Some(Value::String(s)) => estimate_tokens(s),
            Some(Value::Array(parts)) => parts.iter().map(block_text_tokens).sum(),
            _ => 0,
        },
        _ => 0,
    }
}

/// Tokens of a `system`/`content` field: (all, marked with `cache_control`).
fn content_tokens(content: Option<&Value>) -> (u64, u64) {
    match content {
        Some(Value::String(s)) => (estimate_tokens(s), 0),
        Some(Value::Array(blocks)) => blocks.iter().fold((0, 0), |(all, cached), b| {
            let t = block_text_tokens(b);
            let marked = b.get("cache_control").is_some_and(Value::is_object);
            (all + t, cached + if marked { t } else { 0 })
        }),
        _ => (0, 0),
    }
}

fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .find_map(|m| match m.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(blocks)) => {
                let text: Vec<&str> = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                (!text.is_empty()).then(|| text.join(" "))
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// The custom tool the mock calls: tools present, `tool_choice` not `none`, and the last user
/// turn is not a tool result.
fn tool_to_use(request: &Map<String, Value>, messages: &[Value]) -> Option<Value> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    let ends_in_result = messages.last().is_some_and(|m| {
        m.get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
    });
    if ends_in_result {
        return None;
    }
    let custom = || {
        tools.iter().filter(|t| {
            matches!(t.get("type").and_then(Value::as_str), None | Some("custom"))
                && t.get("input_schema").is_some()
        })
    };
    let choice = request.get("tool_choice");
    match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
        Some("none") => None,
        Some("tool") => {
            let wanted = choice.and_then(|c| c.get("name")).and_then(Value::as_str)?;
            custom()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(wanted))
                .cloned()
        }
        _ => custom().next().cloned(),
    }
}

fn plan(request: &Map<String, Value>, context: &AnswerContext) -> Result<Plan, BadRequest> {
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| BadRequest::anthropic("model: Field required"))?;
    let model = if crate::scenario::Scenario::looks_like_scenario(model) {
        "claude-sonnet-4-5".to_owned()
    } else {
        model.to_owned()
    };
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| BadRequest::anthropic("max_tokens: Field required"))?;
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| BadRequest::anthropic("messages: at least one message is required"))?;

    let (system_all, system_cached) = content_tokens(request.get("system"));
    let mut total = system_all;
    let mut creation = 0;
    for m in messages {
        let (all, marked) = content_tokens(m.get("content"));
        total += TOKENS_PER_MESSAGE + all;
        creation += marked;
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        total += estimate_tokens(&tools.to_string());
    }

    let user_text = last_user_text(messages);
    let thinking = request
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "enabled" || t == "adaptive");
    let mut blocks = Vec::new();
    if thinking {
        blocks.push(Block::Thinking(format!(
            "The user asks: {}. A short answer will do.",
            first_words(&user_text, ANSWER_WORDS)
        )));
    }
    let mut stop_reason = "end_turn";
    match tool_to_use(request, messages) {
        Some(tool) => {
            let schema =
                json!({"parameters": tool.get("input_schema").cloned().unwrap_or(Value::Null)});
            blocks.push(Block::ToolUse {
                id: context.ids.base62("toolu_01", 2000, 22),
                name: tool
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                input: tool_arguments(&schema, &user_text),
            });
            stop_reason = "tool_use";
        }
        None => {
            let words = first_words(&user_text, ANSWER_WORDS);
            let mut text = if words.is_empty() {
                "Mock answer.".to_owned()
            } else {
                format!("{ANSWER_PREFIX}{words}")
            };
            pad_for_pieces(&mut text, context.chunks);
            if estimate_tokens(&text) > max_tokens {
                truncate_at_char(
                    &mut text,
                    usize::try_from(max_tokens * 4).unwrap_or(usize::MAX),
                );
                stop_reason = "max_tokens";
            }
            blocks.push(Block::Text(text));
        }
    }
    let output_tokens = blocks
        .iter()
        .map(|b| match b {
            Block::Thinking(t) | Block::Text(t) => estimate_tokens(t),
            Block::ToolUse { name, input, .. } => estimate_tokens(name) + estimate_tokens(input),
        })
        .sum();
    let cache_read = system_cached;
    Ok(Plan {
        model,
        blocks,
        stop_reason,
        usage: AnthropicUsage {
            input_tokens: total.saturating_sub(cache_read + creation),
            output_tokens,
            cache_read_input_tokens: cache_read,
            cache_creation_input_tokens: creation,
        },
    })
}

/// The usage the mock reports for a Messages request (no chunk count configured), so tests can
/// assert exact numbers without copying the rules.
pub fn anthropic_usage(request: &Value) -> Option<AnthropicUsage> {
    let context = AnswerContext {
        ids: crate::openai::IdSource::new(0),
        created: 0,
        chunks: None,
        force_stream: false,
    };
    plan(request.as_object()?, &context).ok().map(|p| p.usage)
}

fn block_json(block: &Block, thinking_signature: &str) -> Value {
    match block {
        Block::Thinking(t) => {
            json!({"type": "thinking", "thinking": t, "signature": thinking_signature})
        }
        Block::Text(t) => json!({"type": "text", "text": t}),
        Block::ToolUse { id, name, input } => json!({
            "type": "tool_use",
            "id": id,
            "name": name,
            "input": serde_json::from_str::<Value>(input).unwrap_or_else(|_| json!({})),
        }),
    }
}

/// A named SSE event the way Anthropic frames it.
pub(crate) fn named_event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

pub(crate) fn messages(
    request: &Map<String, Value>,
    context: &AnswerContext,
) -> Result<Answer, BadRequest> {
    let plan = plan(request, context)?;
    let id = context.ids.base62("msg_01", 0, 22);
    let signature = context.ids.base62("EqQBCkYIBRgCKkB", 3000, 40);
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || context.force_stream;
    if !stream {
        let content: Vec<Value> = plan
            .blocks
            .iter()
            .map(|b| block_json(b, &signature))
            .collect();
        return Ok(Answer::Json(json_bytes(&json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": content,
            "stop_reason": plan.stop_reason,
            "stop_sequence": null,
            "usage": plan.usage.json(),
        }))));
    }

    let mut start_usage = plan.usage;
    start_usage.output_tokens = 1;
    let mut events = vec![
        named_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": plan.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": start_usage.json(),
            }}),
        ),
        named_event("ping", &json!({"type": "ping"})),
    ];
    for (index, block) in plan.blocks.iter().enumerate() {
        let (start, deltas): (Value, Vec<Value>) = match block {
            Block::Thinking(t) => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                split_pieces(t, context.chunks)
                    .into_iter()
                    .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                    .chain(std::iter::once(
                        json!({"type": "signature_delta", "signature": signature}),
                    ))
                    .collect(),
            ),
            Block::Text(t) => (
                json!({"type": "text", "text": ""}),
                split_pieces(t, context.chunks)
                    .into_iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect(),
            ),
            Block::ToolUse { id, name, input } => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                split_arguments(input, context.chunks)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect(),
            ),
        };
        events.push(named_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for delta in deltas {
            events.push(named_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(named_event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(named_event(
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": plan.stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": plan.usage.output_tokens}}),
    ));
    events.push(named_event(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    Ok(Answer::Sse(events))
}

/// Anthropic's error `type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ if status >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An Anthropic-shaped error body for a scripted `error:<status>`.
pub(crate) fn error_body(status: u16, request_id: &str) -> Bytes {
    let message = match status {
        401 => "invalid x-api-key".to_owned(),
        429 => "Number of request tokens has exceeded your per-minute rate limit (scripted by the mock).".to_owned(),
        529 => "Overloaded".to_owned(),
        _ => format!("Request failed with status {status} (scripted by the mock)."),
    };
    json_bytes(&json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id,
    }))
}

/// The `error` event Anthropic sends inside a stream when generation fails after the head.
pub(crate) fn stream_error_event() -> Bytes {
    named_event(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
}
