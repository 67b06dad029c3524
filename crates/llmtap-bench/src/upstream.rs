//! The fixed-latency upstream: OpenAI-shaped JSON after a delay, or SSE with N chunks spaced by a
//! fixed delay. Every SSE chunk carries `"bench_t":<unix ns>` (its send time) so the client can
//! measure how long each chunk spent in the path. Per-request overrides in headers
//! (`x-bench-delay-us`, `x-bench-chunks`, `x-bench-chunk-delay-us`) are forwarded unchanged by
//! every proxy under test.

use std::convert::Infallible;
use std::pin::Pin;
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

/// A sink that answers 200 to anything (the OTLP/HTTP collector stand-in).
pub(crate) async fn serve_sink(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let _ = crate::load::drain(req.into_body()).await;
                let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
                resp.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/x-protobuf"),
                );
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
