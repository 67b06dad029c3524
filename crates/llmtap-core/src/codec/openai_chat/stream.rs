//! The streamed (`stream: true`) shape shared by Chat Completions (`choices[].delta`) and legacy
//! completions (`choices[].text`): `chat.completion.chunk` / `text_completion` events, an
//! optional final usage-only chunk (`stream_options.include_usage`), then `data: [DONE]`.
//!
//! Everything kept is bounded, whatever the stream sends: at most [`MAX_CHOICES`] choices and
//! [`MAX_TOOL_CALLS`] tool calls per choice are tracked, each text field stops growing at the
//! capture budget, and all text together stops at twice that (the budget step would cut the rest
//! anyway; the slack leaves room for redaction shrinking what is kept). Anything dropped sets the
//! truncation flag.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::call::{LlmCall, Usage};
use crate::capture::CapturePolicy;
use crate::codec::Api;
use crate::codec::common::{
    MAX_LIST_ENTRIES, MAX_SHORT_STRING, TextBudget, apply_openai_usage, bounded, capture,
    error_code, get_str, get_u64, output_message, reasoning_part, refusal_part,
    semconv_finish_reason, text_part, tool_call_part,
};
use crate::semconv::{capture_error, error_type, finish_reason};
use crate::sse::SseEvent;

/// Choices tracked per stream; later indices are ignored (finish reasons are capped the same).
const MAX_CHOICES: usize = MAX_LIST_ENTRIES;
/// Tool calls tracked per choice; later ones are dropped and mark the capture truncated.
const MAX_TOOL_CALLS: usize = 128;

/// Accumulator for one chat or legacy-completions stream. Fed decoded SSE events; turned into
/// call fields once, by [`finish`](Self::finish).
#[derive(Debug)]
pub(crate) struct ChoicesStream {
    /// Whether to accumulate content at all (off: only metadata, finish reasons and usage).
    content: bool,
    text: TextBudget,
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    usage: Usage,
    /// The first in-stream error's code (or `_OTHER` when it names none).
    error: Option<String>,
    /// Data events, excluding `[DONE]`.
    chunks: u64,
    /// Data events that were not a JSON object.
    invalid: u64,
    /// Whether the most recent data event was one of the `invalid` ones.
    last_invalid: bool,
    /// By choice `index`, which is also the output order.
    choices: BTreeMap<u64, Choice>,
    /// `[DONE]` (or an in-stream error, after which nothing follows) was seen.
    ended: bool,
}

#[derive(Debug, Default)]
struct Choice {
    /// `None` while the choice is still open.
    finish_reason: Option<String>,
    text: String,
    reasoning: String,
    refusal: String,
    /// Legacy `function_call` deltas (pre-`tools` API).
    function_call: Option<ToolCall>,
    /// By tool-call `index`.
    tool_calls: BTreeMap<u64, ToolCall>,
}

#[derive(Debug, Default)]
struct ToolCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

impl ChoicesStream {
    /// `content`: accumulate output content; `max_bytes`: per-field cap (the capture budget).
    pub(crate) fn new(content: bool, max_bytes: usize) -> Self {
        Self {
            content,
            text: TextBudget::new(max_bytes),
            id: None,
            model: None,
            system_fingerprint: None,
            service_tier: None,
            usage: Usage::default(),
            error: None,
            chunks: 0,
            invalid: 0,
            last_invalid: false,
            choices: BTreeMap::new(),
            ended: false,
        }
    }

    /// Whether the protocol's terminal event (`[DONE]`, or an in-stream error) was seen.
    pub(crate) fn reached_end(&self) -> bool {
        self.ended
    }

