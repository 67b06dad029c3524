//! llmtap-core: the provider-neutral heart of llmtap. Pure logic: no tokio, no sockets, no files.
//!
//! It owns the gen_ai vocabulary ([`semconv`]), the [`call::LlmCall`] record and its single mapping
//! to span name, kind and attributes, content capture policy, redaction, byte budgets, the
//! incremental SSE decoder and the provider codecs.

pub mod agent;
pub mod budget;
pub mod call;
pub mod capture;
pub mod codec;
pub mod compat;
pub mod content_coding;
pub mod default_port;
pub mod env;
pub mod headers;
pub mod json_stream;
pub mod lifecycle;
pub mod meta;
pub mod redact;
pub mod semconv;
pub mod settings;
pub mod sse;
pub mod trace_context;
pub mod userinfo;
pub mod utf8;
