//! [`init`] / [`Builder`]: the export pipeline (JSONL + OTLP, configured exactly like the proxy)
//! and the [`Guard`] that flushes and stops it.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use llmtap_core::capture::CapturePolicy;
use llmtap_core::compat::Compat;
use llmtap_core::env::{EnvSource, ProcessEnv};
use llmtap_core::settings;
use llmtap_export::{
    DEFAULT_KEEP_FILES, DEFAULT_MAX_BYTES, GenAiMetrics, JsonlConfig, OtlpConfig, Pipeline,
    PipelineStats,
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::error::InitError;

/// Instrumentation scope of every span the SDK starts.
pub const SCOPE_NAME: &str = "llmtap-sdk";
/// `service.name` when neither the builder nor `OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES`
/// names one.
pub const DEFAULT_SERVICE_NAME: &str = "llmtap-sdk";
/// Default JSONL file: the proxy's default, so `llmtap tree` shows both halves together.
pub const DEFAULT_JSONL: &str = settings::DEFAULT_JSONL_PATH;
/// Bytes of a non-streaming response body kept for decoding (the proxy's default).
pub const DEFAULT_MAX_CAPTURE_BYTES: usize = settings::DEFAULT_MAX_CAPTURE_BYTES as usize;
/// How long [`Guard`] waits for both sinks to flush when it is dropped.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// `LLMTAP_JSONL`: JSONL path, or `off`/`none`/`false` in any case ([`settings::JSONL`]: the
/// proxy's variable and parser).
pub const ENV_JSONL: &str = settings::JSONL.env;
/// `LLMTAP_NO_CONTENT`: `true` turns content capture off ([`settings::NO_CONTENT`]).
pub const ENV_NO_CONTENT: &str = settings::NO_CONTENT.env;
/// `LLMTAP_MAX_CAPTURE_BYTES`: body bytes kept for decoding ([`settings::MAX_CAPTURE_BYTES`]).
pub const ENV_MAX_CAPTURE_BYTES: &str = settings::MAX_CAPTURE_BYTES.env;
/// `LLMTAP_COMPAT`: extra keys for `openinference` / `langfuse` ([`settings::COMPAT`]).
pub const ENV_COMPAT: &str = settings::COMPAT.env;

/// The telemetry every span of this SDK goes to: a tracer, the capture policy, and (when built by
/// [`Builder`]) the export pipeline. Cheap to clone; every [`crate::AgentHandle`] carries one, so
/// a handle moved into another task or thread needs nothing global.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<TelemetryInner>,
}

struct TelemetryInner {
    tracer: SdkTracer,
    /// Kept for `tracing_layer` and for a provider with no sinks (the disabled case).
    provider: SdkTracerProvider,
    policy: Arc<CapturePolicy>,
    max_capture_bytes: usize,
    /// Extra keys for other backends' conventions on model spans.
    compat: Compat,
    /// gen_ai metrics instruments, when metrics are exported.
    metrics: Option<GenAiMetrics>,
    pipeline: Option<Pipeline>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("content", &self.inner.policy.content)
            .field("exporting", &self.inner.pipeline.is_some())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry that records nothing: spans get valid ids (so propagation still works) but go
    /// nowhere. What [`crate::agent`] uses before [`init`] ran.
    pub fn disabled() -> Self {
        let provider = SdkTracerProvider::builder().build();
        Self {
            inner: Arc::new(TelemetryInner {
                tracer: provider.tracer(SCOPE_NAME),
                provider,
                policy: Arc::new(CapturePolicy::no_content()),
                max_capture_bytes: DEFAULT_MAX_CAPTURE_BYTES,
                compat: Compat::default(),
                metrics: None,
                pipeline: None,
            }),
        }
    }

    /// The process-wide telemetry installed by [`init`] / [`Builder::init`], or
    /// [`Telemetry::disabled`] when none is installed.
    pub fn global() -> Self {
        GLOBAL
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(Self::disabled)
    }

