//! [`ModelCall`]: the model-call span recorder for any HTTP client, in the proxy's phases —
//! [`start`](ModelCall::start) → [`on_response_head`](ModelCall::on_response_head) →
//! [`on_chunk`](ModelCall::on_chunk)* → [`finish`](ModelCall::finish) — with the same codecs and
//! the same [`LlmCall`] mapping as the proxy, so a call looks the same whichever way it was
//! recorded. [`crate::TracedClient`] drives it for reqwest.
//!
//! `finish` runs exactly once: explicitly, or from `Drop` as `client_disconnected` (a response
//! future or stream dropped before its end) with partial output and the usage seen so far.
//!
//! ## Never twice
//!
//! The span is built when the call ends (with the start time it had), which lets the recorder
//! notice that an llmtap proxy already recorded the call — the response carries the proxy's
//! `traceresponse` in the trace we sent — and then emit nothing: the proxy's span is the one
//! model span, a child of the same parent. The usage still counts in the agents' totals.

use std::time::{Instant, SystemTime};

use http::HeaderMap;
use llmtap_core::call::LlmCall;
use llmtap_core::codec::{self, Api};
use llmtap_core::headers::HEADER_TRACERESPONSE;
use llmtap_core::lifecycle::{CallLifecycle, CallMetrics, ResponseHead};
use llmtap_core::semconv::capture_error;
use opentelemetry::trace::{TraceId, Tracer as _};

use crate::parent::{Parent, parse_traceparent};
use crate::telemetry::Telemetry;

/// Where a call goes, as the span describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    /// Host name or address (`server.address`).
    pub host: String,
    /// Port (`server.port`), explicit or the scheme's default.
    pub port: Option<u16>,
    /// Request path without the query (`llmtap.http.route`), which also selects the codec.
    pub path: String,
    /// `gen_ai.provider.name` instead of the one derived from the host.
    pub provider: Option<String>,
}

impl CallTarget {
    /// From a URL such as `https://api.openai.com/v1/chat/completions`; `None` when it has no
    /// host.
    pub fn from_uri(uri: &http::Uri) -> Option<Self> {
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().or_else(|| {
            uri.scheme_str()
                .and_then(llmtap_core::default_port::for_scheme)
        });
        Some(Self {
            host: host.to_owned(),
            port,
            path: uri.path().to_owned(),
            provider: None,
        })
    }

    fn provider_name(&self) -> String {
        if let Some(p) = &self.provider {
            return p.clone();
        }
        let host = match self.port {
            Some(port) if self.host.contains(':') => format!("[{}]:{port}", self.host),
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        };
        codec::provider_for_host(&host).to_owned()
    }
}

/// How a call ended, as far as its span is concerned: the same outcomes as the proxy's.
pub use llmtap_core::lifecycle::CallEnd;

#[derive(Debug)]
struct Recording {
    telemetry: Telemetry,
    parent: Parent,
    life: CallLifecycle,
    /// An llmtap proxy on the way recorded this call (its `traceresponse` is in our trace).
    recorded_upstream: bool,
}

/// One model call being recorded; see the module docs.
#[derive(Debug)]
pub struct ModelCall {
    recording: Option<Recording>,
}

impl ModelCall {
    /// Phase 1: the request. `None` when the path is not a model API llmtap knows (the call is
    /// then not recorded). `body` is the request body when it is at hand in memory.
    pub fn start(
        parent: impl Into<Parent>,
        target: &CallTarget,
        body: Option<&[u8]>,
    ) -> Option<Self> {
        let route = codec::route(&target.path)?;
        Some(Self::start_api(parent, route.api, target, body))
    }

    /// Phase 1 for an explicitly chosen API (when the path does not say).
    pub fn start_api(
        parent: impl Into<Parent>,
        api: Api,
        target: &CallTarget,
        body: Option<&[u8]>,
    ) -> Self {
        let parent = parent.into();
        let telemetry = parent.telemetry();
        let mut call = api.new_call(target.provider_name());
        call.server_address = Some(target.host.clone());
        call.server_port = target.port;
        call.route = Some(target.path.clone());
        if let Some(agent) = parent.agent() {
            agent.note_provider(&call.provider);
            call.agent.agent_name = Some(agent.name().to_owned());
            call.agent.agent_id = agent.id().map(str::to_owned);
            call.agent.conversation_id = agent.conversation_id().map(str::to_owned);
            call.agent.meta = agent.meta().to_vec();
        }
        match body {
            Some(body) if body.len() <= telemetry.max_capture_bytes() => {
                // A body that does not parse marks `capture_error` itself; the call is recorded
                // all the same.
                let _ = codec::parse_request(api, body, telemetry.policy(), &mut call);
            }
            Some(_) => call.capture_error = Some(capture_error::BODY_OVER_BUDGET),
            None => {}
        }
        let life = CallLifecycle::new(
            api,
            call,
            SystemTime::now(),
            Instant::now(),
            telemetry.max_capture_bytes(),
        );
        Self {
            recording: Some(Recording {
                telemetry,
                parent,
                life,
                recorded_upstream: false,
            }),
        }
    }

