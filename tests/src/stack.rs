//! The whole product in-process for end-to-end tests: the mock upstream, the real proxy on
//! `127.0.0.1:0` with its JSONL in a tempdir, and optionally the fake OTLP collector receiving
//! the forwarded spans. [`Stack::stop`] shuts the proxy down the way SIGTERM does (drain, end
//! every span, flush both sinks) and returns what it reported.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use llmtap_core::settings;
use llmtap_mock::{MockConfig, MockUpstream};
use llmtap_proxy::{App, Config, Overrides, ShutdownReport};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::jsonl::read_spans;
use crate::otlp::FakeCollector;
use crate::spans::RecordedSpan;

/// How to start a [`Stack`].
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Mock upstream settings.
    pub mock: MockConfig,
    /// Forward spans over OTLP (http/protobuf) to a fake collector.
    pub collector: bool,
    /// Flags for the proxy (listen, jsonl and upstream are filled in unless set here; jsonl also
    /// when `env` sets `LLMTAP_JSONL`).
    pub overrides: Overrides,
    /// Extra environment (`OTEL_*`, `LLMTAP_*`) the proxy sees instead of the process's.
    pub env: Vec<(String, String)>,
    /// Point the OpenAI upstream at this URL instead of the mock (e.g. a closed port).
    pub upstream_openai: Option<String>,
    /// Point the Anthropic upstream at this URL instead of the mock.
    pub upstream_anthropic: Option<String>,
    /// Point the Gemini upstream at this URL instead of the mock.
    pub upstream_gemini: Option<String>,
}

/// A running mock upstream + proxy (+ collector).
pub struct Stack {
    pub mock: MockUpstream,
    pub collector: Option<FakeCollector>,
    pub proxy_addr: SocketAddr,
    pub jsonl: PathBuf,
    pub client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<ShutdownReport, llmtap_proxy::ServeError>>>,
    _dir: TempDir,
}

