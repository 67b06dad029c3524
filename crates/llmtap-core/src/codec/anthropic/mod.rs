//! Anthropic Messages (`POST /v1/messages`), non-streaming and streamed (named SSE events
//! `message_start`, `content_block_start`/`_delta`/`_stop`, `message_delta`, `message_stop`,
//! `ping`, `error`).
//!
//! Mapping to the semconv vocabulary:
//! - `system` (string or text blocks) → `gen_ai.system_instructions`; `messages` →
//!   `gen_ai.input.messages`; `tools` → `gen_ai.tool.definitions` (`input_schema` as `parameters`);
//! - blocks: `text` → `text`, `image`/`document` → `blob`/`uri`/`file`, `tool_use` → `tool_call`
//!   (arguments = `input`), `tool_result` → `tool_call_response` (a user turn made only of tool
//!   results reads as role `tool`), `thinking` → `reasoning`, `server_tool_use` →
//!   `server_tool_call`, `*_tool_result` → `server_tool_call_response`, others kept as sent;
//! - usage normalised the semconv way: Anthropic's `input_tokens` excludes cache reads and
//!   writes, so `gen_ai.usage.input_tokens = input_tokens + cache_read_input_tokens +
//!   cache_creation_input_tokens`, with the two cache counts recorded as subsets. Thinking tokens
//!   are not reported separately by Anthropic, so no reasoning count is recorded (never guessed);
//! - `stop_reason` is the finish reason as spelled (`end_turn`, `tool_use`, `max_tokens`...);
//!   output messages carry the semconv value (`stop`, `tool_call`, `length`...).

pub mod request;
pub mod response;
pub mod stream;

use serde_json::Value;

use crate::call::Usage;
use crate::codec::common::{bounded, get_u64};
use crate::semconv::finish_reason;

/// Anthropic usage (either the full object or a `message_delta` update) into raw counts.
/// Fields the object doesn't carry keep their value.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawUsage {
    pub(crate) input: Option<u64>,
    pub(crate) output: Option<u64>,
    pub(crate) cache_read: Option<u64>,
    pub(crate) cache_creation: Option<u64>,
}

impl RawUsage {
    pub(crate) fn apply(&mut self, u: &Value) {
        if !u.is_object() {
            return;
        }
        self.input = get_u64(u, "input_tokens").or(self.input);
        self.output = get_u64(u, "output_tokens").or(self.output);
        self.cache_read = get_u64(u, "cache_read_input_tokens").or(self.cache_read);
        self.cache_creation = get_u64(u, "cache_creation_input_tokens").or(self.cache_creation);
    }

    /// Semconv counts: input includes both cache counts; nothing when Anthropic said nothing.
    pub(crate) fn normalised(&self) -> Usage {
        let any_input =
            self.input.is_some() || self.cache_read.is_some() || self.cache_creation.is_some();
        Usage {
            input_tokens: any_input.then(|| {
                self.input
                    .unwrap_or(0)
                    .saturating_add(self.cache_read.unwrap_or(0))
                    .saturating_add(self.cache_creation.unwrap_or(0))
            }),
            output_tokens: self.output,
            cache_read_input_tokens: self.cache_read,
            cache_write_input_tokens: self.cache_creation,
            reasoning_output_tokens: None,
        }
    }
}

/// `stop_reason` → semconv output-message finish reason.
pub(crate) fn semconv_finish(stop_reason: Option<&str>) -> String {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => finish_reason::STOP.to_owned(),
        Some("max_tokens" | "model_context_window_exceeded") => finish_reason::LENGTH.to_owned(),
        Some("tool_use") => finish_reason::TOOL_CALL.to_owned(),
        Some("refusal") => finish_reason::CONTENT_FILTER.to_owned(),
        Some(other) => bounded(other),
        None => finish_reason::ERROR.to_owned(),
    }
}
