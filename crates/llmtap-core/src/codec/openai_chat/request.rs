//! Chat Completions request body → request params and input content.

use serde_json::{Map, Value, json};

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    bounded, capture, get_f64, get_i64, get_str, get_u64, refusal_part, short_str, string_or_list,
    text_part, tool_call_part,
};
use crate::semconv::output_type;

/// Fills `call.request` (and content per `policy`) from a parsed request object.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    parse_common_params(v, call);
    let req = &mut call.request;
    // `max_completion_tokens` replaced `max_tokens` (required for reasoning models).
    req.max_tokens = get_u64(v, "max_completion_tokens").or(req.max_tokens);
    req.output_type = chat_output_type(v);
    req.reasoning_level = short_str(v, "reasoning_effort")
        .or_else(|| v.get("reasoning").and_then(|r| short_str(r, "effort")));

    if policy.content {
        if let Some(Value::Array(messages)) = v.get("messages") {
            let converted: Vec<Value> = messages.iter().map(input_message).collect();
            call.content.input_messages = Some(capture(policy, Value::Array(converted), call));
        }
        let tools = tool_definitions(v);
        if !tools.is_empty() {
            call.content.tool_definitions = Some(capture(policy, Value::Array(tools), call));
        }
    }
}

/// Parameters shared by chat and legacy completions requests.
pub(crate) fn parse_common_params(v: &Value, call: &mut LlmCall) {
    let req = &mut call.request;
    req.model = short_str(v, "model");
    req.max_tokens = get_u64(v, "max_tokens");
    req.temperature = get_f64(v, "temperature");
    req.top_p = get_f64(v, "top_p");
    // Not OpenAI, but vLLM/Ollama/Together accept it; `top_logprobs` must never map here.
    req.top_k = get_u64(v, "top_k");
    req.frequency_penalty = get_f64(v, "frequency_penalty");
    req.presence_penalty = get_f64(v, "presence_penalty");
    req.stop_sequences = string_or_list(v.get("stop"));
    req.seed = get_i64(v, "seed");
    req.choice_count = get_u64(v, "n");
    req.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    req.service_tier = short_str(v, "service_tier");
}

fn chat_output_type(v: &Value) -> Option<&'static str> {
    let format = v.get("response_format");
    match format.and_then(|f| get_str(f, "type")) {
        Some("json_object" | "json_schema") => return Some(output_type::JSON),
        Some("text") => return Some(output_type::TEXT),
        _ => {}
    }
    let wants_audio = v
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    wants_audio.then_some(output_type::SPEECH)
}

/// One request message in the semconv `ChatMessage` shape.
pub(crate) fn input_message(msg: &Value) -> Value {
    let role = get_str(msg, "role").unwrap_or("user");
    let mut parts = Vec::new();
    let out_role = match role {
        "developer" => "system",
        "function" => "tool",
        other => other,
    };
    match role {
        "tool" | "function" => {
            let mut part = Map::new();
            part.insert("type".into(), "tool_call_response".into());
            if let Some(id) = get_str(msg, "tool_call_id") {
                part.insert("id".into(), id.into());
            }
            part.insert("response".into(), response_value(msg.get("content")));
            parts.push(Value::Object(part));
        }
        _ => {
            push_content_parts(msg.get("content"), &mut parts);
            if let Some(refusal) = get_str(msg, "refusal").filter(|r| !r.is_empty()) {
                parts.push(refusal_part(refusal));
            }
            push_tool_calls(msg, &mut parts);
        }
    }
    let mut out = Map::new();
    out.insert("role".into(), bounded(out_role).into());
    out.insert("parts".into(), Value::Array(parts));
    if let Some(name) = get_str(msg, "name") {
        out.insert("name".into(), name.into());
    }
    Value::Object(out)
}

