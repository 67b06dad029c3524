//! Re-sending a JSONL trace file to an OTLP endpoint (`llmtap push`).
//!
//! The file already holds OTLP `TracesData`, so it is sent as-is in
//! `ExportTraceServiceRequest`s: no round trip through SDK spans, which would lose per-line
//! resources and scopes. gRPC uses the tonic client generated in `opentelemetry-proto`; HTTP
//! uses the hyper client the workspace already has, with protobuf or OTLP/JSON bodies.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use tonic::transport::Channel;

use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use crate::error::{ExportConfigError, ReadError};
use crate::reader::{JsonlReader, ReadStats};

/// Largest response body read from an HTTP collector (spec default limit).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Attempts per request for retryable failures (first try included).
const MAX_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Why one request failed; bounded, for the report and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendErrorKind {
    /// No connection could be made (refused, DNS, connect timeout).
    Unreachable,
    /// Connected, but no answer within the timeout.
    Timeout,
    /// The collector answered with an error status.
    Rejected,
    /// The request could not be built.
    Encode,
}

/// One failed request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Classification.
    pub kind: SendErrorKind,
    /// One-line description (no header values).
    pub message: String,
    retryable: bool,
}

impl SendError {
    fn new(kind: SendErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable,
        }
    }
}

/// What the collector accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Spans the collector reported as rejected in a partial success.
    pub rejected_spans: u64,
}

/// An OTLP/gRPC or OTLP/HTTP trace client. Create it inside a tokio runtime.
#[derive(Debug)]
pub struct OtlpSender {
    endpoint: String,
    protocol: OtlpProtocol,
    headers: Vec<(String, String)>,
    timeout: Duration,
    compression: OtlpCompression,
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    Grpc(TraceServiceClient<Channel>),
    Http(Client<HttpConnector, Full<Bytes>>),
}

impl OtlpSender {
    /// Builds the client; connects lazily on the first send.
    pub fn new(config: &OtlpConfig) -> Result<Self, ExportConfigError> {
        if config.endpoint.starts_with("https://") {
            return Err(ExportConfigError::Unsupported {
                var: "endpoint".to_owned(),
                value: crate::config::redact_userinfo(&config.endpoint),
                reason: "TLS is not compiled in; push to a collector over http://".to_owned(),
            });
        }
        let transport = match config.protocol {
            OtlpProtocol::Grpc => {
                let endpoint = tonic::transport::Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| {
                        ExportConfigError::invalid(
                            "endpoint",
                            crate::config::redact_userinfo(&config.endpoint),
                            crate::config::redact_secrets(&e.to_string()),
                        )
                    })?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .tcp_nodelay(true);
                let mut client = TraceServiceClient::new(endpoint.connect_lazy());
                if config.compression == OtlpCompression::Gzip {
                    client = client
                        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Transport::Grpc(client)
            }
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(config.timeout));
                Transport::Http(Client::builder(TokioExecutor::new()).build(connector))
            }
        };
        Ok(Self {
            endpoint: config.endpoint.clone(),
            protocol: config.protocol,
            headers: config.headers.clone(),
            timeout: config.timeout,
            compression: config.compression,
            transport,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one request, retrying transient failures (429/502/503/504, gRPC UNAVAILABLE,
    /// connection errors) with doubling backoff.
    pub async fn send(
        &mut self,
        resource_spans: Vec<ResourceSpans>,
    ) -> Result<SendOutcome, SendError> {
        let request = ExportTraceServiceRequest { resource_spans };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(self.timeout, self.send_once(&request)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::new(
                    SendErrorKind::Timeout,
                    true,
                    format!("no answer within {} ms", self.timeout.as_millis()),
                )),
            };
            match result {
                Err(e) if e.retryable && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &mut self,
        request: &ExportTraceServiceRequest,
    ) -> Result<SendOutcome, SendError> {
        match &mut self.transport {
            Transport::Grpc(client) => {
                let mut req = tonic::Request::new(request.clone());
                for (k, v) in &self.headers {
                    let key = k.to_ascii_lowercase();
                    if let (Ok(key), Ok(value)) = (
                        key.parse::<tonic::metadata::AsciiMetadataKey>(),
                        v.parse::<tonic::metadata::AsciiMetadataValue>(),
                    ) {
                        req.metadata_mut().insert(key, value);
                    }
                }
                match client.export(req).await {
                    Ok(resp) => Ok(SendOutcome {
                        rejected_spans: resp
                            .into_inner()
                            .partial_success
                            .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
                    }),
                    Err(status) => Err(classify_grpc(&status)),
                }
            }
            Transport::Http(client) => {
                let (body, content_type) = match self.protocol {
                    OtlpProtocol::HttpJson => (
                        serde_json::to_vec(request).map_err(|e| {
                            SendError::new(SendErrorKind::Encode, false, e.to_string())
                        })?,
                        "application/json",
                    ),
                    _ => (request.encode_to_vec(), "application/x-protobuf"),
                };
                let body = match self.compression {
                    OtlpCompression::Gzip => gzip(&body).map_err(|e| {
                        SendError::new(SendErrorKind::Encode, false, format!("gzip: {e}"))
                    })?,
                    OtlpCompression::None => body,
                };
                let mut builder = http::Request::post(&self.endpoint)
                    .header(http::header::CONTENT_TYPE, content_type)
                    .header(
                        http::header::USER_AGENT,
                        concat!("llmtap/", env!("CARGO_PKG_VERSION")),
                    );
                if self.compression == OtlpCompression::Gzip {
                    builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
                }
                for (k, v) in &self.headers {
                    builder = builder.header(k.as_str(), v.as_str());
                }
                let req = builder.body(Full::new(Bytes::from(body))).map_err(|e| {
                    SendError::new(SendErrorKind::Encode, false, format!("request: {e}"))
                })?;
                let resp = client.request(req).await.map_err(|e| {
                    if e.is_connect() {
                        SendError::new(
                            SendErrorKind::Unreachable,
                            true,
                            format!("cannot connect: {}", source_chain(&e)),
                        )
                    } else {
                        SendError::new(
                            SendErrorKind::Unreachable,
                            true,
                            format!("connection failed: {}", source_chain(&e)),
                        )
                    }
                })?;
                let status = resp.status();
                let body = read_bounded(resp.into_body()).await;
                if status.is_success() {
                    Ok(SendOutcome {
                        rejected_spans: rejected_from_body(self.protocol, &body),
                    })
                } else {
                    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                    Err(SendError::new(
                        SendErrorKind::Rejected,
                        retryable,
                        format!("collector answered HTTP {status}"),
                    ))
                }
            }
        }
    }
}

fn classify_grpc(status: &tonic::Status) -> SendError {
    let chain = source_chain(status);
    match status.code() {
        tonic::Code::Unavailable
            if chain.contains("connect") || chain.contains("refused") || chain.contains("dns") =>
        {
            SendError::new(
                SendErrorKind::Unreachable,
                true,
                format!("cannot connect: {chain}"),
            )
        }
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::Aborted => {
            SendError::new(
                SendErrorKind::Rejected,
                true,
                format!(
                    "collector answered {:?}: {}",
                    status.code(),
                    status.message()
                ),
            )
        }
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            SendError::new(SendErrorKind::Timeout, true, chain)
        }
        code => SendError::new(
            SendErrorKind::Rejected,
            false,
            format!("collector answered {code:?}: {}", status.message()),
        ),
    }
}

/// `e: cause: root cause` on one line.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.replace('\n', " ")
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

/// Reads at most [`MAX_RESPONSE_BYTES`]; errors and oversize just end the read (the status
/// already decided success).
async fn read_bounded(mut body: hyper::body::Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_RESPONSE_BYTES {
                break;
            }
            out.extend_from_slice(&data);
        }
    }
    out
}

