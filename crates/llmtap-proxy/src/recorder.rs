//! The per-call context and its explicit phases:
//! [`CallRecorder::on_request`] → [`CallRecorder::on_request_body`] →
//! [`CallRecorder::on_response_head`] → [`CallRecorder::on_chunk`]* → [`CallRecorder::finish`].
//!
//! `on_request` runs before the request is forwarded and is cheap: the span starts with the
//! sampling-relevant attributes, the model taken by [`codec::peek_model`] without parsing the
//! body. The full parse (`on_request_body`) runs in the call's recorder task once the response
//! head is back and on its way to the client, so a large prompt adds nothing to the time to
//! first byte.
//!
//! `finish` is the only place a span ends. It takes the recording out of an `Option`, so a second
//! call is a no-op, and `Drop` calls it for the paths where nobody else could (the client hung up
//! while we waited for the upstream's headers, or the task was cancelled): every span ends exactly
//! once.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use llmtap_core::call::LlmCall;
use llmtap_core::capture::CapturePolicy;
use llmtap_core::codec::{self, Api, ResponseCapture, Route};
use llmtap_core::compat::Compat;
use llmtap_core::content_coding::{self, ContentCoding};
use llmtap_core::headers::{RateLimit, rate_limit, upstream_request_id};
use opentelemetry::Context;
use opentelemetry::trace::{Span as _, SpanContext, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use llmtap_export::GenAiMetrics;

use crate::body::{BodyEnd, BodyOutcome};
use crate::error::ProxyError;
use crate::headers::AgentHeaders;
use crate::stats::ProxyStats;

use llmtap_core::semconv::capture_error::{
    BODY_OVER_BUDGET as CAPTURE_TOO_LARGE, CAPTURE_BUFFER_FULL,
    CHUNK_COPIES_LOST as CAPTURE_CHUNKS_LOST,
    CONTENT_ENCODING_UNSUPPORTED as CAPTURE_ENCODING_UNSUPPORTED,
    INVALID_JSON as CAPTURE_INVALID_JSON,
};
use llmtap_core::semconv::error_type::{
    CLIENT_DISCONNECTED as ERROR_CLIENT_DISCONNECTED, SHUTDOWN_GRACE_EXCEEDED as ERROR_SHUTDOWN,
    STREAM_TRUNCATED as ERROR_STREAM_TRUNCATED, UPSTREAM_TIMEOUT as ERROR_UPSTREAM_TIMEOUT,
};
use llmtap_core::semconv::transport_end;

/// How a call ended, as far as the span is concerned.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The body ended (see [`BodyEnd`]).
    Body(BodyEnd),
    /// No response could be produced.
    Failed(ProxyError),
    /// Dropped before any response: the client left while the upstream was still thinking.
    Abandoned,
}

#[derive(Debug)]
struct Recording {
    span: Span,
    call: LlmCall,
    api: Api,
    policy: Arc<CapturePolicy>,
    stats: Arc<ProxyStats>,
    started: Instant,
    status: Option<StatusCode>,
    response: ResponseCapture,
    /// gen_ai metrics, recorded for every call whatever the sampler decided.
    metrics: Option<GenAiMetrics>,
    /// Extra keys for other backends' conventions, and the wall-clock start they need.
    compat: Compat,
    started_wall: SystemTime,
    /// The request's `content-encoding`, undone on the copy before parsing.
    request_encoding: Option<String>,
    max_capture_bytes: usize,
}

/// One recorded call.
#[derive(Debug)]
pub(crate) struct CallRecorder {
    recording: Option<Recording>,
    span_context: SpanContext,
}

/// What the recorder keeps of the upstream response head (taken on the forwarding path, so the
/// header map itself is never copied).
#[derive(Debug)]
pub(crate) struct ResponseHead {
    status: StatusCode,
    content_type: Option<String>,
    content_encoding: Option<String>,
    upstream_request_id: Option<String>,
    rate_limit: RateLimit,
}

impl ResponseHead {
    pub(crate) fn new(status: StatusCode, headers: &HeaderMap) -> Self {
        Self {
            status,
            content_type: headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            content_encoding: header_text(headers, http::header::CONTENT_ENCODING),
            upstream_request_id: upstream_request_id(|name| {
                headers.get(name).and_then(|v| v.to_str().ok())
            }),
            rate_limit: rate_limit(|name| headers.get(name).and_then(|v| v.to_str().ok())),
        }
    }
}

/// A header's value as text (an unreadable value counts as present but unknown: `"?"`, which no
/// decoder accepts, so its capture is skipped rather than misread).
pub(crate) fn header_text(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().map_or_else(|_| "?".to_owned(), str::to_owned))
}

