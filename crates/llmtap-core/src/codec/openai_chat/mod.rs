//! OpenAI Chat Completions (`/v1/chat/completions`) and every server that speaks it (vLLM,
//! Ollama, Groq, OpenRouter, DeepSeek, Mistral, xAI...).
//!
//! Content mapping to the semconv parts schema:
//! - `system`/`developer` messages stay inside `gen_ai.input.messages` (that is how the API sends
//!   them) with role `system`; `gen_ai.system_instructions` is not used for this API;
//! - string content and `text` parts → `text`; `image_url` → `uri` (modality image), or `blob`
//!   for `data:` URLs; `input_audio` → `blob` (audio); `file` → `file` (by id) or `blob`;
//!   `refusal` → generic `refusal` part; other parts are kept as generic parts;
//! - `tool` messages → role `tool` with a `tool_call_response` part (`id` = `tool_call_id`);
//! - assistant `tool_calls` → `tool_call` parts, arguments as a JSON object when they parse;
//! - output: one message per choice, `finish_reason` `tool_calls` → `tool_call`;
//!   `reasoning_content`/`reasoning` (DeepSeek, OpenRouter, vLLM) → `reasoning` parts.

pub mod request;
pub mod response;
pub mod stream;