/// A tool result: plain text stays text; text parts are joined; anything else is kept as is.
fn response_value(content: Option<&Value>) -> Value {
    match content {
        Some(Value::Array(items)) if items.iter().all(|p| get_str(p, "type") == Some("text")) => {
            let text: Vec<&str> = items.iter().filter_map(|p| get_str(p, "text")).collect();
            Value::String(text.concat())
        }
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// Message `content` (string or array of typed parts) → semconv parts.
pub(crate) fn push_content_parts(content: Option<&Value>, parts: &mut Vec<Value>) {
    match content {
        Some(Value::String(s)) if !s.is_empty() => parts.push(text_part(s)),
        Some(Value::Array(items)) => parts.extend(items.iter().filter_map(content_part)),
        _ => {}
    }
}

fn content_part(part: &Value) -> Option<Value> {
    let kind = get_str(part, "type")?;
    Some(match kind {
        "text" | "input_text" => text_part(get_str(part, "text").unwrap_or_default()),
        "image_url" => {
            let image = part.get("image_url");
            let url = image
                .and_then(|i| get_str(i, "url").or_else(|| i.as_str()))
                .unwrap_or_default();
            media_part("image", url)
        }
        "input_audio" => {
            let audio = part.get("input_audio").unwrap_or(&Value::Null);
            let mut blob = Map::new();
            blob.insert("type".into(), "blob".into());
            blob.insert("modality".into(), "audio".into());
            if let Some(format) = get_str(audio, "format") {
                blob.insert("mime_type".into(), format!("audio/{format}").into());
            }
            blob.insert(
                "content".into(),
                get_str(audio, "data").unwrap_or_default().into(),
            );
            Value::Object(blob)
        }
        "file" => {
            let file = part.get("file").unwrap_or(&Value::Null);
            if let Some(id) = get_str(file, "file_id") {
                json!({"type": "file", "modality": "document", "file_id": id})
            } else {
                media_part("document", get_str(file, "file_data").unwrap_or_default())
            }
        }
        "refusal" => refusal_part(get_str(part, "refusal").unwrap_or_default()),
        _ => part.clone(),
    })
}

/// A `uri` part, or a `blob` part for an inline `data:<mime>;base64,<content>` URL.
fn media_part(modality: &str, url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
    {
        let mime = meta.split(';').next().filter(|m| !m.is_empty());
        let mut blob = Map::new();
        blob.insert("type".into(), "blob".into());
        blob.insert("modality".into(), modality.into());
        if let Some(mime) = mime {
            blob.insert("mime_type".into(), mime.into());
        }
        blob.insert("content".into(), data.into());
        return Value::Object(blob);
    }
    json!({"type": "uri", "modality": modality, "uri": url})
}

/// Assistant `tool_calls` (and the legacy `function_call`) → `tool_call` parts.
pub(crate) fn push_tool_calls(msg: &Value, parts: &mut Vec<Value>) {
    if let Some(Value::Array(calls)) = msg.get("tool_calls") {
        for tc in calls {
            let function = tc.get("function").unwrap_or(&Value::Null);
            parts.push(tool_call_part(
                get_str(tc, "id"),
                get_str(function, "name").unwrap_or_default(),
                get_str(function, "arguments"),
            ));
        }
    }
    if let Some(fc) = msg.get("function_call").filter(|f| f.is_object()) {
        parts.push(tool_call_part(
            None,
            get_str(fc, "name").unwrap_or_default(),
            get_str(fc, "arguments"),
        ));
    }
}

/// `tools` (and legacy `functions`) → `gen_ai.tool.definitions` entries
/// `{type, name, description?, parameters?}`.
fn tool_definitions(v: &Value) -> Vec<Value> {
    let mut defs = Vec::new();
    if let Some(Value::Array(tools)) = v.get("tools") {
        for tool in tools {
            let kind = get_str(tool, "type").unwrap_or("function");
            match tool.get("function") {
                Some(function) => defs.push(definition(kind, function)),
                // Non-function tools (custom, built-ins) are kept as sent.
                None => defs.push(tool.clone()),
            }
        }
    }
    if let Some(Value::Array(functions)) = v.get("functions") {
        defs.extend(functions.iter().map(|f| definition("function", f)));
    }
    defs
}

fn definition(kind: &str, function: &Value) -> Value {
    let mut def = Map::new();
    def.insert("type".into(), kind.into());
    def.insert(
        "name".into(),
        get_str(function, "name").unwrap_or_default().into(),
    );
    if let Some(d) = function.get("description") {
        def.insert("description".into(), d.clone());
    }
    if let Some(p) = function.get("parameters") {
        def.insert("parameters".into(), p.clone());
    }
    Value::Object(def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::{operation, provider};

    fn parse_json(v: Value) -> LlmCall {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        parse(&v, &CapturePolicy::default(), &mut call);
        call
    }

    #[test]
    fn params() {
        let call = parse_json(json!({
            "model": "o3-mini", "max_tokens": 10, "max_completion_tokens": 20, "stop": "END",
            "n": 2, "seed": 42, "stream": true, "temperature": 0.5, "top_p": 0.9,
            "frequency_penalty": 0.1, "presence_penalty": -0.2, "top_logprobs": 3,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            "reasoning_effort": "high", "service_tier": "flex", "messages": []
        }));
        let r = &call.request;
        assert_eq!(r.model.as_deref(), Some("o3-mini"));
        assert_eq!(r.max_tokens, Some(20));
        assert_eq!(r.stop_sequences, vec!["END".to_string()]);
        assert_eq!(r.choice_count, Some(2));
        assert_eq!(r.seed, Some(42));
        assert!(r.stream);
        assert_eq!(r.top_k, None, "top_logprobs must not map to top_k");
        assert_eq!(r.output_type, Some("json"));
        assert_eq!(r.reasoning_level.as_deref(), Some("high"));
        assert_eq!(r.service_tier.as_deref(), Some("flex"));
        assert_eq!(call.content.input_messages.as_deref(), Some("[]"));
    }

    #[test]
    fn messages_map_to_parts() {
        let msg = json!({"role": "user", "name": "bob", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"file_id": "file-1"}},
            {"type": "future_part", "x": 1}
        ]});
        assert_eq!(
            input_message(&msg),
            json!({"role": "user", "name": "bob", "parts": [
                {"type": "text", "content": "what is this?"},
                {"type": "uri", "modality": "image", "uri": "https://x/cat.png"},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgo="},
                {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": "UklGRg=="},
                {"type": "file", "modality": "document", "file_id": "file-1"},
                {"type": "future_part", "x": 1}
            ]})
        );
        assert_eq!(
            input_message(&json!({"role": "developer", "content": "be terse"})),
            json!({"role": "system", "parts": [{"type": "text", "content": "be terse"}]})
        );
        assert_eq!(
            input_message(&json!({"role": "tool", "tool_call_id": "call_1", "content": "22C"})),
            json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "22C"}]})
        );
        assert_eq!(
            input_message(
                &json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]})
            ),
            json!({"role": "assistant", "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ]})
        );
    }

    #[test]
    fn content_off_records_no_content() {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        let v = json!({"model": "m", "messages": [{"role": "user", "content": "secret plan"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        parse(&v, &CapturePolicy::no_content(), &mut call);
        assert_eq!(call.request.model.as_deref(), Some("m"));
        assert_eq!(call.content, Default::default());
    }

    #[test]
    fn tool_definitions_shape() {
        let call = parse_json(json!({"model": "m", "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "d",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
        ]}));
        let defs: Value =
            serde_json::from_str(call.content.tool_definitions.as_deref().unwrap()).unwrap();
        assert_eq!(
            defs,
            json!([{"type": "function", "name": "get_weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        );
    }

    #[test]
    fn secrets_in_messages_are_redacted() {
        let call = parse_json(json!({"model": "m", "messages": [
            {"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"}
        ]}));
        let text = call.content.input_messages.unwrap();
        assert!(!text.contains("abcdefghijklmnop"), "{text}");
        assert!(text.contains("[REDACTED:openai_key]"), "{text}");
    }
}