    /// The tracer the SDK's spans are started with.
    pub fn tracer(&self) -> &SdkTracer {
        &self.inner.tracer
    }

    /// The tracer provider, e.g. for other OpenTelemetry instrumentation.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.inner.provider
    }

    /// What content is captured, how big it may get and what is redacted from it.
    pub fn policy(&self) -> &CapturePolicy {
        &self.inner.policy
    }

    /// Bytes of a non-streaming response body kept for decoding.
    pub fn max_capture_bytes(&self) -> usize {
        self.inner.max_capture_bytes
    }

    /// Which compatibility key sets model spans carry (`LLMTAP_COMPAT`).
    pub fn compat(&self) -> Compat {
        self.inner.compat
    }

    /// The gen_ai metric instruments, when metrics are exported.
    pub fn metrics(&self) -> Option<&GenAiMetrics> {
        self.inner.metrics.as_ref()
    }

    /// Per-sink span counters (`None` sinks are not configured).
    pub fn stats(&self) -> PipelineStats {
        self.inner
            .pipeline
            .as_ref()
            .map(Pipeline::stats)
            .unwrap_or_default()
    }

    /// Flushes both sinks, blocking this thread up to `timeout`; `false` on failure or timeout.
    /// Call it from a blocking context (not on an async worker thread).
    pub fn force_flush(&self, timeout: Duration) -> bool {
        self.inner
            .pipeline
            .as_ref()
            .is_none_or(|p| p.force_flush(timeout))
    }

    /// A new root agent (or a child of the ambient context, see [`crate::AgentBuilder`]).
    pub fn agent(&self, name: impl Into<String>) -> crate::AgentBuilder {
        crate::AgentBuilder::new(self.clone(), name.into())
    }

    /// A tool call, a child of the ambient context unless given a parent.
    pub fn tool(&self, name: impl Into<String>) -> crate::ToolBuilder {
        crate::ToolBuilder::new(self.clone(), name.into())
    }

    fn same(&self, other: &Telemetry) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

static GLOBAL: RwLock<Option<Telemetry>> = RwLock::new(None);

/// Reads the same environment as the proxy and installs the result process-wide:
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `LLMTAP_JSONL` | JSONL file, or `off` | `.llmtap/traces.jsonl` |
/// | `LLMTAP_JSONL_MAX_BYTES`, `LLMTAP_JSONL_KEEP` | rotation size (`100MiB`, or `off`), old files kept | 100 MiB, 5 |
/// | `LLMTAP_JSONL_SAMPLED` | `true`: the file follows the sampler too | `false` (every span) |
/// | `OTEL_EXPORTER_OTLP_*`, `OTEL_TRACES_EXPORTER`, `OTEL_SDK_DISABLED`, `OTEL_BSP_*` | OTLP forwarding, as the spec says | off |
/// | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | what is forwarded over OTLP | `parentbased_always_on` |
/// | `OTEL_SEMCONV_STABILITY_OPT_IN` | `gen_ai_latest_experimental`: the GenAI repository's names | v1.41 names |
/// | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | resource | `service.name=llmtap-sdk` |
/// | `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, `LLMTAP_NO_CONTENT` | content capture | on |
/// | `LLMTAP_REDACT_PATTERNS`, `LLMTAP_MAX_CONTENT_BYTES` | redaction, content budget | built-in, 64 KiB |
/// | `LLMTAP_MAX_CAPTURE_BYTES` | response body bytes kept for decoding | 8 MiB |
/// | `LLMTAP_COMPAT` | `openinference`, `langfuse`: those backends' keys on model spans too | none |
///
/// Keep the returned [`Guard`] alive until the end of `main`: dropping it flushes and stops both
/// sinks. Malformed `LLMTAP_*` values are errors; an unusable `OTEL_*` value is logged once and
/// replaced by its default, as the OpenTelemetry specification says.
pub fn init() -> Result<Guard, InitError> {
    Builder::new().from_env(&ProcessEnv)?.init()
}

