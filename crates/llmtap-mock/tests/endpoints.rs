//! Every endpoint, over a real socket with a raw hyper client.

mod support;

use anyhow::{Context, Result, anyhow};
use hyper::{Request, StatusCode, Version};
use llmtap_mock::{MockConfig, chat_content, chat_usage, estimate_tokens};
use serde_json::{Value, json};
use support::{post_json, send, send_h2, start};

fn chat_request() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name three rivers in Europe please"}
        ]
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    if let Some(object) = base.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
    base
}

fn parse_all(data: &[String]) -> Result<Vec<Value>> {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).with_context(|| format!("bad chunk {d}")))
        .collect()
}

#[tokio::test]
async fn chat_completion_json_is_openai_shaped_with_deterministic_usage() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = chat_request();
    let got = send(mock.addr(), post_json("/v1/chat/completions", &request)?).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let request_id = got.header("x-request-id").unwrap_or_default();
    assert!(
        request_id.starts_with("req_") && request_id.len() == 36,
        "{request_id}"
    );
    let body = got.json()?;

    let id = body["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("chatcmpl-") && id.len() == 9 + 29, "{id}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap_or_default() > 1_700_000_000);
    assert_eq!(body["model"], "gpt-4o-mini-2024-07-18");
    assert!(
        body["system_fingerprint"]
            .as_str()
            .unwrap_or_default()
            .starts_with("fp_")
    );
    assert_eq!(body["service_tier"], "default");
    let choices = body["choices"].as_array().context("choices")?;
    assert_eq!(choices.len(), 1);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Mock answer to: Name three rivers in Europe please"
    );
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    // 3 priming + (3 + 4 for "You are terse.") + (3 + 9 for 34 bytes) = 22 prompt tokens.
    assert_eq!(body["usage"]["prompt_tokens"], 22);
    let completion = estimate_tokens("Mock answer to: Name three rivers in Europe please");
    assert_eq!(body["usage"]["completion_tokens"], completion);
    assert_eq!(body["usage"]["total_tokens"], 22 + completion);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
    let usage = chat_usage(&request).context("usage")?;
    assert_eq!(usage.prompt_tokens, 22);
    assert_eq!(usage.completion_tokens, completion);
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn chat_stream_with_usage_has_exact_openai_framing() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with(
        with(chat_request(), "stream", json!(true)),
        "stream_options",
        json!({"include_usage": true}),
    );
    let got = send(mock.addr(), post_json("/v1/chat/completions", &request)?).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert!(got.body_error.is_none());
    assert!(got.text().ends_with("\n\ndata: [DONE]\n\n"));
    let data = got.sse_data()?;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = parse_all(&data)?;
    let (usage_chunk, content_chunks) = chunks.split_last().context("no chunks")?;

    let first = content_chunks.first().context("no content chunk")?;
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let id = first["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4o-mini-2024-07-18");
    }
    for chunk in content_chunks {
        // With include_usage every chunk but the last carries an explicit null usage.
        assert_eq!(chunk.get("usage"), Some(&Value::Null), "{chunk}");
        assert_eq!(chunk["choices"].as_array().map(Vec::len), Some(1));
    }
    let text: String = content_chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(Some(text), chat_content(&request));
    let finish = content_chunks.last().context("finish")?;
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    // Words stream one per chunk: role chunk + 9 words + finish chunk.
    assert_eq!(content_chunks.len(), 1 + 9 + 1);

    assert_eq!(usage_chunk["choices"], json!([]));
    let usage = chat_usage(&request).context("usage")?;
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], usage.prompt_tokens);
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        usage.completion_tokens
    );
    assert_eq!(usage_chunk["usage"]["total_tokens"], usage.total_tokens());
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn chat_stream_without_include_usage_sends_no_usage_at_all() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with(chat_request(), "stream", json!(true));
    let got = send(mock.addr(), post_json("/v1/chat/completions", &request)?).await?;
    let chunks = parse_all(&got.sse_data()?)?;
    assert!(!chunks.is_empty());
    for chunk in &chunks {
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_eq!(chunk["choices"].as_array().map(Vec::len), Some(1));
    }
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn configured_chunk_count_is_exact() -> Result<()> {
    let mock = start(MockConfig {
        chunks: Some(40),
        ..MockConfig::default()
    })
    .await?;
    let request = with(chat_request(), "stream", json!(true));
    let got = send(mock.addr(), post_json("/v1/chat/completions", &request)?).await?;
    let chunks = parse_all(&got.sse_data()?)?;
    let content = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(content, 40);
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn n_choices_give_n_answers_json_and_stream() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with(chat_request(), "n", json!(3));
    let body = send(mock.addr(), post_json("/v1/chat/completions", &request)?)
        .await?
        .json()?;
    let choices = body["choices"].as_array().context("choices")?;
    assert_eq!(choices.len(), 3);
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
    }
    assert_eq!(
        choices[2]["message"]["content"],
        "Mock answer to: Name three rivers in Europe please (choice 3)"
    );
    let usage = chat_usage(&request).context("usage")?;
    assert_eq!(body["usage"]["completion_tokens"], usage.completion_tokens);

    let stream = with(request, "stream", json!(true));
    let got = send(mock.addr(), post_json("/v1/chat/completions", &stream)?).await?;
    let finishes: Vec<u64> = parse_all(&got.sse_data()?)?
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"] == "stop")
        .filter_map(|c| c["choices"][0]["index"].as_u64())
        .collect();
    assert_eq!(finishes, vec![0, 1, 2]);
    mock.shutdown().await;
    Ok(())
}

