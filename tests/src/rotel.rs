//! A real OpenTelemetry collector in tests: `rotel-agent` (the Rust collector shipped in the
//! `rotel` PyPI package) on two free localhost ports, with its debug exporter printing every
//! received span. Tests send spans to it over OTLP and assert on what it printed, so our OTLP
//! output is checked by someone else's decoder, not only by our own fake.
//!
//! Optionally it forwards everything to a second OTLP hop (`--exporter otlp`), e.g. a
//! [`crate::otlp::FakeCollector`], which shows spans survive a collector in the middle.

use std::io::{BufRead as _, BufReader, Read};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use llmtap_core::env::{EnvSource, ProcessEnv};

use crate::clients::{repo_root, skip_or_fail};

/// The SKIP text when no binary is found (outside CI).
pub const NOT_INSTALLED: &str = "rotel not installed";

/// How long `start` waits for both ports to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where forwarded spans go, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardProtocol {
    Grpc,
    /// OTLP/HTTP protobuf; the endpoint is a base URL, rotel appends `/v1/traces`.
    Http,
}

/// Options for [`Rotel::start_with`].
#[derive(Debug, Clone, Default)]
pub struct RotelOptions {
    /// `Some((endpoint, protocol))` = `--exporter otlp` to that endpoint (e.g. a fake
    /// collector's `grpc_endpoint()`), uncompressed so the next hop sees plain protobuf.
    /// `None` = `--exporter blackhole` (spans only printed).
    pub forward_to: Option<(String, ForwardProtocol)>,
    /// Extra `rotel-agent start` arguments.
    pub extra_args: Vec<String>,
}

/// A running `rotel-agent`. Killed when dropped.
#[derive(Debug)]
pub struct Rotel {
    child: Child,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// One span as rotel's detailed debug log printed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RotelSpan {
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// As printed, e.g. `SPAN_KIND_CLIENT`.
    pub kind: String,
    /// As printed, e.g. `STATUS_CODE_ERROR`; empty when rotel printed none.
    pub status_code: String,
    /// Attribute values as printed: `Str(gpt-4o)`, `Int(5)`, `Double(0.5)`, `Bool(true)`...
    pub attributes: Vec<(String, String)>,
    pub resource_attributes: Vec<(String, String)>,
}

impl RotelSpan {
    /// The raw printed value of an attribute.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A string attribute's value (the inside of `Str(...)`).
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        unwrap_typed(self.attr(key)?, "Str")
    }

    /// An integer attribute's value (the inside of `Int(...)`).
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        unwrap_typed(self.attr(key)?, "Int")?.parse().ok()
    }

    pub fn resource_attr_str(&self, key: &str) -> Option<&str> {
        let raw = self
            .resource_attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())?;
        unwrap_typed(raw, "Str")
    }
}

fn unwrap_typed<'a>(raw: &'a str, ty: &str) -> Option<&'a str> {
    raw.strip_prefix(ty)?.strip_prefix('(')?.strip_suffix(')')
}

impl Rotel {
    /// The `rotel-agent` binary: `LLMTAP_ROTEL_BIN`, else the one `pip install rotel` puts in
    /// `<repo>/.venv/lib/python3*/site-packages/rotel/rotel-agent`.
    pub fn binary() -> Option<PathBuf> {
        binary_from(&ProcessEnv, &repo_root())
    }

    /// Starts rotel printing spans and exporting nowhere. `None` (after a SKIP line) when rotel
    /// is not installed outside CI.
    ///
    /// # Panics
    /// When rotel is missing and `CI=true`, or when it is installed but won't start.
    pub async fn start() -> Option<Self> {
        Self::start_with(RotelOptions::default()).await
    }

    /// Like [`Self::start`], with options (e.g. forwarding to a second hop).
    ///
    /// # Panics
    /// As [`Self::start`].
    pub async fn start_with(options: RotelOptions) -> Option<Self> {
        let Some(bin) = Self::binary() else {
            return skip_or_fail(NOT_INSTALLED);
        };
        let mut last_output = String::new();
        // Free ports are picked by binding and releasing them, so another process can grab one
        // in between; a lost race shows as an early exit, and a retry picks new ports.
        for _ in 0..3 {
            match spawn(&bin, &options) {
                Ok(rotel) => match rotel.wait_ready().await {
                    Ok(rotel) => return Some(rotel),
                    Err(output) => last_output = output,
                },
                Err(e) => panic!("cannot run {}: {e:#}", bin.display()),
            }
        }
        panic!(
            "{} did not start listening within {STARTUP_TIMEOUT:?}; its output:\n{last_output}",
            bin.display()
        );
    }

