//! [`ResponseCapture`]: the copy of one response body that the proxy and the SDK decode, so both
//! read answers exactly the same way — a streamed answer through [`StreamState`] (SSE, or Gemini's
//! JSON-array stream), anything else buffered up to a byte budget and parsed once at the end.

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::{self, Api, StreamState};
use crate::semconv::capture_error;

/// Accumulates one response body. Feed it the head ([`on_head`](Self::on_head)), every chunk
/// ([`on_chunk`](Self::on_chunk)), then [`finish`](Self::finish) once.
#[derive(Debug)]
pub struct ResponseCapture {
    api: Api,
    max_bytes: usize,
    status: Option<u16>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// No head seen yet.
    None,
    /// A non-streaming body (or an error body), kept up to the budget.
    Buffer { bytes: Vec<u8>, overflow: bool },
    /// A 2xx stream, decoded incrementally.
    Stream(Box<StreamState>),
}

impl ResponseCapture {
    /// A capture for `api` keeping at most `max_bytes` of a non-streamed body.
    pub fn new(api: Api, max_bytes: usize) -> Self {
        Self {
            api,
            max_bytes,
            status: None,
            body: Body::None,
        }
    }

    /// The response head: a 2xx stream (by content type, or the route's stream flag for Gemini's
    /// JSON array) is decoded as it comes; anything else is buffered.
    pub fn on_head(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        stream_requested: bool,
        policy: &CapturePolicy,
    ) {
        self.status = Some(status);
        let format = codec::stream_format(self.api, stream_requested, content_type)
            .filter(|_| (200..300).contains(&status));
        self.body = match format {
            Some(format) => {
                Body::Stream(Box::new(StreamState::with_format(self.api, format, policy)))
            }
            None => Body::Buffer {
                bytes: Vec::new(),
                overflow: false,
            },
        };
    }

    /// True once the head said this is a stream being decoded.
    pub fn is_stream(&self) -> bool {
        matches!(self.body, Body::Stream(_))
    }

    /// One body chunk, exactly as received.
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        match &mut self.body {
            Body::None => {}
            Body::Buffer { bytes, overflow } => {
                if *overflow {
                    return;
                }
                if bytes.len() + chunk.len() > self.max_bytes {
                    *overflow = true;
                    *bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(chunk);
                }
            }
            Body::Stream(state) => state.feed(chunk),
        }
    }

    /// Writes what the body said into `call`: a stream's accumulated output, usage and finish
    /// reasons; a complete 2xx body's parse; an error body's provider code as `error.type` (else
    /// the status code). Over-budget and undecodable copies mark `llmtap.capture.error`.
    /// `complete` is false when the body was cut (hang-up, disconnect, timeout).
    pub fn finish(self, policy: &CapturePolicy, call: &mut LlmCall, complete: bool) {
        match self.body {
            Body::None => {}
            Body::Stream(state) => state.finish(policy, call, complete),
            Body::Buffer { bytes, overflow } => {
                let status = self.status.unwrap_or(200);
                let ok = (200..300).contains(&status);
                if overflow {
                    call.capture_error
                        .get_or_insert(capture_error::BODY_OVER_BUDGET);
                } else if ok
                    && complete
                    && codec::parse_response(self.api, &bytes, policy, call).is_err()
                {
                    call.capture_error
                        .get_or_insert(capture_error::INVALID_JSON);
                }
                if !ok {
                    call.error_type =
                        Some(codec::parse_error_body(&bytes).unwrap_or_else(|| status.to_string()));
                }
            }
        }
        call.redact_fields(&policy.redactor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::{operation, provider};

    fn call() -> LlmCall {
        LlmCall::new(operation::CHAT, provider::OPENAI)
    }

    #[test]
    fn error_bodies_give_the_provider_code_else_the_status() {
        let policy = CapturePolicy::default();
        let mut capture = ResponseCapture::new(Api::OpenAiChat, 1024);
        capture.on_head(429, Some("application/json"), false, &policy);
        capture.on_chunk(br#"{"error":{"code":"rate_limit_exceeded"}}"#);
        let mut c = call();
        capture.finish(&policy, &mut c, true);
        assert_eq!(c.error_type.as_deref(), Some("rate_limit_exceeded"));

        let mut capture = ResponseCapture::new(Api::OpenAiChat, 1024);
        capture.on_head(503, Some("text/html"), false, &policy);
        capture.on_chunk(b"<html>busy</html>");
        let mut c = call();
        capture.finish(&policy, &mut c, true);
        assert_eq!(c.error_type.as_deref(), Some("503"));
    }

    #[test]
    fn over_budget_bodies_are_marked_not_parsed() {
        let policy = CapturePolicy::default();
        let mut capture = ResponseCapture::new(Api::OpenAiChat, 8);
        capture.on_head(200, Some("application/json"), false, &policy);
        capture.on_chunk(br#"{"id":"chatcmpl-1","#);
        capture.on_chunk(br#""model":"m"}"#);
        let mut c = call();
        capture.finish(&policy, &mut c, true);
        assert_eq!(c.capture_error, Some(capture_error::BODY_OVER_BUDGET));
        assert_eq!(c.response.id, None);
    }

    #[test]
    fn streams_are_decoded_and_gemini_arrays_follow_the_route() {
        let policy = CapturePolicy::default();
        let mut capture = ResponseCapture::new(Api::OpenAiChat, 8);
        capture.on_head(200, Some("text/event-stream"), true, &policy);
        assert!(capture.is_stream());
        capture.on_chunk(b"data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n");
        let mut c = call();
        capture.finish(&policy, &mut c, true);
        assert_eq!(c.response.id.as_deref(), Some("c1"));
        assert_eq!(c.response.finish_reasons, vec!["stop".to_owned()]);

        let mut gemini = ResponseCapture::new(Api::GeminiGenerateContent, 1024);
        gemini.on_head(200, Some("application/json"), true, &policy);
        assert!(
            gemini.is_stream(),
            "a streamed Gemini JSON array is a stream"
        );
        let mut plain = ResponseCapture::new(Api::GeminiGenerateContent, 1024);
        plain.on_head(200, Some("application/json"), false, &policy);
        assert!(!plain.is_stream());
    }
}
