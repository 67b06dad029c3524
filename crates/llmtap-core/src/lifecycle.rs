//! [`CallLifecycle`]: one model call from request to finished record, written once for every
//! recorder — the proxy's `CallRecorder` and the SDK's `ModelCall` are adapters that only decide
//! when the span starts and how the bytes arrive.
//!
//! The phases are explicit: [`CallLifecycle::new`] (the request is parsed into the [`LlmCall`]) →
//! [`on_response_head`](CallLifecycle::on_response_head) → [`on_chunk`](CallLifecycle::on_chunk)*
//! → [`finish`](CallLifecycle::finish), which takes the lifecycle by value, so a call finishes at
//! most once. `finish` applies, in one place and in this order:
//!
//! 1. duration, and time to first chunk for a streamed answer (never for an error body);
//! 2. the response copy is decoded into the record; the protocol decides completeness (ADR 0001):
//!    a stream whose terminal event went through is complete however the transport ended;
//! 3. the [`CallEnd`] → `error.type` / `llmtap.transport.end` precedence;
//! 4. redaction of every free-text field.
//!
//! [`FinishedCall::emit`] then ends a span with the end attributes, the compatibility keys and the
//! status, and records the gen_ai metrics — the one path both recorders use.

use std::time::{Instant, SystemTime};

use opentelemetry::trace::Span;

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::{Api, ResponseCapture};
use crate::compat::Compat;
use crate::headers::{RateLimit, rate_limit, upstream_request_id};
use crate::semconv::{error_type, transport_end};

/// How a model call ended, as far as its span is concerned: the one outcome vocabulary of the
/// proxy and the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEnd {
    /// The whole response was received (or forwarded).
    Completed,
    /// The caller stopped reading — the proxy's client hung up, the SDK's future or stream was
    /// dropped: `client_disconnected`, unless the terminal event had already gone through.
    Cancelled,
    /// The server closed the response before its end: `stream_truncated` (same exception).
    Truncated,
    /// The server went quiet for too long: `upstream_timeout` (same exception).
    TimedOut,
    /// The server could not be reached: `upstream_unreachable`.
    Unreachable,
    /// Any other failure, with a low-cardinality `error.type`.
    Failed(String),
}

impl CallEnd {
    /// The transport's end noted on a complete call (`llmtap.transport.end`), for the outcomes
    /// that can follow the terminal event.
    fn transport_end(&self) -> Option<&'static str> {
        match self {
            CallEnd::Cancelled => Some(transport_end::CLIENT_CLOSED),
            CallEnd::Truncated => Some(transport_end::UPSTREAM_CLOSED),
            CallEnd::TimedOut => Some(transport_end::UPSTREAM_IDLE),
            _ => None,
        }
    }

    /// The `error.type` of a call that did not complete.
    fn error_type(self) -> Option<String> {
        match self {
            CallEnd::Completed => None,
            CallEnd::Cancelled => Some(error_type::CLIENT_DISCONNECTED.to_owned()),
            CallEnd::Truncated => Some(error_type::STREAM_TRUNCATED.to_owned()),
            CallEnd::TimedOut => Some(error_type::UPSTREAM_TIMEOUT.to_owned()),
            CallEnd::Unreachable => Some(error_type::UPSTREAM_UNREACHABLE.to_owned()),
            CallEnd::Failed(error) => Some(error),
        }
    }
}

/// What a recorder keeps of a response head: taken from the headers on the spot, so the header
/// map is never copied.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `content-encoding`; an unreadable value should be passed as `"?"` (no decoder accepts it,
    /// so the copy is skipped rather than misread).
    pub content_encoding: Option<String>,
    /// The provider's request id (`x-request-id`, `request-id`, …).
    pub upstream_request_id: Option<String>,
    /// The provider's rate-limit headers.
    pub rate_limit: RateLimit,
}

impl ResponseHead {
    /// Reads a head through `header` (a case-insensitive lookup returning readable values).
    pub fn from_lookup<'a>(
        status: u16,
        content_encoding: Option<String>,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Self {
        Self {
            status,
            content_type: header(CONTENT_TYPE).map(str::to_owned),
            content_encoding,
            upstream_request_id: upstream_request_id(&header),
            rate_limit: rate_limit(&header),
        }
    }
}

const CONTENT_TYPE: &str = "content-type";

/// Metric instruments a finished call is recorded into (the gen_ai client histograms).
pub trait CallMetrics {
    /// Records one finished call.
    fn record(&self, call: &LlmCall);
}

/// One model call in progress; see the module docs.
#[derive(Debug)]
pub struct CallLifecycle {
    call: LlmCall,
    response: ResponseCapture,
    started: Instant,
    started_wall: SystemTime,
    first_chunk: Option<Instant>,
}