    /// `http://127.0.0.1:<port>` of the OTLP/gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:<port>` of the OTLP/HTTP receiver (base URL, without `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Full OTLP/HTTP traces URL.
    pub fn http_traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.http_addr)
    }

    /// Everything rotel printed so far (stdout then stderr interleaved by line, ANSI removed).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every span printed so far.
    pub fn spans(&self) -> Vec<RotelSpan> {
        parse_debug_spans(&self.output())
    }

    /// Waits for a printed span satisfying `pred`; the error includes rotel's whole output.
    pub async fn wait_for_span(
        &self,
        timeout: Duration,
        pred: impl Fn(&RotelSpan) -> bool,
    ) -> Result<RotelSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.spans().into_iter().find(&pred) {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                bail!(
                    "rotel printed no matching span within {timeout:?}; its output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a span with this name.
    pub async fn wait_for_span_named(&self, name: &str, timeout: Duration) -> Result<RotelSpan> {
        self.wait_for_span(timeout, |s| s.name == name).await
    }

    /// Waits until `n` spans of this trace were printed, and returns them.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RotelSpan>> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans: Vec<RotelSpan> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id.eq_ignore_ascii_case(trace_id))
                .collect();
            if spans.len() >= n {
                return Ok(spans);
            }
            if Instant::now() >= deadline {
                bail!(
                    "rotel printed {} of {n} spans of trace {trace_id} within {timeout:?}; \
                     its output:\n{}",
                    spans.len(),
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until rotel's output contains `needle`.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(needle) {
            if Instant::now() >= deadline {
                bail!(
                    "rotel never printed {needle:?} within {timeout:?}; its output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Polls both ports until they accept; `Err(output)` when rotel exited or never listened.
    async fn wait_ready(mut self) -> std::result::Result<Self, String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads drain what it printed before dying.
                std::mem::take(&mut self.readers)
                    .into_iter()
                    .for_each(|r| drop(r.join()));
                return Err(format!("(exited with {status})\n{}", self.output()));
            }
            let up = |addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if up(self.grpc_addr) && up(self.http_addr) {
                return Ok(self);
            }
            if Instant::now() >= deadline {
                return Err(self.output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary_from(env: &impl EnvSource, repo: &Path) -> Option<PathBuf> {
    if let Some(explicit) = env.non_empty("LLMTAP_ROTEL_BIN") {
        let p = PathBuf::from(explicit);
        return p.is_file().then_some(p);
    }
    let lib = repo.join(".venv/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/rotel/rotel-agent"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> std::io::Result<SocketAddr> {
    StdTcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn spawn(bin: &Path, options: &RotelOptions) -> Result<Rotel> {
    let dir = tempfile::tempdir()?;
    let grpc_addr = free_port()?;
    let http_addr = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("start")
        .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
        .arg("--otlp-grpc-endpoint")
        .arg(grpc_addr.to_string())
        .arg("--otlp-http-endpoint")
        .arg(http_addr.to_string())
        // Its defaults are shared files in /tmp; parallel tests must not collide.
        .arg("--pid-file")
        .arg(dir.path().join("rotel.pid"))
        .arg("--log-file")
        .arg(dir.path().join("rotel.log"))
        // Print batches promptly; tests wait on the output.
        .args(["--batch-timeout", "100ms"]);
    match &options.forward_to {
        None => {
            cmd.args(["--exporter", "blackhole"]);
        }
        Some((endpoint, protocol)) => {
            let protocol = match protocol {
                ForwardProtocol::Grpc => "grpc",
                ForwardProtocol::Http => "http",
            };
            cmd.args(["--exporter", "otlp", "--otlp-exporter-endpoint"])
                .arg(endpoint)
                .args(["--otlp-exporter-protocol", protocol])
                .args(["--otlp-exporter-compression", "none"])
                .args(["--otlp-exporter-retry-initial-backoff", "100ms"]);
        }
    }
    cmd.args(&options.extra_args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let output = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(pump(out, output.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(pump(err, output.clone()));
    }
    Ok(Rotel {
        child,
        grpc_addr,
        http_addr,
        output,
        readers,
        _dir: dir,
    })
}

fn pump(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut out = into.lock().unwrap_or_else(PoisonError::into_inner);
            out.push_str(&strip_ansi(&line));
            out.push('\n');
        }
    })
}

/// Removes ANSI escape sequences (`ESC [ ... letter`) that rotel's log lines carry.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses rotel's `--debug-log-verbosity detailed` trace output into spans.
pub fn parse_debug_spans(output: &str) -> Vec<RotelSpan> {
    #[derive(PartialEq)]
    enum Section {
        Other,
        ResourceAttributes,
        SpanAttributes,
    }
    let mut spans: Vec<RotelSpan> = Vec::new();
    let mut resource: Vec<(String, String)> = Vec::new();
    let mut section = Section::Other;
    for raw in output.lines() {
        let line = raw.trim();
        if let Some(attr) = line.strip_prefix("->") {
            let Some((k, v)) = attr.trim().split_once(": ") else {
                continue;
            };
            let kv = (k.trim().to_owned(), v.trim().to_owned());
            match section {
                Section::ResourceAttributes => resource.push(kv),
                Section::SpanAttributes => {
                    if let Some(s) = spans.last_mut() {
                        s.attributes.push(kv);
                    }
                }
                Section::Other => {}
            }
            continue;
        }
        section = Section::Other;
        if line.starts_with("ResourceSpans #") {
            resource.clear();
        } else if line == "Resource attributes:" {
            section = Section::ResourceAttributes;
        } else if line.starts_with("Span #") {
            spans.push(RotelSpan {
                resource_attributes: resource.clone(),
                ..RotelSpan::default()
            });
        } else if line == "Attributes:" {
            section = Section::SpanAttributes;
        } else if let (Some(span), Some((key, value))) = (spans.last_mut(), line.split_once(':')) {
            let value = value.trim().to_owned();
            match key.trim() {
                "Trace ID" => span.trace_id = value,
                "Parent ID" => span.parent_span_id = (!value.is_empty()).then_some(value),
                "ID" => span.span_id = value,
                "Name" => span.name = value,
                "Kind" => span.kind = value,
                "Status code" => span.status_code = value,
                _ => {}
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from rotel-agent 0.0.1-alpha10 (`rotel==0.0.1a15`), log line colours included.
    const SAMPLE: &str =
        "\u{1b}[2m2026-11-23T16:48:05.929474Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m Starting Rotel.
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope sc 
Span #0
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 2122232425262728
    ID             : 1112131415161718
    Name           : chat gpt-4o
    Kind           : SPAN_KIND_CLIENT
Start time: 1000
End time: 2000
    Status code    : STATUS_CODE_ERROR
    Status message : boom
Attributes:
     -> gen_ai.request.model: Str(gpt-4o)
     -> n: Int(5)
Span #1
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 
    ID             : 2122232425262728
    Name           : invoke_agent a
    Kind           : SPAN_KIND_INTERNAL
Start time: 900
End time: 2100
Attributes:
";

    #[test]
    fn parses_detailed_debug_output() {
        let spans = parse_debug_spans(&strip_ansi(SAMPLE));
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let chat = &spans[0];
        assert_eq!(chat.name, "chat gpt-4o");
        assert_eq!(chat.trace_id, "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(chat.span_id, "1112131415161718");
        assert_eq!(chat.parent_span_id.as_deref(), Some("2122232425262728"));
        assert_eq!(chat.kind, "SPAN_KIND_CLIENT");
        assert_eq!(chat.status_code, "STATUS_CODE_ERROR");
        assert_eq!(chat.attr_str("gen_ai.request.model"), Some("gpt-4o"));
        assert_eq!(chat.attr_i64("n"), Some(5));
        assert_eq!(chat.attr_str("n"), None, "Int is not Str");
        assert_eq!(chat.resource_attr_str("service.name"), Some("svc"));
        let agent = &spans[1];
        assert_eq!(agent.parent_span_id, None);
        assert_eq!(agent.name, "invoke_agent a");
        assert!(agent.attributes.is_empty());
    }

    #[test]
    fn strips_ansi_sequences() {
        assert_eq!(strip_ansi("\u{1b}[2mhi\u{1b}[0m there"), "hi there");
    }

    #[test]
    fn binary_lookup_prefers_env_then_venv() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir
            .path()
            .join(".venv/lib/python3.12/site-packages/rotel/rotel-agent");
        std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
        assert_eq!(binary_from(&[("X", "")], dir.path()), None);
        std::fs::write(&agent, b"").unwrap();
        assert_eq!(binary_from(&[("X", "")], dir.path()), Some(agent.clone()));
        let missing = dir.path().join("nope").display().to_string();
        assert_eq!(
            binary_from(&[("LLMTAP_ROTEL_BIN", missing.as_str())], dir.path()),
            None,
            "an explicit but wrong LLMTAP_ROTEL_BIN must not fall back silently"
        );
    }
}
