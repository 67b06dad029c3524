//! No secret reaches the JSONL, whatever field it is in: the `llmtap` binary runs as a proxy in
//! front of a fake upstream, every corpus secret (more than 30 formats) is placed in every field
//! a call records — model, messages, system prompt, stop sequences, tools, metadata,
//! `x-llmtap-*` headers, the Gemini path, and on the way back id, model, fingerprint, tier,
//! content, tool calls, finish reason, request id, error code and message — and the written
//! file must not contain any of them.
//!
//! The binary is the one the release is built from when `LLMTAP_SHIPPED_BIN` names it:
//! `scripts/test.sh` builds `llmtap` with `cargo build` (no dev-dependencies, so the `regex`
//! features of the release, not the wider set `cargo test` unifies) and runs this test on it. A
//! built-in pattern that does not compile there makes the proxy refuse to start (exit 64), and
//! this test fails.

#[path = "../../llmtap-core/tests/support/secret_corpus.rs"]
mod secret_corpus;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use secret_corpus::{Planted, corpus};

/// The binary under test: the shipped build when the test script provides it.
fn llmtap_bin() -> PathBuf {
    match std::env::var_os("LLMTAP_SHIPPED_BIN") {
        Some(path) => {
            eprintln!(
                "testing the shipped build {}",
                PathBuf::from(&path).display()
            );
            PathBuf::from(path)
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_llmtap")),
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One request as the fake upstream read it.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Request {
        path,
        headers,
        body,
    })
}

/// A response carrying the secret in every field the codecs read.
fn response_for(req: &Request) -> (u16, &'static str, String) {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let s = unhex(&header("x-fake-secret").unwrap_or_default());
    let args = json!({ "k": s, s.clone(): 1 }).to_string();
    if header("x-fake-mode").as_deref() == Some("error") {
        let body = json!({"error": {"message": s, "type": s, "code": s}});
        return (400, "application/json", body.to_string());
    }
    if req.path.contains("/v1/messages") {
        let body = json!({
            "id": s, "type": "message", "role": "assistant", "model": s,
            "content": [
                {"type": "text", "text": s},
                {"type": "tool_use", "id": s, "name": s, "input": {"k": s}},
            ],
            "stop_reason": s, "stop_sequence": s,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        });
        return (200, "application/json", body.to_string());
    }
    if req.path.contains(":generateContent") {
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": s}]}, "finishReason": s}],
            "modelVersion": s, "responseId": s,
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
        });
        return (200, "application/json", body.to_string());
    }
    let streamed = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v["stream"].as_bool())
        .unwrap_or(false);
    if streamed {
        let chunks = [
            json!({"id": s, "object": "chat.completion.chunk", "model": s, "system_fingerprint": s,
                   "service_tier": s,
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": s}}]}),
            json!({"id": s, "object": "chat.completion.chunk", "model": s,
                   "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": s,
                     "type": "function", "function": {"name": s, "arguments": args}}]},
                     "finish_reason": s}]}),
            json!({"id": s, "object": "chat.completion.chunk", "model": s, "choices": [],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        ];
        let mut body = String::new();
        for chunk in chunks {
            body.push_str(&format!("data: {chunk}\n\n"));
        }
        body.push_str("data: [DONE]\n\n");
        return (200, "text/event-stream", body);
    }
    let body = json!({
        "id": s, "object": "chat.completion", "created": 1, "model": s,
        "system_fingerprint": s, "service_tier": s,
        "choices": [{"index": 0, "finish_reason": s, "message": {
            "role": "assistant", "content": s, "refusal": s,
            "tool_calls": [{"id": s, "type": "function", "function": {"name": s, "arguments": args}}],
        }}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    });
    (200, "application/json", body.to_string())
}

