//! [`Parent`]: where a new span hangs, as a plain value that can be passed anywhere.

use llmtap_core::trace_context::format_traceparent;
use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

use crate::error::TraceparentError;
use crate::handle::AgentHandle;
use crate::telemetry::Telemetry;

/// The parent of a new agent, tool or model-call span: a span context (ids) plus, when the
/// parent is or sits under an SDK agent, that agent (for token totals, the conversation id and
/// the telemetry to record to). `Clone + Send + Sync + 'static`.
#[derive(Debug, Clone)]
pub struct Parent {
    span: Option<SpanContext>,
    agent: Option<AgentHandle>,
    telemetry: Option<Telemetry>,
}

impl Parent {
    /// No parent: the new span starts a trace.
    pub fn root() -> Self {
        Self {
            span: None,
            agent: None,
            telemetry: None,
        }
    }

    /// The ambient OpenTelemetry context: its active span (an agent's scope, an entered
    /// `tracing` span...) and the nearest agent it carries.
    pub fn current() -> Self {
        Self::from_context(&Context::current())
    }

    /// The active span and agent of `cx`.
    pub fn from_context(cx: &Context) -> Self {
        let span = cx.span().span_context().clone();
        let agent = AgentHandle::from_context(cx);
        Self {
            span: span.is_valid().then_some(span),
            telemetry: agent.as_ref().map(|a| a.telemetry().clone()),
            agent,
        }
    }

    /// A span of another process, from a `traceparent` or `traceresponse` header value
    /// (`00-<32 hex>-<16 hex>-<2 hex>`): how a spawned process or a proxy hand-off nests its
    /// spans under the caller's.
    pub fn from_traceparent(value: &str) -> Result<Self, TraceparentError> {
        let span = parse_traceparent(value)?;
        Ok(Self {
            span: Some(span),
            agent: None,
            telemetry: None,
        })
    }

    /// A parent span given by its context (e.g. from another OpenTelemetry instrumentation).
    pub fn from_span_context(span: SpanContext) -> Self {
        Self {
            span: span.is_valid().then_some(span),
            agent: None,
            telemetry: None,
        }
    }

    /// Adds the agent whose totals and conversation the new span belongs to (when the parent
    /// span itself is not an SDK agent, e.g. a tool span).
    pub(crate) fn with_agent(mut self, agent: Option<AgentHandle>) -> Self {
        if self.telemetry.is_none() {
            self.telemetry = agent.as_ref().map(|a| a.telemetry().clone());
        }
        self.agent = agent;
        self
    }

    pub(crate) fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// The parent span's context, `None` for a root.
    pub fn span_context(&self) -> Option<&SpanContext> {
        self.span.as_ref()
    }

    /// The nearest SDK agent at or above the parent span.
    pub fn agent(&self) -> Option<&AgentHandle> {
        self.agent.as_ref()
    }

    /// The telemetry new spans under this parent record to: the agent's, else the global one.
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone().unwrap_or_else(Telemetry::global)
    }

    /// `traceparent` value of the parent span, `None` for a root.
    pub fn traceparent(&self) -> Option<String> {
        self.span.as_ref().map(format_traceparent)
    }

    /// An OpenTelemetry context to start a child span with (empty for a root). Also carries the
    /// agent, so ambient lookups inside it find the agent.
    pub fn otel_context(&self) -> Context {
        let mut cx = Context::new();
        if let Some(span) = &self.span {
            cx = cx.with_remote_span_context(span.clone());
        }
        if let Some(agent) = &self.agent {
            cx = cx.with_value(agent.clone());
        }
        cx
    }
}

impl AgentHandle {
    /// This agent as a [`Parent`].
    pub fn as_parent(&self) -> Parent {
        Parent::from(self)
    }
}

impl From<&AgentHandle> for Parent {
    fn from(agent: &AgentHandle) -> Self {
        Self {
            span: Some(agent.span_context().clone()),
            agent: Some(agent.clone()),
            telemetry: Some(agent.telemetry().clone()),
        }
    }
}

impl From<AgentHandle> for Parent {
    fn from(agent: AgentHandle) -> Self {
        Self::from(&agent)
    }
}

impl From<&Parent> for Parent {
    fn from(p: &Parent) -> Self {
        p.clone()
    }
}

/// Parses a version-00 `traceparent` (or `traceresponse`) value into a remote span context.
pub(crate) fn parse_traceparent(value: &str) -> Result<SpanContext, TraceparentError> {
    let bad = || TraceparentError(value.chars().take(80).collect());
    let mut parts = value.trim().split('-');
    let (Some(version), Some(trace), Some(span), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if version != "00"
        || parts.next().is_some()
        || !hex(trace, 32)
        || !hex(span, 16)
        || !hex(flags, 2)
    {
        return Err(bad());
    }
    let trace_id = TraceId::from_hex(trace).map_err(|_| bad())?;
    let span_id = SpanId::from_hex(span).map_err(|_| bad())?;
    let flags = u8::from_str_radix(flags, 16).map_err(|_| bad())?;
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    if sc.is_valid() { Ok(sc) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_rejects() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse_traceparent(v).unwrap();
        assert!(sc.is_remote());
        assert_eq!(format_traceparent(&sc), v);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn root_has_no_span() {
        assert!(Parent::root().span_context().is_none());
        assert!(Parent::root().traceparent().is_none());
    }
}
