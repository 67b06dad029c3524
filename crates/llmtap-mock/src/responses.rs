//! OpenAI Responses answers (`POST /v1/responses`): a `response` object, or the semantic SSE
//! events `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`…, `response.output_item.done`,
//! `response.completed` (or `response.incomplete` when `max_output_tokens` cuts the answer).
//!
//! Token counts are a pure function of the request ([`responses_usage`]), in OpenAI's terms
//! (input includes cached, output includes reasoning):
//! - `instructions` and every input item's text (function call name + arguments, function call
//!   outputs) cost [`estimate_tokens`], plus [`TOKENS_PER_MESSAGE`] per item and the tools' JSON;
//! - with `prompt_cache_key`, every item before the last counts as cached;
//! - output: the answer (or function name + arguments); reasoning models add hidden reasoning
//!   tokens by `reasoning.effort`, like the chat mock.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::openai::{
    ANSWER_PREFIX, ANSWER_WORDS, Answer, AnswerContext, BadRequest, TOKENS_PER_MESSAGE, Usage,
    effective_model, estimate_tokens, first_words, json_bytes, pad_for_pieces, reasoning_factor,
    response_model, split_arguments, split_pieces, tool_arguments, truncate_at_char,
};

#[derive(Debug)]
enum Output {
    Text(String),
    Call {
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug)]
struct Plan {
    model: String,
    output: Output,
    /// `max_output_tokens` cut the answer.
    incomplete: bool,
    usage: Usage,
}

fn text_of_content(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn item_tokens(item: &Value) -> u64 {
    let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
    TOKENS_PER_MESSAGE
        + match item.get("type").and_then(Value::as_str) {
            Some("function_call") => estimate_tokens(s("name")) + estimate_tokens(s("arguments")),
            Some("function_call_output") => match item.get("output") {
                Some(Value::String(o)) => estimate_tokens(o),
                Some(other) => estimate_tokens(&text_of_content(Some(other))),
                None => 0,
            },
            _ => estimate_tokens(&text_of_content(item.get("content"))),
        }
}

fn function_tool(request: &Map<String, Value>, items: &[Value]) -> Option<Value> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    let ends_in_output = items
        .last()
        .is_some_and(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"));
    if ends_in_output {
        return None;
    }
    let functions = || {
        tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
    };
    match request.get("tool_choice") {
        Some(Value::String(c)) if c == "none" => None,
        Some(Value::Object(c)) => {
            let wanted = c.get("name").and_then(Value::as_str)?;
            functions()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(wanted))
                .cloned()
        }
        _ => functions().next().cloned(),
    }
}

fn plan(request: &Map<String, Value>, context: &AnswerContext) -> Result<Plan, BadRequest> {
    let model = effective_model(request)?;
    let items: Vec<Value> = match request.get("input") {
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        _ => return Err(BadRequest::missing("input")),
    };
    let mut input = request
        .get("instructions")
        .and_then(Value::as_str)
        .map(estimate_tokens)
        .unwrap_or(0);
    let mut cached = 0;
    for (i, item) in items.iter().enumerate() {
        let t = item_tokens(item);
        input += t;
        if i + 1 < items.len() {
            cached += t;
        }
    }
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        input += estimate_tokens(&tools.to_string());
    }
    if !request.contains_key("prompt_cache_key") {
        cached = 0;
    }
    let user_text = items
        .iter()
        .rev()
        .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
        .map(|i| text_of_content(i.get("content")))
        .unwrap_or_default();
    let mut incomplete = false;
    let output = match function_tool(request, &items) {
        Some(tool) => Output::Call {
            call_id: context.ids.base62("call_", 1000, 24),
            name: tool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: tool_arguments(&tool, &user_text),
        },
        None => {
            let words = first_words(&user_text, ANSWER_WORDS);
            let mut text = if words.is_empty() {
                "Mock answer.".to_owned()
            } else {
                format!("{ANSWER_PREFIX}{words}")
            };
            pad_for_pieces(&mut text, context.chunks);
            if let Some(max) = request.get("max_output_tokens").and_then(Value::as_u64)
                && estimate_tokens(&text) > max
            {
                truncate_at_char(&mut text, usize::try_from(max * 4).unwrap_or(usize::MAX));
                incomplete = true;
            }
            Output::Text(text)
        }
    };
    let visible = match &output {
        Output::Text(t) => estimate_tokens(t),
        Output::Call {
            name, arguments, ..
        } => estimate_tokens(name) + estimate_tokens(arguments),
    };
    let effort = request
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str);
    let reasoning = visible * reasoning_factor(&model, effort);
    Ok(Plan {
        model,
        output,
        incomplete,
        usage: Usage {
            prompt_tokens: input,
            completion_tokens: visible + reasoning,
            cached_tokens: cached,
            reasoning_tokens: reasoning,
        },
    })
}

/// The usage the mock reports for a Responses request (no chunk count configured), in the
/// chat [`Usage`] terms (prompt = `input_tokens`, completion = `output_tokens`).
pub fn responses_usage(request: &Value) -> Option<Usage> {
    let context = AnswerContext {
        ids: crate::openai::IdSource::new(0),
        created: 0,
        chunks: None,
        force_stream: false,
    };
    plan(request.as_object()?, &context).ok().map(|p| p.usage)
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens(),
    })
}