/// A fake upstream on a std thread: one request per connection, answered from
/// [`response_for`]; the upstream request id header carries the secret too.
fn fake_upstream() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let Ok(req) = read_request(&mut stream) else {
                    return;
                };
                let (status, content_type, body) = response_for(&req);
                let request_id = req
                    .headers
                    .iter()
                    .find(|(k, _)| k == "x-fake-secret")
                    .map(|(_, v)| unhex(v).replace(['\r', '\n'], " "))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            });
        }
    });
    Ok(addr)
}

/// Sends one request through the proxy and reads the whole answer.
fn call(proxy: SocketAddr, path: &str, headers: &[(&str, String)], body: &Value) -> Result<String> {
    let body = body.to_string();
    let mut stream = TcpStream::connect(proxy)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {proxy}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nauthorization: Bearer test-key\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    ensure!(
        answer.starts_with("HTTP/1.1 "),
        "no HTTP answer: {answer:?}"
    );
    Ok(answer)
}

/// A request to send: path, extra headers, JSON body.
type Outgoing = (String, Vec<(&'static str, String)>, Value);

/// The requests that place `p` in every captured field, with the path each goes to.
fn requests_for(p: &Planted) -> Vec<Outgoing> {
    let s = p.text.as_str();
    // Header values cannot hold line breaks; a PEM block on one line is still a PEM block.
    let one_line = s.replace('\n', " ");
    let headers = |mode: &str| {
        vec![
            ("x-fake-secret", hex(s)),
            ("x-fake-mode", mode.to_owned()),
            ("x-llmtap-agent", one_line.clone()),
            ("x-llmtap-session", one_line.clone()),
            ("x-llmtap-meta-team", one_line.clone()),
        ]
    };
    let tool = json!({"type": "function", "function": {
        "name": s, "description": s,
        "parameters": {"type": "object", "properties": {s: {"type": "string", "description": s}}},
    }});
    let chat = |stream: bool| {
        json!({
            "model": s, "stream": stream, "stop": [s, "END"], "user": s,
            "reasoning_effort": s, "service_tier": s, "metadata": {"k": s},
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": s},
                {"role": "user", "content": [{"type": "text", "text": s}]},
                {"role": "assistant", "content": s, "tool_calls": [{"id": s, "type": "function",
                    "function": {"name": s, "arguments": json!({"k": s}).to_string()}}]},
                {"role": "tool", "tool_call_id": s, "content": s},
            ],
            "tools": [tool.clone()],
        })
    };
    let anthropic = json!({
        "model": s, "max_tokens": 10, "system": s, "stop_sequences": [s],
        "metadata": {"user_id": s},
        "messages": [{"role": "user", "content": [{"type": "text", "text": s}]}],
        "tools": [{"name": s, "description": s, "input_schema": {"type": "object",
            "properties": {s: {"type": "string"}}}}],
    });
    let gemini = json!({
        "systemInstruction": {"parts": [{"text": s}]},
        "contents": [{"role": "user", "parts": [{"text": s}]}],
        "generationConfig": {"stopSequences": [s]},
        "tools": [{"functionDeclarations": [{"name": s, "description": s}]}],
    });
    let mut out = vec![
        (
            "/v1/chat/completions".to_owned(),
            headers("ok"),
            chat(false),
        ),
        ("/v1/chat/completions".to_owned(), headers("ok"), chat(true)),
        (
            "/v1/chat/completions".to_owned(),
            headers("error"),
            chat(false),
        ),
        ("/v1/messages".to_owned(), headers("ok"), anthropic),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent".to_owned(),
            headers("ok"),
            gemini.clone(),
        ),
    ];
    // The model in a Gemini path, where the secret can be a path segment as it is.
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        out.push((
            format!("/v1beta/models/{s}:generateContent"),
            headers("ok"),
            gemini,
        ));
    }
    out
}

struct Proxy {
    child: Child,
    addr: SocketAddr,
    /// The rest of its stderr, drained on a thread (a closed pipe would fail its writes).
    stderr: std::thread::JoinHandle<String>,
}

