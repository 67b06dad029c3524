//! Messages non-streaming response body → response info, usage and output content.

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::anthropic::request::content_parts;
use crate::codec::anthropic::{RawUsage, semconv_finish};
use crate::codec::common::{bounded, capture, get_str, output_message, set_str};

/// Fills `call.response`, `call.usage` (and output content per `policy`) from a parsed
/// `message` object.
pub(crate) fn parse(v: &Value, policy: &CapturePolicy, call: &mut LlmCall) {
    set_str(&mut call.response.id, v, "id");
    set_str(&mut call.response.model, v, "model");
    let stop_reason = get_str(v, "stop_reason").filter(|r| !r.is_empty());
    if let Some(reason) = stop_reason {
        call.response.finish_reasons = vec![bounded(reason)];
    }
    if let Some(u) = v.get("usage") {
        let mut raw = RawUsage::default();
        raw.apply(u);
        call.usage = raw.normalised();
    }
    if policy.content && get_str(v, "type") == Some("message") {
        let parts = content_parts(v.get("content"));
        let message = output_message(parts, semconv_finish(stop_reason));
        call.content.output_messages = Some(capture(policy, Value::Array(vec![message]), call));
    }
}
