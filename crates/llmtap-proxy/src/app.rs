//! `App::build(config)` → `app.serve(listener, shutdown)`: the proxy as a library that tests start
//! in-process on `127.0.0.1:0` and the binary wraps with signals and exit codes.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use llmtap_core::capture::CapturePolicy;
use llmtap_core::codec::{self, Route};
use llmtap_core::env::{EnvSource, ProcessEnv};
use llmtap_export::{Pipeline, PipelineStats};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::agents::AgentSpans;
use crate::body::{
    BodyEnd, CopyEnd, ProxyBody, RequestBody, RequestCopy, TapBody, UploadError, UploadLimits,
    start_upload,
};
use crate::config::{Config, Upstream};
use crate::error::{HeadLimits, ProxyError};
use crate::headers::{
    HEADER_TRACERESPONSE, HeaderExtractor, HeaderInjector, strip_hop_by_hop, take_agent_headers,
    traceresponse,
};
use crate::pool::{PoolSettings, PoolSnapshot, UpstreamPool};
use crate::recorder::{CallRecorder, Outcome, RequestFacts, header_text, response_head};
use crate::stats::{Limit, ProxyStats, StatsSnapshot};
use llmtap_core::lifecycle::ResponseHead;

/// Instrumentation scope name of the proxy's spans.
pub const SCOPE_NAME: &str = "llmtap-proxy";
/// Chunk copies queued per call before the recorder is considered behind and copies are dropped
/// (the traffic itself is never held back).
const CHUNK_COPY_QUEUE: usize = 256;
/// Largest upstream response head accepted: real APIs send 20–60 headers (rate limits, request
/// ids, CDN and tracing headers); hyper's default of 100 turned a 150-header answer into a 502.
/// Past these the client gets a 502 naming the limit.
const RESPONSE_HEAD_LIMITS: HeadLimits = HeadLimits {
    max_headers: 512,
    max_bytes: 512 * 1024,
};
/// An idle upstream connection older than this is closed instead of reused.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long shutdown waits for recorder tasks to end spans after connections have closed.
const SPAN_DRAIN_LIMIT: Duration = Duration::from_millis(500);
/// Pause after an accept failed for lack of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Time allowed to flush both sinks at shutdown.
const TELEMETRY_SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);

type UpstreamClient = UpstreamPool<HttpsConnector<HttpConnector>, RequestBody>;

