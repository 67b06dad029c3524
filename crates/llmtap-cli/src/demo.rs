//! `llmtap demo`: the first thing a new user runs. It starts the built-in mock upstream and the
//! real proxy on loopback ports, runs a scripted multi-agent conversation through the proxy the
//! way an agent framework with no OTel SDK would (plain HTTP, `x-llmtap-*` headers, and
//! `traceresponse` → `traceparent` hand-offs), then prints the agent tree read back from JSONL.
//!
//! No API key, no network. With `OTEL_EXPORTER_OTLP_ENDPOINT` set the same spans also go to the
//! collector, exactly as with `llmtap proxy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use llmtap_core::env::{EnvSource, ProcessEnv};
use llmtap_core::settings;
use llmtap_mock::{MockConfig, MockUpstream, SCENARIO_HEADER};
use llmtap_proxy::headers::{HEADER_AGENT, HEADER_SESSION, HEADER_TRACERESPONSE};
use llmtap_proxy::{App, Config, Overrides, ShutdownReport};
use serde_json::{Value, json};

use crate::cost::PriceTable;
use crate::paths::DEFAULT_DEMO_FILE;
use crate::spans::read_file;
use crate::tree::{TraceTree, TreeFilter, TreeNode, build_priced_trees, render, stdout_style};

/// The model every demo agent asks for.
const DEMO_MODEL: &str = "gpt-4o-mini";
/// A credential-shaped key the demo sends on every call, to show it never reaches the file.
const DEMO_API_KEY: &str = "sk-demo-0000000000000000000000000000000000000000";