fn rejected_from_body(protocol: OtlpProtocol, body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    match protocol {
        OtlpProtocol::HttpJson => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                let n = v.get("partialSuccess")?.get("rejectedSpans")?.clone();
                match n {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => s.parse().ok(),
                    _ => None,
                }
            })
            .unwrap_or(0),
        _ => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
    }
}

/// Tuning for [`push_file`].
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Lines are grouped into one request until it holds at least this many spans (a line is
    /// never split).
    pub spans_per_request: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            spans_per_request: 512,
        }
    }
}

/// Totals of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    /// Requests sent successfully.
    pub requests: u64,
    /// Spans in successful requests (rejected ones included).
    pub spans_sent: u64,
    /// Spans in failed requests, or not sent because the push stopped.
    pub spans_failed: u64,
    /// Spans the collector reported as rejected (partial success).
    pub spans_rejected: u64,
    /// What reading the file saw (lines, torn last line, invalid lines).
    pub read: ReadStats,
}

/// A push that could not run or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The client cannot be built.
    #[error(transparent)]
    Config(#[from] ExportConfigError),
    /// The collector cannot be reached; the push stopped.
    #[error("cannot reach OTLP collector at {endpoint}: {reason}")]
    Unreachable {
        /// Where we tried to send.
        endpoint: String,
        /// Transport error, one line.
        reason: String,
        /// Counts up to the stop.
        report: PushReport,
    },
}

impl PushError {
    /// Bounded classification.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read(e) => e.kind(),
            Self::Config(e) => e.kind(),
            Self::Unreachable { .. } => "unreachable",
        }
    }
}

/// Sends every span of `path` to the collector in `config`, `on_progress` after each request.
/// Stops with [`PushError::Unreachable`] when the collector cannot be reached; other failed
/// requests are counted in the report and the push goes on. Must run inside a tokio runtime.
pub async fn push_file(
    path: &Path,
    config: &OtlpConfig,
    options: PushOptions,
    mut on_progress: impl FnMut(&PushReport),
) -> Result<PushReport, PushError> {
    let mut reader = JsonlReader::open(path)?;
    let mut sender = OtlpSender::new(config)?;
    let mut report = PushReport::default();
    let mut pending: Vec<ResourceSpans> = Vec::new();
    let mut pending_spans = 0usize;
    let target = options.spans_per_request.max(1);

    loop {
        let next = reader.next();
        let at_end = next.is_none();
        match next {
            Some(Ok(data)) => {
                pending_spans += count_spans(&data.resource_spans);
                pending.extend(data.resource_spans);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        if pending_spans >= target || (at_end && !pending.is_empty()) {
            let batch = std::mem::take(&mut pending);
            let n = std::mem::take(&mut pending_spans) as u64;
            match sender.send(batch).await {
                Ok(outcome) => {
                    report.requests += 1;
                    report.spans_sent += n;
                    report.spans_rejected += outcome.rejected_spans;
                }
                Err(e) if e.kind == SendErrorKind::Unreachable => {
                    report.spans_failed += n;
                    // Count what is left unread as failed too, without holding it.
                    for data in reader.by_ref().flatten() {
                        report.spans_failed += count_spans(&data.resource_spans) as u64;
                    }
                    report.read = reader.stats();
                    return Err(PushError::Unreachable {
                        endpoint: sender.endpoint().to_owned(),
                        reason: e.message,
                        report,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, spans = n, "OTLP request failed");
                    report.spans_failed += n;
                }
            }
            report.read = reader.stats();
            on_progress(&report);
        }
        if at_end {
            break;
        }
    }
    report.read = reader.stats();
    Ok(report)
}

fn count_spans(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum()
}