/// Errors building the proxy.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Content capture settings (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, redaction
    /// patterns) are invalid.
    #[error(transparent)]
    Capture(#[from] llmtap_core::capture::ConfigError),
    /// The exporter could not be set up (bad `OTEL_*` value, unwritable JSONL path).
    #[error(transparent)]
    Telemetry(#[from] llmtap_export::PipelineError),
}

/// Errors serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener failed in a way that is not a per-connection hiccup.
    #[error("listener failed: {0}")]
    Listener(#[source] std::io::Error),
}

/// What the proxy did, reported when it stops.
#[derive(Debug, Clone, Serialize)]
pub struct ShutdownReport {
    /// Proxy counters.
    pub proxy: StatsSnapshot,
    /// Per-sink span counters after the final flush.
    pub telemetry: PipelineStats,
    /// Calls still open when the grace period ran out (their spans were ended as abandoned).
    pub abandoned_calls: u64,
}

struct State {
    config: Config,
    client: UpstreamClient,
    tracer: SdkTracer,
    policy: Arc<CapturePolicy>,
    stats: Arc<ProxyStats>,
    pipeline: Pipeline,
    propagator: TraceContextPropagator,
    /// gen_ai metrics instruments when metrics are exported.
    metrics: Option<llmtap_export::GenAiMetrics>,
    /// Request-body bytes held for capture across every connection (permits are bytes).
    capture_buffer: Arc<Semaphore>,
    /// Open client connections (permits are connections).
    connections: Arc<Semaphore>,
    /// Open agent invocations and their `invoke_agent` spans.
    agent_spans: Arc<AgentSpans>,
}

/// A built proxy, ready to serve.
pub struct App {
    state: Arc<State>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the proxy with telemetry configured from the process environment.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        Self::build_with_env(config, &ProcessEnv).await
    }

    /// Builds the proxy reading `OTEL_*` settings from `env` (tests pass a map).
    pub async fn build_with_env(config: Config, env: &impl EnvSource) -> Result<Self, BuildError> {
        let mut policy = CapturePolicy::from_env(env)?;
        if config.no_content {
            policy.content = false;
        }
        let pipeline = Pipeline::builder()
            .service_name(&config.service_name)
            .jsonl(config.jsonl_config())
            .from_env(env)?
            .build()?;
        let tracer = pipeline.tracer(SCOPE_NAME);
        let agent_spans = AgentSpans::new(tracer.clone(), config.agent_quiet);
        let metrics = pipeline.metrics();
        let client = upstream_client(&config);
        let capture_buffer = Arc::new(Semaphore::new(
            config.max_buffered_bytes.min(Semaphore::MAX_PERMITS),
        ));
        let connections = Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        Ok(Self {
            state: Arc::new(State {
                capture_buffer,
                connections,
                config,
                client,
                tracer,
                policy: Arc::new(policy),
                stats: Arc::new(ProxyStats::default()),
                pipeline,
                propagator: TraceContextPropagator::new(),
                metrics,
                agent_spans,
            }),
        })
    }

    /// The proxy's counters (shared; live).
    pub fn stats(&self) -> Arc<ProxyStats> {
        Arc::clone(&self.state.stats)
    }

    /// Per-sink span counters.
    pub fn telemetry_stats(&self) -> PipelineStats {
        self.state.pipeline.stats()
    }

    /// Which sinks are on and where they write, as built (for the start-up banner).
    pub fn telemetry_summary(&self) -> llmtap_export::PipelineSummary {
        self.state.pipeline.summary().clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight calls finish within
    /// the grace period, ends every span and flushes both sinks.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ShutdownReport, ServeError> {
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let agent_sweeper = tokio::spawn(end_quiet_agents(Arc::clone(&self.state.agent_spans)));
        let mut shutdown = std::pin::pin!(shutdown);
        let builder = connection_builder(&self.state.config);
        loop {
            // The connection limit: past it, accepting waits and the kernel's queue holds the
            // rest, instead of every connection getting a slice of a starved proxy.
            let permit = match Arc::clone(&self.state.connections).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    self.state.stats.record_limit(Limit::ConnectionLimitWait);
                    tokio::select! {
                        () = &mut shutdown => break,
                        permit = Arc::clone(&self.state.connections).acquire_owned() => {
                            match permit {
                                Ok(permit) => permit,
                                Err(_) => break,
                            }
                        }
                    }
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let (stream, _peer) = match accepted {
                        Ok(pair) => pair,
                        Err(err) if is_transient_accept_error(&err) => {
                            tracing::debug!(%err, "accept failed; continuing");
                            continue;
                        }
                        Err(err) if is_resource_exhaustion(&err) => {
                            // Out of descriptors (or buffers): the pending connection stays in
                            // the queue and accept would fail again at once. Back off instead
                            // of spinning; open connections keep being served meanwhile.
                            self.state.stats.record_limit(Limit::AcceptError);
                            tracing::warn!(%err, "accept failed; backing off {ACCEPT_BACKOFF:?}");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                        Err(err) => return Err(ServeError::Listener(err)),
                    };
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&self.state);
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        // Boxed so its memory goes back as soon as the response head is out:
                        // hyper keeps the slot of an unboxed handler future (kilobytes, with
                        // the recorder inside) for the whole life of the connection.
                        let handled = Box::pin(handle(state, req));
                        async move { Ok::<_, Infallible>(handled.await) }
                    });
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    let stats = Arc::clone(&self.state.stats);
                    connections.spawn(async move {
                        if let Err(err) = conn.await {
                            if is_header_timeout(err.as_ref()) {
                                stats.record_limit(Limit::HeaderTimeout);
                            }
                            tracing::debug!(%err, "connection ended with an error");
                        }
                        drop(permit);
                    });
                }
            }
        }
        drop(listener);
        let grace = self.state.config.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "grace period over; closing remaining connections");
        }
        // Whatever is still open was cut by the grace: close it now (its calls end as
        // `shutdown_grace_exceeded`), so the process exits at the grace, not seconds later.
        self.state.stats.mark_grace_over();
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        // Recorder tasks end their spans as soon as they see the outcome.
        let deadline = tokio::time::Instant::now() + SPAN_DRAIN_LIMIT;
        while self.state.stats.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let abandoned_calls = self.state.stats.in_flight();
        // Every call has ended (or was counted abandoned): the agent spans end now, each at its
        // last descendant's end.
        agent_sweeper.abort();
        self.state.agent_spans.end_all();
        let proxy = self.state.stats.snapshot();
        let state = Arc::clone(&self.state);
        let telemetry =
            tokio::task::spawn_blocking(move || state.pipeline.shutdown(TELEMETRY_SHUTDOWN_LIMIT))
                .await
                .unwrap_or_else(|_| self.state.pipeline.stats());
        Ok(ShutdownReport {
            proxy,
            telemetry,
            abandoned_calls,
        })
    }
}

