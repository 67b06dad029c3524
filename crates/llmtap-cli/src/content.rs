//! Captured content (semconv parts JSON: `[{role, parts: [{type, …}]}]`) as plain text for
//! people and spreadsheets: one line per message, `role: text`, tool calls and their results
//! spelled out, other parts (images, files) named rather than dropped.

use serde_json::Value;

use crate::spans::SpanContent;

/// The prompt: system instructions, then every input message.
pub fn input_text(content: &SpanContent) -> String {
    let mut lines = Vec::new();
    if let Some(system) = &content.system_instructions {
        let text = match system {
            Value::Array(parts) => parts_text(parts),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        lines.push(format!("system: {text}"));
    }
    if let Some(messages) = &content.input_messages {
        lines.extend(messages_lines(messages));
    }
    lines.join("\n")
}

/// The answer: every output message (one per choice).
pub fn output_text(content: &SpanContent) -> String {
    content
        .output_messages
        .as_ref()
        .map(|m| messages_lines(m).join("\n"))
        .unwrap_or_default()
}

/// `role: text` per message; a value that is not a message list is kept as its JSON text.
pub fn messages_lines(messages: &Value) -> Vec<String> {
    let Value::Array(items) = messages else {
        return vec![value_text(messages)];
    };
    items
        .iter()
        .map(|message| {
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("message");
            match message.get("parts").and_then(Value::as_array) {
                Some(parts) => format!("{role}: {}", parts_text(parts)),
                None => format!("{role}: {}", value_text(message)),
            }
        })
        .collect()
}

/// The parts of one message, space-separated.
pub fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .map(part_text)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn part_text(part: &Value) -> String {
    let field = |key: &str| part.get(key).map(value_text).unwrap_or_default();
    match part.get("type").and_then(Value::as_str) {
        Some("text") => field("content"),
        Some("reasoning") => format!("(reasoning: {})", field("content")),
        Some("tool_call") => {
            let arguments = match part.get("arguments") {
                None | Some(Value::Null) => String::new(),
                Some(args) => value_text(args),
            };
            format!("[tool_call {}({arguments})]", field("name"))
        }
        Some("tool_call_response") => {
            format!("[tool_result {}: {}]", field("id"), field("response"))
        }
        Some(other) => {
            let modality = part.get("modality").and_then(Value::as_str);
            match modality {
                Some(m) => format!("[{other} {m}]"),
                None => format!("[{other}]"),
            }
        }
        None => value_text(part),
    }
}

/// A string as itself, anything else as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_tool_calls_and_other_parts_flatten_to_lines() {
        let content = SpanContent {
            system_instructions: Some(json!([{"type": "text", "content": "Be brief."}])),
            input_messages: Some(json!([
                {"role": "user", "parts": [
                    {"type": "text", "content": "Weather in Paris?"},
                    {"type": "uri", "modality": "image", "uri": "https://x"}
                ]},
                {"role": "assistant", "parts": [
                    {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}
                ]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "21°C"}]},
            ])),
            output_messages: Some(json!([
                {"role": "assistant", "finish_reason": "stop", "parts": [
                    {"type": "reasoning", "content": "easy"},
                    {"type": "text", "content": "It is 21°C."}
                ]}
            ])),
            tool_definitions: None,
        };
        assert_eq!(
            input_text(&content),
            "system: Be brief.\n\
             user: Weather in Paris? [uri image]\n\
             assistant: [tool_call get_weather({\"city\":\"Paris\"})]\n\
             tool: [tool_result c1: 21°C]"
        );
        assert_eq!(
            output_text(&content),
            "assistant: (reasoning: easy) It is 21°C."
        );
        assert_eq!(output_text(&SpanContent::default()), "");
    }
}
