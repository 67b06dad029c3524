//! `GenerateContentResponse` (non-streaming) → response info, usage, finish reasons, output.

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    MAX_LIST_ENTRIES, bounded, capture, get_any, get_str, get_u64, output_message, set_str,
};
use crate::codec::gemini::{RawUsage, content, semconv_finish};

/// Fills `call` from a parsed response object.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    set_str(&mut call.response.id, v, "responseId");
    set_str(&mut call.response.id, v, "response_id");
    set_str(&mut call.response.model, v, "modelVersion");
    set_str(&mut call.response.model, v, "model_version");
    if let Some(u) = get_any(v, &["usageMetadata", "usage_metadata"]) {
        let mut raw = RawUsage::default();
        raw.apply(u);
        call.usage = raw.normalised();
    }
    let candidates = ordered_candidates(v);
    call.response.finish_reasons = candidates
        .iter()
        .map(|c| {
            finish_reason_of(c)
                .map_or_else(|| crate::semconv::finish_reason::ERROR.to_owned(), bounded)
        })
        .collect();
    if candidates.is_empty()
        && let Some(reason) = block_reason(v)
    {
        call.response.finish_reasons = vec![bounded(reason)];
    }
    if policy.content && !candidates.is_empty() {
        let messages: Vec<Value> = candidates
            .iter()
            .map(|c| {
                let (_, parts) = c.get("content").map(content).unwrap_or_default();
                let calls_tool = parts
                    .iter()
                    .any(|p| get_str(p, "type") == Some("tool_call"));
                output_message(parts, semconv_finish(finish_reason_of(c), calls_tool))
            })
            .collect();
        call.content.output_messages = Some(capture(policy, Value::Array(messages), call));
    }
}

pub(crate) fn finish_reason_of(c: &Value) -> Option<&str> {
    get_any(c, &["finishReason", "finish_reason"])
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
}

/// `promptFeedback.blockReason`: the prompt itself was refused (no candidates at all).
pub(crate) fn block_reason(v: &Value) -> Option<&str> {
    get_any(v, &["promptFeedback", "prompt_feedback"])
        .and_then(|f| get_any(f, &["blockReason", "block_reason"]))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
}

/// Candidates by `index` (array position when absent), at most [`MAX_LIST_ENTRIES`].
fn ordered_candidates(v: &Value) -> Vec<&Value> {
    let Some(Value::Array(candidates)) = v.get("candidates") else {
        return Vec::new();
    };
    let mut indexed: Vec<(u64, &Value)> = candidates
        .iter()
        .filter(|c| c.is_object())
        .take(MAX_LIST_ENTRIES)
        .enumerate()
        .map(|(pos, c)| (get_u64(c, "index").unwrap_or(pos as u64), c))
        .collect();
    indexed.sort_by_key(|(index, _)| *index);
    indexed.into_iter().map(|(_, c)| c).collect()
}
