//! An in-process fake OTLP collector: gRPC (tonic `TraceServiceServer`) and HTTP (`POST
//! /v1/traces`, protobuf or JSON, optionally gzip) on `127.0.0.1:0`, recording every
//! `ExportTraceServiceRequest` with the protocol and headers it came with.
//!
//! It can also refuse exports (HTTP status / matching gRPC code) so tests can drive retry and
//! drop counters, and [`closed_port`] gives an address where nothing listens, for "collector is
//! down" tests.

use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;

use crate::spans::{OtlpProtocol, RecordedSpan, flatten_resource_spans};

/// Largest request body accepted (compressed or not): the OTLP spec's default max request size.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// The OTLP/HTTP path for traces.
pub const TRACES_PATH: &str = "/v1/traces";

/// One export request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub protocol: OtlpProtocol,
    /// The body arrived gzip-compressed (`content-encoding` / `grpc-encoding`).
    pub gzip: bool,
    /// HTTP headers, or gRPC metadata as headers (so `OTEL_EXPORTER_OTLP_HEADERS` is testable).
    pub headers: HeaderMap,
    pub request: ExportTraceServiceRequest,
}

impl RecordedRequest {
    pub fn spans(&self) -> Vec<RecordedSpan> {
        flatten_resource_spans(&self.request.resource_spans, Some(self.protocol))
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    None,
    Always { status: u16 },
    Next { status: u16, remaining: usize },
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    /// OTLP/HTTP metric exports (`/v1/metrics`), decoded.
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    refusal: Mutex<Refusal>,
    refused: AtomicUsize,
    rejected: AtomicUsize,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// `Some(status)` when this attempt must be refused; consumes one of a `refuse_next` budget.
    fn take_refusal(&self) -> Option<u16> {
        let mut refusal = lock(&self.refusal);
        let status = match *refusal {
            Refusal::None => None,
            Refusal::Always { status } => Some(status),
            Refusal::Next { status, remaining } => {
                *refusal = if remaining <= 1 {
                    Refusal::None
                } else {
                    Refusal::Next {
                        status,
                        remaining: remaining - 1,
                    }
                };
                Some(status)
            }
        };
        if status.is_some() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
        }
        status
    }

    fn record(&self, recorded: RecordedRequest) {
        lock(&self.requests).push(recorded);
        self.changed.notify_waiters();
    }

    fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

/// A fake OTLP collector listening on two ephemeral localhost ports. Stops when dropped.
#[derive(Debug)]
pub struct FakeCollector {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    grpc_shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeCollector {
    /// Binds both listeners and starts serving. Must run inside a tokio runtime.
    ///
    /// # Panics
    /// If `127.0.0.1:0` can't be bound (a broken test machine, not a test outcome).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            metrics: Mutex::new(Vec::new()),
            refusal: Mutex::new(Refusal::None),
            refused: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            changed: Notify::new(),
        });

        let grpc_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake collector gRPC listener on 127.0.0.1:0");
        let http_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake collector HTTP listener on 127.0.0.1:0");
        let grpc_addr = grpc_listener.local_addr().expect("gRPC listener address");
        let http_addr = http_listener.local_addr().expect("HTTP listener address");

        let (grpc_shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(GrpcHandler {
            shared: shared.clone(),
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
        let grpc_task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    service,
                    TcpIncoming::from(grpc_listener),
                    async move {
                        let _ = shutdown_rx.await;
                    },
                )
                .await;
        });
        let http_task = tokio::spawn(serve_http(http_listener, shared.clone()));