    /// One decoded SSE event. Events with empty data carry nothing and are skipped.
    pub(crate) fn on_event(&mut self, ev: &SseEvent<'_>) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.ended = true;
            return;
        }
        if data.is_empty() {
            return;
        }
        self.chunks += 1;
        match serde_json::from_str::<Value>(data) {
            Ok(v) if v.is_object() => {
                self.last_invalid = false;
                self.on_chunk(&v);
            }
            _ => {
                self.invalid += 1;
                self.last_invalid = true;
            }
        }
    }

    fn on_chunk(&mut self, v: &Value) {
        let is_error = v
            .get("error")
            .is_some_and(|e| e.is_object() || e.as_str().is_some_and(|s| !s.is_empty()))
            || get_str(v, "object") == Some("error");
        if is_error {
            self.ended = true;
            let code = error_code(v).unwrap_or_else(|| error_type::OTHER.to_owned());
            self.error.get_or_insert(code);
            return;
        }
        set_first(&mut self.id, v, "id");
        set_first(&mut self.model, v, "model");
        set_first(&mut self.system_fingerprint, v, "system_fingerprint");
        set_first(&mut self.service_tier, v, "service_tier");
        if let Some(usage) = v.get("usage") {
            apply_openai_usage(usage, &mut self.usage);
        }
        // Groq reports usage in its own extension object on the last chunk.
        if let Some(usage) = v.get("x_groq").and_then(|x| x.get("usage")) {
            apply_openai_usage(usage, &mut self.usage);
        }
        let Some(Value::Array(choices)) = v.get("choices") else {
            return;
        };
        for (pos, c) in choices.iter().enumerate().filter(|(_, c)| c.is_object()) {
            let index = get_u64(c, "index").unwrap_or(pos as u64);
            if !self.choices.contains_key(&index) && self.choices.len() >= MAX_CHOICES {
                continue;
            }
            let choice = self.choices.entry(index).or_default();
            if let Some(reason) = get_str(c, "finish_reason").filter(|r| !r.is_empty()) {
                choice.finish_reason = Some(bounded(reason));
            }
            if self.content {
                accumulate(choice, c, &mut self.text);
            }
        }
    }

    /// Writes the stream's facts into `call`; see [`StreamState::finish`](super::super::StreamState::finish)
    /// for the contract. When the stream was cut (`!complete`), an undecodable last event is
    /// the cut itself, not bad data, so it alone does not mark `invalid_sse`. `_api` is not
    /// needed: both APIs produce assistant messages of the same shape.
    pub(crate) fn finish(
        self,
        policy: &CapturePolicy,
        call: &mut LlmCall,
        complete: bool,
        _api: Api,
    ) {
        let resp = &mut call.response;
        for (slot, value) in [
            (&mut resp.id, self.id),
            (&mut resp.model, self.model),
            (&mut resp.system_fingerprint, self.system_fingerprint),
            (&mut resp.service_tier, self.service_tier),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
        let (from, into) = (self.usage, &mut call.usage);
        into.input_tokens = from.input_tokens.or(into.input_tokens);
        into.output_tokens = from.output_tokens.or(into.output_tokens);
        into.cache_read_input_tokens = from
            .cache_read_input_tokens
            .or(into.cache_read_input_tokens);
        into.cache_write_input_tokens = from
            .cache_write_input_tokens
            .or(into.cache_write_input_tokens);
        into.reasoning_output_tokens = from
            .reasoning_output_tokens
            .or(into.reasoning_output_tokens);

        if !self.choices.is_empty() {
            call.response.finish_reasons = self
                .choices
                .values()
                .map(|c| {
                    c.finish_reason
                        .clone()
                        .unwrap_or_else(|| finish_reason::ERROR.to_owned())
                })
                .collect();
        }
        if let Some(code) = self.error {
            call.error_type.get_or_insert(code);
        }
        call.timings.chunk_count = self.chunks;
        let cut_event = u64::from(!complete && self.last_invalid);
        if self.invalid > cut_event {
            call.capture_error.get_or_insert(capture_error::INVALID_SSE);
        }
        if policy.content && self.content && !self.choices.is_empty() {
            let messages: Vec<Value> = self.choices.values().map(output).collect();
            call.content.output_messages = Some(capture(policy, Value::Array(messages), call));
            if self.text.truncated {
                call.content.truncated = true;
            }
        }
    }
}

/// Keeps the first non-empty value: these are constant over a stream, and some gateways
/// (Azure's content-filter preamble) send a first chunk with them blank.
fn set_first(slot: &mut Option<String>, v: &Value, key: &str) {
    if slot.is_none()
        && let Some(s) = get_str(v, key).filter(|s| !s.is_empty())
    {
        *slot = Some(bounded(s));
    }
}