/// A semantic event: `event: <type>` and the data with its `type` and `sequence_number`.
fn event(sequence: &mut u64, mut data: Value) -> Bytes {
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(obj) = data.as_object_mut() {
        obj.insert("sequence_number".into(), json!(*sequence));
    }
    *sequence += 1;
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

pub(crate) fn responses(
    request: &Map<String, Value>,
    context: &AnswerContext,
) -> Result<Answer, BadRequest> {
    let plan = plan(request, context)?;
    let id = context.ids.base62("resp_", 0, 48);
    let model = response_model(&plan.model);
    let message_id = context.ids.base62("msg_", 1, 48);
    let fc_id = context.ids.base62("fc_", 2, 48);
    let reasoning_id = context.ids.base62("rs_", 3, 48);

    let output_item = |done: bool| -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match &plan.output {
            Output::Text(text) => json!({
                "id": message_id, "type": "message", "status": status, "role": "assistant",
                "content": if done {
                    json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
                } else {
                    json!([])
                },
            }),
            Output::Call {
                call_id,
                name,
                arguments,
            } => json!({
                "id": fc_id, "type": "function_call", "status": status, "call_id": call_id,
                "name": name, "arguments": if done { arguments.as_str() } else { "" },
            }),
        }
    };
    let reasoning_item =
        json!({"id": reasoning_id, "type": "reasoning", "summary": [], "status": null});
    let has_reasoning = plan.usage.reasoning_tokens > 0;
    let status = if plan.incomplete {
        "incomplete"
    } else {
        "completed"
    };
    let response = |final_state: bool| -> Value {
        let mut output = Vec::new();
        if final_state {
            if has_reasoning {
                output.push(reasoning_item.clone());
            }
            output.push(output_item(true));
        }
        json!({
            "id": id,
            "object": "response",
            "created_at": context.created,
            "status": if final_state { status } else { "in_progress" },
            "background": false,
            "error": null,
            "incomplete_details": if final_state && plan.incomplete {
                json!({"reason": "max_output_tokens"})
            } else {
                Value::Null
            },
            "instructions": request.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": request.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": model,
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": request.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "reasoning": {
                "effort": request.get("reasoning").and_then(|r| r.get("effort")).cloned().unwrap_or(Value::Null),
                "summary": null,
            },
            "service_tier": "default",
            "store": request.get("store").cloned().unwrap_or(json!(true)),
            "temperature": request.get("temperature").cloned().unwrap_or(json!(1.0)),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": request.get("tool_choice").cloned().unwrap_or(json!("auto")),
            "tools": request.get("tools").cloned().unwrap_or(json!([])),
            "top_p": request.get("top_p").cloned().unwrap_or(json!(1.0)),
            "truncation": "disabled",
            "usage": if final_state { usage_json(&plan.usage) } else { Value::Null },
            "user": null,
            "metadata": {},
        })
    };

    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || context.force_stream;
    if !stream {
        return Ok(Answer::Json(json_bytes(&response(true))));
    }

    let mut seq = 0;
    let mut events = vec![
        event(
            &mut seq,
            json!({"type": "response.created", "response": response(false)}),
        ),
        event(
            &mut seq,
            json!({"type": "response.in_progress", "response": response(false)}),
        ),
    ];
    let mut index = 0;
    if has_reasoning {
        events.push(event(
            &mut seq,
            json!({"type": "response.output_item.added", "output_index": index, "item": reasoning_item}),
        ));
        events.push(event(
            &mut seq,
            json!({"type": "response.output_item.done", "output_index": index, "item": reasoning_item}),
        ));
        index += 1;
    }
    events.push(event(
        &mut seq,
        json!({"type": "response.output_item.added", "output_index": index, "item": output_item(false)}),
    ));
    match &plan.output {
        Output::Text(text) => {
            let empty_part =
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            events.push(event(
                &mut seq,
                json!({"type": "response.content_part.added", "item_id": message_id,
                    "output_index": index, "content_index": 0, "part": empty_part}),
            ));
            for piece in split_pieces(text, context.chunks) {
                events.push(event(
                    &mut seq,
                    json!({"type": "response.output_text.delta", "item_id": message_id,
                        "output_index": index, "content_index": 0, "delta": piece, "logprobs": []}),
                ));
            }
            events.push(event(
                &mut seq,
                json!({"type": "response.output_text.done", "item_id": message_id,
                    "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
            ));
            events.push(event(
                &mut seq,
                json!({"type": "response.content_part.done", "item_id": message_id,
                    "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
            ));
        }
        Output::Call { arguments, .. } => {
            for piece in split_arguments(arguments, context.chunks) {
                events.push(event(
                    &mut seq,
                    json!({"type": "response.function_call_arguments.delta", "item_id": fc_id,
                        "output_index": index, "delta": piece}),
                ));
            }
            events.push(event(
                &mut seq,
                json!({"type": "response.function_call_arguments.done", "item_id": fc_id,
                    "output_index": index, "arguments": arguments}),
            ));
        }
    }
    events.push(event(
        &mut seq,
        json!({"type": "response.output_item.done", "output_index": index, "item": output_item(true)}),
    ));
    let terminal = if plan.incomplete {
        "response.incomplete"
    } else {
        "response.completed"
    };
    events.push(event(
        &mut seq,
        json!({"type": terminal, "response": response(true)}),
    ));
    Ok(Answer::Sse(events))
}

/// The terminal event of a Responses stream that fails after the head was sent.
pub(crate) fn stream_failed_event() -> Bytes {
    let data = json!({"type": "response.failed", "sequence_number": 99, "response": {
        "object": "response", "status": "failed",
        "error": {"code": "server_error", "message": "The server had an error while processing your request. Sorry about that!"},
        "incomplete_details": null, "output": [], "usage": null,
    }});
    Bytes::from(format!("event: response.failed\ndata: {data}\n\n"))
}
