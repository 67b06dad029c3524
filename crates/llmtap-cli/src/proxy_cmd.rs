//! `llmtap proxy`: a thin shell over `llmtap_proxy` that owns signals, messages and exit codes.
//!
//! The banner and the stop line say what really happens: the sinks the built pipeline has (not
//! the ones configured before `OTEL_SDK_DISABLED` turned them off), the sampler, whether content
//! is captured, and what each sink wrote, dropped and failed. No URL credential is shown.

use std::fmt::Write as _;
use std::process::ExitCode;

use llmtap_core::capture::CapturePolicy;
use llmtap_core::env::{EnvSource as _, ProcessEnv};
use llmtap_core::userinfo::mask_userinfo;
use llmtap_export::{PipelineError, PipelineStats, PipelineSummary, SinkSnapshot};
use llmtap_proxy::{App, BuildError, Config, Overrides, ShutdownReport};

use crate::{EXIT_CANT_CREATE, EXIT_UNAVAILABLE, EXIT_USAGE};

/// Settings read only from the environment, listed under `llmtap proxy --help` so the help and
/// the README's environment table name the same settings (a test compares them).
pub const ENV_HELP: &str = "\
Also read from the environment:
  LLMTAP_REDACT_PATTERNS                 extra redaction regexes, `;`-separated [default: built-in only]
  LLMTAP_MAX_CONTENT_BYTES               byte budget per captured content attribute [default: 65536]
  LLMTAP_JSONL_SAMPLED                   true: the JSONL file follows OTEL_TRACES_SAMPLER too [default: false]
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
                                         false/NO_CONTENT: no content; EVENT_ONLY: none on spans [default: on]
  OTEL_SEMCONV_STABILITY_OPT_IN          gen_ai_latest_experimental: the GenAI repository's newer names [default: v1.41]
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
                                         forward spans over OTLP when set [default: off]
  OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
                                         grpc, http/protobuf or http/json [default: http/protobuf]
  OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS
  OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT
  OTEL_EXPORTER_OTLP_COMPRESSION, OTEL_EXPORTER_OTLP_TRACES_COMPRESSION
  OTEL_EXPORTER_OTLP_INSECURE, OTEL_EXPORTER_OTLP_TRACES_INSECURE
                                         as the OTel spec says [default: none, 10000 ms, none, false]
  OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE
                                         OTLP batching, as the OTel spec says
  OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
                                         the resource [default: service.name=llmtap-proxy]
  OTEL_TRACES_EXPORTER                   otlp: forward (spec default endpoint if none set); none: off
  OTEL_SDK_DISABLED=true                 every sink off (the JSONL file too): calls are only forwarded
  OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
                                         what OTLP gets: always_on, always_off, traceidratio, parentbased_* [default: parentbased_always_on]
  OTEL_METRICS_EXPORTER=none             gen_ai metrics off [default: on when OTLP is on]
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_METRIC_EXPORT_INTERVAL
  OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, OTEL_EXPORTER_OTLP_METRICS_HEADERS
  OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, OTEL_EXPORTER_OTLP_METRICS_COMPRESSION
  OTEL_EXPORTER_OTLP_METRICS_INSECURE
                                         the metrics' own settings, else the generic ones, never the traces' ones
                                         [default: <base endpoint>/v1/metrics, 60000 ms]

Invalid values of the OpenTelemetry variables warn once and fall back to the default, as the OTel
spec says; bad values of llmtap's own settings stop the proxy.

Exit codes: 0 stopped by SIGTERM/SIGINT; 64 bad flag or variable; 69 cannot listen on the address;
73 cannot create the JSONL file; 1 anything else. Sizes take KB/MB/GB or KiB/MiB/GiB.";