fn tool_request(stream: bool) -> Value {
    json!({
        "model": "gpt-4o",
        "stream": stream,
        "tools": [{"type": "function", "function": {
            "name": "web_search",
            "description": "Search the web",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
        }}],
        "messages": [{"role": "user", "content": "Find recent papers on agent tracing"}]
    })
}

#[tokio::test]
async fn tools_get_a_tool_call_then_an_answer_after_the_tool_result() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let body = send(
        mock.addr(),
        post_json("/v1/chat/completions", &tool_request(false))?,
    )
    .await?
    .json()?;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap_or_default().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "web_search");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or_default())?;
    assert_eq!(arguments, json!({"query": "Find recent papers on agent"}));

    // Streamed: the arguments arrive as several deltas that concatenate to the same JSON.
    let got = send(
        mock.addr(),
        post_json("/v1/chat/completions", &tool_request(true))?,
    )
    .await?;
    let chunks = parse_all(&got.sse_data()?)?;
    let head = &chunks.first().context("head")?["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(head["function"]["name"], "web_search");
    assert_eq!(head["function"]["arguments"], "");
    let pieces: Vec<&str> = chunks
        .iter()
        .skip(1)
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(pieces.len() >= 3, "arguments in {} pieces", pieces.len());
    assert_eq!(serde_json::from_str::<Value>(&pieces.concat())?, arguments);
    assert_eq!(
        chunks.last().context("finish")?["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // Round trip: the tool result goes back, the model answers in text.
    let mut follow_up = tool_request(false);
    let messages = follow_up["messages"].as_array_mut().context("messages")?;
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "3 papers found"}));
    let body = send(mock.addr(), post_json("/v1/chat/completions", &follow_up)?)
        .await?
        .json()?;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Mock answer to: Find recent papers on agent tracing"
    );
    let usage = chat_usage(&follow_up).context("usage")?;
    assert_eq!(body["usage"]["prompt_tokens"], usage.prompt_tokens);
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn prompt_cache_key_and_reasoning_models_report_details() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with(
        with(chat_request(), "model", json!("o4-mini")),
        "prompt_cache_key",
        json!("demo"),
    );
    let body = send(mock.addr(), post_json("/v1/chat/completions", &request)?)
        .await?
        .json()?;
    assert_eq!(body["model"], "o4-mini-2025-04-16");
    // The cached prefix is everything before the last message: 3 + 4 tokens.
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 7);
    let visible = estimate_tokens("Mock answer to: Name three rivers in Europe please");
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2 * visible
    );
    assert_eq!(body["usage"]["completion_tokens"], 3 * visible);
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn legacy_completions_json_and_stream() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello to the world", "max_tokens": 50});
    let body = send(mock.addr(), post_json("/v1/completions", &request)?)
        .await?
        .json()?;
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap_or_default().starts_with("cmpl-"));
    assert_eq!(body["model"], "gpt-3.5-turbo-instruct:20230824-v2");
    assert_eq!(
        body["choices"][0]["text"],
        " Mock answer to: Say hello to the world"
    );
    assert_eq!(
        body["usage"]["prompt_tokens"],
        estimate_tokens("Say hello to the world")
    );

    let stream = with(
        with(request, "stream", json!(true)),
        "stream_options",
        json!({"include_usage": true}),
    );
    let got = send(mock.addr(), post_json("/v1/completions", &stream)?).await?;
    let chunks = parse_all(&got.sse_data()?)?;
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, " Mock answer to: Say hello to the world");
    let last = chunks.last().context("usage chunk")?;
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["completion_tokens"],
        body["usage"]["completion_tokens"]
    );
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn embeddings_as_floats_and_base64() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = json!({"model": "text-embedding-3-small", "input": ["alpha beta", "gamma"], "dimensions": 8});
    let body = send(mock.addr(), post_json("/v1/embeddings", &request)?)
        .await?
        .json()?;
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    let data = body["data"].as_array().context("data")?;
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().map(Vec::len), Some(8));
    assert_eq!(body["usage"]["prompt_tokens"], 3 + 2);
    assert_eq!(body["usage"]["total_tokens"], 5);

    let request = json!({"model": "text-embedding-3-small", "input": "alpha beta", "encoding_format": "base64"});
    let body = send(mock.addr(), post_json("/v1/embeddings", &request)?)
        .await?
        .json()?;
    let encoded = body["data"][0]["embedding"]
        .as_str()
        .context("base64 string")?;
    // 1536 f32 = 6144 bytes = 8192 base64 characters.
    assert_eq!(encoded.len(), 8192);
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn models_list() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = Request::get("/v1/models")
        .header("host", "mock")
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let body = send(mock.addr(), request).await?.json()?;
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"gpt-4o-mini"));
    assert!(ids.contains(&"text-embedding-3-small"));
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unknown_paths_and_bad_requests_get_openai_errors() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let got = send(mock.addr(), post_json("/v1/nope", &json!({}))?).await?;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(
        got.json()?,
        json!({"error": {"message": "Invalid URL (POST /v1/nope)", "type": "invalid_request_error", "param": null, "code": null}})
    );

    let request = Request::post("/v1/chat/completions")
        .header("host", "mock")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"{not json",
        )))?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert_eq!(got.json()?["error"]["type"], "invalid_request_error");

    let got = send(
        mock.addr(),
        post_json("/v1/chat/completions", &json!({"model": "gpt-4o"}))?,
    )
    .await?;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert_eq!(got.json()?["error"]["param"], "messages");

    let got = send(
        mock.addr(),
        post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "x"}]}),
        )?,
    )
    .await?;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        got.json()?["error"]["message"],
        "you must provide a model parameter"
    );
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn requests_are_recorded_byte_for_byte() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let body = r#"{"model":"gpt-4o-mini",  "messages":[{"role":"user","content":"é ü"}]}"#;
    let request = Request::post("/v1/chat/completions?api-version=1&x=2")
        .header("host", "mock")
        .header("x-custom", "kept")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            body.as_bytes(),
        )))?;
    let got = send(mock.addr(), request).await?;
    assert_eq!(got.status, StatusCode::OK);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    let first = recorded.first().context("recorded")?;
    assert_eq!(first.method, hyper::Method::POST);
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.query.as_deref(), Some("api-version=1&x=2"));
    assert_eq!(first.version, Version::HTTP_11);
    assert_eq!(
        first.headers.get("x-custom").map(|v| v.as_bytes()),
        Some(&b"kept"[..])
    );
    assert_eq!(&first.body[..], body.as_bytes());
    mock.clear_requests();
    assert!(mock.requests().is_empty());
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let request = with(chat_request(), "stream", json!(true));
    let got = send_h2(mock.addr(), post_json("/v1/chat/completions", &request)?).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.version, Version::HTTP_2);
    assert_eq!(got.sse_data()?.last().map(String::as_str), Some("[DONE]"));
    let recorded = mock.requests();
    assert_eq!(recorded.first().map(|r| r.version), Some(Version::HTTP_2));
    mock.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() -> Result<()> {
    let mock = start(MockConfig::default()).await?;
    let stream = tokio::net::TcpStream::connect(mock.addr()).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    for _ in 0..5 {
        sender.ready().await?;
        let response = sender
            .send_request(post_json("/v1/chat/completions", &chat_request())?)
            .await?;
        if response.status() != StatusCode::OK {
            return Err(anyhow!("status {}", response.status()));
        }
        let mut body = response.into_body();
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            frame?;
        }
    }
    assert_eq!(mock.requests().len(), 5);
    mock.shutdown().await;
    Ok(())
}