fn start_proxy(dir: &std::path::Path, upstream: SocketAddr) -> Result<Proxy> {
    let upstream = format!("http://{upstream}");
    let mut child = Command::new(llmtap_bin())
        .args(["proxy", "--listen", "127.0.0.1:0", "--jsonl", "t.jsonl"])
        .args(["--upstream-openai", &upstream])
        .args(["--upstream-anthropic", &upstream])
        .args(["--upstream-gemini", &upstream])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        .env_remove("LLMTAP_NO_CONTENT")
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run llmtap")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let Some(addr) = line
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
    else {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        let status = child.wait()?;
        bail!("the proxy did not start ({status}): {line}{rest}");
    };
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    Ok(Proxy {
        child,
        addr,
        stderr,
    })
}

#[test]
fn no_secret_of_the_corpus_reaches_the_jsonl_from_any_field() -> Result<()> {
    let planted = corpus();
    ensure!(planted.len() >= 30, "corpus of {} formats", planted.len());
    let dir = tempfile::tempdir()?;
    let upstream = fake_upstream()?;
    let mut proxy = start_proxy(dir.path(), upstream)?;

    let mut sent = 0;
    for p in &planted {
        for (path, headers, body) in requests_for(p) {
            let answer = call(proxy.addr, &path, &headers, &body)?;
            // The client still gets the upstream's bytes, secret and all.
            ensure!(
                answer.contains("HTTP/1.1 200") || answer.contains("HTTP/1.1 400"),
                "{}: {path}: {}",
                p.kind,
                answer.lines().next().unwrap_or_default()
            );
            sent += 1;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let exit = proxy.child.wait()?;
    let stderr = proxy.stderr.join().unwrap_or_default();
    ensure!(exit.success(), "proxy exit {exit}: {stderr}");
    for p in &planted {
        ensure!(
            !stderr.contains(p.secret.as_str()),
            "{} leaked to stderr: {stderr}",
            p.kind
        );
    }

    let text = std::fs::read_to_string(dir.path().join("t.jsonl"))?;
    let spans = text.matches("\"spanId\"").count();
    ensure!(spans >= sent, "{spans} spans for {sent} calls");
    for p in &planted {
        if let Some(at) = text.find(p.secret.as_str()) {
            let from = text.floor_char_boundary(at.saturating_sub(200));
            bail!(
                "{} leaked into the JSONL: …{}…",
                p.kind,
                &text[from..(at + p.secret.len()).min(text.len())]
            );
        }
        ensure!(
            text.contains(&format!("[REDACTED:{}]", p.kind)),
            "{} was never labelled",
            p.kind
        );
    }
    Ok(())
}

/// `llmtap push` names its collector in reports and errors, never with the password of an
/// endpoint given as `http://user:password@host`.
#[test]
fn push_never_prints_an_endpoint_password() -> Result<()> {
    const PASSWORD: &str = "pUsh-s3cret-Hunter2";
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("t.jsonl");
    std::fs::write(
        &file,
        r#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"x","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}
"#,
    )?;
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    for (endpoint, protocol) in [
        (
            format!("http://collector:{PASSWORD}@127.0.0.1:{closed}"),
            "http/protobuf",
        ),
        (
            format!("http://collector:{PASSWORD}@127.0.0.1:{closed}"),
            "grpc",
        ),
        (
            format!("https://collector:{PASSWORD}@127.0.0.1:{closed}"),
            "grpc",
        ),
        (
            format!("ftp://collector:{PASSWORD}@127.0.0.1:{closed}"),
            "grpc",
        ),
    ] {
        let out = Command::new(llmtap_bin())
            .arg("push")
            .arg(&file)
            .args(["--endpoint", &endpoint, "--protocol", protocol])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .output()?;
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            !out.status.success(),
            "{endpoint}: pushed to a closed port?"
        );
        ensure!(
            !shown.contains(PASSWORD),
            "{endpoint} ({protocol}): {shown}"
        );
        ensure!(
            shown.contains("collector") || shown.contains("<redacted>"),
            "says something about the endpoint: {shown}"
        );
    }
    Ok(())
}
