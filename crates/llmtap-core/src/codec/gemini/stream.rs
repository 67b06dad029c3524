//! The streamed `GenerateContentResponse` chunks of `:streamGenerateContent`, from SSE events
//! (`alt=sse`) or from the elements of a streamed JSON array (the default): each chunk carries
//! candidate deltas (text pieces, whole function calls), `finishReason` on the last one, and
//! cumulative `usageMetadata`. An element `{"error": {...}}` reports a failure mid-stream.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    AccPart, MAX_LIST_ENTRIES, PartsAcc, StreamBook, TextBudget, TextKind, bounded, capture,
    error_code, get_any, get_str, get_u64, merge_usage, output_message, set_str,
};
use crate::codec::gemini::response::{block_reason, finish_reason_of};
use crate::codec::gemini::{RawUsage, part, semconv_finish};
use crate::semconv::finish_reason;

#[derive(Debug, Default)]
struct Candidate {
    finish: Option<String>,
    parts: PartsAcc,
}

/// Accumulator for one Gemini stream.
#[derive(Debug)]
pub(crate) struct GeminiStream {
    content: bool,
    text: TextBudget,
    book: StreamBook,
    id: Option<String>,
    model: Option<String>,
    usage: RawUsage,
    block_reason: Option<String>,
    /// By candidate `index`.
    candidates: BTreeMap<u64, Candidate>,
    /// An error element, or a blocked prompt, ended the stream.
    failed: bool,
}

impl GeminiStream {
    pub(crate) fn new(content: bool, max_bytes: usize) -> Self {
        Self {
            content,
            text: TextBudget::new(max_bytes),
            book: StreamBook::default(),
            id: None,
            model: None,
            usage: RawUsage::default(),
            block_reason: None,
            candidates: BTreeMap::new(),
            failed: false,
        }
    }

    /// Whether the last event came: every candidate has its `finishReason` (Gemini's final
    /// chunk), or the prompt was blocked, or an error element ended the stream.
    pub(crate) fn reached_end(&self) -> bool {
        self.failed
            || self.block_reason.is_some()
            || (!self.candidates.is_empty() && self.candidates.values().all(|c| c.finish.is_some()))
    }

    /// One chunk's JSON text (an SSE event's data or a JSON-array element).
    pub(crate) fn on_data(&mut self, data: &str) {
        let Some(v) = self.book.parse(data) else {
            return;
        };
        if v.get("error").is_some_and(Value::is_object) {
            self.failed = true;
            self.book.set_error(error_code(&v));
            return;
        }
        set_str(&mut self.id, &v, "responseId");
        set_str(&mut self.id, &v, "response_id");
        set_str(&mut self.model, &v, "modelVersion");
        set_str(&mut self.model, &v, "model_version");
        if let Some(u) = get_any(&v, &["usageMetadata", "usage_metadata"]) {
            self.usage.apply(u);
        }
        if let Some(reason) = block_reason(&v) {
            self.block_reason = Some(bounded(reason));
        }
        let Some(Value::Array(candidates)) = v.get("candidates") else {
            return;
        };
        for (pos, c) in candidates.iter().enumerate().filter(|(_, c)| c.is_object()) {
            let index = get_u64(c, "index").unwrap_or(pos as u64);
            if !self.candidates.contains_key(&index) && self.candidates.len() >= MAX_LIST_ENTRIES {
                continue;
            }
            let candidate = self.candidates.entry(index).or_default();
            if let Some(reason) = finish_reason_of(c) {
                candidate.finish = Some(bounded(reason));
            }
            if !self.content {
                continue;
            }
            let parts = c
                .get("content")
                .and_then(|content| content.get("parts"))
                .and_then(Value::as_array);
            for p in parts.into_iter().flatten() {
                let Some(converted) = part(p) else {
                    continue;
                };
                match get_str(&converted, "type") {
                    Some("text") => candidate.parts.push_text(
                        TextKind::Text,
                        get_str(&converted, "content").unwrap_or_default(),
                        &mut self.text,
                    ),
                    Some("reasoning") => candidate.parts.push_text(
                        TextKind::Reasoning,
                        get_str(&converted, "content").unwrap_or_default(),
                        &mut self.text,
                    ),
                    _ => candidate.parts.push_value(converted, &mut self.text),
                }
            }
        }
    }

    /// See [`StreamState::finish`](crate::codec::StreamState::finish) for the contract.
    pub(crate) fn finish(self, policy: &CapturePolicy, call: &mut LlmCall, complete: bool) {
        if self.id.is_some() {
            call.response.id = self.id;
        }
        if self.model.is_some() {
            call.response.model = self.model;
        }
        merge_usage(self.usage.normalised(), &mut call.usage);
        if !self.candidates.is_empty() {
            call.response.finish_reasons = self
                .candidates
                .values()
                .map(|c| {
                    c.finish
                        .clone()
                        .unwrap_or_else(|| finish_reason::ERROR.to_owned())
                })
                .collect();
        } else if let Some(reason) = self.block_reason {
            call.response.finish_reasons = vec![reason];
        }
        if policy.content && self.content && !self.candidates.is_empty() {
            let messages: Vec<Value> = self
                .candidates
                .values()
                .map(|c| {
                    let calls_tool = c.parts.parts.iter().any(|p| {
                        matches!(p, AccPart::Other(v) if get_str(v, "type") == Some("tool_call"))
                    });
                    output_message(
                        c.parts.values(),
                        semconv_finish(c.finish.as_deref(), calls_tool),
                    )
                })
                .collect();
            call.content.output_messages = Some(capture(policy, Value::Array(messages), call));
            if self.text.truncated {
                call.content.truncated = true;
            }
        }
        self.book.finish(call, complete);
    }
}