/// Everything `on_request` needs.
pub(crate) struct RequestFacts<'a> {
    /// The matched route: API, upstream path (recorded without query, so `key=` never is) and
    /// what the path itself says (Gemini's model and stream flag).
    pub(crate) route: &'a Route,
    pub(crate) provider: String,
    pub(crate) server_address: Option<String>,
    pub(crate) server_port: Option<u16>,
    /// When the request head arrived: the span starts there, before the body is read.
    pub(crate) started_at: SystemTime,
    /// The request body copy (the prefix when it was over the capture budget); only peeked
    /// here, parsed by [`CallRecorder::on_request_body`].
    pub(crate) body: &'a [u8],
    /// The request's `content-encoding`: the copy is decoded before it is parsed.
    pub(crate) content_encoding: Option<String>,
    pub(crate) agent: AgentHeaders,
    pub(crate) parent: &'a Context,
    pub(crate) max_capture_bytes: usize,
    pub(crate) metrics: Option<GenAiMetrics>,
    pub(crate) compat: Compat,
}

impl CallRecorder {
    /// Phase 1: start the span with the sampling-relevant attributes (on the forwarding path:
    /// no body parse here).
    pub(crate) fn on_request(
        facts: RequestFacts<'_>,
        tracer: &SdkTracer,
        policy: Arc<CapturePolicy>,
        stats: Arc<ProxyStats>,
    ) -> Self {
        // `Instant` for durations, measured back to the head's arrival.
        let started = Instant::now()
            .checked_sub(facts.started_at.elapsed().unwrap_or_default())
            .unwrap_or_else(Instant::now);
        let api = facts.route.api;
        let mut call = facts.route.new_call(facts.provider);
        call.server_address = facts.server_address;
        call.server_port = facts.server_port;
        let path = facts.route.upstream_path.as_str();
        call.route = Some(path.split_once('?').map_or(path, |(p, _)| p).to_owned());
        call.agent.agent_name = facts.agent.agent_name;
        call.agent.conversation_id = facts.agent.session;
        call.agent.meta = facts.agent.meta;
        if call.request.model.is_none() && facts.content_encoding.is_none() {
            call.request.model = codec::peek_model(facts.body);
        }
        call.redact_fields(&policy.redactor);
        let span = tracer
            .span_builder(call.span_name())
            .with_kind(call.span_kind())
            .with_attributes(call.start_attributes())
            .with_start_time(facts.started_at)
            .start_with_context(tracer, facts.parent);
        let span_context = span.span_context().clone();
        Self {
            recording: Some(Recording {
                span,
                call,
                api,
                policy,
                stats,
                started,
                status: None,
                response: ResponseCapture::new(facts.route.api, facts.max_capture_bytes),
                metrics: facts.metrics,
                compat: facts.compat,
                started_wall: facts.started_at,
                request_encoding: facts.content_encoding,
                max_capture_bytes: facts.max_capture_bytes,
            }),
            span_context,
        }
    }

    /// Phase 1b, in the recorder task once the response head is back: parse the request copy
    /// (parameters, stream flag, captured content).
    pub(crate) fn on_request_body(&mut self, body: &[u8], complete: bool, no_room: bool) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        let call = &mut rec.call;
        if no_room {
            call.capture_error = Some(CAPTURE_BUFFER_FULL);
            return;
        }
        if !complete {
            call.capture_error = Some(CAPTURE_TOO_LARGE);
            return;
        }
        let decoded = match ContentCoding::from_header(rec.request_encoding.as_deref()) {
            Ok(coding) => content_coding::decode_whole(coding, body, rec.max_capture_bytes),
            Err(_) => {
                call.capture_error = Some(CAPTURE_ENCODING_UNSUPPORTED);
                return;
            }
        };
        let body = match &decoded {
            Ok(Some(decoded)) => decoded.as_slice(),
            Ok(None) => body,
            Err(err) => {
                call.capture_error = Some(err.capture_error());
                return;
            }
        };
        let peeked_model = call.request.model.is_none();
        if codec::parse_request(rec.api, body, &rec.policy, call).is_err() {
            call.capture_error = Some(CAPTURE_INVALID_JSON);
        }
        if peeked_model && call.request.model.is_some() {
            // The span started before the (encoded) body could be read: name it now.
            rec.span.update_name(call.span_name());
        }
    }

    /// The call's own span, for `traceresponse` and the upstream `traceparent`.
    pub(crate) fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    /// Context whose active span is this call's span, for propagation.
    pub(crate) fn propagation_context(&self) -> Context {
        Context::new().with_remote_span_context(self.span_context.clone())
    }

    /// Phase 2: status and headers of the upstream response.
    pub(crate) fn on_response_head(&mut self, head: ResponseHead) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        rec.status = Some(head.status);
        rec.call.http_status = Some(head.status.as_u16());
        rec.call.response.upstream_request_id = head.upstream_request_id;
        rec.call.response.rate_limit = head.rate_limit;
        // SSE for every API; Gemini's streamed JSON array is `application/json`, so for it the
        // route's stream flag decides.
        rec.response.on_head(
            head.status.as_u16(),
            head.content_type.as_deref(),
            rec.call.request.stream,
            &rec.policy,
        );
        rec.response
            .on_content_encoding(head.content_encoding.as_deref());
    }

    /// Phase 3: a copy of one body chunk, exactly as forwarded.
    pub(crate) fn on_chunk(&mut self, chunk: &Bytes) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        rec.response.on_chunk(chunk);
    }

    /// Phase 4: the one place the span ends.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        rec.finish(outcome);
    }
}

