//! Slow and hostile clients against the proxy: every wait has a timeout, memory held for capture
//! is bounded across connections, connections are capped, and every call — a cut upload, a
//! stalled one, one cut by the end of the shutdown grace — ends with exactly one span.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use llmtap_core::semconv as sc;
use llmtap_core::settings;
use llmtap_proxy::Overrides;
use llmtap_tests::stack::{Stack, StackOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CHAT: &str = "/v1/chat/completions";

fn chat_body(pad: usize) -> String {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(pad)}]})
        .to_string()
}

async fn stack_with(overrides: Overrides, env: &[(&str, &str)]) -> Result<Stack> {
    Stack::start_with(StackOptions {
        overrides,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    })
    .await
}

async fn limits(stack: &Stack) -> Result<Value> {
    let health: Value = serde_json::from_slice(&stack.get("/healthz").await?.body)?;
    Ok(health["limits"].clone())
}

/// Reads until the peer closes (or `limit` passes); returns what was read and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Ok((out, false)),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((out, true)),
            Ok(Ok(n)) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
}

#[tokio::test]
async fn an_unfinished_header_block_and_an_idle_connection_are_closed() -> Result<()> {
    let stack = stack_with(
        Overrides::new().with(&settings::HEADER_TIMEOUT_SECS, "1"),
        &[],
    )
    .await?;
    // Slowloris: a head that never ends.
    let mut slow = TcpStream::connect(stack.proxy_addr).await?;
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n")
        .await?;
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await?;
    ensure!(closed, "the slow head was not closed within 10 s");
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // An idle keep-alive connection after one good call.
    let mut idle = TcpStream::connect(stack.proxy_addr).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await?;
    ensure!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    ensure!(closed, "the idle connection was not closed within 10 s");
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let limits = limits(&stack).await?;
    ensure!(limits["header_timeouts"].as_u64() >= Some(2), "{limits}");
    Ok(())
}

#[tokio::test]
async fn a_stalled_upload_gets_408_and_one_span() -> Result<()> {
    let mut stack = stack_with(
        Overrides::new().with(&settings::BODY_TIMEOUT_SECS, "0.5"),
        &[],
    )
    .await?;
    let mut stream = TcpStream::connect(stack.proxy_addr).await?;
    stream
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
x-llmtap-agent: staller\r\ncontent-length: 1000\r\n\r\n{\"model\":\"gpt-4o\",",
        )
        .await?;
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await?;
    let answer = String::from_utf8_lossy(&answer);
    ensure!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    ensure!(answer.contains("client_body_timeout"), "{answer}");
    let limits = limits(&stack).await?;
    assert_eq!(limits["body_timeouts"], 1);
    let (report, spans) = stack.stop().await?;
    let calls = llmtap_tests::spans::model_calls(&spans);
    ensure!(calls.len() == 1, "{} calls", calls.len());
    assert_eq!(
        calls[0].attr_str(sc::ERROR_TYPE).as_deref(),
        Some(sc::error_type::CLIENT_BODY_TIMEOUT)
    );
    assert_eq!(report.proxy.upstream_errors, 0, "not the upstream's fault");
    Ok(())
}