        Self {
            shared,
            grpc_addr,
            http_addr,
            grpc_shutdown: Some(grpc_shutdown),
            tasks: vec![grpc_task, http_task],
        }
    }

    /// `http://127.0.0.1:<port>`: what a gRPC exporter's endpoint takes.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:<port>`: the base URL (`OTEL_EXPORTER_OTLP_ENDPOINT` style); the
    /// exporter appends `/v1/traces`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The full traces URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` style, used verbatim).
    pub fn http_traces_url(&self) -> String {
        format!("http://{}{TRACES_PATH}", self.http_addr)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Every accepted request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every span of every accepted request, flattened with resource and scope, in the order
    /// the spans started (they arrive in the order they ended; see `jsonl::read_spans`).
    pub fn spans(&self) -> Vec<RecordedSpan> {
        let mut spans: Vec<RecordedSpan> = lock(&self.shared.requests)
            .iter()
            .flat_map(RecordedRequest::spans)
            .collect();
        crate::spans::sort_by_start(&mut spans);
        spans
    }

    /// Waits until at least `n` spans were accepted; the error says what did arrive.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Result<Vec<RecordedSpan>> {
        self.wait_until(timeout, |c| c.spans().len() >= n)
            .await
            .map(|()| self.spans())
            .or_else(|_| {
                let spans = self.spans();
                let names: Vec<&str> = spans.iter().map(RecordedSpan::name).collect();
                bail!(
                    "waited {timeout:?} for {n} spans at the fake collector; got {}: {names:?} \
                     (refused attempts: {}, rejected payloads: {})",
                    spans.len(),
                    self.refused_count(),
                    self.rejected_count()
                )
            })
    }

    /// Waits until at least `n` export attempts were refused (see [`Self::refuse_with`]).
    pub async fn wait_for_refusals(&self, n: usize, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, |c| c.refused_count() >= n)
            .await
            .or_else(|_| {
                bail!(
                    "waited {timeout:?} for {n} refused attempts; got {}",
                    self.refused_count()
                )
            })
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn(&Self) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Register before checking, so a change between the check and the await is not lost.
            notified.as_mut().enable();
            if done(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("timed out");
            }
        }
    }

    /// Refuse every export from now on: HTTP gets `status`, gRPC the matching code (503 →
    /// `UNAVAILABLE`, 429 → `RESOURCE_EXHAUSTED`, ...). Refused requests are counted, not recorded.
    pub fn refuse_with(&self, status: u16) {
        *lock(&self.shared.refusal) = Refusal::Always { status };
    }

    /// Refuse only the next `n` exports, then accept again (a collector that recovers).
    pub fn refuse_next(&self, n: usize, status: u16) {
        *lock(&self.shared.refusal) = if n == 0 {
            Refusal::None
        } else {
            Refusal::Next {
                status,
                remaining: n,
            }
        };
    }

    /// Accept exports again.
    pub fn accept(&self) {
        *lock(&self.shared.refusal) = Refusal::None;
    }

    /// Export attempts refused on purpose so far.
    pub fn refused_count(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Requests whose body could not be decoded (wrong content type, bad gzip, bad protobuf/JSON).
    pub fn rejected_count(&self) -> usize {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Forget everything recorded so far (refusal settings stay).
    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Every metric export received over HTTP (`/v1/metrics`), in order.
    pub fn metric_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        lock(&self.shared.metrics).clone()
    }

    /// Waits until a metric export containing `name` arrived; returns all exports so far.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Vec<ExportMetricsServiceRequest>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let requests = self.metric_requests();
            let found = requests.iter().any(|r| {
                r.resource_metrics
                    .iter()
                    .flat_map(|rm| &rm.scope_metrics)
                    .flat_map(|sm| &sm.metrics)
                    .any(|m| m.name == name)
            });
            if found {
                return Ok(requests);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no metric {name} within {timeout:?} ({} metric exports seen)",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The OTLP/HTTP path for metrics.
pub const METRICS_PATH: &str = "/v1/metrics";

async fn handle_http_metrics(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let Some(body) = read_body_bounded(req.into_body(), MAX_REQUEST_BYTES).await else {
        shared.reject();
        return Ok(respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "unreadable",
        ));
    };
    let decoded = if json {
        serde_json::from_slice::<ExportMetricsServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportMetricsServiceRequest::decode(body.as_ref()).map_err(|e| e.to_string())
    };
    match decoded {
        Ok(request) => {
            lock(&shared.metrics).push(request);
            shared.changed.notify_waiters();
            let content_type = if json {
                "application/json"
            } else {
                "application/x-protobuf"
            };
            let body: Bytes = if json {
                Bytes::from_static(b"{}")
            } else {
                Bytes::new()
            };
            Ok(respond(StatusCode::OK, content_type, body))
        }
        Err(error) => {
            shared.reject();
            Ok(respond(StatusCode::BAD_REQUEST, "text/plain", error))
        }
    }
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        if let Some(tx) = self.grpc_shutdown.take() {
            let _ = tx.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Debug)]
struct GrpcHandler {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl TraceService for GrpcHandler {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Some(status) = self.shared.take_refusal() {
            return Err(tonic::Status::new(
                grpc_code_for_http(status),
                format!("refused by FakeCollector (as HTTP {status})"),
            ));
        }
        let headers = request.metadata().clone().into_headers();
        let gzip = headers
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        self.shared.record(RecordedRequest {
            protocol: OtlpProtocol::Grpc,
            gzip,
            headers,
            request: request.into_inner(),
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The gRPC code an OTLP server sends where an HTTP one would send `status` (OTLP spec's
/// retryable set maps to `UNAVAILABLE` / `RESOURCE_EXHAUSTED`).
pub fn grpc_code_for_http(status: u16) -> tonic::Code {
    match status {
        400 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 | 501 => tonic::Code::Unimplemented,
        429 => tonic::Code::ResourceExhausted,
        500 => tonic::Code::Internal,
        502 | 503 => tonic::Code::Unavailable,
        504 => tonic::Code::DeadlineExceeded,
        _ => tonic::Code::Unknown,
    }
}

async fn serve_http(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connection tasks here means aborting this task (on drop) ends them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle_http(shared.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type HttpResponse = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

async fn handle_http(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    if req.uri().path() == METRICS_PATH && req.method() == Method::POST {
        return handle_http_metrics(shared, req).await;
    }
    if req.uri().path() != TRACES_PATH {
        return Ok(respond(StatusCode::NOT_FOUND, "text/plain", "not found"));
    }
    if req.method() != Method::POST {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST only",
        ));
    }
    let headers = req.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let protocol = if content_type.starts_with("application/x-protobuf") {
        OtlpProtocol::HttpProtobuf
    } else if content_type.starts_with("application/json") {
        OtlpProtocol::HttpJson
    } else {
        shared.reject();
        return Ok(respond(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain",
            "content-type must be application/x-protobuf or application/json",
        ));
    };
    let Some(raw) = read_body_bounded(req.into_body(), MAX_REQUEST_BYTES).await else {
        shared.reject();
        return Ok(respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "body unreadable or too large",
        ));
    };
    if let Some(status) = shared.take_refusal() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok(respond(status, "text/plain", "refused by FakeCollector"));
    }

    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let gzip = encoding == "gzip";
    let body = match encoding.as_str() {
        "gzip" => match gunzip_bounded(&raw, MAX_REQUEST_BYTES) {
            Some(b) => b,
            None => {
                shared.reject();
                return Ok(respond(StatusCode::BAD_REQUEST, "text/plain", "bad gzip"));
            }
        },
        "identity" | "" => raw.to_vec(),
        _ => {
            shared.reject();
            return Ok(respond(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain",
                "unsupported content-encoding",
            ));
        }
    };

    let decoded = match protocol {
        OtlpProtocol::HttpJson => {
            serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
        }
        _ => ExportTraceServiceRequest::decode(body.as_slice()).map_err(|e| e.to_string()),
    };
    let request = match decoded {
        Ok(r) => r,
        Err(e) => {
            shared.reject();
            return Ok(respond(StatusCode::BAD_REQUEST, "text/plain", e));
        }
    };
    shared.record(RecordedRequest {
        protocol,
        gzip,
        headers,
        request,
    });

    let ok = ExportTraceServiceResponse {
        partial_success: None,
    };
    Ok(match protocol {
        OtlpProtocol::HttpJson => respond(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec(&ok).unwrap_or_else(|_| b"{}".to_vec()),
        ),
        _ => respond(StatusCode::OK, "application/x-protobuf", ok.encode_to_vec()),
    })
}

/// Reads a body frame by frame, giving up past `limit` bytes (never an unbounded collect).
async fn read_body_bounded(mut body: Incoming, limit: usize) -> Option<Bytes> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return None;
            }
            buf.extend_from_slice(&data);
        }
    }
    Some(Bytes::from(buf))
}

fn gunzip_bounded(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    flate2::read::GzDecoder::new(data)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .ok()?;
    (u64::try_from(out.len()).unwrap_or(u64::MAX) <= limit).then_some(out)
}

/// A localhost port bound but never listened on: connecting to it is refused at once (no
/// timeout), and nothing else can take the port while this guard lives.
#[derive(Debug)]
pub struct ClosedPort {
    _socket: TcpSocket,
    addr: SocketAddr,
}

impl ClosedPort {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, ready to use as an exporter endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reserves a [`ClosedPort`].
///
/// # Panics
/// If no localhost socket can be created (a broken test machine).
pub fn closed_port() -> ClosedPort {
    let socket = TcpSocket::new_v4().expect("create a TCP socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("bound socket address");
    ClosedPort {
        _socket: socket,
        addr,
    }
}