/// Flags of `llmtap proxy`. Each also reads its `LLMTAP_*` variable (flag > env > default).
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Address to listen on; a host name such as localhost works too [env: LLMTAP_LISTEN] [default: 127.0.0.1:8421]
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// JSONL output file, or `off` (any case). It keeps every call whatever OTEL_TRACES_SAMPLER says (the
    /// sampler decides what OTLP gets); LLMTAP_JSONL_SAMPLED=true makes it follow the sampler
    /// [env: LLMTAP_JSONL] [default: .llmtap/traces.jsonl]
    #[arg(long, value_name = "PATH|off")]
    pub jsonl: Option<String>,
    /// Rotate the JSONL file before it passes this size, or `off` [env: LLMTAP_JSONL_MAX_BYTES] [default: 100MiB]
    #[arg(long, value_name = "SIZE|off")]
    pub jsonl_max_bytes: Option<String>,
    /// Rotated JSONL files kept (traces.jsonl.1 …); 0 discards the old file [env: LLMTAP_JSONL_KEEP] [default: 5]
    #[arg(long, value_name = "N")]
    pub jsonl_keep: Option<String>,
    /// Upstream for OpenAI-compatible paths [env: LLMTAP_UPSTREAM_OPENAI] [default: https://api.openai.com]
    #[arg(long, value_name = "URL")]
    pub upstream_openai: Option<String>,
    /// Upstream for Anthropic paths [env: LLMTAP_UPSTREAM_ANTHROPIC] [default: https://api.anthropic.com]
    #[arg(long, value_name = "URL")]
    pub upstream_anthropic: Option<String>,
    /// Upstream for Gemini paths [env: LLMTAP_UPSTREAM_GEMINI] [default: https://generativelanguage.googleapis.com]
    #[arg(long, value_name = "URL")]
    pub upstream_gemini: Option<String>,
    /// gen_ai.provider.name for the OpenAI-compatible upstream, instead of the one derived from
    /// its host [env: LLMTAP_PROVIDER_OPENAI]
    #[arg(long, value_name = "NAME")]
    pub provider_openai: Option<String>,
    /// Capture no message content, whatever OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT says
    /// [env: LLMTAP_NO_CONTENT]
    #[arg(long)]
    pub no_content: bool,
    /// Bytes of a request or response body kept for parsing; traffic is never limited
    /// [env: LLMTAP_MAX_CAPTURE_BYTES] [default: 8MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_capture_bytes: Option<String>,
    /// Seconds to wait for an upstream's response headers [env: LLMTAP_UPSTREAM_TIMEOUT_SECS] [default: 600]
    #[arg(long, value_name = "SECS")]
    pub upstream_timeout_secs: Option<String>,
    /// Seconds of upstream silence mid-body before the call is ended [env: LLMTAP_STREAM_IDLE_TIMEOUT_SECS] [default: 300]
    #[arg(long, value_name = "SECS")]
    pub stream_idle_timeout_secs: Option<String>,
    /// Extra keys for backends with their own conventions: `openinference` (Arize Phoenix),
    /// `langfuse`, comma-separated; gen_ai attributes are always written [env: LLMTAP_COMPAT]
    /// [default: none]
    #[arg(long, value_name = "LIST")]
    pub compat: Option<String>,
    /// Seconds in-flight calls get to finish on SIGTERM/SIGINT [env: LLMTAP_SHUTDOWN_GRACE_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace_secs: Option<String>,
    /// Seconds a client has to send a complete request head; also closes an idle keep-alive
    /// connection [env: LLMTAP_HEADER_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub header_timeout_secs: Option<String>,
    /// Longest pause between two reads of a request body [env: LLMTAP_BODY_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub body_timeout_secs: Option<String>,
    /// Open client connections; past it, accepting waits [env: LLMTAP_MAX_CONNECTIONS] [default: 4096]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Request-body bytes held for capture across all connections; past it, bodies pass
    /// uncaptured [env: LLMTAP_MAX_BUFFERED_BYTES] [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    pub max_buffered_bytes: Option<String>,
}

impl ProxyArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            jsonl: self.jsonl.clone(),
            upstream_openai: self.upstream_openai.clone(),
            upstream_anthropic: self.upstream_anthropic.clone(),
            upstream_gemini: self.upstream_gemini.clone(),
            provider_openai: self.provider_openai.clone(),
            no_content: self.no_content,
            upstream_timeout_secs: self.upstream_timeout_secs.clone(),
            stream_idle_timeout_secs: self.stream_idle_timeout_secs.clone(),
            shutdown_grace_secs: self.shutdown_grace_secs.clone(),
            compat: self.compat.clone(),
            header_timeout_secs: self.header_timeout_secs.clone(),
            body_timeout_secs: self.body_timeout_secs.clone(),
            max_connections: self.max_connections.clone(),
            max_buffered_bytes: self.max_buffered_bytes.clone(),
            max_capture_bytes: self.max_capture_bytes.clone(),
            jsonl_max_bytes: self.jsonl_max_bytes.clone(),
            jsonl_keep: self.jsonl_keep.clone(),
        }
    }
}

/// Runs the proxy until SIGTERM or SIGINT.
pub async fn run(args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load(&args.overrides(), &ProcessEnv) {
        Ok(config) => config,
        Err(err) => return Ok(fail(EXIT_USAGE, &err)),
    };
    let content = match CapturePolicy::from_env(&ProcessEnv) {
        Ok(policy) => policy.content && !config.no_content,
        Err(err) => return Ok(fail(EXIT_USAGE, &err)),
    };
    let listen = config.listen;
    let upstreams = upstreams_line(&config);
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(err) => return Ok(build_failed(&err)),
    };
    let listener = match llmtap_proxy::listen::bind(listen) {
        Ok(listener) => listener,
        Err(err) => {
            let msg = format!("cannot listen on {listen} (--listen / LLMTAP_LISTEN): {err}");
            return Ok(fail(EXIT_UNAVAILABLE, &msg));
        }
    };
    let local = listener.local_addr().unwrap_or(listen);
    let shutdown = shutdown_signal("llmtap proxy: shutting down, draining in-flight calls");
    eprint!(
        "{}",
        banner(local, &upstreams, &app.telemetry_summary(), content)
    );
    let report = app.serve(listener, shutdown).await?;
    eprintln!("{}", stop_line(&report));
    Ok(ExitCode::SUCCESS)
}

