//! The multi-agent program behind the `multi-agent` and `through-proxy` examples, as a library so
//! the golden-tree test runs exactly what the examples run.
//!
//! An orchestrator plans, spawns three researchers with `tokio::spawn` (each gets a cloneable
//! [`AgentHandle`], so its spans stay children of the orchestrator), each researcher calls a
//! `web_search` tool the model asks for, then a writer turns the notes into a report (calling a
//! `save_report` tool, its last answer streamed). Model calls are recorded either by the SDK
//! ([`Mode::Direct`]) or by an llmtap proxy the calls go through ([`Mode::Proxy`]); the tree is
//! the same.

use anyhow::{Context as _, bail};
use llmtap_core::sse::SseDecoder;
use llmtap_sdk::proxy::{self, RequestBuilderExt as _};
use llmtap_sdk::{AgentHandle, Telemetry, TracedClient};
use serde_json::{Value, json};

/// The topics the three researchers work on.
pub const TOPICS: [&str; 3] = ["rust async runtimes", "opentelemetry genai", "agent swarms"];
/// The model every agent asks for (mock and OpenAI alike).
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Most tool rounds one agent does before answering anyway (a real model may loop).
const MAX_TOOL_ROUNDS: usize = 3;

/// Who records the model calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The SDK's [`TracedClient`] records each call.
    Direct,
    /// The calls go through `llmtap proxy`, which records them; the SDK only adds headers.
    Proxy,
}

/// What to run against.
#[derive(Debug, Clone)]
pub struct Options {
    /// OpenAI-compatible base URL including `/v1` (the mock's, a proxy's, or OpenAI's).
    pub base_url: String,
    /// Bearer token, when the server needs one.
    pub api_key: Option<String>,
    /// Model name.
    pub model: String,
    /// Who records the model calls.
    pub mode: Mode,
    /// `gen_ai.conversation.id` of the run.
    pub session: String,
}

