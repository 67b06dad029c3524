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
use llmtap_core::codec::{self, Api, ResponseCapture};
use llmtap_core::headers::{HEADER_TRACERESPONSE, rate_limit, upstream_request_id};
use llmtap_core::semconv::{capture_error, error_type, transport_end};
use opentelemetry::trace::{Span as _, TraceId, Tracer as _};

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

/// How a call ended, as far as its span is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEnd {
    /// The whole response was received.
    Completed,
    /// The caller stopped reading (dropped the future or stream): `client_disconnected`.
    Cancelled,
    /// The server closed the response before its end: `stream_truncated`.
    Truncated,
    /// The server took too long: `upstream_timeout`.
    TimedOut,
    /// The server could not be reached: `upstream_unreachable`.
    Unreachable,
    /// Any other failure, with a low-cardinality `error.type`.
    Failed(String),
}

#[derive(Debug)]
struct Recording {
    telemetry: Telemetry,
    parent: Parent,
    call: LlmCall,
    api: Api,
    started_at: SystemTime,
    started: Instant,
    first_chunk: Option<Instant>,
    status: Option<u16>,
    response: ResponseCapture,
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
        Self {
            recording: Some(Recording {
                response: ResponseCapture::new(api, telemetry.max_capture_bytes()),
                telemetry,
                parent,
                call,
                api,
                started_at: SystemTime::now(),
                started: Instant::now(),
                first_chunk: None,
                status: None,
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
        self.recording.as_ref().map(|r| &r.call)
    }

    /// Phase 2: the response status and headers.
    pub fn on_response_head(&mut self, status: u16, headers: &HeaderMap) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        rec.status = Some(status);
        rec.call.http_status = Some(status);
        rec.call.response.upstream_request_id =
            upstream_request_id(|name| headers.get(name).and_then(|v| v.to_str().ok()));
        rec.call.response.rate_limit =
            rate_limit(|name| headers.get(name).and_then(|v| v.to_str().ok()));
        if let Some(tr) = headers
            .get(HEADER_TRACERESPONSE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_traceparent(v).ok())
        {
            let sent: Option<TraceId> = rec.parent.span_context().map(|s| s.trace_id());
            rec.recorded_upstream = sent.is_none_or(|t| t == tr.trace_id());
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let stream_requested = rec.call.request.stream;
        rec.response.on_head(
            status,
            content_type,
            stream_requested,
            rec.telemetry.policy(),
        );
    }

    /// Phase 3: one response body chunk, as received.
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        if rec.first_chunk.is_none() && !chunk.is_empty() {
            rec.first_chunk = Some(Instant::now());
        }
        rec.response.on_chunk(chunk);
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
    fn finish(mut self, end: CallEnd) {
        let ended = Instant::now();
        let call = &mut self.call;
        call.timings.duration = Some(ended.saturating_duration_since(self.started));
        // The protocol decides (ADR 0001): a stream dropped or cut after its terminal event
        // (`[DONE]`, `message_stop`, ...) is complete; the transport's end is only noted.
        let reached_end = matches!(
            end,
            CallEnd::Cancelled | CallEnd::Truncated | CallEnd::TimedOut
        ) && self.response.reached_end();
        let complete = end == CallEnd::Completed || reached_end;
        if call.request.stream
            && self.response.is_stream()
            && let Some(first) = self.first_chunk
        {
            call.timings.time_to_first_chunk = Some(first.saturating_duration_since(self.started));
        }
        let response = std::mem::replace(&mut self.response, ResponseCapture::new(self.api, 0));
        response.finish(self.telemetry.policy(), call, complete);
        // How the exchange ended wins over what the payload said.
        match end {
            CallEnd::Completed => {}
            CallEnd::Cancelled if reached_end => {
                call.transport_end = Some(transport_end::CLIENT_CLOSED);
            }
            CallEnd::Truncated if reached_end => {
                call.transport_end = Some(transport_end::UPSTREAM_CLOSED);
            }
            CallEnd::TimedOut if reached_end => {
                call.transport_end = Some(transport_end::UPSTREAM_IDLE);
            }
            CallEnd::Cancelled => call.error_type = Some(error_type::CLIENT_DISCONNECTED.into()),
            CallEnd::Truncated => call.error_type = Some(error_type::STREAM_TRUNCATED.into()),
            CallEnd::TimedOut => call.error_type = Some(error_type::UPSTREAM_TIMEOUT.into()),
            CallEnd::Unreachable => {
                call.error_type = Some(error_type::UPSTREAM_UNREACHABLE.into());
            }
            CallEnd::Failed(e) => call.error_type = Some(e),
        }
        call.redact_fields(&self.telemetry.policy().redactor);

        if let Some(agent) = self.parent.agent() {
            agent.add_usage(&call.usage);
        }
        if self.recorded_upstream {
            return;
        }
        let tracer = self.telemetry.tracer();
        let mut span = tracer
            .span_builder(call.span_name())
            .with_kind(call.span_kind())
            .with_start_time(self.started_at)
            .with_attributes(call.start_attributes())
            .start_with_context(tracer, &self.parent.otel_context());
        span.set_attributes(call.end_attributes());
        span.set_status(call.status());
        let ended_at = self
            .started_at
            .checked_add(ended.saturating_duration_since(self.started))
            .unwrap_or_else(SystemTime::now);
        span.end_with_timestamp(ended_at);
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