    /// The `traceparent` to send with the request: the parent's span, so a proxy on the way
    /// nests its span exactly where this recorder would have. `None` for a root call.
    pub fn traceparent(&self) -> Option<String> {
        self.recording.as_ref()?.parent.traceparent()
    }

    /// The record as known so far (request fields after `start`).
    pub fn call(&self) -> Option<&LlmCall> {
        self.recording.as_ref().map(|r| r.life.call())
    }

    /// Phase 2: the response status and headers.
    pub fn on_response_head(&mut self, status: u16, headers: &HeaderMap) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        if let Some(tr) = headers
            .get(HEADER_TRACERESPONSE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_traceparent(v).ok())
        {
            let sent: Option<TraceId> = rec.parent.span_context().map(|s| s.trace_id());
            rec.recorded_upstream = sent.is_none_or(|t| t == tr.trace_id());
        }
        // An unreadable coding is passed on as such, so the copy is skipped, not misread.
        let content_encoding = headers
            .get(http::header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let head = ResponseHead::from_lookup(status, content_encoding, |name| {
            headers.get(name).and_then(|v| v.to_str().ok())
        });
        rec.life.on_response_head(head, rec.telemetry.policy());
    }

    /// Phase 3: one response body chunk, as received (decoded or not: the head's
    /// `content-encoding` says which).
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        rec.life.on_chunk(chunk, Instant::now());
    }

    /// Phase 4: ends the span (once; later calls do nothing) and adds the usage to the agents.
    pub fn finish(&mut self, end: CallEnd) {
        if let Some(rec) = self.recording.take() {
            rec.finish(end);
        }
    }

    /// Whether an llmtap proxy on the way recorded this call (so this recorder emits no span).
    pub fn recorded_upstream(&self) -> bool {
        self.recording.as_ref().is_some_and(|r| r.recorded_upstream)
    }
}

impl Drop for ModelCall {
    fn drop(&mut self) {
        self.finish(CallEnd::Cancelled);
    }
}

impl Recording {
    fn finish(self, end: CallEnd) {
        let policy = self.telemetry.policy();
        let finished = self.life.finish(end, Instant::now(), policy);
        if let Some(agent) = self.parent.agent() {
            agent.add_usage(&finished.call.usage);
        }
        if self.recorded_upstream {
            // The proxy's span is the model span, and the proxy recorded its metrics.
            return;
        }
        let call = &finished.call;
        let tracer = self.telemetry.tracer();
        let mut span = tracer
            .span_builder(call.span_name())
            .with_kind(call.span_kind())
            .with_start_time(finished.started_wall)
            .with_attributes(call.start_attributes())
            .start_with_context(tracer, &self.parent.otel_context());
        let metrics = self.telemetry.metrics().map(|m| m as &dyn CallMetrics);
        finished.emit(&mut span, self.telemetry.compat(), metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_urls() {
        let t = CallTarget::from_uri(
            &"https://api.openai.com/v1/chat/completions"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(t.host, "api.openai.com");
        assert_eq!(t.port, Some(443));
        assert_eq!(t.provider_name(), "openai");
        let t = CallTarget::from_uri(
            &"http://127.0.0.1:11434/v1/chat/completions"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(t.provider_name(), "ollama");
        let t = CallTarget::from_uri(&"http://[::1]:8080/x".parse().unwrap()).unwrap();
        assert_eq!(t.host, "::1");
    }

    #[test]
    fn unknown_paths_are_not_recorded() {
        let t = CallTarget::from_uri(&"http://h/v1/models".parse().unwrap()).unwrap();
        assert!(ModelCall::start(Parent::root(), &t, None).is_none());
    }
}