/// Explicit configuration; every setting wins over [`Builder::from_env`], whatever the order.
#[derive(Debug, Default)]
pub struct Builder {
    jsonl: Option<Option<PathBuf>>,
    otlp: Option<Option<OtlpConfig>>,
    service_name: Option<String>,
    policy: Option<CapturePolicy>,
    content: Option<bool>,
    max_capture_bytes: Option<usize>,
    compat: Option<Compat>,
    shutdown_timeout: Option<Duration>,
    env: Option<EnvLayer>,
}

/// What `from_env` read, applied under the explicit settings at build time.
#[derive(Debug)]
struct EnvLayer {
    pipeline: llmtap_export::PipelineBuilder,
    jsonl: Option<PathBuf>,
    /// `LLMTAP_JSONL_MAX_BYTES` / `LLMTAP_JSONL_KEEP`, applied to whichever file is written.
    jsonl_max_bytes: Option<u64>,
    jsonl_keep: usize,
    policy: CapturePolicy,
    no_content: bool,
    max_capture_bytes: Option<usize>,
    compat: Compat,
}

impl Builder {
    /// Nothing configured: no JSONL, no OTLP, content on, built-in redaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the variables listed at [`init`]. Malformed values are errors.
    pub fn from_env(mut self, env: &impl EnvSource) -> Result<Self, InitError> {
        // The proxy's settings, read by the same parsers (no flags here).
        let jsonl = settings::JSONL.read_path_or_off(None, env)?;
        let jsonl_max_bytes = settings::JSONL_MAX_BYTES.read_size_or_off(None, env)?;
        let jsonl_keep = settings::JSONL_KEEP.read_count(None, env)?;
        let no_content = settings::NO_CONTENT.read_bool(false, env)?;
        let max_capture_bytes = match env.non_empty(ENV_MAX_CAPTURE_BYTES) {
            None => None,
            Some(_) => Some(settings::MAX_CAPTURE_BYTES.read_size(None, env)?),
        };
        let compat = settings::COMPAT.read_compat(None, env)?;
        self.env = Some(EnvLayer {
            pipeline: Pipeline::builder().from_env(env)?,
            jsonl,
            jsonl_max_bytes,
            jsonl_keep,
            policy: CapturePolicy::from_env(env)?,
            no_content,
            max_capture_bytes,
            compat,
        });
        Ok(self)
    }

    /// JSONL file (`None` = no file).
    pub fn jsonl(mut self, path: Option<impl Into<PathBuf>>) -> Self {
        self.jsonl = Some(path.map(Into::into));
        self
    }

    /// OTLP forwarding, overriding `OTEL_EXPORTER_OTLP_*` (`None` = off).
    pub fn otlp(mut self, otlp: Option<OtlpConfig>) -> Self {
        self.otlp = Some(otlp);
        self
    }

