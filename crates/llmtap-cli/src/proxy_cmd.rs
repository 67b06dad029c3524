//! `llmtap proxy`: a thin shell over `llmtap_proxy` that owns signals, messages and exit codes.

use std::process::ExitCode;

use anyhow::Context as _;
use llmtap_core::env::ProcessEnv;
use llmtap_proxy::{App, BuildError, Config, Overrides};

use crate::EXIT_USAGE;

/// Flags of `llmtap proxy`. Each also reads its `LLMTAP_*` variable (flag > env > default).
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Address to listen on [env: LLMTAP_LISTEN] [default: 127.0.0.1:8421]
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// JSONL output file, or `off`. It keeps every call whatever OTEL_TRACES_SAMPLER says (the
    /// sampler decides what OTLP gets); LLMTAP_JSONL_SAMPLED=true makes it follow the sampler
    /// [env: LLMTAP_JSONL] [default: .llmtap/traces.jsonl]
    #[arg(long, value_name = "PATH|off")]
    pub jsonl: Option<String>,
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
        }
    }
}

/// Runs the proxy until SIGTERM or SIGINT.
pub async fn run(args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load(&args.overrides(), &ProcessEnv) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("llmtap proxy: {err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let listen = config.listen;
    let summary = format!(
        "openai → {}, anthropic → {}, gemini → {}, jsonl → {}",
        config.upstream_openai.base,
        config.upstream_anthropic.base,
        config.upstream_gemini.base,
        config
            .jsonl
            .as_ref()
            .map_or_else(|| "off".to_owned(), |p| p.display().to_string()),
    );
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(err @ BuildError::Capture(_)) => {
            eprintln!("llmtap proxy: {err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Err(BuildError::Telemetry(err @ llmtap_export::PipelineError::Config(_))) => {
            eprintln!("llmtap proxy: {err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
        Err(err) => {
            eprintln!("llmtap proxy: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let listener =
        llmtap_proxy::listen::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().unwrap_or(listen);
    let shutdown = shutdown_signal();
    eprintln!("llmtap proxy listening on http://{local} ({summary})");
    let report = app.serve(listener, shutdown).await?;
    eprintln!(
        "llmtap proxy stopped: {} calls recorded ({} failed), {} unrecorded; telemetry {}",
        report.proxy.calls_finished,
        report.proxy.calls_failed,
        report.proxy.unrecorded_requests,
        serde_json::to_string(&report.telemetry).unwrap_or_default(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before the caller announces
/// that it is listening: a signal that arrives right after the announcement must drain the proxy,
/// not kill it with the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> {
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
        eprintln!("llmtap proxy: shutting down, draining in-flight calls");
    }
}
