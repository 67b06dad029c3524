//! The fixed-latency upstream: OpenAI-shaped JSON after a delay, or SSE with N chunks spaced by a
//! fixed delay. Every SSE chunk carries `"bench_t":<unix ns>` (its send time) so the client can
//! measure how long each chunk spent in the path. Per-request overrides in headers
//! (`x-bench-delay-us`, `x-bench-chunks`, `x-bench-chunk-delay-us`) are forwarded unchanged by
//! every proxy under test.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::clock::unix_ns;

/// Defaults for requests that carry no override header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamConfig {
    pub(crate) delay: Duration,
    pub(crate) chunks: usize,
    pub(crate) chunk_delay: Duration,
}

const JSON_BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog. This is a fixed benchmark answer of a typical short length.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":22,"total_tokens":46,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_bench"}"#;

fn header_u64(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A response body fed from a channel.
pub(crate) struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

type UpBody = http_body_util::Either<http_body_util::Full<Bytes>, ChannelBody>;

async fn handle(cfg: UpstreamConfig, req: Request<Incoming>) -> Response<UpBody> {
    let delay = header_u64(&req, "x-bench-delay-us").map_or(cfg.delay, Duration::from_micros);
    let chunks = header_u64(&req, "x-bench-chunks").map_or(cfg.chunks, |n| n as usize);
    let chunk_delay =
        header_u64(&req, "x-bench-chunk-delay-us").map_or(cfg.chunk_delay, Duration::from_micros);
    // Read (and drop) the whole body; look for the stream flag in its first 4 KiB only.
    let mut body = req.into_body();
    let mut head: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data()
            && head.len() < 4096
        {
            head.extend_from_slice(&data[..data.len().min(4096 - head.len())]);
        }
    }
    let stream = contains(&head, b"\"stream\":true") || contains(&head, b"\"stream\": true");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !stream {
        let mut resp = Response::new(UpBody::Left(http_body_util::Full::new(Bytes::from_static(
            JSON_BODY.as_bytes(),
        ))));
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().insert(
            "x-request-id",
            hyper::header::HeaderValue::from_static("req_bench"),
        );
        return resp;
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for i in 0..chunks {
            if i > 0 && !chunk_delay.is_zero() {
                tokio::time::sleep(chunk_delay).await;
            }
            let line = format!(
                "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}],\"bench_t\":{}}}\n\n",
                unix_ns()
            );
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
        let tail = format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":24,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
            24 + chunks
        );
        let _ = tx.send(Bytes::from(tail)).await;
    });
    let mut resp = Response::new(UpBody::Right(ChannelBody(rx)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    resp
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub(crate) async fn serve(listener: TcpListener, cfg: UpstreamConfig) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(handle(cfg, req).await)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What one OTLP sink received.
#[derive(Debug, Default)]
pub(crate) struct SinkStats {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Spans counted in the bodies (OTLP/HTTP protobuf or JSON, uncompressed).
    pub(crate) spans: AtomicU64,
    /// Trace bodies whose spans could not be counted (compressed, or not OTLP).
    pub(crate) undecoded: AtomicU64,
    /// Requests to other paths than `/v1/traces` (OTLP logs or metrics).
    pub(crate) other: AtomicU64,
}

/// Bodies past this are drained uncounted.
const SINK_BODY_LIMIT: usize = 64 << 20;

/// A sink that answers 200 to anything (the OTLP/HTTP collector stand-in) and counts the spans
/// it is sent.
pub(crate) async fn serve_sink(listener: TcpListener, stats: Arc<SinkStats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let stats = Arc::clone(&stats);
                async move {
                    record(&stats, req).await;
                    let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/x-protobuf"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn record(stats: &SinkStats, req: Request<Incoming>) {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let traces = req.uri().path().ends_with("/v1/traces");
    let json = header(hyper::header::CONTENT_TYPE).contains("json");
    let encoded = !matches!(
        header(hyper::header::CONTENT_ENCODING).as_str(),
        "" | "identity"
    );
    let mut body = req.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if buf.len() + data.len() <= SINK_BODY_LIMIT {
                buf.extend_from_slice(&data);
            }
        }
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(total as u64, Ordering::Relaxed);
    if !traces {
        stats.other.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let spans = if encoded || total != buf.len() {
        None
    } else if json {
        Some(count(&buf, b"\"spanId\"") as u64)
    } else {
        count_spans_protobuf(&buf)
    };
    match spans {
        Some(n) => stats.spans.fetch_add(n, Ordering::Relaxed),
        None => stats.undecoded.fetch_add(1, Ordering::Relaxed),
    };
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// The length-delimited fields numbered `want` in one protobuf message; None if it does not
/// parse.
fn ld_fields(mut b: &[u8], want: u64) -> Option<Vec<&[u8]>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let skip = match key & 7 {
            0 => {
                varint(&mut b)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut b)?).ok()?,
            5 => 4,
            _ => return None,
        };
        if skip > b.len() {
            return None;
        }
        let (field, rest) = b.split_at(skip);
        if key & 7 == 2 && key >> 3 == want {
            out.push(field);
        }
        b = rest;
    }
    Some(out)
}

/// Spans in an OTLP `ExportTraceServiceRequest`: resource_spans (1) → scope_spans (2) → spans (2).
pub(crate) fn count_spans_protobuf(b: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for rs in ld_fields(b, 1)? {
        for ss in ld_fields(rs, 2)? {
            n += ld_fields(ss, 2)?.len() as u64;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_spans_in_an_otlp_protobuf_request() {
        // Hand-encoded: 2 resource_spans; the first with one scope of 2 spans and a resource
        // (field 1) to skip, the second with 2 scopes of 1 span each.
        fn ld(field: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![(field << 3) | 2, body.len() as u8];
            v.extend_from_slice(body);
            v
        }
        let span = {
            let mut s = ld(1, &[7; 16]);
            s.extend(ld(5, b"chat"));
            s.extend([0x39, 1, 2, 3, 4, 5, 6, 7, 8]); // field 7, fixed64
            s
        };
        let scope2 = [ld(1, &ld(1, b"x")), ld(2, &span), ld(2, &span)].concat();
        let scope1 = [ld(2, &span)].concat();
        let rs1 = [ld(1, &ld(1, b"attrs")), ld(2, &scope2)].concat();
        let rs2 = [ld(2, &scope1), ld(2, &scope1)].concat();
        let req = [ld(1, &rs1), ld(1, &rs2)].concat();
        assert_eq!(count_spans_protobuf(&req), Some(4));
        assert_eq!(count_spans_protobuf(&[]), Some(0));
        assert_eq!(count_spans_protobuf(&[0x0a, 0x05, 1]), None);
    }
}