    /// Default `service.name` (`OTEL_SERVICE_NAME` still wins, as the spec says).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The whole capture policy (content switch, budget, redaction).
    pub fn capture_policy(mut self, policy: CapturePolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Content capture on or off, whatever the policy or environment says.
    pub fn content(mut self, on: bool) -> Self {
        self.content = Some(on);
        self
    }

    /// Response body bytes kept for decoding in direct mode.
    pub fn max_capture_bytes(mut self, bytes: usize) -> Self {
        self.max_capture_bytes = Some(bytes);
        self
    }

    /// Compatibility keys (`openinference`, `langfuse`) on model spans, whatever the environment
    /// says.
    pub fn compat(mut self, compat: Compat) -> Self {
        self.compat = Some(compat);
        self
    }

    /// How long dropping the [`Guard`] waits for the sinks.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Opens the sinks. Nothing is installed globally (use [`Builder::init`] for that): tests and
    /// libraries pass the [`Telemetry`] explicitly.
    pub fn build(self) -> Result<Guard, InitError> {
        CapturePolicy::check_redaction()?;
        let (mut pipeline, env_jsonl, env_policy, no_content, env_max, rotation, env_compat) =
            match self.env {
                Some(env) => (
                    env.pipeline,
                    env.jsonl,
                    Some(env.policy),
                    env.no_content,
                    env.max_capture_bytes,
                    (env.jsonl_max_bytes, env.jsonl_keep),
                    env.compat,
                ),
                None => (
                    Pipeline::builder(),
                    None,
                    None,
                    false,
                    None,
                    (Some(DEFAULT_MAX_BYTES), DEFAULT_KEEP_FILES),
                    Compat::default(),
                ),
            };
        let jsonl = self.jsonl.unwrap_or(env_jsonl);
        pipeline = pipeline
            .service_name(
                self.service_name
                    .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
            )
            .jsonl(jsonl.map(|path| JsonlConfig::new(path).with_rotation(rotation.0, rotation.1)));
        if let Some(otlp) = self.otlp {
            pipeline = pipeline.otlp(otlp);
        }
        let pipeline = pipeline.build()?;
        let mut policy = self.policy.or(env_policy).unwrap_or_default();
        if no_content {
            policy.content = false;
        }
        if let Some(on) = self.content {
            policy.content = on;
        }
        let provider = pipeline.provider().clone();
        let telemetry = Telemetry {
            inner: Arc::new(TelemetryInner {
                tracer: pipeline.tracer(SCOPE_NAME),
                provider,
                policy: Arc::new(policy),
                max_capture_bytes: self
                    .max_capture_bytes
                    .or(env_max)
                    .unwrap_or(DEFAULT_MAX_CAPTURE_BYTES),
                compat: self.compat.unwrap_or(env_compat),
                metrics: pipeline.metrics(),
                pipeline: Some(pipeline),
            }),
        };
        Ok(Guard {
            telemetry: Some(telemetry),
            timeout: self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
        })
    }

    /// [`build`](Self::build), then installs the telemetry process-wide: [`Telemetry::global`]
    /// (used by [`crate::agent`] and ambient lookups), OpenTelemetry's global tracer provider and
    /// the W3C Trace Context propagator.
    pub fn init(self) -> Result<Guard, InitError> {
        let guard = self.build()?;
        if let Some(t) = &guard.telemetry {
            *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(t.clone());
            opentelemetry::global::set_tracer_provider(t.provider().clone());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
        }
        Ok(guard)
    }
}

/// Owns the export pipeline. Dropping it flushes and stops both sinks — on a dedicated thread,
/// never on an async runtime's worker (the OpenTelemetry shutdown blocks, and on a
/// current-thread runtime blocking the only worker can deadlock) — waiting at most the shutdown
/// timeout. Spans ended afterwards are counted as dropped.
#[derive(Debug)]
#[must_use = "dropping the guard shuts telemetry down; keep it until the end of main"]
pub struct Guard {
    telemetry: Option<Telemetry>,
    timeout: Duration,
}

impl Guard {
    /// The telemetry this guard owns.
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone().unwrap_or_else(Telemetry::disabled)
    }

    /// Flushes and stops both sinks from async code without blocking a worker thread, and returns
    /// the final per-sink counters.
    pub async fn shutdown(mut self) -> PipelineStats {
        let Some(telemetry) = self.telemetry.take() else {
            return PipelineStats::default();
        };
        let timeout = self.timeout;
        let fallback = telemetry.clone();
        match tokio::task::spawn_blocking(move || shutdown_now(&telemetry, timeout)).await {
            Ok(stats) => stats,
            Err(_) => fallback.stats(),
        }
    }

    /// Flushes and stops both sinks, blocking the calling thread (on a dedicated thread, so it is
    /// safe anywhere), and returns the final per-sink counters.
    pub fn shutdown_blocking(mut self) -> PipelineStats {
        match self.telemetry.take() {
            Some(t) => shutdown_on_thread(t, self.timeout),
            None => PipelineStats::default(),
        }
    }
}