impl CallLifecycle {
    /// Phase 1: `call` holds what the request said; it started at `started_wall` (`started` is the
    /// same moment on the monotonic clock). `max_capture_bytes` bounds the response copy.
    pub fn new(
        api: Api,
        call: LlmCall,
        started_wall: SystemTime,
        started: Instant,
        max_capture_bytes: usize,
    ) -> Self {
        Self {
            call,
            response: ResponseCapture::new(api, max_capture_bytes),
            started,
            started_wall,
            first_chunk: None,
        }
    }

    /// The record as known so far.
    pub fn call(&self) -> &LlmCall {
        &self.call
    }

    /// The record, for what only the adapter knows (agent, request parse, capture errors).
    pub fn call_mut(&mut self) -> &mut LlmCall {
        &mut self.call
    }

    /// When the call started (wall clock).
    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    /// Phase 2: the response head. Streamed answers are SSE for every API; Gemini's streamed JSON
    /// array is `application/json`, so for it the request's stream flag decides.
    pub fn on_response_head(&mut self, head: ResponseHead, policy: &CapturePolicy) {
        let call = &mut self.call;
        call.http_status = Some(head.status);
        call.response.upstream_request_id = head.upstream_request_id;
        call.response.rate_limit = head.rate_limit;
        self.response.on_head(
            head.status,
            head.content_type.as_deref(),
            call.request.stream,
            policy,
        );
        self.response
            .on_content_encoding(head.content_encoding.as_deref());
    }

    /// Phase 3: one response body chunk as it went to the caller, at `at`.
    pub fn on_chunk(&mut self, chunk: &[u8], at: Instant) {
        if self.first_chunk.is_none() && !chunk.is_empty() {
            self.first_chunk = Some(at);
        }
        self.response.on_chunk(chunk);
    }

    /// When the first chunk reached the caller, measured by the adapter on its forwarding path
    /// (more exact than the time its copy arrived). Replaces what `on_chunk` saw.
    pub fn first_chunk_at(&mut self, at: Option<Instant>) {
        if at.is_some() {
            self.first_chunk = at;
        }
    }

    /// Phase 4: the finished record, ended at `ended_at`; see the module docs for the order.
    pub fn finish(self, end: CallEnd, ended_at: Instant, policy: &CapturePolicy) -> FinishedCall {
        let Self {
            mut call,
            response,
            started,
            started_wall,
            first_chunk,
        } = self;
        let elapsed = ended_at.saturating_duration_since(started);
        call.timings.duration = Some(elapsed);
        // Time to first chunk is a property of a streamed answer, not of an error body.
        if let Some(first) = first_chunk
            && call.request.stream
            && response.is_stream()
        {
            call.timings.time_to_first_chunk = Some(first.saturating_duration_since(started));
        }
        // The protocol decides, not the transport (ADR 0001): once the terminal event went
        // through, the call is complete however the connection ends afterwards — real clients
        // close right after `[DONE]`. Before it, the cut is the outcome.
        let after_terminal = end.transport_end().filter(|_| response.reached_end());
        let complete = end == CallEnd::Completed || after_terminal.is_some();
        response.finish(policy, &mut call, complete);
        // How the exchange ended wins over what the payload said.
        match after_terminal {
            Some(transport_end) => call.transport_end = Some(transport_end),
            None => {
                if let Some(error) = end.error_type() {
                    call.error_type = Some(error);
                }
            }
        }
        call.redact_fields(&policy.redactor);
        let ended_wall = started_wall
            .checked_add(elapsed)
            .unwrap_or_else(SystemTime::now);
        FinishedCall {
            call,
            started_wall,
            ended_wall,
        }
    }
}

/// A finished model call, ready to be emitted.
#[derive(Debug)]
pub struct FinishedCall {
    /// The complete record.
    pub call: LlmCall,
    /// When the call started (wall clock).
    pub started_wall: SystemTime,
    /// When it ended (wall clock, from the monotonic duration).
    pub ended_wall: SystemTime,
}

