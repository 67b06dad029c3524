//! A raw hyper client, so these tests see exactly the bytes and connection behaviour on the wire.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

pub use llmtap_mock::{MockConfig, MockUpstream};

/// What came back: the head, the body bytes received, and whether the body ended cleanly.
#[derive(Debug)]
pub struct Received {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `Some` when the body stopped with an error (connection closed or stream reset).
    pub body_error: Option<String>,
}

impl Received {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of the SSE body, asserting the exact framing on the way: every event
    /// is exactly one `data: ` line followed by one blank line.
    pub fn sse_data(&self) -> Result<Vec<String>> {
        let text = self.text();
        let Some(framed) = text.strip_suffix("\n\n") else {
            return Err(anyhow!("stream does not end with a blank line: {text:?}"));
        };
        framed
            .split("\n\n")
            .map(|event| {
                let data = event
                    .strip_prefix("data: ")
                    .ok_or_else(|| anyhow!("event without `data: ` prefix: {event:?}"))?;
                if data.contains('\n') {
                    return Err(anyhow!("event with more than one line: {event:?}"));
                }
                Ok(data.to_owned())
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn start(config: MockConfig) -> Result<MockUpstream> {
    Ok(MockUpstream::bind_local(config).await?)
}

pub fn post_json(path: &str, body: &Value) -> Result<Request<Full<Bytes>>> {
    Ok(Request::post(path)
        .header("content-type", "application/json")
        .header("host", "mock")
        .body(Full::new(Bytes::from(body.to_string())))?)
}

pub fn with_scenario(
    mut request: Request<Full<Bytes>>,
    scenario: &str,
) -> Result<Request<Full<Bytes>>> {
    request
        .headers_mut()
        .insert("x-mock-scenario", scenario.parse()?);
    Ok(request)
}

/// Sends one request over a fresh HTTP/1.1 connection and reads the whole body, keeping what
/// arrived before any error.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Result<Received> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await?;
    read(response).await
}

/// Same over HTTP/2 with prior knowledge (h2c).
pub async fn send_h2(addr: SocketAddr, request: Request<Full<Bytes>>) -> Result<Received> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let (mut parts, body) = request.into_parts();
    parts.uri = format!("http://{addr}{}", parts.uri).parse()?;
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    read(response).await
}

async fn read(response: hyper::Response<hyper::body::Incoming>) -> Result<Received> {
    let (parts, mut body) = response.into_parts();
    let mut bytes = BytesMut::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(error) => {
                body_error = Some(error.to_string());
                break;
            }
        }
    }
    Ok(Received {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: bytes.freeze(),
        body_error,
    })
}
