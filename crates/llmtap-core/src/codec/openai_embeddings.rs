//! OpenAI embeddings (`/v1/embeddings`). No content is captured: the conventions define no
//! attribute for embedding inputs, and vectors are not content.

use serde_json::Value;

use crate::call::LlmCall;
use crate::codec::common::{apply_openai_usage, bounded, get_str, get_u64, short_str};

/// Fills `call.request` from a parsed request object. The requested `dimensions` also seeds
/// `response.embedding_dimensions`, so it is known even when the response can't tell.
pub(crate) fn parse_request(v: &Value, call: &mut LlmCall) {
    call.request.model = short_str(v, "model");
    call.request.encoding_formats = get_str(v, "encoding_format")
        .map(|f| vec![bounded(f)])
        .unwrap_or_default();
    if let Some(dims) = get_u64(v, "dimensions") {
        call.response.embedding_dimensions = Some(dims);
    }
}

/// Fills `call.response` and `call.usage` from a parsed `list` of embeddings.
pub(crate) fn parse_response(v: &Value, call: &mut LlmCall) {
    if let Some(model) = short_str(v, "model").filter(|m| !m.is_empty()) {
        call.response.model = Some(model);
    }
    if let Some(usage) = v.get("usage") {
        apply_openai_usage(usage, &mut call.usage);
    }
    let first = v
        .get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|e| e.get("embedding"));
    let dims = match first {
        Some(Value::Array(values)) => Some(values.len() as u64),
        Some(Value::String(b64)) => base64_f32_count(b64),
        _ => None,
    };
    if let Some(dims) = dims.filter(|&d| d > 0) {
        call.response.embedding_dimensions = Some(dims);
    }
}

/// Vector length of a base64 `encoding_format` embedding: decoded bytes / 4 (little-endian
/// f32s), computed from the text length alone — no need to decode. `None` when the length can't
/// be a whole number of f32s.
fn base64_f32_count(b64: &str) -> Option<u64> {
    let s = b64.trim();
    let padding = s.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    let chars = s.len().checked_sub(padding)?;
    // Every 4 chars carry 3 bytes; a 2- or 3-char tail carries 1 or 2.
    let bytes = chars / 4 * 3
        + match chars % 4 {
            0 => 0,
            2 => 1,
            3 => 2,
            _ => return None,
        };
    (bytes % 4 == 0).then_some((bytes / 4) as u64)
}
