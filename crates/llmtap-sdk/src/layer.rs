//! The `tracing` integration: a ready `tracing-opentelemetry` layer on the SDK's pipeline, so the
//! application's own `tracing` spans land in the same file/collector and the same tree.
//!
//! The layer activates each entered `tracing` span as the OpenTelemetry context, so:
//! - a `tracing` span entered inside an agent's scope ([`crate::AgentHandle::scope`]) is a child
//!   of the agent;
//! - an agent, tool or model call started (without an explicit parent) inside an entered
//!   `tracing` span is a child of that span, and still counts in the enclosing agent's totals.
//!
//! A `tracing` span takes its parent when it is *created*: create it inside the agent's scope
//! (`agent.scope(async { work.instrument(info_span!("step")).await })`), not before.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let telemetry = llmtap_sdk::Telemetry::disabled(); // or: let guard = llmtap_sdk::init()?;
//! let subscriber = tracing_subscriber::registry().with(llmtap_sdk::tracing_layer(&telemetry));
//! tracing::subscriber::with_default(subscriber, || {
//!     let agent = telemetry.agent("planner").start();
//!     let _in_agent = agent.enter();
//!     let _step = tracing::info_span!("load_documents").entered(); // child of `invoke_agent planner`
//! });
//! # Ok::<(), llmtap_sdk::InitError>(())
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracer;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::Telemetry;

/// Instrumentation scope of spans that come from `tracing`.
pub const TRACING_SCOPE_NAME: &str = "llmtap-sdk-tracing";

/// A `tracing_subscriber` layer exporting `tracing` spans through `telemetry`'s pipeline.
pub fn tracing_layer<S>(telemetry: &Telemetry) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(telemetry.provider().tracer(TRACING_SCOPE_NAME))
        .with_context_activation(true)
}