impl Drop for CallRecorder {
    fn drop(&mut self) {
        self.finish(Outcome::Abandoned);
    }
}

impl Recording {
    fn finish(mut self, outcome: Outcome) {
        let ended_at = match &outcome {
            Outcome::Body(end) => end.ended_at,
            _ => Instant::now(),
        };
        let call = &mut self.call;
        call.timings.duration = Some(ended_at.saturating_duration_since(self.started));

        let body_outcome = match outcome {
            Outcome::Body(end) => {
                // Time to first chunk is a property of a streamed answer, not of an error body.
                if let Some(first) = end.first_chunk_at
                    && call.request.stream
                    && self.response.is_stream()
                {
                    call.timings.time_to_first_chunk =
                        Some(first.saturating_duration_since(self.started));
                }
                if end.copies_lost > 0 && call.capture_error.is_none() {
                    call.capture_error = Some(CAPTURE_CHUNKS_LOST);
                }
                Some(end.outcome)
            }
            Outcome::Failed(err) => {
                if err.is_upstream_fault() {
                    self.stats.record_upstream_error();
                }
                call.error_type = Some(err.error_type().to_owned());
                None
            }
            Outcome::Abandoned => {
                call.error_type = Some(ERROR_CLIENT_DISCONNECTED.to_owned());
                None
            }
        };

        if let Some(body_outcome) = body_outcome {
            // The protocol decides, not the transport (ADR 0001): once the terminal event went to
            // the client, the call is complete however the connection ends afterwards — real
            // clients close right after `[DONE]`. Before it, the cut is the outcome.
            let reached_end = body_outcome != BodyOutcome::Completed && self.response.reached_end();
            let complete = body_outcome == BodyOutcome::Completed || reached_end;
            let response = std::mem::replace(&mut self.response, ResponseCapture::new(self.api, 0));
            response.finish(&self.policy, call, complete);
            if self.status.is_some_and(|s| !s.is_success()) {
                self.stats.record_upstream_error();
            }
            match (body_outcome, reached_end) {
                (BodyOutcome::Completed, _) => {}
                (BodyOutcome::UpstreamHangup, true) => {
                    call.transport_end = Some(transport_end::UPSTREAM_CLOSED);
                }
                (BodyOutcome::IdleTimeout, true) => {
                    call.transport_end = Some(transport_end::UPSTREAM_IDLE);
                }
                (BodyOutcome::ClientDisconnected, true) => {
                    call.transport_end = Some(transport_end::CLIENT_CLOSED);
                }
                (BodyOutcome::UpstreamHangup, false) => {
                    call.error_type = Some(ERROR_STREAM_TRUNCATED.to_owned());
                }
                (BodyOutcome::IdleTimeout, false) => {
                    call.error_type = Some(ERROR_UPSTREAM_TIMEOUT.to_owned());
                }
                (BodyOutcome::ClientDisconnected, false) => {
                    call.error_type = Some(ERROR_CLIENT_DISCONNECTED.to_owned());
                }
            }
        }

        // Closed by the end of the shutdown grace, not by the client: say so.
        if self.stats.grace_over() && call.error_type.as_deref() == Some(ERROR_CLIENT_DISCONNECTED)
        {
            call.error_type = Some(ERROR_SHUTDOWN.to_owned());
            self.stats.record_cut_by_shutdown();
        }

        let mut span = self.span;
        span.set_attributes(call.end_attributes());
        if !self.compat.is_off() {
            span.set_attributes(self.compat.attributes(call, self.started_wall));
        }
        span.set_status(call.status());
        span.end();
        if let Some(metrics) = &self.metrics {
            metrics.record(call);
        }
        self.stats.record_call_finished(call.error_type.is_some());
    }
}