/// Appends one chunk's content for one choice: `delta` (chat) or `text` (legacy completions).
fn accumulate(choice: &mut Choice, c: &Value, budget: &mut TextBudget) {
    let cap = budget.per_field;
    if let Some(text) = get_str(c, "text") {
        budget.append(&mut choice.text, text, cap);
    }
    let Some(delta) = c.get("delta").filter(|d| d.is_object()) else {
        return;
    };
    if let Some(text) = get_str(delta, "content") {
        budget.append(&mut choice.text, text, cap);
    }
    // DeepSeek/vLLM say `reasoning_content`, OpenRouter/Ollama `reasoning`; some send both.
    if let Some(text) = get_str(delta, "reasoning_content").or_else(|| get_str(delta, "reasoning"))
    {
        budget.append(&mut choice.reasoning, text, cap);
    }
    if let Some(text) = get_str(delta, "refusal") {
        budget.append(&mut choice.refusal, text, cap);
    }
    if let Some(fc) = delta.get("function_call").filter(|f| f.is_object()) {
        let call = choice.function_call.get_or_insert_with(ToolCall::default);
        tool_call_fragment(call, None, fc, budget);
    }
    if let Some(Value::Array(calls)) = delta.get("tool_calls") {
        for tc in calls.iter().filter(|tc| tc.is_object()) {
            let id = get_str(tc, "id").filter(|id| !id.is_empty());
            let index = get_u64(tc, "index").unwrap_or_else(|| implied_index(choice, id));
            if !choice.tool_calls.contains_key(&index) && choice.tool_calls.len() >= MAX_TOOL_CALLS
            {
                budget.truncated = true;
                continue;
            }
            let call = choice.tool_calls.entry(index).or_default();
            let function = tc.get("function").unwrap_or(&Value::Null);
            tool_call_fragment(call, id, function, budget);
        }
    }
}

/// Where a tool-call delta without `index` (some OpenAI-compatible servers omit it) belongs: a new
/// id starts a new call, anything else continues the latest one.
fn implied_index(choice: &Choice, id: Option<&str>) -> u64 {
    let last = choice.tool_calls.keys().next_back().copied();
    match id {
        Some(id) => {
            // Stored ids are bounded the same way.
            let id = bounded(id);
            let known = choice
                .tool_calls
                .iter()
                .find(|(_, tc)| tc.id.as_deref() == Some(id.as_str()));
            match (known, last) {
                (Some((index, _)), _) => *index,
                (None, Some(last)) => last.saturating_add(1),
                (None, None) => 0,
            }
        }
        None => last.unwrap_or(0),
    }
}

/// One tool-call delta: the id is taken once; name and argument fragments are concatenated.
fn tool_call_fragment(
    call: &mut ToolCall,
    id: Option<&str>,
    function: &Value,
    budget: &mut TextBudget,
) {
    if call.id.is_none()
        && let Some(id) = id
    {
        let mut kept = String::new();
        budget.append(&mut kept, id, MAX_SHORT_STRING);
        call.id = Some(kept);
    }
    if let Some(name) = get_str(function, "name") {
        budget.append(&mut call.name, name, MAX_SHORT_STRING);
    }
    if let Some(args) = get_str(function, "arguments") {
        let cap = budget.per_field;
        budget.append(&mut call.arguments, args, cap);
    }
}

/// One accumulated choice → one semconv output message (same part order as non-streaming).
fn output(choice: &Choice) -> Value {
    let mut parts = Vec::new();
    if !choice.reasoning.is_empty() {
        parts.push(reasoning_part(&choice.reasoning));
    }
    if !choice.text.is_empty() {
        parts.push(text_part(&choice.text));
    }
    if !choice.refusal.is_empty() {
        parts.push(refusal_part(&choice.refusal));
    }
    for tc in choice.tool_calls.values() {
        parts.push(tool_call_part(
            tc.id.as_deref(),
            &tc.name,
            Some(&tc.arguments),
        ));
    }
    if let Some(fc) = &choice.function_call {
        parts.push(tool_call_part(None, &fc.name, Some(&fc.arguments)));
    }
    output_message(
        parts,
        semconv_finish_reason(choice.finish_reason.as_deref()),
    )
}