#[tokio::test]
async fn a_client_that_leaves_during_its_upload_gets_one_span() -> Result<()> {
    // Within the capture budget and over it: both stream upstream while the client uploads.
    let mut stack = stack_with(
        Overrides::default(),
        &[("LLMTAP_MAX_CAPTURE_BYTES", "4096")],
    )
    .await?;
    for (agent, sent) in [("small-upload", 100usize), ("big-upload", 64 * 1024)] {
        let mut stream = TcpStream::connect(stack.proxy_addr).await?;
        let head = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
x-llmtap-agent: {agent}\r\ncontent-length: 1000000\r\n\r\n{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\""
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&vec![b'a'; sent]).await?;
        stream.flush().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(stream);
    }
    let spans = stack
        .wait_for_jsonl_spans(2, Duration::from_secs(10))
        .await?;
    for agent in ["small-upload", "big-upload"] {
        let mine = llmtap_tests::spans::by_agent(&spans, agent);
        ensure!(mine.len() == 1, "{agent}: {} spans", mine.len());
        assert_eq!(
            mine[0].attr_str(sc::ERROR_TYPE).as_deref(),
            Some(sc::error_type::CLIENT_DISCONNECTED),
            "{agent}"
        );
    }
    let (report, spans) = stack.stop().await?;
    let calls = llmtap_tests::spans::model_calls(&spans);
    ensure!(calls.len() == 2, "{} calls", calls.len());
    assert_eq!(
        llmtap_tests::spans::check_calls_under_their_agents(&spans)?,
        2
    );
    assert_eq!(
        report.proxy.upstream_errors, 0,
        "a client's cut is not the upstream's fault"
    );
    Ok(())
}