/// Reads up to `data_frames` body frames of `response`, then hangs up (drops the body): a client
/// that leaves mid-stream.
pub async fn hang_up_after(response: http::Response<hyper::body::Incoming>, data_frames: usize) {
    let mut body = response.into_body();
    let mut seen = 0;
    while seen < data_frames {
        match body.frame().await {
            Some(Ok(frame)) if frame.is_data() => seen += 1,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    drop(body);
}

/// Test reads are bounded too: nothing a test sends back is near this.
const MAX_TEST_BODY_BYTES: usize = 512 * 1024 * 1024;

/// Reads a whole response body (up to 512 MiB; more is an error).
pub async fn read_body<B>(body: B) -> Result<Bytes>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut body = std::pin::pin!(body);
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            anyhow::ensure!(
                out.len() + data.len() <= MAX_TEST_BODY_BYTES,
                "response body over {MAX_TEST_BODY_BYTES} bytes"
            );
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// A response as a client saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `traceresponse`, which a spawned agent sends back as `traceparent`.
    pub fn traceresponse(&self) -> Option<String> {
        self.headers
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Stack {
    /// Starts everything with defaults.
    pub async fn start() -> Result<Self> {
        Self::start_with(StackOptions::default()).await
    }

    /// Starts everything.
    pub async fn start_with(options: StackOptions) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let jsonl = dir.path().join("traces.jsonl");
        let mock = MockUpstream::bind_local(options.mock.clone()).await?;
        let collector = if options.collector {
            Some(FakeCollector::start().await)
        } else {
            None
        };
        let mut overrides = options.overrides.clone();
        overrides.set_default(&settings::LISTEN, "127.0.0.1:0");
        // The JSONL goes to the tempdir unless the test sets it, as a flag or in the env.
        if !options.env.iter().any(|(k, _)| k == settings::JSONL.env) {
            overrides.set_default(&settings::JSONL, jsonl.display().to_string());
        }
        // The mock speaks Anthropic Messages and Gemini too: every upstream defaults to it.
        for (setting, url) in [
            (&settings::UPSTREAM_OPENAI, &options.upstream_openai),
            (&settings::UPSTREAM_ANTHROPIC, &options.upstream_anthropic),
            (&settings::UPSTREAM_GEMINI, &options.upstream_gemini),
        ] {
            overrides.set(setting, url.clone().unwrap_or_else(|| mock.base_url()));
        }
        overrides.set_default(&settings::SHUTDOWN_GRACE_SECS, "5");
        let mut env = options.env.clone();
        if let Some(collector) = &collector {
            env.push((
                settings::OTEL_EXPORTER_OTLP_ENDPOINT.env.into(),
                collector.http_endpoint(),
            ));
            env.push((
                settings::OTEL_EXPORTER_OTLP_PROTOCOL.env.into(),
                "http/protobuf".into(),
            ));
            env.push((settings::OTEL_BSP_SCHEDULE_DELAY.env.into(), "50".into()));
        }
        let env: HashMap<String, String> = env.into_iter().collect();
        let config = Config::load(&overrides, &env)?;
        let app = App::build_with_env(config, &env).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            mock,
            collector,
            proxy_addr,
            jsonl,
            client: Client::builder(TokioExecutor::new())
                .http1_max_headers(1024)
                .build_http(),
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        })
    }

    /// `http://<proxy>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy_addr)
    }

    /// The OpenAI `base_url` real clients use.
    pub fn openai_base_url(&self) -> String {
        self.url("/v1")
    }

    /// The `base_url` the Anthropic and Gemini clients use (they add `/v1/...`, `/v1beta/...`).
    pub fn root_url(&self) -> String {
        self.url("")
    }

    /// POSTs a JSON body with extra headers and reads the whole answer.
    pub async fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        let mut request = Request::post(self.url(path))
            .header("content-type", "application/json")
            .header(
                "authorization",
                "Bearer sk-test-e2e-000000000000000000000000",
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body.to_owned())))?)
            .await
            .context("proxy did not answer")?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response.into_body()).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// POSTs a JSON body with a mock scenario and returns the response as soon as its head
    /// arrives, body unread: for tests that read part of a stream, or hang up mid-way.
    pub async fn open_stream(
        &self,
        path: &str,
        body: String,
        scenario: &str,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let request = Request::post(self.url(path))
            .header("content-type", "application/json")
            .header(llmtap_mock::SCENARIO_HEADER, scenario)
            .body(Full::new(Bytes::from(body)))?;
        Ok(self.client.request(request).await?)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        let response = self
            .client
            .request(Request::get(self.url(path)).body(Full::new(Bytes::new()))?)
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response.into_body()).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Stops the proxy (as SIGTERM does) and returns its report and every span in the JSONL.
    pub async fn stop(&mut self) -> Result<(ShutdownReport, Vec<RecordedSpan>)> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().context("already stopped")?;
        let report = tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .context("proxy did not stop within 30 s")???;
        let spans = if self.jsonl.exists() {
            read_spans(&self.jsonl)?
        } else {
            Vec::new()
        };
        Ok((report, spans))
    }

    /// `/healthz` once `ready` holds for it, or as it is when `timeout` passes (the caller's
    /// assertions then say what was missing). Counters move when calls end, which is in the
    /// call's recorder task, a moment after its answer.
    pub async fn health_when(
        &self,
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reply = self.get("/healthz").await?;
            anyhow::ensure!(reply.status == StatusCode::OK, "/healthz: {}", reply.status);
            let health: serde_json::Value = serde_json::from_slice(&reply.body)?;
            if ready(&health) || tokio::time::Instant::now() >= deadline {
                return Ok(health);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Spans in the JSONL so far (the exporter flushes within about a second).
    pub async fn wait_for_jsonl_spans(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedSpan>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = if self.jsonl.exists() {
                read_spans(&self.jsonl).unwrap_or_default()
            } else {
                Vec::new()
            };
            if spans.len() >= n || tokio::time::Instant::now() >= deadline {
                anyhow::ensure!(
                    spans.len() >= n,
                    "expected {n} spans in the JSONL within {timeout:?}, found {}",
                    spans.len()
                );
                return Ok(spans);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// An upstream that answers every request with the same scripted bytes, chunk by chunk, so a
/// test can compare what a client gets directly and through the proxy byte for byte.
pub struct FixedUpstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FixedUpstream {
    /// Serves `chunks` (each flushed on its own, `gap` apart) with `content_type` and `status`.
    pub async fn start(
        status: u16,
        content_type: &'static str,
        chunks: Vec<Bytes>,
        gap: Duration,
    ) -> Result<Self> {
        Self::start_with_headers(status, &[("content-type", content_type)], chunks, gap).await
    }

    /// Like [`start`](Self::start), with these response headers (e.g. `content-encoding`).
    pub async fn start_with_headers(
        status: u16,
        headers: &[(&'static str, &'static str)],
        chunks: Vec<Bytes>,
        gap: Duration,
    ) -> Result<Self> {
        let headers = headers.to_vec();
        use hyper::body::Frame;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let chunks = chunks.clone();
                let headers = headers.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let chunks = chunks.clone();
                        let headers = headers.clone();
                        async move {
                            let (tx, rx) = tokio::sync::mpsc::channel::<
                                Result<Frame<Bytes>, std::convert::Infallible>,
                            >(4);
                            tokio::spawn(async move {
                                for chunk in chunks {
                                    if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                                        return;
                                    }
                                    tokio::time::sleep(gap).await;
                                }
                            });
                            let mut rx = rx;
                            let body = http_body_util::StreamBody::new(
                                futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
                            );
                            let mut response = hyper::Response::new(body);
                            *response.status_mut() =
                                StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                            for (name, value) in headers {
                                response
                                    .headers_mut()
                                    .insert(name, http::HeaderValue::from_static(value));
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FixedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
