//! HTTP header names shared by the two ways in: the proxy reads them, the SDK writes them. One
//! definition, so a rename can never make the SDK and the proxy talk past each other.

/// Request header: agent name of the caller (→ `gen_ai.agent.name`).
pub const HEADER_AGENT: &str = "x-llmtap-agent";
/// Request header: session / conversation id of the caller (→ `gen_ai.conversation.id`).
pub const HEADER_SESSION: &str = "x-llmtap-session";
/// Request header prefix of free-form metadata (`x-llmtap-meta-<k>` → `llmtap.meta.<k>`, with
/// `-` in `<k>` read as `_`).
pub const HEADER_META_PREFIX: &str = "x-llmtap-meta-";
/// Prefix of every llmtap request header; the proxy strips all of them before forwarding.
pub const HEADER_PREFIX: &str = "x-llmtap-";
/// W3C Trace Context request header naming the caller's span.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// W3C Trace Context vendor state that travels with [`HEADER_TRACEPARENT`].
pub const HEADER_TRACESTATE: &str = "tracestate";
/// Response header carrying the call's own span (W3C Trace Context level 2): the proxy sets it so
/// a caller can hand the call's span to the agent it spawns.
pub const HEADER_TRACERESPONSE: &str = "traceresponse";
