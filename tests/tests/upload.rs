//! A long prompt is streamed upstream as it arrives, not held back until the whole upload is in
//! (docs/adr/0015-streamed-upload.md): an upstream written here sees the start of a request body
//! while the client has not yet sent the rest. The call is still recorded whole: the model (even
//! when it comes last), the captured input, the upstream's exact bytes; a body past the capture
//! budget passes byte for byte and is marked.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt as _;
use llmtap_core::semconv as sc;
use llmtap_tests::stack::{Stack, StackOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long enough for a broken proxy to fail the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

const ANSWER: &str = r#"{"id":"chatcmpl-upload","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#;

/// What the upstream saw of a request, as it happened.
#[derive(Debug)]
enum Seen {
    Head(HeaderMap),
    Data(Bytes),
    End,
}

/// An upstream that reports each request body frame the moment it arrives, and answers a chat
/// completion once the body has ended.
struct WatchingUpstream {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    head: Option<HeaderMap>,
    body: Vec<u8>,
    ended: bool,
    task: JoinHandle<()>,
}

impl WatchingUpstream {
    async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let (parts, mut body) = req.into_parts();
                                let _ = tx.send(Seen::Head(parts.headers));
                                while let Some(frame) = body.frame().await {
                                    if let Ok(data) = frame?.into_data() {
                                        let _ = tx.send(Seen::Data(data));
                                    }
                                }
                                let _ = tx.send(Seen::End);
                                let mut response = http::Response::new(http_body_util::Full::new(
                                    Bytes::from(ANSWER),
                                ));
                                response.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static("application/json"),
                                );
                                Ok::<_, hyper::Error>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            seen,
            head: None,
            body: Vec::new(),
            ended: false,
            task,
        })
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `done` holds for what was seen so far, or fails after [`WAIT`].
    async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            let event = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .with_context(|| {
                    format!(
                        "the upstream did not see {what} within {WAIT:?} (it had {} body bytes)",
                        self.body.len()
                    )
                })?
                .context("the upstream stopped")?;
            match event {
                Seen::Head(headers) => self.head = Some(headers),
                Seen::Data(data) => self.body.extend_from_slice(&data),
                Seen::End => self.ended = true,
            }
        }
        Ok(())
    }
}

impl Drop for WatchingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A chat body cut in two: the head and `first` are sent, the client waits for the upstream to
/// have `first`, then sends `rest`.
struct SplitBody {
    first: String,
    rest: String,
}

impl SplitBody {
    fn whole(&self) -> String {
        format!("{}{}", self.first, self.rest)
    }
}

/// Sends `body` in two parts (see [`SplitBody`]) and returns the client's answer and what the
/// upstream received.
async fn upload_in_two_parts(
    stack: &Stack,
    upstream: &mut WatchingUpstream,
    body: &SplitBody,
) -> Result<String> {
    let mut client = TcpStream::connect(stack.proxy_addr).await?;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: {}\r\n\r\n",
        body.whole().len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.first.as_bytes()).await?;
    client.flush().await?;
    // The proof: the rest is not sent until the upstream has the first part.
    let first_len = body.first.len();
    upstream
        .until("the first part before the client sent the rest", |u| {
            u.body.len() >= first_len
        })
        .await?;
    ensure!(
        !upstream.ended,
        "the upstream saw the body end before it was sent"
    );
    client.write_all(body.rest.as_bytes()).await?;
    client.flush().await?;
    upstream.until("the end of the body", |u| u.ended).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut answer))
        .await
        .context("the proxy did not answer and close")??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_long_prompt_reaches_the_upstream_while_it_is_still_being_sent() -> Result<()> {
    let mut upstream = WatchingUpstream::start().await?;
    let mut stack = Stack::start_with(StackOptions {
        upstream_openai: Some(upstream.base_url()),
        ..Default::default()
    })
    .await?;
    // The model comes last (as Python's `openai` writes it): the span starts without it and is
    // named once the whole body has been parsed.
    let body = SplitBody {
        first: format!(
            r#"{{"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{}"#,
            "a".repeat(120_000)
        ),
        rest: format!(
            r#"{}"}}],"temperature":0.5,"model":"gpt-4o-mini"}}"#,
            "b".repeat(60_000)
        ),
    };
    let answer = upload_in_two_parts(&stack, &mut upstream, &body).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    ensure!(answer.contains("chatcmpl-upload"), "{answer:.400}");
    ensure!(
        upstream.body == body.whole().as_bytes(),
        "the upstream got {} bytes, not the client's {}",
        upstream.body.len(),
        body.whole().len()
    );
    let head = upstream.head.take().context("no request head upstream")?;
    let content_length = head
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    assert_eq!(
        content_length,
        Some(body.whole().len().to_string().as_str()),
        "the client's own framing"
    );
    let traceparent = head
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .context("no traceparent upstream")?;

    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    ensure!(spans.len() == 1, "{} spans", spans.len());
    let span = &spans[0];
    ensure!(
        traceparent.contains(&span.span_id()),
        "{traceparent} names another span than {}",
        span.span_id()
    );
    assert_eq!(span.name(), "chat gpt-4o-mini");
    assert_eq!(
        span.attr_str(sc::GEN_AI_REQUEST_MODEL).as_deref(),
        Some("gpt-4o-mini")
    );
    assert_eq!(span.attr(sc::LLMTAP_CAPTURE_ERROR), None);
    assert_eq!(span.attr(sc::ERROR_TYPE), None);
    let input = span
        .attr_str(sc::GEN_AI_INPUT_MESSAGES)
        .context("no captured input messages")?;
    ensure!(input.contains("You are terse."), "{input:.300}");
    ensure!(input.contains("aaaa"), "{input:.300}");
    Ok(())
}

#[tokio::test]
async fn a_streamed_body_past_the_capture_budget_passes_byte_for_byte_and_is_marked() -> Result<()>
{
    let mut upstream = WatchingUpstream::start().await?;
    let mut stack = Stack::start_with(StackOptions {
        upstream_openai: Some(upstream.base_url()),
        env: vec![("LLMTAP_MAX_CAPTURE_BYTES".into(), "4096".into())],
        ..Default::default()
    })
    .await?;
    let text = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": format!("{}{}", "x".repeat(90_000), "y".repeat(90_000))}
    ]})
    .to_string();
    let cut = text.len() / 2;
    let body = SplitBody {
        first: text.get(..cut).context("an ASCII body")?.to_owned(),
        rest: text.get(cut..).context("an ASCII body")?.to_owned(),
    };
    let answer = upload_in_two_parts(&stack, &mut upstream, &body).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    ensure!(
        upstream.body == text.as_bytes(),
        "the upstream got {} bytes, not the client's {}",
        upstream.body.len(),
        text.len()
    );

    let (_, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    ensure!(spans.len() == 1, "{} spans", spans.len());
    let span = &spans[0];
    assert_eq!(
        span.attr_str(sc::LLMTAP_CAPTURE_ERROR).as_deref(),
        Some(sc::capture_error::BODY_OVER_BUDGET)
    );
    assert_eq!(span.attr(sc::ERROR_TYPE), None);
    assert_eq!(span.attr(sc::GEN_AI_INPUT_MESSAGES), None);
    Ok(())
}
