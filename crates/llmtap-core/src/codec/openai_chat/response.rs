//! Chat Completions non-streaming response body → response info, usage and output content.

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    MAX_LIST_ENTRIES, apply_openai_usage, bounded, capture, get_str, get_u64, output_message,
    reasoning_part, refusal_part, semconv_finish_reason,
};
use crate::codec::openai_chat::request::{push_content_parts, push_tool_calls};
use crate::semconv::finish_reason;

/// Fills `call.response`, `call.usage` (and output content per `policy`) from a parsed
/// `chat.completion` object.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    apply_response_meta(v, call);
    let choices = ordered_choices(v);
    call.response.finish_reasons = choices.iter().map(|c| raw_finish_reason(c)).collect();
    if policy.content && !choices.is_empty() {
        let messages: Vec<Value> = choices.iter().map(|c| output(c)).collect();
        call.content.output_messages = Some(capture(policy, Value::Array(messages), call));
    }
}

/// Fields every OpenAI-shaped response object carries (chat and legacy completions): id, model,
/// fingerprint, service tier and usage. Absent or empty fields leave what is already known,
/// because some gateways (Azure's first chunk, proxies) send them blank.
pub(crate) fn apply_response_meta(v: &Value, call: &mut LlmCall) {
    let resp = &mut call.response;
    set_non_empty(&mut resp.id, v, "id");
    set_non_empty(&mut resp.model, v, "model");
    set_non_empty(&mut resp.system_fingerprint, v, "system_fingerprint");
    set_non_empty(&mut resp.service_tier, v, "service_tier");
    if let Some(usage) = v.get("usage") {
        apply_openai_usage(usage, &mut call.usage);
    }
}

fn set_non_empty(slot: &mut Option<String>, v: &Value, key: &str) {
    if let Some(s) = get_str(v, key).filter(|s| !s.is_empty()) {
        *slot = Some(bounded(s));
    }
}

/// `choices` in choice order (by `index`, falling back to array position), at most
/// [`MAX_LIST_ENTRIES`] so a hostile body can't blow up the finish-reasons attribute.
pub(crate) fn ordered_choices(v: &Value) -> Vec<&Value> {
    let Some(Value::Array(choices)) = v.get("choices") else {
        return Vec::new();
    };
    let mut indexed: Vec<(u64, &Value)> = choices
        .iter()
        .filter(|c| c.is_object())
        .take(MAX_LIST_ENTRIES)
        .enumerate()
        .map(|(pos, c)| (get_u64(c, "index").unwrap_or(pos as u64), c))
        .collect();
    indexed.sort_by_key(|(index, _)| *index);
    indexed.into_iter().map(|(_, c)| c).collect()
}

/// The provider's spelling for `gen_ai.response.finish_reasons`; a choice without one did not
/// end normally as far as we can tell, so it reads `error` (keeping one entry per choice).
pub(crate) fn raw_finish_reason(choice: &Value) -> String {
    get_str(choice, "finish_reason")
        .filter(|r| !r.is_empty())
        .map_or_else(|| finish_reason::ERROR.to_owned(), bounded)
}

/// One choice → one semconv output message: reasoning, content, refusal, then tool calls.
fn output(choice: &Value) -> Value {
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    if let Some(reasoning) = get_str(msg, "reasoning_content")
        .or_else(|| get_str(msg, "reasoning"))
        .filter(|r| !r.is_empty())
    {
        parts.push(reasoning_part(reasoning));
    }
    push_content_parts(msg.get("content"), &mut parts);
    if let Some(refusal) = get_str(msg, "refusal").filter(|r| !r.is_empty()) {
        parts.push(refusal_part(refusal));
    }
    push_tool_calls(msg, &mut parts);
    output_message(
        parts,
        semconv_finish_reason(get_str(choice, "finish_reason").filter(|r| !r.is_empty())),
    )
}
