//! The per-call context and its explicit phases:
//! [`CallRecorder::on_request`] → [`CallRecorder::on_request_body`] →
//! [`CallRecorder::on_response_head`] → [`CallRecorder::on_chunk`]* → [`CallRecorder::finish`].
//!
//! `on_request` runs before the request is forwarded and is cheap: the span starts with the
//! sampling-relevant attributes, the model taken by [`codec::peek_model`] without parsing the
//! body — when the body had arrived whole; a body still streaming upstream names its model (and
//! its span) only once parsed. The full parse (`on_request_body`) runs in the call's recorder
//! task once the response head is back and on its way to the client and the upload has ended, so
//! a large prompt adds nothing to the time to first byte.
//!
//! The recorder is an adapter over [`llmtap_core::lifecycle::CallLifecycle`], which owns what a
//! model call's record means (outcome precedence, time to first chunk, decoding, redaction) and
//! its one emission path (span end, compatibility keys, gen_ai metrics) — the SDK's `ModelCall`
//! uses the same. The recorder decides when the span starts (at the request head, so its id can
//! go upstream and back in `traceresponse`), feeds the bytes as they are forwarded, and joins the
//! call to its agent's invocation span ([`crate::agents`]).
//!
//! `finish` is the only place a span ends. It takes the recording out of an `Option`, so a second
//! call is a no-op, and `Drop` calls it for the paths where nobody else could (the client hung up
//! while we waited for the upstream's headers, or the task was cancelled): every span ends exactly
//! once.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use llmtap_core::capture::CapturePolicy;
use llmtap_core::codec::{self, Api, Route};
use llmtap_core::compat::Compat;
use llmtap_core::content_coding::{self, ContentCoding};
use llmtap_core::lifecycle::{CallEnd, CallLifecycle, CallMetrics, ResponseHead};
use opentelemetry::trace::{Span as _, SpanContext, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use llmtap_export::GenAiMetrics;

use crate::agents::{AgentCall, AgentLease, AgentSpans};
use crate::body::{BodyEnd, CopyEnd};
use crate::error::ProxyError;
use crate::headers::AgentHeaders;
use crate::stats::ProxyStats;

use llmtap_core::semconv::GEN_AI_REQUEST_MODEL;
use llmtap_core::semconv::capture_error::{
    BODY_OVER_BUDGET as CAPTURE_TOO_LARGE, CAPTURE_BUFFER_FULL,
    CHUNK_COPIES_LOST as CAPTURE_CHUNKS_LOST,
    CONTENT_ENCODING_UNSUPPORTED as CAPTURE_ENCODING_UNSUPPORTED,
    INVALID_JSON as CAPTURE_INVALID_JSON, UPLOAD_INCOMPLETE as CAPTURE_UPLOAD_INCOMPLETE,
};
use llmtap_core::semconv::error_type::{
    CLIENT_DISCONNECTED as ERROR_CLIENT_DISCONNECTED, SHUTDOWN_GRACE_EXCEEDED as ERROR_SHUTDOWN,
};

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
    life: CallLifecycle,
    api: Api,
    policy: Arc<CapturePolicy>,
    stats: Arc<ProxyStats>,
    /// gen_ai metrics, recorded for every call whatever the sampler decided.
    metrics: Option<GenAiMetrics>,
    /// Extra keys for other backends' conventions.
    compat: Compat,
    /// The request's `content-encoding`, undone on the copy before parsing.
    request_encoding: Option<String>,
    max_capture_bytes: usize,
    /// The agent invocation this call belongs to (its span is the call span's parent).
    agent: Option<AgentLease>,
}

/// One recorded call.
#[derive(Debug)]
pub(crate) struct CallRecorder {
    recording: Option<Recording>,
    span_context: SpanContext,
}

