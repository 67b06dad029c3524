//! Responses non-streaming body (a `response` object; also the object inside a stream's
//! terminal event) → response info, usage, finish reason and output content.

use serde_json::{Value, json};

use crate::call::{LlmCall, Usage};
use crate::capture::CapturePolicy;
use crate::codec::common::{
    MAX_LIST_ENTRIES, bounded, capture, error_code, get_str, get_u64, output_message, set_str,
};
use crate::codec::openai_responses::request::{content_part, function_call_part, reasoning_parts};
use crate::semconv::finish_reason;

/// Fills `call` from a parsed `response` object.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    let facts = ResponseFacts::read(v, policy.content);
    facts.apply(policy, call);
}

/// What one `response` object says, read once.
#[derive(Debug, Default)]
pub(crate) struct ResponseFacts {
    pub(crate) id: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) service_tier: Option<String>,
    pub(crate) usage: Usage,
    pub(crate) finish: Option<String>,
    pub(crate) error: Option<String>,
    /// Output parts, when content is captured and the object lists its output.
    pub(crate) parts: Option<Vec<Value>>,
}

impl ResponseFacts {
    pub(crate) fn read(v: &Value, content: bool) -> Self {
        let mut facts = ResponseFacts::default();
        set_str(&mut facts.id, v, "id");
        set_str(&mut facts.model, v, "model");
        set_str(&mut facts.service_tier, v, "service_tier");
        if let Some(u) = v.get("usage") {
            facts.usage = usage(u);
        }
        let output = v.get("output").and_then(Value::as_array);
        let calls_tool = output.is_some_and(|items| {
            items.iter().any(|i| {
                matches!(
                    get_str(i, "type"),
                    Some("function_call" | "custom_tool_call")
                )
            })
        });
        facts.finish = finish_from_status(v, calls_tool);
        if get_str(v, "status") == Some("failed") {
            facts.error =
                error_code(v).or_else(|| Some(crate::semconv::error_type::OTHER.to_owned()));
        }
        if content && let Some(items) = output.filter(|items| !items.is_empty()) {
            facts.parts = Some(
                items
                    .iter()
                    .take(MAX_LIST_ENTRIES)
                    .flat_map(output_item_parts)
                    .collect(),
            );
        }
        facts
    }

    pub(crate) fn apply(self, policy: &CapturePolicy, call: &mut LlmCall) {
        let resp = &mut call.response;
        for (slot, value) in [
            (&mut resp.id, self.id),
            (&mut resp.model, self.model),
            (&mut resp.service_tier, self.service_tier),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
        crate::codec::common::merge_usage(self.usage, &mut call.usage);
        if let Some(finish) = &self.finish {
            call.response.finish_reasons = vec![finish.clone()];
        }
        if let Some(code) = self.error {
            call.error_type.get_or_insert(code);
        }
        if policy.content
            && let Some(parts) = self.parts
        {
            let finish = self
                .finish
                .unwrap_or_else(|| finish_reason::ERROR.to_owned());
            let message = output_message(parts, finish);
            call.content.output_messages = Some(capture(policy, Value::Array(vec![message]), call));
        }
    }
}

/// Responses usage: already semconv-shaped (input includes cached, output includes reasoning).
pub(crate) fn usage(u: &Value) -> Usage {
    Usage {
        input_tokens: get_u64(u, "input_tokens"),
        output_tokens: get_u64(u, "output_tokens"),
        cache_read_input_tokens: u
            .get("input_tokens_details")
            .and_then(|d| get_u64(d, "cached_tokens")),
        cache_write_input_tokens: None,
        reasoning_output_tokens: u
            .get("output_tokens_details")
            .and_then(|d| get_u64(d, "reasoning_tokens")),
    }
}

/// The finish reason a response's status implies (the API has none of its own); `None` while
/// the response is still queued or in progress.
pub(crate) fn finish_from_status(v: &Value, calls_tool: bool) -> Option<String> {
    match get_str(v, "status")? {
        "completed" if calls_tool => Some(finish_reason::TOOL_CALL.to_owned()),
        "completed" => Some(finish_reason::STOP.to_owned()),
        "incomplete" => {
            let reason = v
                .get("incomplete_details")
                .and_then(|d| get_str(d, "reason"));
            Some(match reason {
                Some("max_output_tokens") => finish_reason::LENGTH.to_owned(),
                Some("content_filter") => finish_reason::CONTENT_FILTER.to_owned(),
                Some(other) if !other.is_empty() => bounded(other),
                _ => "incomplete".to_owned(),
            })
        }
        "failed" | "cancelled" => Some(finish_reason::ERROR.to_owned()),
        "in_progress" | "queued" => None,
        other => Some(bounded(other)),
    }
}

/// One output item → its parts.
pub(crate) fn output_item_parts(item: &Value) -> Vec<Value> {
    match get_str(item, "type") {
        Some("message") => match item.get("content") {
            Some(Value::Array(parts)) => parts.iter().filter_map(content_part).collect(),
            Some(Value::String(s)) => vec![crate::codec::common::text_part(s)],
            _ => Vec::new(),
        },
        Some("function_call" | "custom_tool_call") => vec![function_call_part(item)],
        Some("reasoning") => reasoning_parts(item),
        Some(kind) => vec![server_tool_part(item, kind)],
        None => Vec::new(),
    }
}

/// A built-in tool call item (`web_search_call`, `file_search_call`, `image_generation_call`...)
/// → a `server_tool_call` part naming it. Its payload (search results, base64 images) is not
/// copied: it is the provider's, not the model's, output.
pub(crate) fn server_tool_part(item: &Value, kind: &str) -> Value {
    let name = kind.strip_suffix("_call").unwrap_or(kind);
    let mut part = json!({
        "type": "server_tool_call",
        "name": bounded(get_str(item, "name").unwrap_or(name)),
        "server_tool_call": {"type": bounded(kind)},
    });
    if let (Some(obj), Some(id)) = (part.as_object_mut(), get_str(item, "id")) {
        obj.insert("id".into(), bounded(id).into());
    }
    part
}