/// Ends agent invocations once they have been quiet for the configured period.
async fn end_quiet_agents(agents: Arc<AgentSpans>) {
    let mut tick = tokio::time::interval(agents.sweep_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        agents.end_quiet();
    }
}

fn is_transient_accept_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or the system is out of a resource; accepting
/// again at once fails the same way.
fn is_resource_exhaustion(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Whether a connection ended because its client sent no complete request head in time.
fn is_header_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// The server side of every client connection: HTTP/1 and h2c, with the header timeout (which
/// hyper also applies to an idle keep-alive connection waiting for its next request).
fn connection_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(config.header_timeout))
        .keep_alive_timeout(config.header_timeout);
    builder
}

fn upstream_client(config: &Config) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(err) => {
            tracing::warn!(%err, "no native root certificates; https upstreams will fail");
            let tls = rustls_empty_roots();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    let https = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    UpstreamPool::new(
        https,
        PoolSettings {
            max_connecting: config.upstream_max_connecting,
            idle_timeout: UPSTREAM_IDLE_TIMEOUT,
            max_headers: RESPONSE_HEAD_LIMITS.max_headers,
            max_head_bytes: RESPONSE_HEAD_LIMITS.max_bytes,
        },
    )
}

/// A TLS config that trusts nothing: https upstreams fail with a clear 502 instead of the proxy
/// refusing to start on a machine without a CA bundle (plain-http upstreams keep working).
fn rustls_empty_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// Which upstream a route goes to: an explicit provider prefix first, then the API's own
/// provider (`/v1/messages` → Anthropic, `:generateContent` → Gemini), then `/v1beta/...`
/// (Gemini's version prefix, incl. its OpenAI-compatible `/v1beta/openai/...`), else OpenAI.
fn upstream_for<'a>(config: &'a Config, route: Option<&Route>, path: &str) -> &'a Upstream {
    use llmtap_core::semconv::provider::{ANTHROPIC, GCP_GEMINI};
    let hint = route.and_then(|r| r.provider_hint).or_else(|| {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match (first, route.map(|r| r.api)) {
            ("anthropic", _) | (_, Some(codec::Api::AnthropicMessages)) => Some(ANTHROPIC),
            ("gemini" | "v1beta", _) | (_, Some(codec::Api::GeminiGenerateContent)) => {
                Some(GCP_GEMINI)
            }
            _ => None,
        }
    });
    match hint {
        Some(llmtap_core::semconv::provider::ANTHROPIC) => &config.upstream_anthropic,
        Some(llmtap_core::semconv::provider::GCP_GEMINI) => &config.upstream_gemini,
        _ => &config.upstream_openai,
    }
}

/// `base` + `path` + the original query, which is forwarded untouched and never recorded.
fn upstream_uri(base: &Uri, path: &str, query: Option<&str>) -> Option<Uri> {
    let prefix = base.path().trim_end_matches('/');
    let mut path_and_query = String::with_capacity(prefix.len() + path.len() + 64);
    path_and_query.push_str(prefix);
    path_and_query.push_str(path);
    if let Some(q) = query {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).ok()
}

