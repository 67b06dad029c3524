//! Responses request body → request params, instructions, input items, tools.

use serde_json::{Value, json};

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    blob_part, bounded, capture, file_part, get_f64, get_str, get_u64, input_message_of,
    reasoning_part, refusal_part, short_str, text_part, tool_call_part, tool_definition,
    tool_response_part, uri_part,
};
use crate::semconv::output_type;

/// Fills `call.request` (and content per `policy`) from a parsed Responses request.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    let req = &mut call.request;
    req.model = short_str(v, "model");
    req.max_tokens = get_u64(v, "max_output_tokens");
    req.temperature = get_f64(v, "temperature");
    req.top_p = get_f64(v, "top_p");
    req.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    req.service_tier = short_str(v, "service_tier");
    req.reasoning_level = v.get("reasoning").and_then(|r| short_str(r, "effort"));
    req.previous_response_id = short_str(v, "previous_response_id");
    req.output_type = match v
        .get("text")
        .and_then(|t| t.get("format"))
        .and_then(|f| get_str(f, "type"))
    {
        Some("json_schema" | "json_object") => Some(output_type::JSON),
        Some("text") => Some(output_type::TEXT),
        _ => None,
    };
    // `conversation` is a real, provider-side conversation id: exactly what semconv wants.
    let conversation = match v.get("conversation") {
        Some(Value::String(id)) => Some(id.as_str()),
        Some(obj @ Value::Object(_)) => get_str(obj, "id"),
        _ => None,
    };
    if call.agent.conversation_id.is_none()
        && let Some(id) = conversation.filter(|id| !id.is_empty())
    {
        call.agent.conversation_id = Some(bounded(id));
    }

    if !policy.content {
        return;
    }
    if let Some(instructions) = get_str(v, "instructions").filter(|s| !s.is_empty()) {
        let parts = vec![text_part(instructions)];
        call.content.system_instructions = Some(capture(policy, Value::Array(parts), call));
    }
    let messages: Vec<Value> = match v.get("input") {
        Some(Value::String(s)) => vec![input_message_of("user", vec![text_part(s)])],
        Some(Value::Array(items)) => items.iter().map(input_item).collect(),
        _ => Vec::new(),
    };
    if v.get("input").is_some() {
        call.content.input_messages = Some(capture(policy, Value::Array(messages), call));
    }
    if let Some(Value::Array(tools)) = v.get("tools") {
        let defs: Vec<Value> = tools.iter().map(tool_def).collect();
        if !defs.is_empty() {
            call.content.tool_definitions = Some(capture(policy, Value::Array(defs), call));
        }
    }
}

/// One input item → one semconv message.
fn input_item(item: &Value) -> Value {
    match get_str(item, "type") {
        Some("function_call") => input_message_of("assistant", vec![function_call_part(item)]),
        Some("function_call_output") | Some("custom_tool_call_output") => {
            let output = item.get("output").cloned().unwrap_or(Value::Null);
            let output = match output {
                Value::Array(parts)
                    if parts
                        .iter()
                        .all(|p| get_str(p, "type") == Some("input_text")) =>
                {
                    let text: Vec<&str> = parts.iter().filter_map(|p| get_str(p, "text")).collect();
                    Value::String(text.concat())
                }
                other => other,
            };
            input_message_of(
                "tool",
                vec![tool_response_part(get_str(item, "call_id"), output)],
            )
        }
        Some("reasoning") => input_message_of("assistant", reasoning_parts(item)),
        None | Some("message") => {
            let role = match get_str(item, "role").unwrap_or("user") {
                "developer" => "system",
                other => other,
            };
            let parts = match item.get("content") {
                Some(Value::String(s)) => vec![text_part(s)],
                Some(Value::Array(parts)) => parts.iter().filter_map(content_part).collect(),
                _ => Vec::new(),
            };
            input_message_of(role, parts)
        }
        Some(_) => {
            let role = get_str(item, "role").unwrap_or("assistant");
            input_message_of(role, vec![item.clone()])
        }
    }
}

/// A `function_call` item → a `tool_call` part (id = `call_id`, the id the output refers to).
pub(crate) fn function_call_part(item: &Value) -> Value {
    tool_call_part(
        get_str(item, "call_id").or_else(|| get_str(item, "id")),
        get_str(item, "name").unwrap_or_default(),
        get_str(item, "arguments").or_else(|| get_str(item, "input")),
    )
}

/// A `reasoning` item's summary (and content, when returned) → `reasoning` parts.
pub(crate) fn reasoning_parts(item: &Value) -> Vec<Value> {
    let mut parts = Vec::new();
    for key in ["summary", "content"] {
        if let Some(Value::Array(entries)) = item.get(key) {
            parts.extend(
                entries
                    .iter()
                    .filter_map(|e| get_str(e, "text"))
                    .filter(|t| !t.is_empty())
                    .map(reasoning_part),
            );
        }
    }
    parts
}

/// A message content part (input or output types) → a semconv part.
pub(crate) fn content_part(part: &Value) -> Option<Value> {
    let kind = get_str(part, "type")?;
    Some(match kind {
        "input_text" | "output_text" | "text" => {
            text_part(get_str(part, "text").unwrap_or_default())
        }
        "refusal" => refusal_part(get_str(part, "refusal").unwrap_or_default()),
        "input_image" => match (get_str(part, "image_url"), get_str(part, "file_id")) {
            (Some(url), _) => media_from_url("image", url),
            (None, Some(id)) => file_part("image", None, id),
            _ => part.clone(),
        },
        "input_file" => {
            if let Some(id) = get_str(part, "file_id") {
                file_part("document", None, id)
            } else if let Some(url) = get_str(part, "file_url") {
                uri_part("document", None, url)
            } else if let Some(data) = get_str(part, "file_data") {
                media_from_url("document", data)
            } else {
                part.clone()
            }
        }
        "input_audio" => {
            let audio = part.get("input_audio").unwrap_or(&Value::Null);
            let mime = get_str(audio, "format").map(|f| format!("audio/{f}"));
            blob_part(
                "audio",
                mime.as_deref(),
                get_str(audio, "data").unwrap_or_default(),
            )
        }
        _ => part.clone(),
    })
}

/// A URL that may be an inline `data:<mime>;base64,<content>` URL.
fn media_from_url(modality: &str, url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
    {
        let mime = meta.split(';').next().filter(|m| !m.is_empty());
        return blob_part(modality, mime, data);
    }
    uri_part(modality, None, url)
}

fn tool_def(tool: &Value) -> Value {
    match get_str(tool, "type").unwrap_or("function") {
        "function" => tool_definition(
            "function",
            get_str(tool, "name").unwrap_or_default(),
            tool.get("description"),
            tool.get("parameters"),
        ),
        "custom" => tool_definition(
            "custom",
            get_str(tool, "name").unwrap_or_default(),
            tool.get("description"),
            None,
        ),
        // Built-in tools have no name of their own; their type names them.
        builtin => {
            let name = get_str(tool, "name")
                .or_else(|| get_str(tool, "server_label"))
                .unwrap_or(builtin);
            json!({"type": bounded(builtin), "name": bounded(name)})
        }
    }
}