#[tokio::test]
async fn the_shared_capture_buffer_is_bounded_and_calls_still_pass() -> Result<()> {
    let mut stack = stack_with(
        Overrides::new()
            .with(&settings::MAX_BUFFERED_BYTES, "20000")
            .with(&settings::BODY_TIMEOUT_SECS, "2"),
        &[],
    )
    .await?;
    // One upload stalls holding 16 KB of the 20 KB buffer.
    let mut staller = TcpStream::connect(stack.proxy_addr).await?;
    staller
        .write_all(
            format!(
                "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\nx-llmtap-agent: holder\r\n\r\n{}",
                "a".repeat(16_000)
            )
            .as_bytes(),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next 8 KB request finds no room: it is answered, uncaptured and marked.
    let reply = stack
        .post(CHAT, &chat_body(8_000), &[("x-llmtap-agent", "no-room")])
        .await?;
    ensure!(reply.status == 200, "{}", reply.status);
    let limits = limits(&stack).await?;
    assert_eq!(limits["capture_buffer_full"], 1, "{limits}");
    // Once the staller is gone, its share is free again.
    let (answer, _) = read_until_closed(&mut staller, Duration::from_secs(10)).await?;
    ensure!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"));
    let reply = stack
        .post(CHAT, &chat_body(8_000), &[("x-llmtap-agent", "room-again")])
        .await?;
    ensure!(reply.status == 200);
    let (_, spans) = stack.stop().await?;
    let no_room = llmtap_tests::spans::by_agent(&spans, "no-room");
    ensure!(no_room.len() == 1);
    assert_eq!(
        no_room[0].attr_str(sc::LLMTAP_CAPTURE_ERROR).as_deref(),
        Some(sc::capture_error::CAPTURE_BUFFER_FULL)
    );
    let again = llmtap_tests::spans::by_agent(&spans, "room-again");
    ensure!(again.len() == 1 && again[0].attr(sc::LLMTAP_CAPTURE_ERROR).is_none());
    ensure!(again[0].attr(sc::GEN_AI_INPUT_MESSAGES).is_some());
    Ok(())
}

#[tokio::test]
async fn calls_cut_by_the_end_of_the_grace_get_a_span_and_the_proxy_stops_at_the_grace()
-> Result<()> {
    let mut stack = stack_with(
        Overrides::new().with(&settings::SHUTDOWN_GRACE_SECS, "1"),
        &[],
    )
    .await?;
    // One call waits for an upstream that never answers, one streams slowly.
    let client = stack.client.clone();
    let hang_request = http::Request::post(stack.url(CHAT))
        .header(llmtap_mock::SCENARIO_HEADER, "hang")
        .body(http_body_util::Full::new(bytes::Bytes::from(chat_body(5))))?;
    let hang = tokio::spawn(async move { client.request(hang_request).await.map(|_| ()) });
    let slow_response = stack
        .open_stream(
            CHAT,
            json!({"model": "gpt-4o-mini", "stream": true,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
            "slow:500,chunks:50",
        )
        .await?;
    let reader = tokio::spawn(async move {
        let _ = llmtap_tests::stack::read_body(slow_response.into_body()).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (report, spans) = stack.stop().await?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_millis(2500),
        "stop took {took:?} with a 1 s grace"
    );
    hang.abort();
    reader.abort();
    ensure!(spans.len() == 2, "{} spans", spans.len());
    for span in &spans {
        assert_eq!(
            span.attr_str(sc::ERROR_TYPE).as_deref(),
            Some(sc::error_type::SHUTDOWN_GRACE_EXCEEDED)
        );
    }
    assert_eq!(report.proxy.calls_cut_by_shutdown, 2);
    assert_eq!(
        report.abandoned_calls, 0,
        "every span ended before the flush"
    );
    Ok(())
}

#[tokio::test]
async fn past_the_connection_limit_accepting_waits_then_serves() -> Result<()> {
    let stack = stack_with(Overrides::new().with(&settings::MAX_CONNECTIONS, "2"), &[]).await?;
    let mut first = TcpStream::connect(stack.proxy_addr).await?;
    let mut second = TcpStream::connect(stack.proxy_addr).await?;
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    let mut buf = [0u8; 1024];
    let _ = first.read(&mut buf).await?;
    let _ = second.read(&mut buf).await?;
    // A third connection is queued by the kernel, not served.
    let mut third = TcpStream::connect(stack.proxy_addr).await?;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    ensure!(
        waited.is_err(),
        "the third connection was served past the limit"
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .context("the third connection was not served once one closed")??;
    ensure!(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).starts_with("HTTP/1.1 200"));
    drop(second);
    let limits = limits(&stack).await?;
    ensure!(
        limits["connection_limit_waits"].as_u64() >= Some(1),
        "{limits}"
    );
    Ok(())
}

/// Past the in-flight limit a call gets a fast 503 with `retry-after` naming the limit, counted
/// in `/healthz`; the call in flight is untouched, and once it ends calls are served again.
#[tokio::test]
async fn past_the_in_flight_limit_calls_get_a_fast_503_with_retry_after() -> Result<()> {
    let mut stack = stack_with(Overrides::default(), &[("LLMTAP_MAX_IN_FLIGHT", "1")]).await?;
    let body = json!({"model": "gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    // One streamed call holds the only slot until it is read to its end.
    let held = stack
        .open_stream(CHAT, body.clone(), "slow:200,chunks:5")
        .await?;
    let started = Instant::now();
    let refused = stack.post(CHAT, &body, &[]).await?;
    let took = started.elapsed();
    assert_eq!(refused.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = refused.text();
    assert!(text.contains("overloaded"), "{text}");
    assert!(text.contains("LLMTAP_MAX_IN_FLIGHT"), "{text}");
    // Refused without waiting for the call in flight (it takes a second).
    ensure!(took < Duration::from_millis(800), "refused after {took:?}");
    assert_eq!(limits(&stack).await?["calls_shed"], 1);

    let held = llmtap_tests::stack::read_body(held.into_body()).await?;
    assert!(String::from_utf8_lossy(&held).contains("[DONE]"));
    // The slot is free again once the held call's span has ended.
    let mut served = None;
    for _ in 0..50 {
        let reply = stack.post(CHAT, &body, &[]).await?;
        if reply.status == http::StatusCode::OK {
            served = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(served.is_some(), "never served again");
    let (report, spans) = stack.stop().await?;
    let spans = llmtap_tests::spans::checked_calls(spans)?;
    assert!(
        spans.iter().all(|s| s.attr_str(sc::ERROR_TYPE).is_none()),
        "the refused calls are not recorded; the served ones completed"
    );
    assert_eq!(
        report.proxy.upstream_errors, 0,
        "shedding is not the upstream's fault"
    );
    Ok(())
}