impl FinishedCall {
    /// Ends `span` — started with the call's start attributes — with the end attributes, the
    /// compatibility keys and the status, and records the gen_ai metrics: the one emission path
    /// of every recorder.
    pub fn emit(&self, span: &mut impl Span, compat: Compat, metrics: Option<&dyn CallMetrics>) {
        let call = &self.call;
        span.set_attributes(call.end_attributes());
        if !compat.is_off() {
            span.set_attributes(compat.attributes(call, self.started_wall));
        }
        span.set_status(call.status());
        span.end_with_timestamp(self.ended_wall);
        if let Some(metrics) = metrics {
            metrics.record(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::semconv::{operation, provider};

    const SSE_DONE: &[u8] = b"data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
    const SSE_CUT: &[u8] =
        b"data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";

    fn sse_head(status: u16) -> ResponseHead {
        ResponseHead {
            status,
            content_type: Some("text/event-stream".into()),
            ..ResponseHead::default()
        }
    }

    fn streaming_call() -> (CallLifecycle, Instant) {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        call.request.stream = true;
        let started = Instant::now();
        let life = CallLifecycle::new(Api::OpenAiChat, call, SystemTime::now(), started, 1 << 20);
        (life, started)
    }

    fn run(body: &[u8], end: CallEnd) -> LlmCall {
        let policy = CapturePolicy::default();
        let (mut life, started) = streaming_call();
        life.on_response_head(sse_head(200), &policy);
        life.on_chunk(body, started + Duration::from_millis(10));
        life.finish(end, started + Duration::from_millis(50), &policy)
            .call
    }

    #[test]
    fn completed_streams_have_ttfc_and_duration() {
        let call = run(SSE_DONE, CallEnd::Completed);
        assert_eq!(call.error_type, None);
        assert_eq!(call.timings.duration, Some(Duration::from_millis(50)));
        assert_eq!(
            call.timings.time_to_first_chunk,
            Some(Duration::from_millis(10))
        );
        assert_eq!(call.transport_end, None);
    }

    #[test]
    fn after_the_terminal_event_the_transport_is_only_noted() {
        for (end, noted) in [
            (CallEnd::Cancelled, transport_end::CLIENT_CLOSED),
            (CallEnd::Truncated, transport_end::UPSTREAM_CLOSED),
            (CallEnd::TimedOut, transport_end::UPSTREAM_IDLE),
        ] {
            let call = run(SSE_DONE, end);
            assert_eq!(call.error_type, None);
            assert_eq!(call.transport_end, Some(noted));
        }
    }

    #[test]
    fn before_the_terminal_event_the_cut_is_the_outcome() {
        for (end, error) in [
            (CallEnd::Cancelled, error_type::CLIENT_DISCONNECTED),
            (CallEnd::Truncated, error_type::STREAM_TRUNCATED),
            (CallEnd::TimedOut, error_type::UPSTREAM_TIMEOUT),
            (CallEnd::Unreachable, error_type::UPSTREAM_UNREACHABLE),
        ] {
            let call = run(SSE_CUT, end);
            assert_eq!(call.error_type.as_deref(), Some(error));
            assert_eq!(call.transport_end, None);
        }
        let call = run(SSE_CUT, CallEnd::Failed("upstream_head_timeout".into()));
        assert_eq!(call.error_type.as_deref(), Some("upstream_head_timeout"));
    }

    #[test]
    fn error_bodies_have_no_time_to_first_chunk() {
        let policy = CapturePolicy::default();
        let (mut life, started) = streaming_call();
        life.on_response_head(
            ResponseHead {
                content_type: Some("application/json".into()),
                ..sse_head(429)
            },
            &policy,
        );
        life.on_chunk(
            br#"{"error":{"type":"rate_limit"}}"#,
            started + Duration::from_millis(5),
        );
        let call = life
            .finish(
                CallEnd::Completed,
                started + Duration::from_millis(6),
                &policy,
            )
            .call;
        assert_eq!(call.timings.time_to_first_chunk, None);
        assert_eq!(call.http_status, Some(429));
        // The error body names the error.
        assert_eq!(call.effective_error_type(), Some("rate_limit"));
    }

    #[test]
    fn the_forwarding_paths_first_chunk_wins() {
        let policy = CapturePolicy::default();
        let (mut life, started) = streaming_call();
        life.on_response_head(sse_head(200), &policy);
        life.on_chunk(SSE_DONE, started + Duration::from_millis(30));
        life.first_chunk_at(Some(started + Duration::from_millis(3)));
        life.first_chunk_at(None);
        let call = life
            .finish(
                CallEnd::Completed,
                started + Duration::from_millis(40),
                &policy,
            )
            .call;
        assert_eq!(
            call.timings.time_to_first_chunk,
            Some(Duration::from_millis(3))
        );
    }

    #[test]
    fn secrets_in_failure_types_are_redacted_to_other() {
        let policy = CapturePolicy::default();
        let (life, started) = streaming_call();
        let call = life
            .finish(
                CallEnd::Failed("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789".into()),
                started,
                &policy,
            )
            .call;
        assert_eq!(call.error_type.as_deref(), Some(error_type::OTHER));
    }
}
