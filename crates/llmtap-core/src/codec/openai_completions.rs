//! OpenAI legacy text completions (`/v1/completions`), still served by vLLM, llama.cpp, Ollama
//! and most self-hosted servers.
//!
//! Content mapping: each prompt string becomes a `user` message with one `text` part (a batch of
//! prompts becomes several messages); token-id prompts are kept as a generic `token_ids` part,
//! since they are not text. Each choice's `text` becomes an `assistant` output message.

use serde_json::{Value, json};

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{capture, get_str, output_message, semconv_finish_reason, text_part};
use crate::codec::openai_chat::request::parse_common_params;
use crate::codec::openai_chat::response::{
    apply_response_meta, ordered_choices, raw_finish_reason,
};

/// Fills `call.request` (and input content per `policy`) from a parsed request object.
pub(crate) fn parse_request(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    // Same parameter names as chat (model, max_tokens, temperature, top_p, penalties, stop,
    // seed, n, stream).
    parse_common_params(v, call);
    if policy.content {
        let messages = prompt_messages(v.get("prompt"));
        if !messages.is_empty() {
            call.content.input_messages = Some(capture(policy, Value::Array(messages), call));
        }
    }
}

/// Fills `call.response`, `call.usage` (and output content per `policy`) from a parsed
/// `text_completion` object.
pub(crate) fn parse_response(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    apply_response_meta(v, call);
    let choices = ordered_choices(v);
    call.response.finish_reasons = choices.iter().map(|c| raw_finish_reason(c)).collect();
    if policy.content && !choices.is_empty() {
        let messages: Vec<Value> = choices
            .iter()
            .map(|c| {
                let parts = match get_str(c, "text") {
                    Some(text) if !text.is_empty() => vec![text_part(text)],
                    _ => Vec::new(),
                };
                output_message(
                    parts,
                    semconv_finish_reason(get_str(c, "finish_reason").filter(|r| !r.is_empty())),
                )
            })
            .collect();
        call.content.output_messages = Some(capture(policy, Value::Array(messages), call));
    }
}

/// `prompt`: a string, an array of strings, an array of token ids, or an array of such arrays.
fn prompt_messages(prompt: Option<&Value>) -> Vec<Value> {
    let user = |part: Value| json!({"role": "user", "parts": [part]});
    match prompt {
        Some(Value::String(s)) => vec![user(text_part(s))],
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_number) => {
            vec![user(token_part(Value::Array(items.clone())))]
        }
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(user(text_part(s))),
                Value::Array(_) => Some(user(token_part(item.clone()))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A generic part for a pre-tokenized prompt (the schema allows provider-specific part types).
fn token_part(ids: Value) -> Value {
    json!({"type": "token_ids", "content": ids})
}
