//! `llmtap proxy`: a thin shell over `llmtap_proxy` that owns signals, messages and exit codes.
//!
//! The banner and the stop line say what really happens: the sinks the built pipeline has (not
//! the ones configured before `OTEL_SDK_DISABLED` turned them off), the sampler, whether content
//! is captured, and what each sink wrote, dropped and failed. No URL credential is shown.

use std::fmt::Write as _;
use std::process::ExitCode;

use llmtap_core::capture::CapturePolicy;
use llmtap_core::env::{EnvSource as _, ProcessEnv};
use llmtap_core::settings;
use llmtap_core::userinfo::mask_userinfo;
use llmtap_export::{PipelineError, PipelineStats, PipelineSummary, SinkSnapshot};
use llmtap_proxy::{App, BuildError, Config, Overrides, ShutdownReport};

use crate::{EXIT_CANT_CREATE, EXIT_UNAVAILABLE, EXIT_USAGE};

/// What `llmtap proxy --help` says after the flags: the settings read only from the
/// environment (rendered from [`settings::ALL`], like the README's table), then the rules.
pub fn env_help() -> String {
    format!("{}\n{ENV_HELP_RULES}", settings::env_help())
}

const ENV_HELP_RULES: &str = "\
Invalid values of the OpenTelemetry variables warn once and fall back to the default, as the OTel
spec says; bad values of llmtap's own settings stop the proxy.

Exit codes: 0 stopped by SIGTERM/SIGINT; 64 bad flag or variable; 69 cannot listen on the address;
73 cannot create the JSONL file; 1 anything else. Sizes take KB/MB/GB or KiB/MiB/GiB.";

/// Flags of `llmtap proxy`: one per setting of [`settings::proxy_flags`], each also read from
/// its `LLMTAP_*` variable (flag > env > default, applied by [`Config::load`]). Built from the
/// settings table, so a flag's name, placeholder, help and default are declared there only.
#[derive(Debug, Clone, Default)]
pub struct ProxyArgs {
    /// The flags given, raw.
    pub overrides: Overrides,
}

impl clap::FromArgMatches for ProxyArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Overrides::new();
        for s in settings::proxy_flags() {
            if s.kind.value_name().is_none() {
                if let Ok(Some(true)) = matches.try_get_one::<bool>(s.env) {
                    overrides.set(s, "true");
                }
            } else if let Ok(Some(value)) = matches.try_get_one::<String>(s.env) {
                overrides.set(s, value.clone());
            }
        }
        Ok(Self { overrides })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ProxyArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        settings::proxy_flags().fold(cmd, |cmd, s| {
            let Some(flag) = s.flag else { return cmd };
            let arg = clap::Arg::new(s.env)
                .long(flag)
                .help(settings::flag_help(s));
            cmd.arg(match s.kind.value_name() {
                Some(name) => arg.value_name(name).action(clap::ArgAction::Set),
                None => arg.action(clap::ArgAction::SetTrue),
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Runs the proxy until SIGTERM or SIGINT.
pub async fn run(args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load(&args.overrides, &ProcessEnv) {
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
            let msg = format!(
                "cannot listen on {listen} ({}): {err}",
                settings::LISTEN.names()
            );
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
            &format!("{e} ({}; `off` records no file)", settings::JSONL.names()),
        ),
        BuildError::Telemetry(PipelineError::OtlpBuild { .. }) => fail(
            EXIT_USAGE,
            &format!(
                "{err} ({} / {})",
                settings::OTEL_EXPORTER_OTLP_ENDPOINT.env,
                settings::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.env
            ),
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
            "  telemetry  off ({}=true): calls are forwarded, nothing is recorded",
            settings::OTEL_SDK_DISABLED.env
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
                &settings::OTEL_EXPORTER_OTLP_ENDPOINT,
                &settings::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            ]
            .iter()
            .any(|s| ProcessEnv.non_empty(s.env).is_some());
            let why = if endpoint_set {
                format!(
                    "off ({} does not name otlp)",
                    settings::OTEL_TRACES_EXPORTER.env
                )
            } else {
                format!(
                    "off (set {} to forward)",
                    settings::OTEL_EXPORTER_OTLP_ENDPOINT.env
                )
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
