//! llmtap-mock: a scripted upstream speaking OpenAI (chat, completions, embeddings, Responses),
//! Anthropic Messages and Gemini `generateContent`, so the demo, the tests and the benchmarks run
//! with no API key and no network.
//!
//! It is a real HTTP/1.1 and h2c server on a listener the caller binds (tests use `127.0.0.1:0`),
//! answering the shapes OpenAI sends — ids, dated snapshot models, `system_fingerprint`,
//! `service_tier`, usage with cached and reasoning details, SSE with the `include_usage` chunk,
//! streamed tool calls, `n` choices — with token counts that are a pure function of the request
//! ([`chat_usage`], [`estimate_tokens`]), so tests can assert them exactly.
//!
//! Faults are chosen per request (header [`SCENARIO_HEADER`] or the model name), see [`Scenario`]:
//! `error:<status>`, `hangup-after:<n>`, `hang`, `slow:<ms>`, `delay:<ms>`, `chunks:<n>`,
//! `malformed-json`, `malformed-sse`, `stream-error`.
//!
//! ```no_run
//! # async fn run() -> Result<(), llmtap_mock::MockError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(llmtap_mock::MockError::Bind)?;
//! let mock = llmtap_mock::MockUpstream::start(listener, llmtap_mock::MockConfig::default())?;
//! println!("OpenAI-compatible base URL: {}", mock.base_url());
//! mock.shutdown().await;
//! # Ok(()) }
//! ```

mod anthropic;
mod body;
mod encode;
mod gemini;
mod openai;
mod responses;
mod scenario;
mod server;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{HeaderMap, Method, Version};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use anthropic::{AnthropicUsage, anthropic_usage};
pub use gemini::{CACHED_CONTENT_TOKENS, GeminiUsage, gemini_usage};
pub use openai::{
    ANSWER_PREFIX, MODELS, Usage, chat_content, chat_usage, estimate_tokens, response_model,
};
pub use responses::responses_usage;
pub use scenario::{Coding, EncodingChoice, SCENARIO_HEADER, Scenario, ScenarioError};

/// How the mock behaves for every request; per-request faults come from [`Scenario`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Fixed delay before every response head (a model's "time to first byte").
    pub latency: Duration,
    /// Delay between SSE events.
    pub chunk_delay: Duration,
    /// Split every streamed answer into exactly this many content pieces (answers are padded with
    /// " mock" to have enough characters); `None` streams one piece per word.
    pub chunks: Option<usize>,
    /// Requests with a larger body get a 413.
    pub max_request_bytes: usize,
    /// How many requests [`MockUpstream::requests`] keeps (the newest); 0 records none, which is
    /// what a long benchmark wants.
    pub record_limit: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            chunks: None,
            max_request_bytes: 32 * 1024 * 1024,
            record_limit: 10_000,
        }
    }
}

/// One request as the mock received it, for tests that assert what the proxy forwarded
/// (stripped headers, unchanged bytes).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// HTTP version the request arrived with (HTTP/1.1 or HTTP/2 over h2c).
    pub version: Version,
    /// Every header as received.
    pub headers: HeaderMap,
    /// The body bytes exactly as received.
    pub body: Bytes,
}

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// Binding the listener or reading its address failed.
    #[error("mock upstream: cannot use the listener: {0}")]
    Bind(#[source] std::io::Error),
    /// [`MockUpstream::start`] was called outside a tokio runtime.
    #[error("mock upstream: must be started inside a tokio runtime")]
    NoRuntime,
}

/// A running mock upstream. Dropping it stops the server too; [`MockUpstream::shutdown`] also waits
/// until every connection is closed.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Serves on `listener` until shut down.
    pub fn start(listener: TcpListener, config: MockConfig) -> Result<Self, MockError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MockError::NoRuntime)?;
        let addr = listener.local_addr().map_err(MockError::Bind)?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(server::Shared {
            config,
            recorded: Mutex::new(VecDeque::new()),
            answers: Mutex::new(VecDeque::new()),
            sequence: AtomicU64::new(0),
        });
        let task = runtime.spawn(server::accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(MockUpstream {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// Binds `127.0.0.1:0` and starts there.
    pub async fn bind_local(config: MockConfig) -> Result<Self, MockError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(MockError::Bind)?;
        Self::start(listener, config)
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` — what an upstream URL setting or an SDK `base_url` (plus `/v1`) needs.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far (up to [`MockConfig::record_limit`], newest kept), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let recorded = self
            .shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        recorded.iter().cloned().collect()
    }

    /// The body bytes of every answer so far, exactly as the mock put them on the wire (after
    /// compression), in the order the answers were made — for tests that a proxy passed them on
    /// unchanged. Kept under the same limit as [`requests`](Self::requests).
    pub fn answers(&self) -> Vec<Bytes> {
        let answers = self
            .shared
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        answers.iter().cloned().collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Stops accepting, closes every connection (hung ones included) and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::debug!(%error, "mock upstream: accept loop ended abnormally");
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