impl std::ops::Deref for Guard {
    type Target = Telemetry;

    fn deref(&self) -> &Telemetry {
        // Only `shutdown*` (which consume the guard) take the telemetry out.
        static DISABLED: std::sync::OnceLock<Telemetry> = std::sync::OnceLock::new();
        self.telemetry
            .as_ref()
            .unwrap_or_else(|| DISABLED.get_or_init(Telemetry::disabled))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(t) = self.telemetry.take() {
            let _ = shutdown_on_thread(t, self.timeout);
        }
    }
}

fn shutdown_on_thread(telemetry: Telemetry, timeout: Duration) -> PipelineStats {
    let fallback = telemetry.clone();
    let worker = std::thread::Builder::new()
        .name("llmtap-sdk-shutdown".into())
        .spawn(move || shutdown_now(&telemetry, timeout));
    match worker {
        Ok(handle) => handle.join().unwrap_or_else(|_| fallback.stats()),
        Err(_) => shutdown_now(&fallback, timeout),
    }
}

fn shutdown_now(telemetry: &Telemetry, timeout: Duration) -> PipelineStats {
    let mut global = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
    if global.as_ref().is_some_and(|g| g.same(telemetry)) {
        *global = None;
    }
    drop(global);
    match &telemetry.inner.pipeline {
        Some(p) => p.shutdown(timeout),
        None => PipelineStats::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_defaults_match_the_proxy() {
        let env: HashMap<&str, &str> = HashMap::new();
        let b = Builder::new().from_env(&env).unwrap();
        let layer = b.env.as_ref().unwrap();
        assert_eq!(
            layer.jsonl.as_deref(),
            Some(std::path::Path::new(DEFAULT_JSONL))
        );
        assert!(layer.policy.content);
        assert!(!layer.no_content);
    }

    #[test]
    fn env_jsonl_off_and_no_content() {
        let env = [(ENV_JSONL, "off"), (ENV_NO_CONTENT, "true")];
        let guard = Builder::new().from_env(&env).unwrap().build().unwrap();
        assert!(!guard.policy().content);
        assert_eq!(guard.stats(), PipelineStats::default());
        for off in ["OFF", "Off", "none", "FALSE"] {
            let guard = Builder::new()
                .from_env(&[(ENV_JSONL, off)])
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(guard.stats().jsonl, None, "{off}");
            drop(guard);
            assert!(!std::path::Path::new(off).exists(), "a file named {off}");
        }
    }

    #[test]
    fn explicit_settings_win_over_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let env = [(ENV_JSONL, "off"), (ENV_NO_CONTENT, "true")];
        let guard = Builder::new()
            .jsonl(Some(&path))
            .content(true)
            .from_env(&env)
            .unwrap()
            .build()
            .unwrap();
        assert!(guard.policy().content);
        assert!(guard.stats().jsonl.is_some());
        drop(guard);
        assert!(path.exists());
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (var, value) in [
            (ENV_NO_CONTENT, "maybe"),
            (ENV_MAX_CAPTURE_BYTES, "lots"),
            (llmtap_core::capture::ENV_CAPTURE_CONTENT, "sometimes"),
        ] {
            let env = [(var, value)];
            let err = Builder::new().from_env(&env).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(value), "{err}");
        }
        // The proxy's error for the same value, word for word: one table, one parser.
        for (setting, bad) in [
            (&settings::JSONL_MAX_BYTES, "lots"),
            (&settings::JSONL_KEEP, "-1"),
            (&settings::NO_CONTENT, "maybe"),
            (&settings::MAX_CAPTURE_BYTES, "8 parsecs"),
            (&settings::MAX_CONTENT_BYTES, "12"),
        ] {
            let err = Builder::new().from_env(&[(setting.env, bad)]).unwrap_err();
            assert_eq!(err.to_string(), setting.invalid(bad).to_string());
        }
    }
}
