//! The orchestrator: starts the upstream, the proxies and nginx pinned to their cores, measures
//! every path in one run, prints one table and writes `latest.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use llmtap_proxy::settings;
use serde::Serialize;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::load::{self, HttpClient, Pcts, RateRun, StreamRun};
use crate::upstream::SinkStats;

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The llmtap binary (release build).
    #[arg(long, default_value = "target/release/llmtap")]
    llmtap: PathBuf,
    /// Output directory (latest.json, scratch files).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Seconds per measurement (each fixed rate and each saturation run).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// wrk connections for saturation runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Upstream delay before the head of a non-streaming answer, µs.
    #[arg(long, default_value_t = 0)]
    delay_us: u64,
    /// SSE chunks per stream and delay between them (µs) for the streaming test.
    #[arg(long, default_value_t = 20)]
    chunks: usize,
    #[arg(long, default_value_t = 10_000)]
    chunk_delay_us: u64,
    /// Streams measured per path, and how many run at once.
    #[arg(long, default_value_t = 400)]
    streams: usize,
    #[arg(long, default_value_t = 20)]
    stream_concurrency: usize,
    /// Concurrent slow streams for the memory test.
    #[arg(long, default_value_t = 1000)]
    slow_streams: usize,
    /// Request body size for the large-body memory test, MB.
    #[arg(long, default_value_t = 100)]
    body_mb: usize,
    /// Core(s) for the load generator, the upstream, wrk and the OTLP sink.
    #[arg(long, default_value = "0")]
    client_cores: String,
    /// Core(s) for the proxy under test (llmtap or nginx).
    #[arg(long, default_value = "1")]
    proxy_cores: String,
    /// Skip nginx (when it is not installed).
    #[arg(long)]
    no_nginx: bool,
    /// Non-streaming calls per path at concurrency 1 (one call at a time).
    #[arg(long, default_value_t = 2000)]
    serial_calls: usize,
    /// Peer: the `litellm` executable of a venv with `litellm[proxy]` and the OpenTelemetry
    /// OTLP/HTTP exporter (scripts/bench.sh installs it under target/bench/peers/venv).
    #[arg(long)]
    litellm: Option<PathBuf>,
    /// Peer: Portkey's gateway entry point, `node_modules/@portkey-ai/gateway/build/start-server.js`
    /// (scripts/bench.sh installs it under target/bench/peers/portkey).
    #[arg(long)]
    portkey: Option<PathBuf>,
    /// The node binary that runs the Portkey gateway.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// A peer that could not be installed, as `name: reason` (printed as SKIP, kept in the report).
    #[arg(long = "skipped")]
    skipped: Vec<String>,
}

/// Rounds the streaming measurements are split into, every path once per round.
const STREAM_ROUNDS: usize = 4;

