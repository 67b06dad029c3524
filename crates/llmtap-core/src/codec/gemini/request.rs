//! `GenerateContentRequest` body → request params, system instruction, contents, tools. The
//! model and the stream flag come from the path (see the module docs), never from the body.

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    capture, get_any, get_str, input_message_of, short_str, string_or_list, text_part,
    tool_definition,
};
use crate::codec::gemini::{builtin_tool, content};
use crate::semconv::output_type;

/// Fills `call.request` (and content per `policy`) from a parsed request.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    let req = &mut call.request;
    if let Some(config) = get_any(v, &["generationConfig", "generation_config"]) {
        let f64_of = |keys: &[&str]| {
            get_any(config, keys)
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite())
        };
        let u64_of = |keys: &[&str]| get_any(config, keys).and_then(non_negative_int);
        req.temperature = f64_of(&["temperature"]);
        req.top_p = f64_of(&["topP", "top_p"]);
        req.top_k = u64_of(&["topK", "top_k"]);
        req.max_tokens = u64_of(&["maxOutputTokens", "max_output_tokens"]);
        req.presence_penalty = f64_of(&["presencePenalty", "presence_penalty"]);
        req.frequency_penalty = f64_of(&["frequencyPenalty", "frequency_penalty"]);
        req.choice_count = u64_of(&["candidateCount", "candidate_count"]);
        req.seed = get_any(config, &["seed"]).and_then(Value::as_i64);
        req.stop_sequences = string_or_list(get_any(config, &["stopSequences", "stop_sequences"]));
        req.output_type = match get_any(config, &["responseMimeType", "response_mime_type"])
            .and_then(Value::as_str)
        {
            Some("application/json") => Some(output_type::JSON),
            Some("text/plain") => Some(output_type::TEXT),
            _ => None,
        };
        req.reasoning_level = get_any(config, &["thinkingConfig", "thinking_config"])
            .and_then(|t| short_str(t, "thinkingLevel").or_else(|| short_str(t, "thinking_level")));
    }

    if !policy.content {
        return;
    }
    if let Some(system) = get_any(v, &["systemInstruction", "system_instruction"]) {
        let parts = match system {
            Value::String(s) => vec![text_part(s)],
            other => content(other).1,
        };
        if !parts.is_empty() {
            call.content.system_instructions = Some(capture(policy, Value::Array(parts), call));
        }
    }
    if let Some(Value::Array(contents)) = v.get("contents") {
        let messages: Vec<Value> = contents
            .iter()
            .map(|c| {
                let (role, parts) = content(c);
                input_message_of(role, parts)
            })
            .collect();
        call.content.input_messages = Some(capture(policy, Value::Array(messages), call));
    }
    if let Some(Value::Array(tools)) = v.get("tools") {
        let mut defs = Vec::new();
        for tool in tools {
            let Some(obj) = tool.as_object() else {
                continue;
            };
            for (key, inner) in obj {
                if key == "functionDeclarations" || key == "function_declarations" {
                    for f in inner.as_array().into_iter().flatten() {
                        defs.push(tool_definition(
                            "function",
                            get_str(f, "name").unwrap_or_default(),
                            f.get("description"),
                            get_any(
                                f,
                                &[
                                    "parameters",
                                    "parametersJsonSchema",
                                    "parameters_json_schema",
                                ],
                            ),
                        ));
                    }
                } else {
                    defs.push(builtin_tool(key));
                }
            }
        }
        if !defs.is_empty() {
            call.content.tool_definitions = Some(capture(policy, Value::Array(defs), call));
        }
    }
}

fn non_negative_int(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
            .map(|f| f as u64)
    })
}
