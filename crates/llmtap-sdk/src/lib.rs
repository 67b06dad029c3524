//! # llmtap-sdk
//!
//! gen_ai spans from inside a Rust program — `invoke_agent {name}`, `execute_tool {name}` and
//! model calls (`chat gpt-4o`) — exported exactly like `llmtap proxy` exports them (OTLP/JSON
//! lines to `.llmtap/traces.jsonl`, and OTLP when `OTEL_EXPORTER_OTLP_*` says so), with parents
//! that survive `tokio::spawn`, threads and channels because they travel in an explicit,
//! cloneable [`AgentHandle`].
//!
//! Two ways to record model calls, never both for one call:
//! - **direct**: [`TracedClient`] wraps your `reqwest::Client` and records each model call with
//!   the proxy's codecs (streams included; a stream dropped early still ends its span);
//! - **via the proxy**: any client, with [`proxy::inject_headers`] /
//!   [`proxy::RequestBuilderExt::llmtap`] adding `traceparent` and `x-llmtap-*` headers; the proxy
//!   records the model span, the SDK records none.
//!
//! Agent spans carry their subtree's token totals as `llmtap.usage.total.*` (never
//! `gen_ai.usage.*`, which backends sum). [`tracing_layer`] puts the application's own `tracing`
//! spans in the same tree.
//!
//! ## Quick start
//!
//! ```no_run
//! use llmtap_sdk::TracedClient;
//! use serde_json::json;
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     // Same env as the proxy: LLMTAP_JSONL, OTEL_EXPORTER_OTLP_*, capture policy, service name.
//!     let guard = llmtap_sdk::init()?; // flushes and shuts down on drop
//!     let client = TracedClient::new(reqwest::Client::new());
//!
//!     let orchestrator = guard.agent("orchestrator").conversation_id("session-1").start();
//!     let mut researchers = Vec::new();
//!     for topic in ["rust", "otel"] {
//!         let parent = orchestrator.handle(); // cloneable, Send + 'static
//!         let client = client.clone();
//!         researchers.push(tokio::spawn(async move {
//!             let researcher = parent.agent("researcher").id(topic).start();
//!             let request = client
//!                 .post("http://127.0.0.1:8421/v1/chat/completions")
//!                 .json(&json!({"model": "gpt-4o-mini",
//!                               "messages": [{"role": "user", "content": topic}]}))
//!                 .build()?;
//!             let answer: serde_json::Value = client.execute_in(&*researcher, request).await?.json().await?;
//!             let mut tool = researcher.tool("save_note").call_id("call_1").start();
//!             tool.set_result(&json!({"saved": true}));
//!             anyhow::Ok(answer)
//!         }));
//!     }
//!     for r in researchers {
//!         r.await??;
//!     }
//!     orchestrator.end(); // its span now carries llmtap.usage.total.* of both researchers
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

mod agent;
mod client;
mod error;
mod handle;
mod layer;
mod model;
mod parent;
pub mod proxy;
mod telemetry;
mod tool;

pub use agent::{Agent, AgentBuilder, agent, current_agent, spawn};
pub use client::{ResponseError, TracedClient, TracedResponse, TracedStream};
pub use error::{InitError, TraceparentError};
pub use handle::{AgentHandle, UsageTotals};
pub use layer::{TRACING_SCOPE_NAME, tracing_layer};
pub use model::{CallEnd, CallTarget, ModelCall};
pub use parent::Parent;
pub use telemetry::{
    Builder, DEFAULT_JSONL, DEFAULT_MAX_CAPTURE_BYTES, DEFAULT_SERVICE_NAME,
    DEFAULT_SHUTDOWN_TIMEOUT, ENV_COMPAT, ENV_JSONL, ENV_MAX_CAPTURE_BYTES, ENV_NO_CONTENT, Guard,
    SCOPE_NAME, Telemetry, init,
};
pub use tool::{ToolBuilder, ToolSpan, tool};

/// Re-exports for callers that build records or headers themselves.
pub use llmtap_core::call::Usage;
pub use llmtap_core::capture::CapturePolicy;
pub use llmtap_core::codec::Api;