/// The most of one answer the scripted agents read (mock answers are a few KiB).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Reads a body up to `limit` bytes; more is an error, never an unbounded buffer.
async fn read_bounded(mut body: hyper::body::Incoming, limit: usize) -> anyhow::Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > limit {
                bail!("answer larger than {limit} bytes");
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Flags of `llmtap demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// JSONL file to write (appended to), or `off`: the tree is then read from a temporary file,
    /// removed afterwards [default: .llmtap/demo.jsonl]
    #[arg(long, value_name = "PATH|off")]
    pub jsonl: Option<String>,
    /// Never colour the output.
    #[arg(long)]
    pub no_color: bool,
}

/// What a demo run produced.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The JSONL file the spans went to.
    pub jsonl: PathBuf,
    /// `gen_ai.conversation.id` shared by every call of this run.
    pub session: String,
    /// This run's traces, read back from the file.
    pub trees: Vec<TraceTree>,
    /// What the proxy reported when it stopped (span counters per sink included).
    pub report: ShutdownReport,
    /// Model calls the script made.
    pub calls: usize,
}

/// Runs the demo and prints its tree.
pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let kept = match args.jsonl.as_deref() {
        None => Some(PathBuf::from(DEFAULT_DEMO_FILE)),
        Some(raw) => llmtap_export::parse_jsonl_path(raw),
    };
    // `--jsonl off` keeps no file; the tree is drawn from a private temporary one.
    let (jsonl, scratch) = match kept {
        Some(path) => (path, None),
        None => {
            let dir = ScratchDir::new()?;
            (dir.path.join("demo.jsonl"), Some(dir))
        }
    };
    let keep_file = scratch.is_none();
    eprintln!("llmtap demo: starting a mock OpenAI-compatible upstream and the proxy on loopback…");
    let outcome = run_demo(&jsonl, &ProcessEnv).await?;
    drop(scratch);
    if outcome.report.telemetry.jsonl.is_none() {
        println!(
            "{} model calls ran through the proxy; no span was recorded ({}=true turns every \
             sink off).",
            outcome.calls,
            settings::OTEL_SDK_DISABLED.env
        );
        return Ok(ExitCode::SUCCESS);
    }
    let style = stdout_style(args.no_color);
    println!();
    print!("{}", render(&outcome.trees, style));
    print_summary(&outcome, keep_file);
    Ok(ExitCode::SUCCESS)
}

/// A private temporary directory, removed when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "llmtap-demo-{}-{:x}",
            std::process::id(),
            unix_micros()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("cannot create a temporary directory {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn print_summary(outcome: &DemoOutcome, kept: bool) {
    let spans: usize = outcome.trees.iter().map(|t| t.span_count).sum();
    let mut agents = std::collections::BTreeSet::new();
    for tree in &outcome.trees {
        collect_agents(&tree.roots, &mut agents);
    }
    let path = outcome.jsonl.display();
    if !kept {
        println!(
            "{} model calls by {} agents → {spans} spans (session {}); --jsonl off: read back \
             from a temporary file, now removed.",
            outcome.calls,
            agents.len(),
            outcome.session
        );
        print_otlp(outcome);
        return;
    }
    println!(
        "{} model calls by {} agents → {spans} spans in {path} (session {}).",
        outcome.calls,
        agents.len(),
        outcome.session
    );
    println!("The API key the agents sent is in no span: grep -c sk-demo {path} → 0");
    println!();
    // Every next step names the file: reading commands default to the proxy's file, not this.
    println!(
        "  see it again:        llmtap tree {path} --session {}",
        outcome.session
    );
    if let Some(last) = outcome.trees.last().and_then(|t| last_node(&t.roots)) {
        println!("  one call in full:    llmtap show {} {path}", last.span_id);
    }
    println!("  calls, tokens, cost: llmtap stats {path} --by agent");
    println!(
        "  send to a collector: {}=http://localhost:4318 llmtap push {path}",
        settings::OTEL_EXPORTER_OTLP_ENDPOINT.env
    );
    println!(
        "  try the proxy:       llmtap mock, then llmtap proxy --upstream-openai http://127.0.0.1:8420"
    );
    println!("  trace your own app:  llmtap proxy, then OPENAI_BASE_URL=http://127.0.0.1:8421/v1");
    print_otlp(outcome);
}

fn print_otlp(outcome: &DemoOutcome) {
    if let Some(otlp) = &outcome.report.telemetry.otlp {
        println!(
            "  OTLP forwarding: {} spans sent, {} failed, {} dropped",
            otlp.written, otlp.failed, otlp.dropped
        );
    }
}

/// The last node in depth-first order (the call that ended the run).
fn last_node(nodes: &[TreeNode]) -> Option<&TreeNode> {
    let node = nodes.last()?;
    last_node(&node.children).or(Some(node))
}

fn collect_agents<'a>(nodes: &'a [TreeNode], out: &mut std::collections::BTreeSet<&'a str>) {
    for node in nodes {
        if let Some(agent) = &node.agent {
            out.insert(agent);
        }
        collect_agents(&node.children, out);
    }
}

/// Runs the scripted conversation through a real proxy and mock upstream, both on loopback
/// ports, writing spans to `jsonl`; telemetry settings (OTLP, capture policy) come from `env`.
pub async fn run_demo(jsonl: &Path, env: &impl EnvSource) -> anyhow::Result<DemoOutcome> {
    let mock = MockUpstream::bind_local(MockConfig {
        latency: Duration::from_millis(35),
        chunk_delay: Duration::from_millis(8),
        ..MockConfig::default()
    })
    .await
    .context("cannot start the mock upstream")?;
    let overrides = Overrides::new()
        .with(&settings::LISTEN, "127.0.0.1:0")
        .with(&settings::JSONL, jsonl.display().to_string())
        .with(&settings::UPSTREAM_OPENAI, mock.base_url())
        .with(&settings::SHUTDOWN_GRACE_SECS, "5");
    let config = Config::load(&overrides, env)?;
    let app = App::build_with_env(config, env).await?;
    let listener = llmtap_proxy::listen::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("cannot bind a loopback port for the proxy")?;
    let proxy_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));

    let session = format!("demo-{:012x}", unix_micros() & 0xffff_ffff_ffff);
    let agents = Agents {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{proxy_addr}/v1/chat/completions"),
        session: session.clone(),
    };
    let script = agents.conversation().await;

    let _ = stop.send(());
    let report = server
        .await
        .context("proxy task failed")?
        .context("proxy stopped with an error")?;
    mock.shutdown().await;
    let calls = script?;

    // With every sink off (`OTEL_SDK_DISABLED=true`) there is no file to read back.
    let trees = if report.telemetry.jsonl.is_some() {
        let (spans, _) = read_file(jsonl)?;
        let prices = PriceTable::bundled().unwrap_or_else(|_| PriceTable::empty());
        build_priced_trees(
            spans,
            &TreeFilter {
                session: Some(session.clone()),
                ..TreeFilter::default()
            },
            &prices,
        )
    } else {
        Vec::new()
    };
    Ok(DemoOutcome {
        jsonl: jsonl.to_path_buf(),
        session,
        trees,
        report,
        calls,
    })
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The scripted agents: each call is what an agent framework would send, plus llmtap's headers.
struct Agents {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    session: String,
}

/// One call's request.
struct Call<'a> {
    agent: &'a str,
    /// `traceparent` handed down by whoever spawned this agent.
    parent: Option<&'a str>,
    body: Value,
    /// A mock fault to ask for (`x-mock-scenario`).
    scenario: Option<&'a str>,
}

/// One call's answer.
struct Answer {
    status: StatusCode,
    /// The call's own span as `traceresponse`, to hand to agents this one spawns.
    traceresponse: Option<String>,
    body: Bytes,
}

impl Answer {
    /// `traceresponse` rewritten as the `traceparent` a spawned agent sends.
    fn handoff(&self) -> anyhow::Result<String> {
        self.traceresponse
            .clone()
            .context("the proxy sent no traceresponse header")
    }

    /// The first tool call of a non-streaming answer, or of a stream's deltas.
    fn tool_call(&self) -> Option<(String, String, String)> {
        let text = String::from_utf8_lossy(&self.body);
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let call = v.pointer("/choices/0/message/tool_calls/0")?;
            return Some((
                call.get("id")?.as_str()?.to_owned(),
                call.pointer("/function/name")?.as_str()?.to_owned(),
                call.pointer("/function/arguments")?.as_str()?.to_owned(),
            ));
        }
        let (mut id, mut name, mut args) = (None, None, String::new());
        for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if let Some(call) = chunk.pointer("/choices/0/delta/tool_calls/0") {
                if let Some(v) = call.get("id").and_then(Value::as_str) {
                    id = Some(v.to_owned());
                }
                if let Some(v) = call.pointer("/function/name").and_then(Value::as_str) {
                    name = Some(v.to_owned());
                }
                if let Some(v) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    args.push_str(v);
                }
            }
        }
        Some((id?, name?, args))
    }
}

impl Agents {
    async fn send(&self, call: Call<'_>) -> anyhow::Result<Answer> {
        let mut request = Request::post(&self.base)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {DEMO_API_KEY}"),
            )
            .header(HEADER_AGENT, call.agent)
            .header(HEADER_SESSION, &self.session)
            .header("x-llmtap-meta-demo", "true");
        if let Some(parent) = call.parent {
            request = request.header("traceparent", parent);
        }
        if let Some(scenario) = call.scenario {
            request = request.header(SCENARIO_HEADER, scenario);
        }
        let request = request.body(Full::new(Bytes::from(call.body.to_string())))?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("{}: the proxy did not answer", call.agent))?;
        let status = response.status();
        let traceresponse = response
            .headers()
            .get(HEADER_TRACERESPONSE)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned);
        let body = read_bounded(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .with_context(|| format!("{}: the response body was cut", call.agent))?;
        Ok(Answer {
            status,
            traceresponse,
            body,
        })
    }

    /// Sends a call that must succeed.
    async fn ok(&self, call: Call<'_>) -> anyhow::Result<Answer> {
        let agent = call.agent.to_owned();
        let answer = self.send(call).await?;
        if !answer.status.is_success() {
            bail!("{agent}: unexpected HTTP {}", answer.status);
        }
        Ok(answer)
    }

    /// The scripted run; returns the number of model calls made.
    ///
    /// ```text
    /// orchestrator  plan (JSON)
    /// ├─ researcher-web     search tool call (stream) → answer with the tool result (stream)
    /// ├─ researcher-papers  summary (JSON)
    /// │  └─ fact-checker    429 from upstream, then a retry that succeeds (stream)
    /// └─ writer             final draft (stream)
    /// ```
    async fn conversation(&self) -> anyhow::Result<usize> {
        let plan = self
            .ok(Call {
                agent: "orchestrator",
                parent: None,
                body: json!({
                    "model": DEMO_MODEL,
                    "messages": [
                        {"role": "system", "content": "You coordinate a research team. Split the task."},
                        {"role": "user", "content": "Write a short brief on tracing LLM agents with OpenTelemetry."}
                    ],
                    "temperature": 0.2,
                    "max_tokens": 300
                }),
                scenario: None,
            })
            .await?;
        let from_orchestrator = plan.handoff()?;

        let web = self.researcher_web(&from_orchestrator);
        let papers = self.researcher_papers(&from_orchestrator);
        let (web, papers) = tokio::join!(web, papers);
        let calls = 1 + web? + papers?;

        self.ok(Call {
            agent: "writer",
            parent: Some(&from_orchestrator),
            body: json!({
                "model": DEMO_MODEL,
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "You write concise technical briefs."},
                    {"role": "user", "content": "Draft the brief from the research notes."}
                ]
            }),
            scenario: None,
        })
        .await?;
        Ok(calls + 1)
    }

    async fn researcher_web(&self, parent: &str) -> anyhow::Result<usize> {
        let tools = json!([{
            "type": "function",
            "function": {
                "name": "web_search",
                "description": "Search the web",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
            }
        }]);
        let question =
            json!({"role": "user", "content": "Find current practice for tracing agent swarms."});
        let first = self
            .ok(Call {
                agent: "researcher-web",
                parent: Some(parent),
                body: json!({
                    "model": DEMO_MODEL,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                    "tools": tools,
                    "messages": [question]
                }),
                scenario: None,
            })
            .await?;
        let (id, name, arguments) = first
            .tool_call()
            .context("researcher-web: the model asked for no tool call")?;
        self.ok(Call {
            agent: "researcher-web",
            parent: Some(parent),
            body: json!({
                "model": DEMO_MODEL,
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": tools,
                "messages": [
                    question,
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}
                    ]},
                    {"role": "tool", "tool_call_id": id, "content": "OpenTelemetry gen_ai semantic conventions; W3C traceparent between agents."}
                ]
            }),
            scenario: None,
        })
        .await?;
        Ok(2)
    }

    async fn researcher_papers(&self, parent: &str) -> anyhow::Result<usize> {
        let summary = self
            .ok(Call {
                agent: "researcher-papers",
                parent: Some(parent),
                body: json!({
                    "model": DEMO_MODEL,
                    "messages": [{"role": "user", "content": "Summarise what papers say about agent observability."}],
                    "response_format": {"type": "json_object"}
                }),
                scenario: None,
            })
            .await?;
        let from_papers = summary.handoff()?;
        let check = |scenario| Call {
            agent: "fact-checker",
            parent: Some(&from_papers),
            body: json!({
                "model": DEMO_MODEL,
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Check the claims in this summary."}]
            }),
            scenario,
        };
        // The first attempt is rate limited by the (mock) provider; the agent retries, as real
        // agents do, and both attempts show up in the tree.
        let limited = self.send(check(Some("error:429"))).await?;
        if limited.status != StatusCode::TOO_MANY_REQUESTS {
            bail!("fact-checker: expected a 429, got HTTP {}", limited.status);
        }
        self.ok(check(None)).await?;
        Ok(3)
    }
}
