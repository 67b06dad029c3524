//! The streamed Messages shape: `message_start` (id, model, input usage), content blocks opened
//! by `content_block_start` and grown by `content_block_delta` (`text_delta`, `thinking_delta`,
//! `input_json_delta`), `message_delta` (stop reason, cumulative usage), `message_stop`; `ping`
//! keeps the connection alive and `error` reports a failure after the head was sent.
//!
//! Events are dispatched on the data's `type`, which Anthropic always sets to the SSE event
//! name (the `event:` line is used when the data lacks it). Accumulation is bounded like every
//! stream: at most [`MAX_STREAM_PARTS`] blocks, text within the capture budget.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::anthropic::request::block_part;
use crate::codec::anthropic::{RawUsage, semconv_finish};
use crate::codec::common::{
    AccPart, MAX_STREAM_PARTS, StreamBook, TextBudget, bounded, capture, error_code, get_str,
    get_u64, merge_usage, output_message, set_str,
};
use crate::sse::SseEvent;

/// Accumulator for one Messages stream.
#[derive(Debug)]
pub(crate) struct MessagesStream {
    content: bool,
    text: TextBudget,
    book: StreamBook,
    id: Option<String>,
    model: Option<String>,
    usage: RawUsage,
    /// `message_start` was seen: there is one message whose end we expect.
    started: bool,
    stop_reason: Option<String>,
    /// By block `index`, which is also the output order.
    blocks: BTreeMap<u64, AccPart>,
    /// `message_stop` (or an `error` event) was seen.
    ended: bool,
}

impl MessagesStream {
    pub(crate) fn new(content: bool, max_bytes: usize) -> Self {
        Self {
            content,
            text: TextBudget::new(max_bytes),
            book: StreamBook::default(),
            id: None,
            model: None,
            usage: RawUsage::default(),
            started: false,
            stop_reason: None,
            blocks: BTreeMap::new(),
            ended: false,
        }
    }

    /// Whether the protocol's terminal event was seen.
    pub(crate) fn reached_end(&self) -> bool {
        self.ended
    }

    pub(crate) fn on_event(&mut self, ev: &SseEvent<'_>) {
        let Some(v) = self.book.parse(ev.data) else {
            return;
        };
        let kind = get_str(&v, "type").or(ev.event).unwrap_or_default();
        match kind {
            "message_start" => {
                self.started = true;
                let msg = v.get("message").unwrap_or(&Value::Null);
                set_str(&mut self.id, msg, "id");
                set_str(&mut self.model, msg, "model");
                if let Some(u) = msg.get("usage") {
                    self.usage.apply(u);
                }
            }
            "message_delta" => {
                if let Some(reason) = v
                    .get("delta")
                    .and_then(|d| get_str(d, "stop_reason"))
                    .filter(|r| !r.is_empty())
                {
                    self.stop_reason = Some(bounded(reason));
                }
                // Cumulative counts: the latest value of each field wins.
                if let Some(u) = v.get("usage") {
                    self.usage.apply(u);
                }
            }
            "content_block_start" if self.content => self.block_start(&v),
            "content_block_delta" if self.content => self.block_delta(&v),
            "message_stop" => self.ended = true,
            "error" => {
                self.ended = true;
                self.book.set_error(error_code(&v));
            }
            // ping, content_block_stop, unknown future events: nothing to keep.
            _ => {}
        }
    }

    fn block_start(&mut self, v: &Value) {
        let Some(index) = get_u64(v, "index") else {
            return;
        };
        let Some(block) = v.get("content_block").filter(|b| b.is_object()) else {
            return;
        };
        if !self.blocks.contains_key(&index) && self.blocks.len() >= MAX_STREAM_PARTS {
            self.text.truncated = true;
            return;
        }
        let budget = &mut self.text;
        let part = match get_str(block, "type") {
            Some("text") => {
                let mut s = String::new();
                budget.append_field(&mut s, get_str(block, "text").unwrap_or_default());
                AccPart::Text(s)
            }
            Some("thinking") => {
                let mut s = String::new();
                budget.append_field(&mut s, get_str(block, "thinking").unwrap_or_default());
                AccPart::Reasoning(s)
            }
            Some("tool_use") => {
                let mut id = String::new();
                budget.append(&mut id, get_str(block, "id").unwrap_or_default(), 256);
                let mut name = String::new();
                budget.append(&mut name, get_str(block, "name").unwrap_or_default(), 256);
                AccPart::ToolCall {
                    id: Some(id).filter(|s| !s.is_empty()),
                    name,
                    arguments: String::new(),
                }
            }
            _ => match block_part(block) {
                Some(p) if budget.take_value(&p) => AccPart::Other(p),
                _ => return,
            },
        };
        self.blocks.insert(index, part);
    }

    fn block_delta(&mut self, v: &Value) {
        let Some(index) = get_u64(v, "index") else {
            return;
        };
        let Some(delta) = v.get("delta") else {
            return;
        };
        let Some(block) = self.blocks.get_mut(&index) else {
            return;
        };
        let budget = &mut self.text;
        match (get_str(delta, "type"), block) {
            (Some("text_delta"), AccPart::Text(buf)) => {
                budget.append_field(buf, get_str(delta, "text").unwrap_or_default());
            }
            (Some("thinking_delta"), AccPart::Reasoning(buf)) => {
                budget.append_field(buf, get_str(delta, "thinking").unwrap_or_default());
            }
            (Some("input_json_delta"), AccPart::ToolCall { arguments, .. }) => {
                budget.append_field(
                    arguments,
                    get_str(delta, "partial_json").unwrap_or_default(),
                );
            }
            // signature_delta, citations_delta: nothing the parts schema carries.
            _ => {}
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
        if let Some(reason) = &self.stop_reason {
            call.response.finish_reasons = vec![reason.clone()];
        } else if self.started {
            call.response.finish_reasons = vec![crate::semconv::finish_reason::ERROR.to_owned()];
        }
        if policy.content && self.content && self.started {
            let parts: Vec<Value> = self.blocks.values().map(AccPart::to_value).collect();
            let message = output_message(parts, semconv_finish(self.stop_reason.as_deref()));
            call.content.output_messages = Some(capture(policy, Value::Array(vec![message]), call));
            if self.text.truncated {
                call.content.truncated = true;
            }
        }
        self.book.finish(call, complete);
    }
}