/// What the recorder keeps of the upstream response head, read on the forwarding path (so the
/// header map itself is never copied).
pub(crate) fn response_head(status: StatusCode, headers: &HeaderMap) -> ResponseHead {
    // The head is read by some forty names (rate-limit spellings of every provider, request
    // ids). A `HeaderMap` lookup by text validates and hashes the name each time; one pass over
    // the head's few readable headers, then plain compares, costs a fraction of that.
    let readable: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    ResponseHead::from_lookup(
        status.as_u16(),
        header_text(headers, http::header::CONTENT_ENCODING),
        |wanted| {
            readable
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| *value)
        },
    )
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
    /// The request body when it had arrived whole before the request went upstream (the usual
    /// small request; empty when it streams); only peeked here, the copy is parsed by
    /// [`CallRecorder::on_request_body`].
    pub(crate) body: &'a [u8],
    /// The request's `content-encoding`: the copy is decoded before it is parsed.
    pub(crate) content_encoding: Option<String>,
    pub(crate) agent: AgentHeaders,
    pub(crate) parent: &'a Context,
    pub(crate) max_capture_bytes: usize,
    pub(crate) metrics: Option<GenAiMetrics>,
    pub(crate) compat: Compat,
    /// Where agent invocations are kept: a call naming its agent gets its invocation's span as
    /// parent (unless the caller records that span itself).
    pub(crate) agent_spans: &'a Arc<AgentSpans>,
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
        call.agent.agent_id = facts.agent.agent_id;
        call.agent.conversation_id = facts.agent.session;
        call.agent.meta = facts.agent.meta;
        if call.request.model.is_none() && facts.content_encoding.is_none() {
            call.request.model = codec::peek_model(facts.body);
        }
        // Once, before any field becomes a span name, attribute or agent key.
        call.redact_fields(&policy.redactor);
        let agent = match &call.agent.agent_name {
            Some(name) if !facts.agent.agent_span_recorded => facts.agent_spans.enter(&AgentCall {
                name,
                id: call.agent.agent_id.as_deref(),
                session: call.agent.conversation_id.as_deref(),
                meta: &call.agent.meta,
                parent: facts.parent,
                started_at: facts.started_at,
            }),
            _ => None,
        };
        let parent = agent
            .as_ref()
            .map_or_else(|| facts.parent.clone(), AgentLease::parent_context);
        let span = tracer
            .span_builder(call.span_name())
            .with_kind(call.span_kind())
            .with_attributes(call.start_attributes())
            .with_start_time(facts.started_at)
            .start_with_context(tracer, &parent);
        let span_context = span.span_context().clone();
        if let Some(agent) = &agent {
            agent.note_call(&span_context);
        }
        Self {
            recording: Some(Recording {
                span,
                life: CallLifecycle::new(
                    api,
                    call,
                    facts.started_at,
                    started,
                    facts.max_capture_bytes,
                ),
                api,
                policy,
                stats,
                metrics: facts.metrics,
                compat: facts.compat,
                request_encoding: facts.content_encoding,
                max_capture_bytes: facts.max_capture_bytes,
                agent,
            }),
            span_context,
        }
    }

    /// Phase 1b, in the recorder task once the response head is back and the upload has ended:
    /// parse the request copy (parameters, stream flag, captured content). A span that started
    /// without its model (not in what had arrived, or an encoded body) is named now.
    pub(crate) fn on_request_body(&mut self, body: &[u8], copy: CopyEnd) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        let call = rec.life.call_mut();
        // A cut-off copy is not parsed (nor does it name its model): say why it is missing.
        let incomplete = match copy {
            CopyEnd::Complete => None,
            CopyEnd::NoRoom => Some(CAPTURE_BUFFER_FULL),
            CopyEnd::OverBudget => Some(CAPTURE_TOO_LARGE),
            CopyEnd::Cut => Some(CAPTURE_UPLOAD_INCOMPLETE),
        };
        if incomplete.is_some() {
            call.capture_error = incomplete;
            return;
        }
        let model_was_missing = call.request.model.is_none();
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
        if codec::parse_request(rec.api, body, &rec.policy, call).is_err() {
            call.capture_error = Some(CAPTURE_INVALID_JSON);
        }
        if model_was_missing {
            rec.name_span_after_the_model();
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
        rec.life.on_response_head(head, &rec.policy);
    }

    /// Phase 3: a copy of one body chunk, exactly as forwarded (its time is taken from the
    /// forwarding path at the end, see [`BodyEnd::first_chunk_at`]).
    pub(crate) fn on_chunk(&mut self, chunk: &Bytes) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        rec.life.on_chunk(chunk, Instant::now());
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
    /// The span started before its model was known: once the parse has found it (already
    /// redacted: `codec::parse_request` redacts every field on return), name the span after it
    /// and add the start attribute the span lacks (end attributes never repeat it).
    fn name_span_after_the_model(&mut self) {
        let call = self.life.call();
        if let Some(model) = &call.request.model {
            self.span
                .set_attribute(KeyValue::new(GEN_AI_REQUEST_MODEL, model.clone()));
            self.span.update_name(call.span_name());
        }
    }

    fn finish(mut self, outcome: Outcome) {
        let (end, ended_at) = match outcome {
            Outcome::Body(body) => {
                self.life.first_chunk_at(body.first_chunk_at);
                if body.copies_lost > 0 {
                    let call = self.life.call_mut();
                    call.capture_error.get_or_insert(CAPTURE_CHUNKS_LOST);
                }
                if self
                    .life
                    .call()
                    .http_status
                    .is_some_and(|s| !(200..300).contains(&s))
                {
                    self.stats.record_upstream_error();
                }
                (body.outcome, body.ended_at)
            }
            Outcome::Failed(err) => {
                if err.is_upstream_fault() {
                    self.stats.record_upstream_error();
                }
                (CallEnd::Failed(err.error_type().to_owned()), Instant::now())
            }
            Outcome::Abandoned => (CallEnd::Cancelled, Instant::now()),
        };
        let mut finished = self.life.finish(end, ended_at, &self.policy);
        let call = &mut finished.call;
        // Closed by the end of the shutdown grace, not by the client: say so.
        if self.stats.grace_over() && call.error_type.as_deref() == Some(ERROR_CLIENT_DISCONNECTED)
        {
            call.error_type = Some(ERROR_SHUTDOWN.to_owned());
            self.stats.record_cut_by_shutdown();
        }
        let metrics = self.metrics.as_ref().map(|m| m as &dyn CallMetrics);
        finished.emit(&mut self.span, self.compat, metrics);
        if let Some(agent) = self.agent.take() {
            let call = &finished.call;
            agent.finish(&call.usage, &call.provider, finished.ended_wall);
        }
        self.stats
            .record_call_finished(finished.call.error_type.is_some());
    }
}