impl Options {
    /// A run against a server that needs no key (the mock, or a proxy in front of it), with the
    /// default model.
    pub fn keyless(base_url: String, mode: Mode, session: &str) -> Self {
        Self {
            base_url,
            api_key: None,
            model: DEFAULT_MODEL.into(),
            mode,
            session: session.into(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Model calls made.
    pub calls: usize,
    /// The writer's report.
    pub report: String,
}

#[derive(Clone)]
struct Ctx {
    options: Options,
    traced: TracedClient,
    http: reqwest::Client,
}

/// Runs the whole tree under `telemetry`.
pub async fn run(telemetry: &Telemetry, options: Options) -> anyhow::Result<Summary> {
    if options.base_url.starts_with("https:") && !cfg!(feature = "tls") {
        bail!(
            "{} needs TLS: build with `--features tls`",
            options.base_url
        );
    }
    let http = reqwest::Client::new();
    let ctx = Ctx {
        traced: TracedClient::new(http.clone()),
        http,
        options,
    };
    let orchestrator = telemetry
        .agent("orchestrator")
        .root()
        .id("orchestrator-1")
        .conversation_id(&ctx.options.session)
        .start();
    let mut calls = 0;
    let plan = chat(
        &ctx,
        &orchestrator,
        vec![user("Split the report into three research topics.")],
        None,
        false,
    )
    .await?;
    calls += plan.calls;

    let mut researchers = Vec::new();
    for (i, topic) in TOPICS.iter().enumerate() {
        let parent = orchestrator.handle();
        let ctx = ctx.clone();
        researchers.push(tokio::spawn(async move {
            let agent = parent
                .agent("researcher")
                .id(format!("researcher-{}", i + 1))
                .start();
            let result = research(&ctx, &agent, topic).await;
            if result.is_err() {
                let mut agent = agent;
                agent.set_error("_OTHER");
            }
            result
        }));
    }
    let mut notes = Vec::new();
    for r in researchers {
        let (note, n) = r.await.context("researcher task")??;
        notes.push(note);
        calls += n;
    }

    let writer = orchestrator.agent("writer").id("writer-1").start();
    let (report, n) = write(&ctx, &writer, &notes).await?;
    calls += n;
    writer.end();
    orchestrator.end();
    Ok(Summary { calls, report })
}

async fn research(ctx: &Ctx, agent: &AgentHandle, topic: &str) -> anyhow::Result<(String, usize)> {
    let tools = json!([{"type": "function", "function": {
        "name": "web_search",
        "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    }}]);
    let answer = chat(
        ctx,
        agent,
        vec![user(&format!("Research {topic}"))],
        Some(tools),
        false,
    )
    .await?;
    Ok((answer.text, answer.calls))
}

async fn write(
    ctx: &Ctx,
    agent: &AgentHandle,
    notes: &[String],
) -> anyhow::Result<(String, usize)> {
    let tools = json!([{"type": "function", "function": {
        "name": "save_report",
        "description": "Save the final report",
        "parameters": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
    }}]);
    let answer = chat(
        ctx,
        agent,
        vec![user(&format!(
            "Write a report from these notes: {}",
            notes.join(" | ")
        ))],
        Some(tools),
        true,
    )
    .await?;
    Ok((answer.text, answer.calls))
}

/// The fake tools: deterministic results, recorded as `execute_tool` spans.
fn run_tool(name: &str, arguments: &Value) -> Value {
    match name {
        "web_search" => json!({
            "results": [{"title": format!("About {}", arguments["query"].as_str().unwrap_or("it")), "url": "https://example.org/1"}],
        }),
        "save_report" => json!({"saved": true, "id": "report-1"}),
        _ => json!({"error": "unknown tool"}),
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

struct Answer {
    text: String,
    calls: usize,
}

/// One agent turn loop: call the model; while it asks for tools, run them (each an
/// `execute_tool` span) and call again. The last call streams when `stream_last` is set.
async fn chat(
    ctx: &Ctx,
    agent: &AgentHandle,
    mut messages: Vec<Value>,
    tools: Option<Value>,
    stream_last: bool,
) -> anyhow::Result<Answer> {
    for round in 0..=MAX_TOOL_ROUNDS {
        // Once a tool result is in, the next call is the last: stream it when asked.
        let stream = stream_last && messages.last().is_some_and(|m| m["role"] == "tool");
        let mut body = json!({"model": ctx.options.model, "messages": messages});
        if let Some(tools) = &tools {
            body["tools"] = tools.clone();
            if round == MAX_TOOL_ROUNDS {
                body["tool_choice"] = json!("none");
            }
        }
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        let message = send(ctx, agent, &body, stream).await?;
        let calls = round + 1;
        let tool_calls = message["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if tool_calls.is_empty() {
            let text = message["content"].as_str().unwrap_or_default().to_owned();
            return Ok(Answer { text, calls });
        }
        messages.push(message.clone());
        for call in tool_calls {
            let name = call["function"]["name"].as_str().unwrap_or("unknown");
            let id = call["id"].as_str().unwrap_or_default();
            let raw_args = call["function"]["arguments"].as_str().unwrap_or("{}");
            let arguments: Value = serde_json::from_str(raw_args).unwrap_or(Value::Null);
            let mut span = agent
                .tool(name)
                .call_id(id)
                .tool_type("function")
                .arguments(&arguments)
                .start();
            let result = run_tool(name, &arguments);
            span.set_result(&result);
            span.end();
            messages
                .push(json!({"role": "tool", "tool_call_id": id, "content": result.to_string()}));
        }
    }
    bail!("{} kept asking for tools", agent.name())
}

/// Sends one chat request and returns the assistant message (assembled from the stream when
/// streaming).
async fn send(ctx: &Ctx, agent: &AgentHandle, body: &Value, stream: bool) -> anyhow::Result<Value> {
    let url = format!(
        "{}/chat/completions",
        ctx.options.base_url.trim_end_matches('/')
    );
    let bytes = match ctx.options.mode {
        Mode::Direct => {
            let mut request = ctx.traced.post(&url).json(body);
            if let Some(key) = &ctx.options.api_key {
                request = request.bearer_auth(key);
            }
            let response = ctx.traced.execute_in(agent, request.build()?).await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            if !status.is_success() {
                bail!("model call failed with {status}");
            }
            bytes
        }
        Mode::Proxy => {
            // Any client works: the SDK only adds traceparent + x-llmtap-* headers.
            let mut request = ctx.http.post(&url).llmtap(agent).json(body);
            if let Some(key) = &ctx.options.api_key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            if !status.is_success() {
                bail!("model call failed with {status}");
            }
            // The proxy's span carries the usage; the agents' totals want it too.
            if let Some(usage) = proxy::usage_from_body("/v1/chat/completions", &bytes) {
                agent.add_usage(&usage);
            }
            bytes
        }
    };
    if stream {
        assemble_stream(&bytes)
    } else {
        let v: Value = serde_json::from_slice(&bytes)?;
        Ok(v["choices"][0]["message"].clone())
    }
}

/// The assistant message a chat completion stream spells out.
fn assemble_stream(bytes: &[u8]) -> anyhow::Result<Value> {
    let mut text = String::new();
    let mut decoder = SseDecoder::new();
    let mut bad = 0usize;
    let mut on_event = |data: &str| {
        if data == "[DONE]" {
            return;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(chunk) => {
                if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(piece);
                }
            }
            Err(_) => bad += 1,
        }
    };
    decoder.feed(bytes, |ev| on_event(ev.data));
    decoder.finish(|ev| on_event(ev.data));
    if bad > 0 {
        bail!("{bad} stream events were not JSON");
    }
    Ok(json!({"role": "assistant", "content": text}))
}

/// Starts the mock upstream and returns it with its OpenAI-compatible base URL (`.../v1`).
pub async fn start_mock() -> anyhow::Result<(llmtap_mock::MockUpstream, String)> {
    let mock = llmtap_mock::MockUpstream::bind_local(llmtap_mock::MockConfig::default()).await?;
    let base = format!("{}/v1", mock.base_url());
    Ok((mock, base))
}