/// Upstream base as shown in client-facing errors: scheme, host, port, prefix — no userinfo.
fn upstream_label(base: &Uri) -> String {
    let scheme = base.scheme_str().unwrap_or("http");
    let host = base.host().unwrap_or("");
    match base.port_u16() {
        Some(port) => format!(
            "{scheme}://{host}:{port}{}",
            base.path().trim_end_matches('/')
        ),
        None => format!("{scheme}://{host}{}", base.path().trim_end_matches('/')),
    }
}

fn default_port(base: &Uri) -> Option<u16> {
    base.port_u16().or_else(|| {
        base.scheme_str()
            .and_then(llmtap_core::default_port::for_scheme)
    })
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    if req.method() == Method::GET && req.uri().path() == "/healthz" {
        return health(&state);
    }
    let route = codec::route(req.uri().path());
    let upstream = upstream_for(&state.config, route.as_ref(), req.uri().path());
    match route {
        Some(route) => forward_recorded(&state, upstream, route, req).await,
        None => forward_unrecorded(&state, upstream, req).await,
    }
}

fn health(state: &State) -> Response<ProxyBody> {
    #[derive(Serialize)]
    struct Health<'a> {
        status: &'a str,
        #[serde(flatten)]
        proxy: StatsSnapshot,
        upstream_pool: PoolSnapshot,
        agent_invocations: AgentInvocations,
        sinks: PipelineStats,
    }
    /// Agent invocations with an open `invoke_agent` span, and those refused one because
    /// too many were open.
    #[derive(Serialize)]
    struct AgentInvocations {
        open: usize,
        refused: u64,
    }
    let body = serde_json::to_vec(&Health {
        status: "ok",
        proxy: state.stats.snapshot(),
        upstream_pool: state.client.snapshot(),
        agent_invocations: AgentInvocations {
            open: state.agent_spans.open(),
            refused: state.agent_spans.refused(),
        },
        sinks: state.pipeline.stats(),
    })
    .unwrap_or_else(|_| b"{\"status\":\"ok\"}".to_vec());
    json_response(StatusCode::OK, Bytes::from(body), None)
}

fn json_response(
    status: StatusCode,
    body: Bytes,
    traceresponse: Option<HeaderValue>,
) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(tr) = traceresponse {
        resp.headers_mut().insert(HEADER_TRACERESPONSE, tr);
    }
    resp
}

fn error_response(err: &ProxyError, traceresponse: Option<HeaderValue>) -> Response<ProxyBody> {
    json_response(err.status(), err.client_body(), traceresponse)
}

/// Sends `req` upstream with the head timeout; classifies failures.
async fn send_upstream(
    state: &State,
    upstream: &Upstream,
    req: Request<RequestBody>,
) -> Result<Response<Incoming>, ProxyError> {
    let limit = state.config.upstream_timeout;
    match tokio::time::timeout(limit, state.client.send(req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "upstream request failed");
            Err(ProxyError::from_client_error(
                upstream_label(&upstream.base),
                &err,
                RESPONSE_HEAD_LIMITS,
            ))
        }
        Err(_) => Err(ProxyError::UpstreamTimeout {
            upstream: upstream_label(&upstream.base),
            secs: limit.as_secs(),
        }),
    }
}