fn fail(code: u8, err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("llmtap proxy: {}", mask_userinfo(&err.to_string()));
    ExitCode::from(code)
}

/// Exit code and message for a proxy that could not be built; each names its setting.
fn build_failed(err: &BuildError) -> ExitCode {
    match err {
        BuildError::Capture(_) | BuildError::Telemetry(PipelineError::Config(_)) => {
            fail(EXIT_USAGE, err)
        }
        BuildError::Telemetry(PipelineError::Jsonl(e)) => fail(
            EXIT_CANT_CREATE,
            &format!("{e} (--jsonl / LLMTAP_JSONL; `off` records no file)"),
        ),
        BuildError::Telemetry(PipelineError::OtlpBuild { .. }) => fail(
            EXIT_USAGE,
            &format!("{err} (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"),
        ),
        _ => fail(1, err),
    }
}

fn upstreams_line(config: &Config) -> String {
    format!(
        "openai → {}, anthropic → {}, gemini → {}",
        config.upstream_openai.base, config.upstream_anthropic.base, config.upstream_gemini.base,
    )
}

/// The start-up banner: the address first (scripts wait for that line), then one line per
/// concern, every one from what was built.
pub fn banner(
    local: std::net::SocketAddr,
    upstreams: &str,
    telemetry: &PipelineSummary,
    content: bool,
) -> String {
    let mut out = format!("llmtap proxy listening on http://{local}\n");
    let _ = writeln!(out, "  upstreams  {}", mask_userinfo(upstreams));
    if telemetry.sdk_disabled {
        let _ = writeln!(
            out,
            "  telemetry  off (OTEL_SDK_DISABLED=true): calls are forwarded, nothing is recorded"
        );
        return out;
    }
    match &telemetry.jsonl {
        Some(jsonl) => {
            let _ = writeln!(out, "  jsonl      {jsonl}");
        }
        None => {
            let _ = writeln!(out, "  jsonl      off");
        }
    }
    match &telemetry.otlp {
        Some(otlp) => {
            let _ = writeln!(out, "  otlp       {otlp}");
        }
        None => {
            let endpoint_set = [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ]
            .iter()
            .any(|var| ProcessEnv.non_empty(var).is_some());
            let why = if endpoint_set {
                "off (OTEL_TRACES_EXPORTER does not name otlp)"
            } else {
                "off (set OTEL_EXPORTER_OTLP_ENDPOINT to forward)"
            };
            let _ = writeln!(out, "  otlp       {why}");
        }
    }
    let _ = writeln!(
        out,
        "  metrics    {}",
        telemetry.metrics_endpoint.as_deref().unwrap_or("off")
    );
    let _ = writeln!(out, "  sampler    {}", telemetry.sampler);
    let _ = writeln!(
        out,
        "  content    {}",
        if content {
            "captured (redacted, within budget)"
        } else {
            "off"
        }
    );
    if telemetry.records_nothing() {
        let _ = writeln!(
            out,
            "  warning    no sink is on: calls are forwarded, nothing is recorded"
        );
    }
    out
}

/// The line printed at exit: calls seen, then what each sink really wrote, dropped and failed.
pub fn stop_line(report: &ShutdownReport) -> String {
    let proxy = &report.proxy;
    let mut out = format!(
        "llmtap proxy stopped: {} ({} failed), {}",
        count(proxy.calls_finished, "call"),
        proxy.calls_failed,
        count(proxy.unrecorded_requests, "unrecorded request"),
    );
    if report.abandoned_calls > 0 {
        let _ = write!(
            out,
            ", {} cut at the end of the grace",
            report.abandoned_calls
        );
    }
    out.push_str(&sinks_text(&report.telemetry));
    out
}

fn sinks_text(stats: &PipelineStats) -> String {
    if stats.jsonl.is_none() && stats.otlp.is_none() {
        return "; no sink was on: no span recorded".to_owned();
    }
    let mut out = String::new();
    for (name, snap) in [("jsonl", stats.jsonl), ("otlp", stats.otlp)] {
        match snap {
            Some(s) => {
                let _ = write!(out, "; {name}: {}", sink_counts(&s));
            }
            None => {
                let _ = write!(out, "; {name}: off");
            }
        }
    }
    out
}

fn sink_counts(s: &SinkSnapshot) -> String {
    let mut out = format!(
        "{} written, {} dropped, {} failed",
        count(s.written, "span"),
        s.dropped,
        s.failed
    );
    if s.queued > 0 {
        let _ = write!(out, ", {} lost in the queue", s.queued);
    }
    out
}

/// `1 call`, `2 calls`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Resolves on SIGINT or SIGTERM, then prints `message`. The handlers are installed here, before
/// the caller announces that it is listening: a signal that arrives right after the announcement
/// must drain the server, not kill it with the default action.
pub fn shutdown_signal(message: &'static str) -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term {
                    Some(mut sig) => {
                        sig.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int {
                    Some(mut sig) => {
                        sig.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => {},
                () = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("{message}");
    }
}
