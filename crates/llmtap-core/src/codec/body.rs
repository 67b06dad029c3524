//! [`ResponseCapture`]: the copy of one response body that the proxy and the SDK decode, so both
//! read answers exactly the same way — a streamed answer through [`StreamState`] (SSE, or Gemini's
//! JSON-array stream), anything else buffered up to a byte budget and parsed once at the end.

use crate::call::LlmCall;
use crate::capture::CapturePolicy;
use crate::codec::{self, Api, StreamState};
use crate::content_coding::{Budget, ContentCoding, Decoder};
use crate::semconv::capture_error;

/// Accumulates one response body. Feed it the head ([`on_head`](Self::on_head)), every chunk
/// ([`on_chunk`](Self::on_chunk)), then [`finish`](Self::finish) once.
#[derive(Debug)]
pub struct ResponseCapture {
    api: Api,
    max_bytes: usize,
    status: Option<u16>,
    body: Body,
    /// Undoes the body's `content-encoding` for the copy (the traffic keeps its bytes).
    decoder: Option<Decoder>,
    /// Why the copy could not be decoded (unsupported or corrupt coding, bomb past the budget).
    coding_error: Option<&'static str>,
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
            decoder: None,
            coding_error: None,
        }
    }

    /// The body's `content-encoding` (call after [`on_head`](Self::on_head)). gzip, deflate, br
    /// and zstd are decoded for the copy, within the capture budget: the whole body's for a
    /// buffered body, per chunk for a stream (decoded as it comes). Anything else skips the
    /// capture with `llmtap.capture.error = content_encoding_unsupported`.
    pub fn on_content_encoding(&mut self, value: Option<&str>) {
        let budget = match self.body {
            Body::Stream(_) => Budget::PerChunk(self.max_bytes.max(MIN_STREAM_CHUNK_BUDGET)),
            _ => Budget::Total(self.max_bytes),
        };
        match ContentCoding::from_header(value) {
            Ok(coding) => self.decoder = Decoder::new(coding, budget),
            Err(_) => {
                self.coding_error = Some(capture_error::CONTENT_ENCODING_UNSUPPORTED);
                self.body = Body::Buffer {
                    bytes: Vec::new(),
                    overflow: false,
                };
            }
        }
    }

    /// Whether the protocol's terminal event is in the copy (see [`StreamState::reached_end`]);
    /// for a buffered body, whether it holds one complete JSON document. Called before
    /// [`finish`](Self::finish) by a recorder whose transport ended early, to tell a client that
    /// closed after the answer from one that left in the middle.
    pub fn reached_end(&self) -> bool {
        if self.coding_error.is_some() {
            return false;
        }
        match &self.body {
            Body::None => false,
            Body::Stream(state) => state.reached_end(),
            Body::Buffer { bytes, overflow } => {
                !overflow
                    && !bytes.is_empty()
                    && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
            }
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

    /// One body chunk, exactly as received (still encoded, if it was).
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        if self.coding_error.is_some() {
            return;
        }
        let Some(mut decoder) = self.decoder.take() else {
            self.take_decoded(chunk);
            return;
        };
        let fed = decoder.feed(chunk, |decoded| self.take_decoded(decoded));
        self.after_decode(decoder, fed);
    }

    fn after_decode(
        &mut self,
        decoder: Decoder,
        fed: Result<(), crate::content_coding::DecodeError>,
    ) {
        match fed {
            Ok(()) => self.decoder = Some(decoder),
            Err(err) => {
                self.coding_error = Some(err.capture_error());
                if let Body::Buffer { bytes, overflow } = &mut self.body {
                    *overflow = true;
                    *bytes = Vec::new();
                }
            }
        }
    }

    /// Decoded body bytes.
    fn take_decoded(&mut self, chunk: &[u8]) {
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
    pub fn finish(mut self, policy: &CapturePolicy, call: &mut LlmCall, complete: bool) {
        if let Some(mut decoder) = self.decoder.take() {
            let flushed = decoder.finish(|decoded| self.take_decoded(decoded));
            self.after_decode(decoder, flushed);
        }
        if let Some(err) = self.coding_error {
            call.capture_error.get_or_insert(err);
        }
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
                    && self.coding_error.is_none()
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

/// Least per-chunk decoding budget for a stream, so a tiny capture budget still decodes a
/// compressed stream's ordinary chunks.
const MIN_STREAM_CHUNK_BUDGET: usize = 1024 * 1024;

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

    #[test]
    fn an_unknown_coding_skips_the_capture_with_a_named_error() {
        let policy = CapturePolicy::default();
        let mut capture = ResponseCapture::new(Api::OpenAiChat, 1024);
        capture.on_head(200, Some("application/json"), false, &policy);
        capture.on_content_encoding(Some("lzma-9000"));
        capture.on_chunk(b"\x00\x01 not json");
        assert!(!capture.reached_end());
        let mut c = call();
        capture.finish(&policy, &mut c, true);
        assert_eq!(
            c.capture_error,
            Some(capture_error::CONTENT_ENCODING_UNSUPPORTED)
        );
        assert_eq!(c.error_type, None);
    }

    #[test]
    fn a_gzipped_stream_decodes_and_knows_its_end() {
        use std::io::Write as _;
        let policy = CapturePolicy::default();
        let sse = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(sse).unwrap();
        let gz = enc.finish().unwrap();
        let mut capture = ResponseCapture::new(Api::OpenAiChat, 1024);
        capture.on_head(200, Some("text/event-stream"), true, &policy);
        capture.on_content_encoding(Some("gzip"));
        for piece in gz.chunks(5) {
            capture.on_chunk(piece);
        }
        assert!(capture.reached_end());
        let mut c = call();
        c.request.stream = true;
        capture.finish(&policy, &mut c, false);
        assert_eq!(c.usage.output_tokens, Some(1));
        assert_eq!(c.capture_error, None);
    }
}