fn upstream_request(
    parts: http::request::Parts,
    uri: Uri,
    body: RequestBody,
) -> Request<RequestBody> {
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

fn prepare_response(resp: Response<Incoming>) -> (http::response::Parts, Incoming) {
    let (mut parts, body) = resp.into_parts();
    // RFC 9112 §6.3: with both, `transfer-encoding` framed the body and `content-length` is a
    // stale claim. The body goes on re-framed by hyper; a copied length would cut it off.
    if parts.headers.contains_key(TRANSFER_ENCODING) {
        parts.headers.remove(CONTENT_LENGTH);
    }
    strip_hop_by_hop(&mut parts.headers);
    (parts, body)
}

async fn forward_unrecorded(
    state: &State,
    upstream: &Upstream,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    state.stats.record_unrecorded();
    let (mut parts, body) = req.into_parts();
    let _ = take_agent_headers(&mut parts.headers);
    let Some(uri) = upstream_uri(&upstream.base, parts.uri.path(), parts.uri.query()) else {
        return json_response(StatusCode::BAD_REQUEST, Bytes::new(), None);
    };
    let body = RequestBody::Plain(body);
    match send_upstream(state, upstream, upstream_request(parts, uri, body)).await {
        Ok(resp) => {
            let (parts, body) = prepare_response(resp);
            Response::from_parts(parts, ProxyBody::Plain(body))
        }
        Err(err) => {
            state.stats.record_upstream_error();
            error_response(&err, None)
        }
    }
}

/// A recorded call. The span starts at the request head, before anything goes upstream (its
/// id goes upstream as `traceparent` and back as `traceresponse`). The body is not waited for:
/// what arrived with the head is read, and when that is the whole body it goes upstream with its
/// length; otherwise the request goes upstream at once and the rest of the body streams through
/// a tee that keeps the capture copy (see [`crate::body`]). The recorder task gets the copy when
/// the upload ends.
async fn forward_recorded(
    state: &State,
    upstream: &Upstream,
    route: Route,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    // Past the in-flight limit a call is refused at once, before any work: queueing it would
    // stall every call behind it. Not recorded (a span would be more of the work being shed);
    // counted in `/healthz` under `limits.calls_shed`.
    let limit = state.config.max_in_flight;
    if state.stats.in_flight() >= u64::try_from(limit).unwrap_or(u64::MAX) {
        state.stats.record_limit(Limit::CallShed);
        let mut response = error_response(&ProxyError::Overloaded { limit }, None);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let (mut parts, body) = req.into_parts();
    let agent = take_agent_headers(&mut parts.headers);
    let Some(uri) = upstream_uri(&upstream.base, &route.upstream_path, parts.uri.query()) else {
        return json_response(StatusCode::BAD_REQUEST, Bytes::new(), None);
    };
    let head_at = std::time::SystemTime::now();
    let limits = UploadLimits {
        max_bytes: state.config.max_capture_bytes,
        timeout: state.config.body_timeout,
        shared: Arc::clone(&state.capture_buffer),
        stats: Arc::clone(&state.stats),
    };
    let started = start_upload(body, &limits).await;

    let parent = state.propagator.extract(&HeaderExtractor(&parts.headers));
    let host = upstream.base.host().unwrap_or_default();
    let provider = upstream
        .provider_override
        .clone()
        .or_else(|| route.provider_hint.map(str::to_owned))
        .unwrap_or_else(|| codec::provider_for(route.api, host).to_owned());
    state.stats.record_request(&provider);
    let read = match &started {
        Ok(started) => &started.read,
        Err(cut) => &cut.partial,
    };
    let mut recorder = CallRecorder::on_request(
        RequestFacts {
            route: &route,
            provider,
            server_address: Some(host.to_owned()),
            server_port: default_port(&upstream.base),
            started_at: head_at,
            body: read,
            content_encoding: header_text(&parts.headers, CONTENT_ENCODING),
            agent,
            parent: &parent,
            max_capture_bytes: state.config.max_capture_bytes,
            metrics: state.metrics.clone(),
            compat: state.config.compat,
            agent_spans: &state.agent_spans,
        },
        &state.tracer,
        Arc::clone(&state.policy),
        Arc::clone(&state.stats),
    );
    let traceresponse = traceresponse(recorder.span_context());
    // The body had already failed (the client is gone): the call still gets its one span, from
    // the request head on, with what was read of the body.
    let started = match started {
        Ok(started) => started,
        Err(cut) => {
            let failure = ProxyError::from_upload(UploadError::ClientGone);
            tracing::debug!(error = %failure, "client request body failed");
            recorder.on_request_body(&cut.partial, CopyEnd::Cut);
            let response = error_response(&failure, traceresponse);
            recorder.finish(Outcome::Failed(failure));
            return response;
        }
    };

    // The upstream sees our span as the caller, so a traced upstream nests under this call.
    state.propagator.inject_context(
        &recorder.propagation_context(),
        &mut HeaderInjector(&mut parts.headers),
    );
    // A whole body goes with its length; a streamed one keeps the client's own framing.
    if let Some(length) = started.whole_length {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    let upstream_req = upstream_request(parts, uri, started.body);

    // The recorder task owns the call from here (see `record_call` for its order of work).
    let (head_tx, head_rx) = oneshot::channel::<Result<ResponseHead, ProxyError>>();
    let (copies_tx, copies_rx) = mpsc::channel::<Bytes>(CHUNK_COPY_QUEUE);
    let (end_tx, end_rx) = oneshot::channel();
    let fate = started.fate;
    tokio::spawn(record_call(
        recorder,
        started.copy,
        head_rx,
        copies_rx,
        end_rx,
    ));

    let resp = match send_upstream(state, upstream, upstream_req).await {
        Ok(resp) => resp,
        Err(err) => {
            // A streamed upload the client broke off fails the upstream request too: the
            // client is at fault, not the upstream (a stall was counted where it was seen).
            let err = fate.client_error().map_or(err, ProxyError::from_upload);
            let response = error_response(&err, traceresponse);
            let _ = head_tx.send(Err(err));
            return response;
        }
    };
    let _ = head_tx.send(Ok(response_head(resp.status(), resp.headers())));
    let (mut parts, body) = prepare_response(resp);
    if let Some(tr) = traceresponse {
        parts.headers.insert(HEADER_TRACERESPONSE, tr);
    }
    let body = TapBody::new(body, copies_tx, end_tx, state.config.stream_idle_timeout);
    Response::from_parts(parts, ProxyBody::Tap(body))
}

/// Bodies at least this large are parsed and redacted with the worker handed off
/// (`block_in_place`), so a slow capture cannot stall the other calls on that worker.
const OFFLOAD_PARSE_BYTES: usize = 64 * 1024;

/// Runs `work` where a long CPU burst cannot hold a runtime worker that other calls need: on a
/// multi-threaded runtime the worker's other tasks move elsewhere while it runs.
fn off_worker<T>(big: bool, work: impl FnOnce() -> T) -> T {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if big && multi {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// The call's recorder task: waits for the response head, then for the request copy (at once
/// for a body read whole; a streamed one's when its upload ends — on its end, error, or the
/// upstream dropping it), parses the copy, then takes the head, the chunk copies and the
/// outcome, in that order. Every way out ends the span once: a failed upstream as `Failed`, a
/// dropped handler (client gone before the head) as abandoned, a dropped body as
/// client-disconnected.
async fn record_call(
    mut recorder: CallRecorder,
    request: oneshot::Receiver<RequestCopy>,
    head: oneshot::Receiver<Result<ResponseHead, ProxyError>>,
    mut copies: mpsc::Receiver<Bytes>,
    end: oneshot::Receiver<BodyEnd>,
) {
    // The request is parsed once the response head is in hand: by then the handler has given
    // the head to hyper, which writes it (and the body bytes already read) before this task
    // runs, so a long prompt's parse never delays the answer's first byte.
    let head = head.await;
    let request = request.await.unwrap_or_else(|_| RequestCopy::lost());
    off_worker(request.bytes.len() >= OFFLOAD_PARSE_BYTES, || {
        recorder.on_request_body(&request.bytes, request.end);
    });
    drop(request);
    match head {
        Ok(Ok(head)) => recorder.on_response_head(head),
        Ok(Err(err)) => return recorder.finish(Outcome::Failed(err)),
        Err(_) => return recorder.finish(Outcome::Abandoned),
    }
    let mut response_bytes = 0usize;
    while let Some(chunk) = copies.recv().await {
        response_bytes = response_bytes.saturating_add(chunk.len());
        recorder.on_chunk(&chunk);
    }
    let outcome = end.await.map_or(Outcome::Abandoned, Outcome::Body);
    off_worker(response_bytes >= OFFLOAD_PARSE_BYTES, || {
        recorder.finish(outcome)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_keeps_prefix_and_query() {
        let base: Uri = "https://openrouter.ai/api/".parse().expect("uri");
        let uri = upstream_uri(&base, "/v1/chat/completions", Some("a=1")).expect("uri");
        assert_eq!(
            uri.to_string(),
            "https://openrouter.ai/api/v1/chat/completions?a=1"
        );
        assert_eq!(upstream_label(&base), "https://openrouter.ai/api");
        let base: Uri = "http://127.0.0.1:9/".parse().expect("uri");
        assert_eq!(upstream_label(&base), "http://127.0.0.1:9");
        assert_eq!(default_port(&"https://x".parse().expect("uri")), Some(443));
    }
}
