//! Every scripted fault, as a client on the wire sees it.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::StatusCode;
use llmtap_mock::MockConfig;
use serde_json::{Value, json};
use support::{post_json, send, send_h2, start, with_scenario};

fn chat(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "user", "content": "one two three four five six"}]
    })
}

#[tokio::test]
async fn error_status_from_header_or_model_has_the_real_openai_shape() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with_scenario(post_json("/v1/chat/completions", &chat(true))?, "error:429")?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("retry-after"), Some("1"));
    let error = &got.json()?["error"];
    assert_eq!(error["type"], "requests");
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["param"], Value::Null);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("gpt-4o-mini")
    );

    let by_model = json!({"model": "error:503", "messages": [{"role": "user", "content": "x"}]});
    let got = send(mock.addr(), post_json("/v1/chat/completions", &by_model)?).await?;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(got.json()?["error"]["type"], "server_error");

    let got = send(
        mock.addr(),
        with_scenario(
            post_json(
                "/v1/embeddings",
                &json!({"model": "text-embedding-3-small", "input": "x"}),
            )?,
            "error:401",
        )?,
    )
    .await?;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.json()?["error"]["code"], "invalid_api_key");
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hangup_after_n_closes_mid_stream_without_done() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(true))?,
        "hangup-after:3",
    )?;
    let got = send(mock.addr(), request).await.context("h1 stream")?;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.body_error.is_some(),
        "the body must end in an error, got {:?}",
        got.text()
    );
    let text = got.text();
    assert_eq!(text.matches("data: ").count(), 3, "{text}");
    assert!(!text.contains("[DONE]"));
    // Exactly three complete events arrived before the hang-up.
    assert_eq!(got.sse_data()?.len(), 3);

    // The same over HTTP/2: the stream is reset.
    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(true))?,
        "hangup-after:2",
    )?;
    let got = send_h2(mock.addr(), request).await.context("h2 stream")?;
    assert!(got.body_error.is_some());
    assert_eq!(got.sse_data()?.len(), 2);

    // Non-streaming: half a JSON document, then the connection closes.
    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(false))?,
        "hangup-after:0",
    )?;
    let got = send(mock.addr(), request).await.context("h1 json")?;
    assert!(got.body_error.is_some());
    assert!(got.json().is_err());
    assert!(got.text().starts_with('{'));
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hang_never_answers_until_shutdown() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let addr = mock.addr();
    let request = with_scenario(post_json("/v1/chat/completions", &chat(false))?, "hang")?;
    let mut pending = tokio::spawn(async move { send(addr, request).await });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
    assert!(early.is_err(), "a hung request must not be answered");
    assert_eq!(mock.requests().len(), 1, "the request was received");
    mock.shutdown().await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .context("shutdown must close hung connections")??;
    assert!(
        outcome.is_err(),
        "the client sees the connection close: {outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn slow_and_delay_pace_the_answer() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(true))?,
        "slow:25,chunks:4",
    )?;
    let started = Instant::now();
    let got = send(mock.addr(), request).await?;
    let events = got.sse_data()?.len();
    // role + 4 pieces + finish + usage + [DONE] = 8 events, 7 gaps of at least 25 ms.
    assert_eq!(events, 8);
    assert!(started.elapsed() >= Duration::from_millis(25 * 7));

    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(false))?,
        "delay:150",
    )?;
    let started = Instant::now();
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn configured_latency_delays_every_head() -> Result<()> {
    let mock = start(MockConfig {
        latency: Duration::from_millis(120),
        ..MockConfig::default()
    })
    .await?;
    let started = Instant::now();
    let got = send(
        mock.addr(),
        post_json("/v1/chat/completions", &chat(false))?,
    )
    .await?;
    assert_eq!(got.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(120));
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_json_breaks_the_document_or_one_event() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(false))?,
        "malformed-json",
    )?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body_error.is_none());
    assert!(got.json().is_err(), "body must not parse: {}", got.text());

    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(true))?,
        "malformed-json",
    )?;
    let got = send(mock.addr(), request).await?;
    let data = got.sse_data()?;
    let broken = data
        .iter()
        .filter(|d| d.as_str() != "[DONE]" && serde_json::from_str::<Value>(d).is_err())
        .count();
    assert_eq!(broken, 1);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_sse_breaks_framing_even_for_a_json_request() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    for stream in [true, false] {
        let request = with_scenario(
            post_json("/v1/chat/completions", &chat(stream))?,
            "malformed-sse",
        )?;
        let got = send(mock.addr(), request).await?;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(
            got.header("content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert!(
            got.sse_data().is_err(),
            "framing must be broken: {}",
            got.text()
        );
        let text = got.text();
        assert!(
            text.contains("\n\n{\"choices\""),
            "a line without a data field"
        );
        assert!(text.ends_with("data: [DONE]"), "last event unterminated");
    }
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn stream_error_sends_an_error_event_and_ends() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(true))?,
        "stream-error",
    )?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body_error.is_none(), "the stream ends cleanly");
    let data = got.sse_data()?;
    assert_eq!(data.len(), 3);
    let last: Value = serde_json::from_str(data.last().context("error event")?)?;
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!got.text().contains("[DONE]"));

    let request = with_scenario(
        post_json("/v1/chat/completions", &chat(false))?,
        "stream-error",
    )?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(got.json()?["error"]["type"], "server_error");
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unknown_scenarios_are_rejected_loudly() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with_scenario(post_json("/v1/chat/completions", &chat(false))?, "eror:429")?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    let error = &got.json()?["error"];
    assert_eq!(error["code"], "mock_scenario_invalid");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("eror:429")
    );
    mock.shutdown().await;
    Ok(())
}
