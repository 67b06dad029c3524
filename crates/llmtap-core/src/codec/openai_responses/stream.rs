//! The streamed Responses shape: semantic events whose data carries a `type`
//! (`response.created`, `response.output_item.added`, `response.output_text.delta`,
//! `response.function_call_arguments.delta`, `response.reasoning_summary_text.delta`, …) and end
//! in one terminal event holding the whole `response` object: `response.completed`,
//! `response.incomplete` or `response.failed`. A top-level `error` event reports a failure.
//!
//! The terminal object is authoritative (id, model, usage, status, full output). Until it
//! arrives, deltas are accumulated per output item (bounded), so a cut stream still yields its
//! partial output.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::common::{
    MAX_STREAM_PARTS, PartsAcc, StreamBook, TextBudget, TextKind, capture, get_str, get_u64,
    output_message, sanitize_code, set_str,
};
use crate::codec::openai_responses::response::{ResponseFacts, server_tool_part};
use crate::semconv::finish_reason;
use crate::sse::SseEvent;

/// Accumulator for one Responses stream.
#[derive(Debug)]
pub(crate) struct ResponsesStream {
    content: bool,
    text: TextBudget,
    book: StreamBook,
    id: Option<String>,
    model: Option<String>,
    /// `response.created` (or any response event) was seen.
    started: bool,
    /// What the terminal event said.
    terminal: Option<ResponseFacts>,
    /// By `output_index`.
    items: BTreeMap<u64, PartsAcc>,
    /// A terminal event (`response.completed|incomplete|failed`) or an `error` event was seen.
    ended: bool,
}

impl ResponsesStream {
    pub(crate) fn new(content: bool, max_bytes: usize) -> Self {
        Self {
            content,
            text: TextBudget::new(max_bytes),
            book: StreamBook::default(),
            id: None,
            model: None,
            started: false,
            terminal: None,
            items: BTreeMap::new(),
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
            "response.created" | "response.in_progress" | "response.queued" => {
                self.started = true;
                if let Some(r) = v.get("response") {
                    set_str(&mut self.id, r, "id");
                    set_str(&mut self.model, r, "model");
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.started = true;
                self.ended = true;
                if let Some(r) = v.get("response").filter(|r| r.is_object()) {
                    self.terminal = Some(ResponseFacts::read(r, self.content));
                }
            }
            "error" => {
                self.ended = true;
                let code = get_str(&v, "code")
                    .or_else(|| v.get("error").and_then(|e| get_str(e, "code")))
                    .or_else(|| v.get("error").and_then(|e| get_str(e, "type")))
                    .and_then(sanitize_code);
                self.book.set_error(code);
            }
            _ if self.content => self.on_delta(kind, &v),
            _ => {}
        }
    }

    fn on_delta(&mut self, kind: &str, v: &Value) {
        let Some(index) = get_u64(v, "output_index") else {
            return;
        };
        if !self.items.contains_key(&index) && self.items.len() >= MAX_STREAM_PARTS {
            self.text.truncated = true;
            return;
        }
        let delta = get_str(v, "delta").unwrap_or_default();
        let budget = &mut self.text;
        match kind {
            "response.output_item.added" => {
                let item = v.get("item").unwrap_or(&Value::Null);
                let parts = self.items.entry(index).or_default();
                match get_str(item, "type") {
                    Some("function_call" | "custom_tool_call") => parts.start_tool_call(
                        get_str(item, "call_id"),
                        get_str(item, "name").unwrap_or_default(),
                        get_str(item, "arguments").unwrap_or_default(),
                        budget,
                    ),
                    Some("message" | "reasoning") | None => {}
                    Some(other) => parts.push_value(server_tool_part(item, other), budget),
                }
            }
            "response.output_text.delta" => {
                self.items
                    .entry(index)
                    .or_default()
                    .push_text(TextKind::Text, delta, budget);
            }
            "response.refusal.delta" => {
                self.items
                    .entry(index)
                    .or_default()
                    .push_text(TextKind::Refusal, delta, budget);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                self.items
                    .entry(index)
                    .or_default()
                    .push_text(TextKind::Reasoning, delta, budget);
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                self.items
                    .entry(index)
                    .or_default()
                    .push_arguments(delta, budget);
            }
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
        match self.terminal {
            Some(mut facts) => {
                if facts.parts.is_none() && self.content && !self.items.is_empty() {
                    facts.parts = Some(self.items.values().flat_map(PartsAcc::values).collect());
                }
                facts.apply(policy, call);
            }
            None if self.started => {
                // No terminal event: the response did not end normally.
                call.response.finish_reasons = vec![finish_reason::ERROR.to_owned()];
                if policy.content && self.content {
                    let parts: Vec<Value> =
                        self.items.values().flat_map(PartsAcc::values).collect();
                    let message = output_message(parts, finish_reason::ERROR.to_owned());
                    call.content.output_messages =
                        Some(capture(policy, Value::Array(vec![message]), call));
                }
            }
            None => {}
        }
        if self.text.truncated && call.content.output_messages.is_some() {
            call.content.truncated = true;
        }
        self.book.finish(call, complete);
    }
}