#[derive(Debug, Clone, Serialize)]
struct PathResult {
    name: String,
    /// A gateway a user would pick instead of llmtap (LiteLLM, Portkey): run at the same absolute
    /// rates as the others, not part of the rate base.
    peer: bool,
    saturation: Saturation,
    rates: Vec<RateRun>,
    stream: StreamRun,
    /// Short streamed calls of one chunk, one at a time: the time to first byte without other
    /// streams queued on the same cores.
    serial: StreamRun,
    /// Streamed calls carrying a ~180 KB agent conversation, one at a time.
    long_prompt: StreamRun,
    /// Non-streaming calls one at a time (concurrency 1).
    conc1: Conc1,
    /// RSS of the path's process tree after its load phases, and its peak (VmHWM) over them.
    rss_after_load_kib: Option<u64>,
    peak_rss_kib: Option<u64>,
    /// What the path's OTLP sink received (paths that export OTLP).
    otlp: Option<SinkReport>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Conc1 {
    calls: usize,
    errors: usize,
    latency: Pcts,
}

#[derive(Debug, Clone, Default, Serialize)]
struct SinkReport {
    requests: u64,
    bytes: u64,
    spans: u64,
    /// Trace bodies whose spans could not be counted (compressed or not OTLP).
    undecoded: u64,
    /// Requests to other OTLP paths (logs, metrics).
    other_requests: u64,
    /// Calls this harness sent through the path (approximate: wrk's in-flight calls at its end).
    calls_sent: u64,
}

/// A gateway measured beside llmtap: how it was installed and started.
#[derive(Debug, Clone, Serialize)]
struct PeerSetup {
    name: String,
    version: String,
    command: String,
    config: String,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Saturation {
    rps: f64,
    non_2xx: u64,
    latency: Pcts,
}

#[derive(Debug, Serialize)]
struct Memory {
    path: String,
    idle_rss_kib: u64,
    slow_streams: usize,
    slow_streams_ok: usize,
    peak_rss_slow_streams_kib: u64,
    big_body_mb: usize,
    big_body_status: u16,
    peak_rss_big_body_kib: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    when_unix: u64,
    loadavg_before: String,
    loadavg_after: String,
    cpus: usize,
    pinning: String,
    /// Fixed rates are 25/50/80 % of this (the lowest saturation throughput of direct, llmtap,
    /// llmtap+otlp and nginx; the peers run at the same absolute rates).
    rate_base: f64,
    peers: Vec<PeerSetup>,
    /// Peers that could not be installed or started: `name: reason`.
    skipped: Vec<String>,
    upstream: String,
    paths: Vec<PathResult>,
    memory: Vec<Memory>,
    exporter: serde_json::Value,
    sdk: serde_json::Value,
    ratios: serde_json::Value,
    /// llmtap against each peer, row by row.
    peer_ratios: Vec<PeerRatio>,
    targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
struct PeerRatio {
    peer: String,
    rows: Vec<RatioRow>,
}

/// One comparison: llmtap (capture + JSONL), llmtap+otlp and the peer on the same measurement.
#[derive(Debug, Clone, Serialize)]
struct RatioRow {
    what: String,
    unit: &'static str,
    higher_is_better: bool,
    llmtap: f64,
    llmtap_otlp: Option<f64>,
    peer: f64,
    /// llmtap / peer (None when the peer's value is ≤ 0: no meaningful ratio).
    ratio: Option<f64>,
    ratio_otlp: Option<f64>,
    /// Both llmtap and llmtap+otlp better than the peer on this row.
    llmtap_ahead: bool,
    note: String,
}

#[derive(Debug, Serialize)]
struct Target {
    name: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn proc_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `/proc/<pid>/stat`, if the process is still there.
fn proc_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// The fields of a `/proc/<pid>/stat` line after `(comm)`, which may hold spaces and
/// parentheses: state is the 0th, ppid the 1st, utime the 11th, stime the 12th.
fn stat_fields(stat: &str) -> std::str::SplitWhitespace<'_> {
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
}

/// Children of every process, from /proc/*/stat.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Some(stat) = proc_stat(pid) else {
                continue;
            };
            let ppid = stat_fields(&stat)
                .nth(1)
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// `key` (VmRSS:, VmHWM:) summed over a process and its descendants (LiteLLM and Node may run
/// workers as children).
fn tree_kib(pid: u32, key: &str) -> u64 {
    descendants(pid).into_iter().map(|p| proc_kib(p, key)).sum()
}

/// CPU time (user + system, clock ticks) of a process and its descendants.
fn tree_cpu_ticks(pid: u32) -> u64 {
    descendants(pid)
        .into_iter()
        .filter_map(proc_stat)
        .map(|stat| {
            stat_fields(&stat)
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Longest wait for a path to finish the work a phase queued in it.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// Waits until the path's process tree is idle (at most 2 ticks of CPU, ~4 % of a core, in half
/// a second). A proxy sent more than it carries keeps working through its queue after the load
/// tool has stopped and dropped its connections (LiteLLM and Portkey do not cancel a call whose
/// client left): on the shared proxy core that work would land on the next path's measurement.
async fn settle(name: &str, pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let started = std::time::Instant::now();
    loop {
        let before = tree_cpu_ticks(pid);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tree_cpu_ticks(pid).saturating_sub(before) <= 2 {
            let waited = started.elapsed();
            if waited > Duration::from_secs(2) {
                eprintln!(
                    "{name}: busy with its queued calls for {waited:.1?} after the load stopped"
                );
            }
            return;
        }
        if started.elapsed() > SETTLE_LIMIT {
            eprintln!("{name}: still busy {SETTLE_LIMIT:?} after the load stopped; going on");
            return;
        }
    }
}

fn pinned(cores: &str, program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(cores).arg(program);
    c
}

/// One way to the upstream: the URL, the headers this path needs on every call, and the process
/// behind it.
struct Route {
    name: String,
    url: String,
    headers: Vec<(&'static str, String)>,
    pid: Option<u32>,
    peer: bool,
    sink: Option<Arc<SinkStats>>,
}

/// Waits until a chat call through `url` answers 2xx (LiteLLM imports for tens of seconds, two
/// minutes on a busy machine); fails with the last status or error after 5 minutes or when the
/// process has exited.
/// The chat completions URL of a path listening on `port`.
fn chat_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/chat/completions")
}

/// A spawned peer on `port` once it answers; killed and reaped when it never does.
async fn until_ready(
    client: &HttpClient,
    port: u16,
    headers: &[(&'static str, String)],
    spawned: anyhow::Result<Child>,
) -> anyhow::Result<Child> {
    let mut child = spawned?;
    match wait_ready(client, &chat_url(port), headers, Some(&mut child)).await {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

async fn wait_ready(
    client: &HttpClient,
    url: &str,
    headers: &[(&'static str, String)],
    child: Option<&mut Child>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut child = child;
    loop {
        let req = load::chat_request(url, Bytes::from_static(load::CHAT_BODY.as_bytes()), headers)?;
        let last = match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let _ = load::drain(resp.into_body()).await;
                if status.is_success() {
                    return Ok(());
                }
                format!("status {status}")
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if let Some(c) = child.as_deref_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            anyhow::bail!("{url}: the process exited ({status}); last answer: {last}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{url} never became ready (last answer: {last})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spawn_llmtap(
    args: &RunArgs,
    port: u16,
    upstream: u16,
    jsonl: &Path,
    otlp: Option<u16>,
) -> anyhow::Result<Child> {
    let mut cmd = pinned(&args.proxy_cores, &args.llmtap);
    cmd.arg("proxy")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--jsonl")
        .arg(jsonl)
        .arg("--upstream-openai")
        .arg(format!("http://127.0.0.1:{upstream}"))
        .env_remove(settings::OTEL_EXPORTER_OTLP_ENDPOINT.env)
        .env_remove(settings::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.env)
        .env_remove(settings::OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(sink) = otlp {
        cmd.env(
            settings::OTEL_EXPORTER_OTLP_ENDPOINT.env,
            format!("http://127.0.0.1:{sink}"),
        )
        .env(settings::OTEL_EXPORTER_OTLP_PROTOCOL.env, "http/protobuf");
    }
    Ok(cmd.spawn()?)
}

fn spawn_nginx(args: &RunArgs, dir: &Path, port: u16, upstream: u16) -> anyhow::Result<Child> {
    let dir = std::fs::canonicalize(dir)?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/nginx-body;\n  proxy_temp_path {d}/nginx-proxy;\n\
         \x20 fastcgi_temp_path {d}/nginx-fcgi;\n  uwsgi_temp_path {d}/nginx-uwsgi;\n  scgi_temp_path {d}/nginx-scgi;\n\
         \x20 tcp_nodelay on;\n  keepalive_requests 1000000;\n\
         \x20 upstream up {{ server 127.0.0.1:{upstream}; keepalive 256; }}\n\
         \x20 server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n\
         \x20   proxy_request_buffering off;\n    proxy_buffering off;\n\
         \x20   location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = pinned(&args.proxy_cores, Path::new("nginx"));
    cmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(cmd.spawn()?)
}

/// LiteLLM's proxy config: one model, passed through to the bench upstream as an OpenAI
/// provider, with LiteLLM's OpenTelemetry callback on.
fn litellm_config(upstream: u16) -> String {
    format!(
        "model_list:\n\
         \x20 - model_name: gpt-4o-mini\n\
         \x20   litellm_params:\n\
         \x20     model: openai/gpt-4o-mini\n\
         \x20     api_base: http://127.0.0.1:{upstream}/v1\n\
         \x20     api_key: sk-bench\n\
         litellm_settings:\n\
         \x20 callbacks: [\"otel\"]\n\
         \x20 set_verbose: false\n\
         \x20 request_timeout: 600\n\
         general_settings:\n\
         \x20 forward_client_headers_to_llm_api: true\n"
    )
}

/// The proxy's master key: LiteLLM refuses to start without one (or an explicit "permit weak
/// key" flag); the bench sends it as a bearer token, as a client of a real deployment would.
const LITELLM_KEY: &str = "sk-llmtapbench-7f3a9c2e5b1d4f6a8c0e2b4d6f8a1c3e";

fn litellm_headers() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {LITELLM_KEY}"))]
}

/// LiteLLM proxy, one worker, pinned to the proxy core(s); its OTel callback exports OTLP/HTTP
/// to `sink`. Its stderr goes to `dir/litellm.log`.
fn spawn_litellm(
    args: &RunArgs,
    exe: &Path,
    dir: &Path,
    port: u16,
    upstream: u16,
    sink: u16,
) -> anyhow::Result<Child> {
    let config = dir.join("litellm.yaml");
    std::fs::write(&config, litellm_config(upstream))?;
    let log = std::fs::File::create(dir.join(format!("litellm-{port}.log")))?;
    let mut cmd = pinned(&args.proxy_cores, exe);
    cmd.arg("--config")
        .arg(&config)
        .arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string())
        .arg("--num_workers")
        .arg("1")
        .envs(litellm_env(sink))
        .stdout(Stdio::null())
        .stderr(log);
    Ok(cmd.spawn()?)
}

fn litellm_env(sink: u16) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER", "otlp_http".into()),
        (
            "OTEL_ENDPOINT",
            format!("http://127.0.0.1:{sink}/v1/traces"),
        ),
        (
            llmtap_proxy::settings::OTEL_SERVICE_NAME.env,
            "litellm-bench".into(),
        ),
        ("LITELLM_MASTER_KEY", LITELLM_KEY.into()),
        ("LITELLM_LOG", "ERROR".into()),
        ("LITELLM_MODE", "PRODUCTION".into()),
        ("LITELLM_TELEMETRY", "False".into()),
        ("DISABLE_ADMIN_UI", "True".into()),
        ("NO_DOCKER", "True".into()),
    ]
}

/// The headers Portkey's gateway needs to pass a call through to an OpenAI-compatible host,
/// and to forward the bench's per-request overrides to it.
fn portkey_headers(upstream: u16) -> Vec<(&'static str, String)> {
    vec![
        ("x-portkey-provider", "openai".into()),
        (
            "x-portkey-custom-host",
            format!("http://127.0.0.1:{upstream}/v1"),
        ),
        (
            "x-portkey-forward-headers",
            "x-bench-chunks,x-bench-chunk-delay-us,x-bench-delay-us".into(),
        ),
        ("authorization", "Bearer sk-bench".into()),
    ]
}

/// Portkey's gateway (Node), headless, pinned to the proxy core(s). The loopback upstream has to
/// be named trusted, or the gateway refuses it as a custom host.
fn spawn_portkey(args: &RunArgs, script: &Path, dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(format!("portkey-{port}.log")))?;
    let mut cmd = pinned(&args.proxy_cores, &args.node);
    cmd.arg(script)
        .arg(format!("--port={port}"))
        .arg("--headless")
        .env("TRUSTED_CUSTOM_HOSTS", "127.0.0.1,localhost")
        .env("NODE_ENV", "production")
        .stdout(Stdio::null())
        .stderr(log);
    Ok(cmd.spawn()?)
}

/// The installed version of a peer, read from its package metadata.
fn litellm_version(exe: &Path) -> String {
    let venv = exe.parent().and_then(Path::parent);
    let found = venv
        .and_then(|v| std::fs::read_dir(v.join("lib")).ok())
        .and_then(|libs| {
            libs.flatten().find_map(|py| {
                std::fs::read_dir(py.path().join("site-packages"))
                    .ok()?
                    .flatten()
                    .find_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_prefix("litellm-")?
                            .strip_suffix(".dist-info")
                            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                            .map(str::to_owned)
                    })
            })
        });
    found.unwrap_or_else(|| "unknown".into())
}

fn portkey_version(script: &Path) -> String {
    script
        .parent()
        .and_then(Path::parent)
        .and_then(|d| std::fs::read(d.join("package.json")).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// A TTFB table block: one row per path, and the difference to the first path (direct).
fn write_ttfb_rows(
    o: &mut String,
    label: &str,
    note: &str,
    paths: &[PathResult],
    run: impl Fn(&PathResult) -> &StreamRun,
) {
    let base = paths.first().map_or(0.0, |d| run(d).ttfb.p50_us);
    let _ = writeln!(
        o,
        "{label:<12} {:>10} {:>12} {:>12}   {note}",
        "streams", "TTFB p50", "+TTFB p50"
    );
    for p in paths {
        let r = run(p);
        let _ = writeln!(
            o,
            "{:<12} {:>10} {:>12.0} {:>12.0}",
            p.name,
            r.completed_of_total(),
            r.ttfb.p50_us,
            r.ttfb.p50_us - base
        );
    }
}

/// wrk's script: POST the chat body with the path's headers.
fn wrk_lua(headers: &[(&'static str, String)]) -> anyhow::Result<String> {
    let mut lua = format!(
        "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        serde_json::to_string(load::CHAT_BODY)?
    );
    for (k, v) in headers {
        let _ = writeln!(
            lua,
            "wrk.headers[{}] = {}",
            serde_json::to_string(k)?,
            serde_json::to_string(v)?
        );
    }
    Ok(lua)
}

/// The pid of the process taskset exec'd into is the child's pid (taskset execs, no fork).
fn wrk(args: &RunArgs, url: &str, lua: &Path) -> anyhow::Result<Saturation> {
    let out = pinned(&args.client_cores, Path::new("wrk"))
        .arg("-t1")
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds))
        .arg("--latency")
        .arg("-s")
        .arg(lua)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let s = parse_wrk(&text);
    anyhow::ensure!(s.rps > 0.0, "wrk failed: {text}");
    Ok(s)
}

/// wrk's report as a [`Saturation`]. Its `Requests/sec` counts every answer, a fast 503 too: a
/// path that sheds would look faster than one that serves. So the rate kept is the successful
/// answers' share of it, and the others are reported as `non_2xx`.
fn parse_wrk(text: &str) -> Saturation {
    let mut s = Saturation::default();
    let mut lat = Pcts::default();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => s.rps = v.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", v] => s.non_2xx = v.parse().unwrap_or(0),
            ["Latency", _avg, _sd, max, _] => lat.max_us = dur_us(max),
            ["50%", v] => lat.p50_us = dur_us(v),
            ["90%", v] => lat.p90_us = dur_us(v),
            ["99%", v] => lat.p99_us = dur_us(v),
            [n, "requests", "in", ..] => lat.n = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    if s.non_2xx > 0 && lat.n > 0 {
        let ok = lat
            .n
            .saturating_sub(usize::try_from(s.non_2xx).unwrap_or(usize::MAX));
        s.rps *= ok as f64 / lat.n as f64;
    }
    s.latency = lat;
    s
}

fn dur_us(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 6e7,
        _ => n,
    }
}

async fn warm(client: &HttpClient, url: &str, headers: &[(&'static str, String)], n: usize) {
    for _ in 0..n {
        let req = load::chat_request(url, Bytes::from_static(load::CHAT_BODY.as_bytes()), headers);
        load::one_call(client, req).await;
    }
}

/// Peak RSS of a fresh proxy process with `slow_streams` concurrent slow streams, then with one
/// large request body.
async fn memory(
    args: &RunArgs,
    name: &str,
    mut spawn: impl FnMut() -> anyhow::Result<Child>,
    url: &str,
    headers: &[(&'static str, String)],
) -> anyhow::Result<Memory> {
    let client = load::client();
    let mut child = Procs(vec![spawn()?]);
    let pid = child.0[0].id();
    wait_ready(&client, url, headers, child.0.first_mut()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = tree_kib(pid, "VmRSS:");
    // Slow streams: 50 chunks, 100 ms apart (~5 s each), all open at once.
    let mut slow = headers.to_vec();
    slow.push(("x-bench-chunks", "50".to_owned()));
    slow.push(("x-bench-chunk-delay-us", "100000".to_owned()));
    let run = load::stream_samples(
        &client,
        url,
        Bytes::from_static(load::STREAM_BODY.as_bytes()),
        args.slow_streams,
        args.slow_streams,
        slow,
    )
    .await
    .into_run(100_000.0);
    let peak_streams = tree_kib(pid, "VmHWM:");
    drop(child);
    drop(client);

    // Large body: a fresh process, one request.
    let client = load::client();
    child = Procs(vec![spawn()?]);
    let pid = child.0[0].id();
    wait_ready(&client, url, headers, child.0.first_mut()).await?;
    let filler = "a".repeat(args.body_mb * 1024 * 1024);
    let body =
        format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{filler}"}}]}}"#);
    drop(filler);
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let call = async {
        match client.request(req).await {
            Ok(resp) => {
                let s = resp.status().as_u16();
                let _ = load::drain(resp.into_body()).await;
                s
            }
            Err(_) => 0,
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .unwrap_or(0);
    let peak_body = tree_kib(pid, "VmHWM:");
    drop(child);
    Ok(Memory {
        path: name.to_owned(),
        idle_rss_kib: idle,
        slow_streams: args.slow_streams,
        slow_streams_ok: run.streams - run.errors,
        peak_rss_slow_streams_kib: peak_streams,
        big_body_mb: args.body_mb,
        big_body_status: status,
        peak_rss_big_body_kib: peak_body,
    })
}

fn self_json(args: &RunArgs, sub: &[&str]) -> serde_json::Value {
    let Ok(me) = std::env::current_exe() else {
        return serde_json::Value::Null;
    };
    let out = pinned(&args.proxy_cores, &me)
        .args(sub)
        .arg("--dir")
        .arg(&args.out)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
        }
        Ok(o) => serde_json::json!({"error": String::from_utf8_lossy(&o.stderr)}),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let dir = args.out.join("run");
    std::fs::create_dir_all(&dir)?;
    // Every run starts with empty JSONL files (no rotation inherited from an earlier run).
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry.file_name().to_string_lossy().contains(".jsonl") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let loadavg_before = loadavg();
    let cpus = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |s| {
        s.lines().filter(|l| l.starts_with("processor")).count()
    });
    let me = std::env::current_exe()?;
    let pinning = format!(
        "load generator + OTLP sinks (this process) and upstream and wrk: cores {}; proxy under test (llmtap, nginx, LiteLLM, Portkey — all started at once, each measured alone): cores {}; exporter/SDK micro-benchmarks: cores {}",
        args.client_cores, args.proxy_cores, args.proxy_cores
    );
    eprintln!("pinning: {pinning}\nload average: {loadavg_before}");
    let mut skipped = args.skipped.clone();
    for s in &skipped {
        eprintln!("SKIP: {s}");
    }

    // Upstream.
    let up_port = free_port()?;
    let mut procs = Procs(Vec::new());
    procs.0.push(
        pinned(&args.client_cores, &me)
            .arg("upstream")
            .arg("--listen")
            .arg(format!("127.0.0.1:{up_port}"))
            .arg("--delay-us")
            .arg(args.delay_us.to_string())
            .arg("--chunks")
            .arg(args.chunks.to_string())
            .arg("--chunk-delay-us")
            .arg(args.chunk_delay_us.to_string())
            .stdout(Stdio::null())
            .spawn()?,
    );
    // OTLP sinks, in this process: one per exporting path, so each path's spans are counted.
    let sink = async || -> anyhow::Result<(u16, Arc<SinkStats>)> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        let stats = Arc::new(SinkStats::default());
        tokio::spawn(crate::upstream::serve_sink(l, Arc::clone(&stats)));
        Ok((port, stats))
    };
    let route = |name: &str, port: u16, pid: Option<u32>| Route {
        name: name.into(),
        url: chat_url(port),
        headers: Vec::new(),
        pid,
        peer: false,
        sink: None,
    };

    let mut routes = vec![route("direct", up_port, None)];
    let p = free_port()?;
    let child = spawn_llmtap(&args, p, up_port, &dir.join("llmtap.jsonl"), None)?;
    routes.push(route("llmtap", p, Some(child.id())));
    procs.0.push(child);
    let (llmtap_sink, llmtap_stats) = sink().await?;
    let p = free_port()?;
    let child = spawn_llmtap(
        &args,
        p,
        up_port,
        &dir.join("llmtap-otlp.jsonl"),
        Some(llmtap_sink),
    )?;
    routes.push(Route {
        sink: Some(llmtap_stats),
        ..route("llmtap+otlp", p, Some(child.id()))
    });
    procs.0.push(child);
    if !args.no_nginx {
        let p = free_port()?;
        let child = spawn_nginx(&args, &dir, p, up_port)?;
        routes.push(route("nginx", p, Some(child.id())));
        procs.0.push(child);
    }
    let client = load::client();
    for r in &routes {
        wait_ready(&client, &r.url, &r.headers, None).await?;
        eprintln!("ready: {} {}", r.name, r.url);
    }

    // The peers: started, checked, and skipped (visibly) when they do not answer.
    let mut peers = Vec::new();
    let (litellm_sink, litellm_stats) = sink().await?;
    if let Some(exe) = &args.litellm {
        let p = free_port()?;
        let version = litellm_version(exe);
        let spawned = spawn_litellm(&args, exe, &dir, p, up_port, litellm_sink);
        let started = until_ready(&client, p, &litellm_headers(), spawned).await;
        match started {
            Ok(child) => {
                routes.push(Route {
                    peer: true,
                    headers: litellm_headers(),
                    sink: Some(Arc::clone(&litellm_stats)),
                    ..route("litellm", p, Some(child.id()))
                });
                procs.0.push(child);
                let env: Vec<String> = litellm_env(litellm_sink)
                    .into_iter()
                    .map(|(k, v)| match k {
                        "LITELLM_MASTER_KEY" => format!("{k}=<bench key>"),
                        _ => format!("{k}={v}"),
                    })
                    .collect();
                peers.push(PeerSetup {
                    name: "litellm".into(),
                    version: format!("litellm[proxy]=={version} (PyPI)"),
                    command: format!(
                        "{} litellm --config litellm.yaml --host 127.0.0.1 --port PORT --num_workers 1",
                        env.join(" ")
                    ),
                    config: litellm_config(up_port),
                });
                eprintln!("ready: litellm {version}");
            }
            Err(e) => {
                let reason = format!(
                    "litellm: did not start: {e:#} (see {}/litellm-{p}.log)",
                    dir.display()
                );
                eprintln!("SKIP: {reason}");
                skipped.push(reason);
            }
        }
    }
    if let Some(script) = &args.portkey {
        let p = free_port()?;
        let version = portkey_version(script);
        let headers = portkey_headers(up_port);
        let spawned = spawn_portkey(&args, script, &dir, p);
        let started = until_ready(&client, p, &headers, spawned).await;
        match started {
            Ok(child) => {
                let shown: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                routes.push(Route {
                    peer: true,
                    headers,
                    ..route("portkey", p, Some(child.id()))
                });
                procs.0.push(child);
                peers.push(PeerSetup {
                    name: "portkey".into(),
                    version: format!("@portkey-ai/gateway@{version} (npm)"),
                    command: format!(
                        "TRUSTED_CUSTOM_HOSTS=127.0.0.1,localhost NODE_ENV=production node {} --port=PORT --headless",
                        script.display()
                    ),
                    config: format!("per-call headers: {}", shown.join("; ")),
                });
                eprintln!("ready: portkey {version}");
            }
            Err(e) => {
                let reason = format!(
                    "portkey: did not start: {e:#} (see {}/portkey-{p}.log)",
                    dir.display()
                );
                eprintln!("SKIP: {reason}");
                skipped.push(reason);
            }
        }
    }
    // Warm-up calls, one at a time: 2,000 for the Rust and C paths, 300 for the peers (Node's
    // JIT is warm well before; LiteLLM, at tens of milliseconds a call on a busy machine, would
    // spend minutes here).
    let warm_count = |r: &Route| if r.peer { 300 } else { 2000 };
    for r in &routes {
        warm(&client, &r.url, &r.headers, warm_count(r)).await;
    }

    // Saturation first (it sets the fixed rates).
    let mut sats = Vec::new();
    for r in &routes {
        let lua = dir.join(format!("post-{}.lua", r.name.replace('+', "-")));
        std::fs::write(&lua, wrk_lua(&r.headers)?)?;
        let s = match wrk(&args, &r.url, &lua) {
            Ok(s) => s,
            Err(e) if r.peer => {
                eprintln!("saturation {}: {e:#}", r.name);
                Saturation::default()
            }
            Err(e) => return Err(e),
        };
        eprintln!(
            "saturation {}: {:.0} req/s answered 2xx ({} other answers not counted)",
            r.name, s.rps, s.non_2xx
        );
        sats.push(s);
        settle(&r.name, r.pid).await;
    }
    // Fixed rates: fractions of a saturation every path can actually carry. With the proxy on
    // one core, direct's saturation (wrk + upstream only) is several times what any proxy, nginx
    // included, can forward, so rates taken from it would measure queueing, not overhead. The
    // base is therefore the lowest saturation of direct, llmtap and nginx (`rate_base`). The
    // peers run at the same absolute rates: a peer that cannot keep up sheds and queues, and
    // that is what the rows show — its slowness does not lower everyone's rates.
    let rate_base = routes
        .iter()
        .zip(&sats)
        .filter(|(r, _)| !r.peer)
        .map(|(_, s)| s.rps)
        .fold(f64::INFINITY, f64::min);
    eprintln!(
        "fixed rates are fractions of {rate_base:.0} req/s (lowest saturation of direct, llmtap, nginx)"
    );
    let fractions = [0.25, 0.5, 0.8];
    let long_body = Bytes::from(load::long_conversation_body());
    // Each rate for every path in turn (not all rates of one path, then the next path), so
    // drift over the run lands on every path alike.
    let mut all_rates: Vec<Vec<load::RateRun>> = routes.iter().map(|_| Vec::new()).collect();
    let mut warm_calls: Vec<u64> = routes.iter().map(|r| warm_count(r) as u64).collect();
    for f in fractions {
        for ((r, rates), sent) in routes.iter().zip(all_rates.iter_mut()).zip(&mut warm_calls) {
            // One unmeasured second at the same rate first: connection pools on every hop grow
            // to what the rate needs, so the measurement sees the steady state, not the ramp.
            let w = load::fixed_rate(
                &client,
                &r.url,
                &r.headers,
                rate_base * f,
                Duration::from_secs(1),
                2048,
            )
            .await;
            *sent += (w.latency.n + w.errors) as u64;
            let x = load::fixed_rate(
                &client,
                &r.url,
                &r.headers,
                rate_base * f,
                Duration::from_secs(args.seconds),
                2048,
            )
            .await;
            eprintln!(
                "{} @ {:.0} req/s: p50 {:.0} µs p99 {:.0} µs (shed {}, errors {})",
                r.name, x.target_rps, x.latency.p50_us, x.latency.p99_us, x.shed, x.errors
            );
            rates.push(x);
            settle(&r.name, r.pid).await;
        }
    }
    // Streams and the concurrency-1 calls in interleaved rounds (every path once per round), so
    // that drift in the machine's speed over the minutes this takes lands on every path alike.
    let n = routes.len();
    let mut short = Vec::new();
    let mut serial = Vec::new();
    let mut long = Vec::new();
    short.resize_with(n, load::StreamSamples::default);
    serial.resize_with(n, load::StreamSamples::default);
    long.resize_with(n, load::StreamSamples::default);
    let mut conc1: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 0); n];
    for round in 0..STREAM_ROUNDS {
        let share =
            |total: usize| total / STREAM_ROUNDS + usize::from(round < total % STREAM_ROUNDS);
        let each = short
            .iter_mut()
            .zip(serial.iter_mut())
            .zip(long.iter_mut())
            .zip(conc1.iter_mut());
        for (r, (((short, serial), long), conc1)) in routes.iter().zip(each) {
            let (lat, errors) =
                load::serial_calls(&client, &r.url, &r.headers, share(args.serial_calls)).await;
            conc1.0.extend(lat);
            conc1.1 += errors;
            let samples = load::stream_samples(
                &client,
                &r.url,
                Bytes::from_static(load::STREAM_BODY.as_bytes()),
                share(args.streams),
                args.stream_concurrency,
                r.headers.clone(),
            )
            .await;
            short.merge(samples);
            let mut one_chunk = r.headers.clone();
            one_chunk.push(("x-bench-chunks", "1".to_owned()));
            let samples = load::stream_samples(
                &client,
                &r.url,
                Bytes::from_static(load::STREAM_BODY.as_bytes()),
                share(args.streams),
                1,
                one_chunk,
            )
            .await;
            serial.merge(samples);
            let samples = load::stream_samples(
                &client,
                &r.url,
                long_body.clone(),
                share(args.streams / 2),
                1,
                r.headers.clone(),
            )
            .await;
            long.merge(samples);
        }
    }
    // Give exporters a moment to send their last batches before the sinks are read.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let gap = args.chunk_delay_us as f64;
    let mut results = Vec::new();
    let streamed = short.into_iter().zip(serial).zip(long).zip(conc1);
    for ((((r, sat), rates), sent), (((short, serial), long), (lat, c1_errors))) in routes
        .iter()
        .zip(sats)
        .zip(all_rates)
        .zip(warm_calls)
        .zip(streamed)
    {
        let stream = short.into_run(gap);
        let serial = serial.into_run(gap);
        let long_prompt = long.into_run(gap);
        let conc1 = Conc1 {
            calls: lat.len() + c1_errors,
            errors: c1_errors,
            latency: load::pcts(lat),
        };
        eprintln!(
            "{} stream: ttfb p50 {:.0} µs, chunk p50 {:.0} µs p99 {:.0} µs max {:.0} µs; one at a time: ttfb p50 {:.0} µs, long prompt {:.0} µs; concurrency 1: p50 {:.0} µs p99 {:.0} µs",
            r.name,
            stream.ttfb.p50_us,
            stream.chunk_delay.p50_us,
            stream.chunk_delay.p99_us,
            stream.chunk_delay.max_us,
            serial.ttfb.p50_us,
            long_prompt.ttfb.p50_us,
            conc1.latency.p50_us,
            conc1.latency.p99_us,
        );
        let calls_sent = sent
            + sat.latency.n as u64
            + rates
                .iter()
                .map(|x| (x.latency.n + x.errors) as u64)
                .sum::<u64>()
            + (stream.streams + serial.streams + long_prompt.streams + conc1.calls) as u64
            + 1;
        let otlp = r.sink.as_ref().map(|s| SinkReport {
            requests: s.requests.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            spans: s.spans.load(Ordering::Relaxed),
            undecoded: s.undecoded.load(Ordering::Relaxed),
            other_requests: s.other.load(Ordering::Relaxed),
            calls_sent,
        });
        results.push(PathResult {
            name: r.name.clone(),
            peer: r.peer,
            saturation: sat,
            rates,
            stream,
            serial,
            long_prompt,
            conc1,
            rss_after_load_kib: r.pid.map(|p| tree_kib(p, "VmRSS:")),
            peak_rss_kib: r.pid.map(|p| tree_kib(p, "VmHWM:")),
            otlp,
        });
    }
    // Stop the proxies (keep the upstream) before memory and micro-benchmarks.
    let upstream = procs.0.remove(0);
    drop(procs);
    let procs = Procs(vec![upstream]);

    let mut memory_results = Vec::new();
    {
        let p = free_port()?;
        let jsonl = dir.join("llmtap-mem.jsonl");
        let url = route("", p, None).url;
        let m = memory(
            &args,
            "llmtap",
            || spawn_llmtap(&args, p, up_port, &jsonl, None),
            &url,
            &[],
        )
        .await?;
        eprintln!("memory llmtap: {m:?}");
        memory_results.push(m);
        if !args.no_nginx {
            let p = free_port()?;
            let url = route("", p, None).url;
            let m = memory(
                &args,
                "nginx",
                || spawn_nginx(&args, &dir, p, up_port),
                &url,
                &[],
            )
            .await?;
            eprintln!("memory nginx: {m:?}");
            memory_results.push(m);
        }
        let measured = |name: &str| routes.iter().any(|r| r.name == name);
        if let Some(exe) = args.litellm.as_ref().filter(|_| measured("litellm")) {
            let p = free_port()?;
            let url = route("", p, None).url;
            let spawn = || spawn_litellm(&args, exe, &dir, p, up_port, litellm_sink);
            match memory(&args, "litellm", spawn, &url, &litellm_headers()).await {
                Ok(m) => {
                    eprintln!("memory litellm: {m:?}");
                    memory_results.push(m);
                }
                Err(e) => eprintln!("memory litellm: {e:#}"),
            }
        }
        if let Some(script) = args.portkey.as_ref().filter(|_| measured("portkey")) {
            let p = free_port()?;
            let url = route("", p, None).url;
            let spawn = || spawn_portkey(&args, script, &dir, p);
            match memory(&args, "portkey", spawn, &url, &portkey_headers(up_port)).await {
                Ok(m) => {
                    eprintln!("memory portkey: {m:?}");
                    memory_results.push(m);
                }
                Err(e) => eprintln!("memory portkey: {e:#}"),
            }
        }
    }
    drop(procs);

    let exporter = self_json(&args, &["exporter"]);
    eprintln!("exporter: {exporter}");
    let sdk = self_json(&args, &["sdk"]);
    eprintln!("sdk: {sdk}");

    let mut report = Report {
        when_unix: crate::clock::unix_ns() / 1_000_000_000,
        loadavg_before,
        loadavg_after: loadavg(),
        cpus,
        pinning,
        rate_base,
        peers,
        skipped,
        upstream: format!(
            "llmtap-bench upstream: JSON after {} µs; SSE {} chunks {} µs apart",
            args.delay_us, args.chunks, args.chunk_delay_us
        ),
        paths: results,
        memory: memory_results,
        exporter,
        sdk,
        ratios: serde_json::Value::Null,
        peer_ratios: Vec::new(),
        targets: Vec::new(),
    };
    let text = render(&mut report);
    println!("{text}");
    std::fs::write(
        args.out.join("latest.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(args.out.join("latest.txt"), text)?;
    eprintln!("wrote {}", args.out.join("latest.json").display());
    Ok(())
}

/// llmtap (and llmtap+otlp) against one peer on every latency, throughput and memory
/// measurement both have.
fn peer_rows(
    direct: &PathResult,
    ll: &PathResult,
    lo: Option<&PathResult>,
    peer: &PathResult,
    memory: &[Memory],
) -> Vec<RatioRow> {
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    let row = |what: String, unit, higher: bool, get: &dyn Fn(&PathResult) -> f64| {
        let (l, p) = (get(ll), get(peer));
        let lo_v = lo.map(get);
        let better = |x: f64| if higher { x > p } else { x < p };
        RatioRow {
            what,
            unit,
            higher_is_better: higher,
            llmtap: l,
            llmtap_otlp: lo_v,
            peer: p,
            ratio: ratio(l, p),
            ratio_otlp: lo_v.and_then(|v| ratio(v, p)),
            llmtap_ahead: better(l) && lo_v.is_none_or(better),
            note: String::new(),
        }
    };
    let mut rows = vec![row("saturation".into(), "req/s", true, &|p| {
        p.saturation.rps
    })];
    for (i, rr) in direct.rates.iter().enumerate() {
        let rate = rr.target_rps;
        for (q, get) in [
            ("p50", (|x: &Pcts| x.p50_us) as fn(&Pcts) -> f64),
            ("p99", |x: &Pcts| x.p99_us),
        ] {
            let d = get(&rr.latency);
            let mut x = row(
                format!("added {q} at {rate:.0} req/s"),
                "µs",
                false,
                &|p| p.rates.get(i).map_or(f64::NAN, |x| get(&x.latency) - d),
            );
            // A path that shed or failed calls at this rate did not carry it: its percentiles
            // cover only the calls it answered. Fewer lost calls wins first.
            let lost = |p: &PathResult| p.rates.get(i).map_or(0, |x| x.shed + x.errors);
            let (l_lost, p_lost) = (lost(ll), lost(peer));
            let lo_lost = lo.map_or(0, lost);
            if l_lost + lo_lost + p_lost > 0 {
                x.note = format!(
                    "lost calls: llmtap {l_lost}, llmtap+otlp {lo_lost}, {} {p_lost}",
                    peer.name
                );
                x.llmtap_ahead = (l_lost < p_lost && lo_lost < p_lost)
                    || (l_lost == 0 && lo_lost == 0 && p_lost == 0 && x.llmtap_ahead);
            }
            rows.push(x);
        }
    }
    // Streamed rows: a path whose calls failed has no TTFB to compare; more completed calls
    // wins first.
    let streamed = |what: &str, get: fn(&PathResult) -> &StreamRun| {
        let d = get(direct).ttfb.p50_us;
        let mut x = row(what.into(), "µs", false, &|p| get(p).ttfb.p50_us - d);
        let done = |p: &PathResult| get(p).streams - get(p).errors;
        let (l, p) = (done(ll), done(peer));
        let lo_done = lo.map_or(l, done);
        if l != get(ll).streams || p != get(peer).streams || lo_done != l {
            x.note = format!(
                "completed: llmtap {}, llmtap+otlp {lo_done}, {} {}",
                get(ll).completed_of_total(),
                peer.name,
                get(peer).completed_of_total()
            );
            x.llmtap_ahead = (l > p && lo_done > p) || (l == p && lo_done == p && x.llmtap_ahead);
        }
        x
    };
    rows.push(streamed("added TTFB p50, streamed, serial", |p| &p.serial));
    rows.push(streamed("added TTFB p50, long prompt", |p| &p.long_prompt));
    let dc = direct.conc1.latency;
    rows.push(row("added p50, concurrency 1".into(), "µs", false, &|p| {
        p.conc1.latency.p50_us - dc.p50_us
    }));
    rows.push(row("added p99, concurrency 1".into(), "µs", false, &|p| {
        p.conc1.latency.p99_us - dc.p99_us
    }));
    rows.push(row(
        "peak RSS over the load phases".into(),
        "KiB",
        false,
        &|p| p.peak_rss_kib.unwrap_or(0) as f64,
    ));
    let mem = |name: &str| memory.iter().find(|m| m.path == name);
    if let (Some(lm), Some(pm)) = (mem("llmtap"), mem(&peer.name)) {
        for (what, get) in [
            (
                "RSS idle",
                (|m: &Memory| m.idle_rss_kib) as fn(&Memory) -> u64,
            ),
            ("peak RSS, 1,000 slow streams", |m: &Memory| {
                m.peak_rss_slow_streams_kib
            }),
            ("peak RSS, large body", |m: &Memory| m.peak_rss_big_body_kib),
        ] {
            let (l, p) = (get(lm) as f64, get(pm) as f64);
            rows.push(RatioRow {
                what: what.into(),
                unit: "KiB",
                higher_is_better: false,
                llmtap: l,
                llmtap_otlp: None,
                peer: p,
                ratio: ratio(l, p),
                ratio_otlp: None,
                llmtap_ahead: l < p,
                note: if what.contains("large body") {
                    format!(
                        "status llmtap {}, {} {}",
                        lm.big_body_status, peer.name, pm.big_body_status
                    )
                } else if what.contains("slow streams") {
                    format!(
                        "completed llmtap {}, {} {}",
                        lm.slow_streams_ok, peer.name, pm.slow_streams_ok
                    )
                } else {
                    String::new()
                },
            });
        }
    }
    rows
}

fn path<'a>(paths: &'a [PathResult], name: &str) -> Option<&'a PathResult> {
    paths.iter().find(|p| p.name == name)
}

fn render(r: &mut Report) -> String {
    let mut o = String::new();
    let paths = r.paths.clone();
    let _ = writeln!(
        o,
        "llmtap benchmark — {} cpus, load average before {} / after {}",
        r.cpus, r.loadavg_before, r.loadavg_after
    );
    let _ = writeln!(o, "pinning: {}", r.pinning);
    let _ = writeln!(o, "upstream: {}", r.upstream);
    let _ = writeln!(
        o,
        "fixed rates: 25/50/80 % of {:.0} req/s (the lowest saturation of direct, llmtap, llmtap+otlp, nginx; peers at the same absolute rates); open loop, latency from the scheduled send time",
        r.rate_base
    );
    for p in &r.peers {
        let _ = writeln!(o, "peer {}: {}; {}", p.name, p.version, p.command);
    }
    for s in &r.skipped {
        let _ = writeln!(o, "SKIP: {s}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<12} {:>16} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>6}",
        "path", "load", "p50 µs", "p90 µs", "p99 µs", "max µs", "+p50 µs", "+p99 µs", "shed/err"
    );
    let Some(direct) = path(&paths, "direct") else {
        return o;
    };
    let direct_rates: Vec<Pcts> = direct.rates.iter().map(|x| x.latency).collect();
    let direct_sat = direct.saturation.latency;
    for p in &paths {
        for (i, rr) in p.rates.iter().enumerate() {
            let d = direct_rates.get(i).copied().unwrap_or_default();
            let _ = writeln!(
                o,
                "{:<12} {:>16} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>10.0} {:>6}",
                p.name,
                format!("{:.0} req/s", rr.target_rps),
                rr.latency.p50_us,
                rr.latency.p90_us,
                rr.latency.p99_us,
                rr.latency.max_us,
                rr.latency.p50_us - d.p50_us,
                rr.latency.p99_us - d.p99_us,
                format!("{}/{}", rr.shed, rr.errors)
            );
        }
        let s = p.saturation.latency;
        let _ = writeln!(
            o,
            "{:<12} {:>16} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>10.0} {:>6}",
            p.name,
            format!("sat {:.0}/s", p.saturation.rps),
            s.p50_us,
            s.p90_us,
            s.p99_us,
            s.max_us,
            s.p50_us - direct_sat.p50_us,
            s.p99_us - direct_sat.p99_us,
            "-"
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<12} {:>10} {:>12} {:>12} {:>14} {:>14} {:>14}",
        "streaming",
        "streams",
        "TTFB p50",
        "+TTFB p50",
        "chunk p50 µs",
        "chunk p99 µs",
        "chunk max µs"
    );
    let dt = direct.stream.ttfb.p50_us;
    let dc = direct.stream.chunk_delay;
    for p in &paths {
        let c = p.stream.chunk_delay;
        // A gateway that re-encodes chunks drops the upstream's send stamps: no transit.
        let cell = |v: f64| {
            if c.n == 0 {
                "n/a".to_owned()
            } else {
                format!("{v:.0}")
            }
        };
        let _ = writeln!(
            o,
            "{:<12} {:>10} {:>12.0} {:>12.0} {:>14} {:>14} {:>14}",
            p.name,
            p.stream.completed_of_total(),
            p.stream.ttfb.p50_us,
            p.stream.ttfb.p50_us - dt,
            cell(c.p50_us),
            cell(c.p99_us),
            cell(c.max_us)
        );
    }
    let _ = writeln!(
        o,
        "(chunk = upstream send → client receive; direct chunk p50/p99 {:.0}/{:.0} µs is the floor)",
        dc.p50_us, dc.p99_us
    );
    let long_kb = load::long_conversation_body().len() / 1000;
    write_ttfb_rows(
        &mut o,
        "serial",
        "(short streamed call, one chunk, one call at a time: no other stream queued)",
        &paths,
        |p| &p.serial,
    );
    write_ttfb_rows(
        &mut o,
        "long prompt",
        &format!("(streamed call with a {long_kb} KB conversation, one at a time)"),
        &paths,
        |p| &p.long_prompt,
    );
    let dc1 = direct.conc1.latency;
    let _ = writeln!(
        o,
        "{:<12} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10}   (non-streaming calls, one at a time)",
        "conc-1", "calls", "p50 µs", "p99 µs", "max µs", "+p50 µs", "+p99 µs"
    );
    for p in &paths {
        let c = &p.conc1;
        let _ = writeln!(
            o,
            "{:<12} {:>10} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>10.0}",
            p.name,
            format!("{}/{}", c.calls - c.errors, c.calls),
            c.latency.p50_us,
            c.latency.p99_us,
            c.latency.max_us,
            c.latency.p50_us - dc1.p50_us,
            c.latency.p99_us - dc1.p99_us
        );
    }
    let _ = writeln!(o);
    for p in paths.iter().filter(|p| p.peak_rss_kib.is_some()) {
        let mib = |k: Option<u64>| k.unwrap_or(0) as f64 / 1024.0;
        let _ = writeln!(
            o,
            "rss {:<12} after the load phases {:>7.1} MiB, peak {:>7.1} MiB",
            p.name,
            mib(p.rss_after_load_kib),
            mib(p.peak_rss_kib)
        );
    }
    for p in &paths {
        if let Some(s) = &p.otlp {
            let _ = writeln!(
                o,
                "otlp {:<12} {} spans in {} trace requests ({} KB in all{}; {} other OTLP requests) for ≈{} calls sent",
                p.name,
                s.spans,
                s.requests - s.other_requests,
                s.bytes / 1000,
                if s.undecoded > 0 {
                    format!(", {} bodies not countable", s.undecoded)
                } else {
                    String::new()
                },
                s.other_requests,
                s.calls_sent
            );
        }
    }
    for m in &r.memory {
        let _ = writeln!(
            o,
            "memory {:<7} idle {:>6.1} MiB | {} slow streams ({} ok): peak {:>6.1} MiB | {} MB body (status {}): peak {:>6.1} MiB",
            m.path,
            m.idle_rss_kib as f64 / 1024.0,
            m.slow_streams,
            m.slow_streams_ok,
            m.peak_rss_slow_streams_kib as f64 / 1024.0,
            m.big_body_mb,
            m.big_body_status,
            m.peak_rss_big_body_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(o, "exporter: {}", r.exporter);
    let _ = writeln!(o, "sdk: {}", r.sdk);

    // Ratios and targets.
    let (Some(ll), Some(ng)) = (path(&paths, "llmtap"), path(&paths, "nginx")) else {
        return o;
    };
    let added = |p: &PathResult, i: usize| {
        let d = direct_rates.get(i).copied().unwrap_or_default();
        let x = p.rates.get(i).map(|x| x.latency).unwrap_or_default();
        (x.p50_us - d.p50_us, x.p99_us - d.p99_us)
    };
    let mut ratios = serde_json::Map::new();
    let _ = writeln!(o);
    let _ = writeln!(o, "ratios llmtap / nginx (added latency = path − direct):");
    // A ratio of added latencies only means something when nginx's added latency is above the
    // noise; when it is ≤ 0 (nginx measured as fast as direct) the ratio is reported as null and
    // the target judged on llmtap's absolute added latency instead (≤ 1.5× / 2× of 0 = 0).
    let ratio = |l: f64, n: f64| (n > 0.0).then(|| l / n);
    let mut worst50: Option<f64> = Some(0.0);
    let mut worst99: Option<f64> = Some(0.0);
    let fold = |w: Option<f64>, r: Option<f64>, l: f64| match (w, r) {
        (Some(w), Some(r)) => Some(w.max(r)),
        // nginx within noise: met only if llmtap is within noise too.
        (w, None) if l <= 0.0 => w,
        _ => None,
    };
    for (i, f) in ["25%", "50%", "80%"].iter().enumerate() {
        let (l50, l99) = added(ll, i);
        let (n50, n99) = added(ng, i);
        let (r50, r99) = (ratio(l50, n50), ratio(l99, n99));
        worst50 = fold(worst50, r50, l50);
        worst99 = fold(worst99, r99, l99);
        let show = |r: Option<f64>| {
            r.map_or("n/a (nginx within noise)".to_owned(), |r| {
                format!("{r:.2}×")
            })
        };
        let x = ll.rates.get(i).map(|x| x.latency).unwrap_or_default();
        let y = ng.rates.get(i).map(|x| x.latency).unwrap_or_default();
        let _ = writeln!(
            o,
            "  at {f} of the base rate: added p50 {l50:.0} vs {n50:.0} µs = {}, added p99 {l99:.0} vs {n99:.0} µs = {}; total p50 {:.2}×, p99 {:.2}×",
            show(r50),
            show(r99),
            x.p50_us / y.p50_us.max(1.0),
            x.p99_us / y.p99_us.max(1.0)
        );
        ratios.insert(
            format!("added_p50_at_{f}"),
            serde_json::json!({"llmtap_us": l50, "nginx_us": n50, "ratio": r50}),
        );
        ratios.insert(
            format!("added_p99_at_{f}"),
            serde_json::json!({"llmtap_us": l99, "nginx_us": n99, "ratio": r99}),
        );
        ratios.insert(
            format!("total_at_{f}"),
            serde_json::json!({"p50_ratio": x.p50_us / y.p50_us.max(1.0), "p99_ratio": x.p99_us / y.p99_us.max(1.0)}),
        );
    }
    let tput = ll.saturation.rps / ng.saturation.rps.max(1.0);
    let _ = writeln!(
        o,
        "  throughput at saturation: {:.0} vs {:.0} req/s = {tput:.2}× (direct {:.0})",
        ll.saturation.rps, ng.saturation.rps, direct.saturation.rps
    );
    ratios.insert("throughput".into(), serde_json::json!(tput));
    if let Some(lo) = path(&paths, "llmtap+otlp") {
        let _ = writeln!(
            o,
            "  llmtap+otlp throughput: {:.0} req/s = {:.2}× nginx",
            lo.saturation.rps,
            lo.saturation.rps / ng.saturation.rps.max(1.0)
        );
    }
    let long_added = ll.long_prompt.ttfb.p50_us - direct.long_prompt.ttfb.p50_us;
    let long_added_nginx = ng.long_prompt.ttfb.p50_us - direct.long_prompt.ttfb.p50_us;
    let _ = writeln!(
        o,
        "  long prompt ({long_kb} KB) added TTFB p50: {long_added:.0} vs {long_added_nginx:.0} µs"
    );
    ratios.insert(
        "long_prompt_added_ttfb_us".into(),
        serde_json::json!({"llmtap": long_added, "nginx": long_added_nginx}),
    );
    r.ratios = serde_json::Value::Object(ratios);

    let (_, l99_80) = added(ll, 2);
    // When direct itself shed requests at 80 %, the load generator's core was at its own limit
    // and "path − direct" says nothing (it can even come out negative): no verdict.
    let direct_shed_80 = direct.rates.get(2).map_or(0, |x| x.shed);
    let ll_shed_80 = ll.rates.get(2).map_or(0, |x| x.shed);
    // Judged one call at a time: with 20 streams at once on shared cores the p50 moves by
    // ±200 µs between runs (queueing), more than any proxy adds; both are reported.
    let ttfb_added = ll.serial.ttfb.p50_us - direct.serial.ttfb.p50_us;
    let ttfb_added_nginx = ng.serial.ttfb.p50_us - direct.serial.ttfb.p50_us;
    let ttfb_added_concurrent = ll.stream.ttfb.p50_us - dt;
    let held = ll.stream.chunks_over_gap;
    let held_n = ll.stream.chunk_delay.n;
    let rss_streams = r
        .memory
        .iter()
        .find(|m| m.path == "llmtap")
        .map_or(0.0, |m| m.peak_rss_slow_streams_kib as f64 / 1024.0);
    let rss_body = r
        .memory
        .iter()
        .find(|m| m.path == "llmtap")
        .map_or(0.0, |m| m.peak_rss_big_body_kib as f64 / 1024.0);
    let sps = r.exporter["spans_per_sec"].as_f64().unwrap_or(0.0);
    let ns = r.sdk["ns_per_span"].as_f64().unwrap_or(f64::MAX);
    let t = |name: &str, target: &str, measured: String, met: bool| Target {
        name: name.into(),
        target: target.into(),
        measured,
        met: Some(met),
    };
    r.targets = vec![
        t(
            "added latency p50 vs nginx",
            "≤ 1.5×",
            worst50.map_or(
                "unbounded (nginx added ≈ 0, llmtap > 0)".to_owned(),
                |w| format!("{w:.2}× (worst load point)"),
            ),
            worst50.is_some_and(|w| w <= 1.5),
        ),
        t(
            "added latency p99 vs nginx",
            "≤ 2×",
            worst99.map_or(
                "unbounded (nginx added ≈ 0, llmtap > 0)".to_owned(),
                |w| format!("{w:.2}× (worst load point)"),
            ),
            worst99.is_some_and(|w| w <= 2.0),
        ),
        Target {
            name: "added p99 at 80% of saturation".into(),
            target: "< 1000 µs".into(),
            measured: if direct_shed_80 > 0 {
                format!(
                    "{l99_80:.0} µs — no verdict: direct itself shed {direct_shed_80} (llmtap shed {ll_shed_80})"
                )
            } else {
                format!("{l99_80:.0} µs (llmtap shed {ll_shed_80})")
            },
            met: (direct_shed_80 == 0).then_some(l99_80 < 1000.0 && ll_shed_80 == 0),
        },
        t(
            "streaming added TTFB p50",
            "≤ 100 µs",
            format!(
                "{ttfb_added:.0} µs one at a time (nginx {ttfb_added_nginx:.0}); {ttfb_added_concurrent:.0} µs concurrent"
            ),
            ttfb_added <= 100.0,
        ),
        t(
            "no chunk held back",
            "< 1 % of chunks in transit ≥ the inter-chunk gap",
            format!("{held}/{held_n} chunks ≥ gap"),
            (held as f64) < 0.01 * held_n as f64,
        ),
        t(
            "throughput vs nginx (capture + JSONL)",
            "≥ 0.7×",
            format!("{tput:.2}×"),
            tput >= 0.7,
        ),
        t(
            "RSS, 1,000 slow streams",
            "≤ 64 MiB",
            format!("{rss_streams:.1} MiB"),
            rss_streams <= 64.0 && rss_streams > 0.0,
        ),
        t(
            "RSS, 100 MB body",
            "bounded",
            format!("{rss_body:.1} MiB"),
            rss_body > 0.0 && rss_body < 100.0,
        ),
        t(
            "JSONL exporter",
            "≥ 200,000 spans/s",
            format!("{sps:.0} spans/s"),
            sps >= 200_000.0,
        ),
        t(
            "SDK span start+end",
            "≤ 2 µs",
            format!("{:.2} µs", ns / 1000.0),
            ns <= 2000.0,
        ),
    ];
    // Concurrency 1, as the public proxy boards measure: llmtap's added p50/p99 against nginx's.
    let c1 = |p: &PathResult| {
        (
            p.conc1.latency.p50_us - direct.conc1.latency.p50_us,
            p.conc1.latency.p99_us - direct.conc1.latency.p99_us,
        )
    };
    let ((l1_50, l1_99), (n1_50, n1_99)) = (c1(ll), c1(ng));
    let _ = writeln!(
        o,
        "  concurrency 1: added p50 {l1_50:.0} vs {n1_50:.0} µs, added p99 {l1_99:.0} vs {n1_99:.0} µs"
    );
    r.targets.push(t(
        "concurrency 1: added p50 ≤ nginx's",
        "≤ nginx",
        format!("{l1_50:.0} vs {n1_50:.0} µs"),
        l1_50 <= n1_50,
    ));
    r.targets.push(t(
        "concurrency 1: added p99 ≤ nginx's",
        "≤ nginx",
        format!("{l1_99:.0} vs {n1_99:.0} µs"),
        l1_99 <= n1_99,
    ));

    // The peers, row by row.
    let lo = path(&paths, "llmtap+otlp");
    for peer in paths.iter().filter(|p| p.peer) {
        let rows = peer_rows(direct, ll, lo, peer, &r.memory);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "llmtap vs {} (ratio = llmtap / {}; throughput: higher is better, latency and memory: lower is better):",
            peer.name, peer.name
        );
        let _ = writeln!(
            o,
            "  {:<34} {:>11} {:>12} {:>11} {:>9} {:>9}  ahead",
            "row", "llmtap", "llmtap+otlp", peer.name, "ratio", "+otlp"
        );
        let show = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.3}×"));
        for row in &rows {
            let _ = writeln!(
                o,
                "  {:<34} {:>11.0} {:>12} {:>11.0} {:>9} {:>9}  {}{}",
                format!("{} ({})", row.what, row.unit),
                row.llmtap,
                row.llmtap_otlp.map_or("-".into(), |v| format!("{v:.0}")),
                row.peer,
                show(row.ratio),
                show(row.ratio_otlp),
                if row.llmtap_ahead { "yes" } else { "NO" },
                if row.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", row.note)
                }
            );
        }
        let ahead = rows.iter().filter(|x| x.llmtap_ahead).count();
        r.targets.push(t(
            &format!("ahead of {} on every row", peer.name),
            "every latency, throughput and RSS row",
            format!("{ahead}/{} rows", rows.len()),
            ahead == rows.len(),
        ));
        r.peer_ratios.push(PeerRatio {
            peer: peer.name.clone(),
            rows,
        });
    }

    let _ = writeln!(o);
    let _ = writeln!(o, "targets:");
    for t in &r.targets {
        let _ = writeln!(
            o,
            "  [{}] {:<40} target {:<36} measured {}",
            match t.met {
                Some(true) => "met ",
                Some(false) => "MISS",
                None => "n/a ",
            },
            t.name,
            t.target,
            t.measured
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk's report of a path that answered most calls with a fast 503: the saturation kept is
    /// the 2xx answers' rate, not wrk's `Requests/sec`.
    #[test]
    fn wrk_saturation_counts_only_successful_answers() {
        let report = "Running 5s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.80ms    1.90ms  21.51ms   80.00%
  Latency Distribution
     50%    2.09ms
     90%    8.07ms
     99%   12.45ms
  116352 requests in 5.00s, 81.40MB read
  Non-2xx or 3xx responses: 101555
Requests/sec:  23259.18
Transfer/sec:     16.27MB
";
        let s = parse_wrk(report);
        assert_eq!(s.non_2xx, 101_555);
        assert_eq!(s.latency.n, 116_352);
        let ok = 23_259.18 * (116_352.0 - 101_555.0) / 116_352.0;
        assert!((s.rps - ok).abs() < 0.01, "{} vs {ok}", s.rps);
        assert!((s.latency.p99_us - 12_450.0).abs() < 0.01);
        let clean = parse_wrk("  1000 requests in 1.00s, 1MB read\nRequests/sec:   1000.00\n");
        assert!((clean.rps - 1000.0).abs() < 0.01);
        assert_eq!(clean.non_2xx, 0);
    }

    #[test]
    fn stat_fields_start_after_a_comm_with_spaces_and_parentheses() {
        let stat = "42 (node (worker) 1) S 7 42 42 0 -1 4194560 10 0 0 0 15 3 0 0 20 0 1";
        let fields: Vec<&str> = stat_fields(stat).collect();
        assert_eq!(fields.first(), Some(&"S"));
        assert_eq!(fields.get(1), Some(&"7"), "ppid");
        assert_eq!(fields.get(11..13), Some(&["15", "3"][..]), "utime, stime");
        assert_eq!(stat_fields("no comm at all").next(), None);
    }

    #[test]
    fn this_process_is_in_its_own_tree_and_uses_cpu() {
        let me = std::process::id();
        assert!(descendants(me).contains(&me));
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(tree_cpu_ticks(me) > 0);
    }
}
