//! Messages request body → request params, system instructions, input messages, tools.

use serde_json::{Map, Value, json};

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    blob_part, bounded, capture, file_part, get_f64, get_str, get_u64, input_message_of,
    modality_for_mime, reasoning_part, short_str, string_or_list, text_part, tool_call_value_part,
    tool_definition, tool_response_part, uri_part,
};

/// Fills `call.request` (and content per `policy`) from a parsed Messages request.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    let req = &mut call.request;
    req.model = short_str(v, "model");
    req.max_tokens = get_u64(v, "max_tokens");
    req.temperature = get_f64(v, "temperature");
    req.top_p = get_f64(v, "top_p");
    req.top_k = get_u64(v, "top_k");
    req.stop_sequences = string_or_list(v.get("stop_sequences"));
    req.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    req.service_tier = short_str(v, "service_tier");
    // The effort parameter is Anthropic's reasoning level; a thinking budget is a token count,
    // not a level, and is not mapped.
    req.reasoning_level = v.get("output_config").and_then(|c| short_str(c, "effort"));
    if v.get("output_config")
        .and_then(|c| c.get("format"))
        .and_then(|f| get_str(f, "type"))
        == Some("json_schema")
    {
        req.output_type = Some(crate::semconv::output_type::JSON);
    }

    if !policy.content {
        return;
    }
    let system = system_parts(v.get("system"));
    if !system.is_empty() {
        call.content.system_instructions = Some(capture(policy, Value::Array(system), call));
    }
    if let Some(Value::Array(messages)) = v.get("messages") {
        let converted: Vec<Value> = messages.iter().map(input_message).collect();
        call.content.input_messages = Some(capture(policy, Value::Array(converted), call));
    }
    if let Some(Value::Array(tools)) = v.get("tools") {
        let defs: Vec<Value> = tools.iter().map(tool_def).collect();
        if !defs.is_empty() {
            call.content.tool_definitions = Some(capture(policy, Value::Array(defs), call));
        }
    }
}

/// `system`: a string or an array of text blocks → parts.
fn system_parts(system: Option<&Value>) -> Vec<Value> {
    match system {
        Some(Value::String(s)) if !s.is_empty() => vec![text_part(s)],
        Some(Value::Array(blocks)) => blocks.iter().filter_map(block_part).collect(),
        _ => Vec::new(),
    }
}

fn input_message(msg: &Value) -> Value {
    let role = get_str(msg, "role").unwrap_or("user");
    input_message_of(role, content_parts(msg.get("content")))
}

/// Message `content` (a string or an array of blocks) → parts.
pub(crate) fn content_parts(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(s)) if !s.is_empty() => vec![text_part(s)],
        Some(Value::Array(blocks)) => blocks.iter().filter_map(block_part).collect(),
        _ => Vec::new(),
    }
}

/// One content block → one semconv part; `None` for non-objects.
pub(crate) fn block_part(block: &Value) -> Option<Value> {
    let kind = get_str(block, "type")?;
    Some(match kind {
        "text" => text_part(get_str(block, "text").unwrap_or_default()),
        "thinking" => reasoning_part(get_str(block, "thinking").unwrap_or_default()),
        // Encrypted: nothing readable to keep but the fact that it was there.
        "redacted_thinking" => json!({"type": "redacted_thinking"}),
        "image" | "document" => source_part(kind, block.get("source").unwrap_or(&Value::Null)),
        "tool_use" => tool_call_value_part(
            get_str(block, "id"),
            get_str(block, "name").unwrap_or_default(),
            block.get("input"),
        ),
        "tool_result" => {
            let response = tool_result_value(block.get("content"));
            let mut part = tool_response_part(get_str(block, "tool_use_id"), response);
            if block.get("is_error").and_then(Value::as_bool) == Some(true)
                && let Some(obj) = part.as_object_mut()
            {
                obj.insert("is_error".into(), true.into());
            }
            part
        }
        "server_tool_use" | "mcp_tool_use" => {
            let name = get_str(block, "name").unwrap_or_default();
            let mut part = Map::new();
            part.insert("type".into(), "server_tool_call".into());
            if let Some(id) = get_str(block, "id") {
                part.insert("id".into(), id.into());
            }
            part.insert("name".into(), name.into());
            let mut inner = Map::new();
            inner.insert("type".into(), bounded(name).into());
            if let Some(input) = block.get("input") {
                inner.insert("input".into(), input.clone());
            }
            part.insert("server_tool_call".into(), Value::Object(inner));
            Value::Object(part)
        }
        k if k.ends_with("_tool_result") => {
            let mut part = Map::new();
            part.insert("type".into(), "server_tool_call_response".into());
            if let Some(id) = get_str(block, "tool_use_id") {
                part.insert("id".into(), id.into());
            }
            let mut inner = Map::new();
            inner.insert("type".into(), bounded(k).into());
            if let Some(content) = block.get("content") {
                inner.insert("content".into(), content.clone());
            }
            part.insert("server_tool_call_response".into(), Value::Object(inner));
            Value::Object(part)
        }
        _ => block.clone(),
    })
}

/// A `tool_result` content: plain text (or text blocks) stays text; anything else is kept.
fn tool_result_value(content: Option<&Value>) -> Value {
    match content {
        Some(Value::Array(items)) if items.iter().all(|p| get_str(p, "type") == Some("text")) => {
            let text: Vec<&str> = items.iter().filter_map(|p| get_str(p, "text")).collect();
            Value::String(text.concat())
        }
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// An `image`/`document` `source` (`base64`, `url`, `file`, `text`) → a part.
fn source_part(kind: &str, source: &Value) -> Value {
    let mime = get_str(source, "media_type");
    let modality = if kind == "image" {
        "image"
    } else {
        modality_for_mime(mime)
    };
    match get_str(source, "type") {
        Some("base64") => blob_part(modality, mime, get_str(source, "data").unwrap_or_default()),
        Some("url") => uri_part(modality, mime, get_str(source, "url").unwrap_or_default()),
        Some("file") => file_part(
            modality,
            mime,
            get_str(source, "file_id").unwrap_or_default(),
        ),
        Some("text") => text_part(get_str(source, "data").unwrap_or_default()),
        _ => json!({"type": kind, "source": source}),
    }
}

/// A tool: custom tools carry `input_schema`; Anthropic-defined tools (`web_search_…`,
/// `bash_…`, `text_editor_…`) carry a versioned `type` and are kept as `{type, name}`.
fn tool_def(tool: &Value) -> Value {
    let name = get_str(tool, "name").unwrap_or_default();
    match get_str(tool, "type").filter(|t| *t != "custom") {
        Some(kind) => tool_definition(kind, name, None, None),
        None => tool_definition(
            "function",
            name,
            tool.get("description"),
            tool.get("input_schema"),
        ),
    }
}
