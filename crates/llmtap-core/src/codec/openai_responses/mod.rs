//! OpenAI Responses (`POST /v1/responses`), non-streaming and streamed (semantic events
//! `response.created` … `response.output_text.delta` … `response.completed` /
//! `response.failed` / `response.incomplete`, and `error`).
//!
//! Mapping to the semconv vocabulary:
//! - `instructions` → `gen_ai.system_instructions`; `input` (a string, or items) →
//!   `gen_ai.input.messages`: message items keep their role (`developer` → `system`),
//!   `function_call` items are assistant `tool_call` parts (id = `call_id`),
//!   `function_call_output` items are `tool` messages with a `tool_call_response`, `reasoning`
//!   items are assistant `reasoning` parts; other items are kept as generic parts;
//! - `tools`: function tools → `{type, name, description, parameters}`, built-in tools
//!   (`web_search`, `file_search`...) → `{type, name: type}`;
//! - `reasoning.effort` → `gen_ai.request.reasoning.level`, `previous_response_id` →
//!   `gen_ai.request.previous_response.id`, `max_output_tokens` → max tokens, `conversation` →
//!   `gen_ai.conversation.id` (a real id, unless a session header already set one);
//! - the output items form ONE output message (a response is one choice). The API has no
//!   finish reason, so it is derived from the response status: `completed` → `stop` (or
//!   `tool_call` when the output calls a function), `incomplete` → the incomplete reason
//!   (`max_output_tokens` → `length`, `content_filter`), `failed`/`cancelled` → `error`;
//! - usage is already semconv-shaped: `input_tokens` includes
//!   `input_tokens_details.cached_tokens`, `output_tokens` includes
//!   `output_tokens_details.reasoning_tokens`.

pub mod request;
pub mod response;
pub mod stream;
