//! The export pipeline: one `SdkTracerProvider`, one batch processor per sink (JSONL, OTLP),
//! per-sink counters, and a shutdown that never blocks past its timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use llmtap_core::env::EnvSource;
use llmtap_core::semconv::{self, Convention};
use opentelemetry::trace::{Link, SpanKind, TraceId, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanExporter,
};

use crate::config::{self, BatchSettings, EnvWarning, OtelEnv, OtlpConfig, SamplerChoice};
use crate::convention::ConventionExporter;
use crate::error::PipelineError;
use crate::jsonl::{JsonlConfig, JsonlSpanExporter};
use crate::metrics::{GenAiMetrics, MetricsSink, build_metrics_sink};
use crate::otlp::build_span_exporter;
use crate::sink::{SharedSink, SinkProcessor, SinkSnapshot};
use crate::summary::{self, JsonlSummary, OtlpSummary, PipelineSummary};

/// Counters of every configured sink (`None` = sink not configured), as served on `/healthz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PipelineStats {
    /// The JSONL file sink.
    pub jsonl: Option<SinkSnapshot>,
    /// The OTLP forwarding sink.
    pub otlp: Option<SinkSnapshot>,
}

/// Builder; explicit settings win over [`PipelineBuilder::from_env`], whatever the call order.
#[derive(Debug, Default)]
pub struct PipelineBuilder {
    jsonl: Option<Option<JsonlConfig>>,
    otlp: Option<Option<OtlpConfig>>,
    service_name: Option<String>,
    jsonl_follows_sampler: Option<bool>,
    env: Option<EnvSettings>,
}

#[derive(Debug)]
struct EnvSettings {
    /// `OTEL_TRACES_SAMPLER` / `_ARG`.
    sampler: SamplerChoice,
    /// gen_ai metrics over OTLP, when forwarding is on and not turned off.
    metrics: Option<config::MetricsConfig>,
    sdk_disabled: bool,
    otlp: Option<OtlpConfig>,
    resource_attributes: Vec<(String, String)>,
    service_name: Option<String>,
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`.
    convention: Convention,
    /// `LLMTAP_JSONL_SAMPLED`.
    jsonl_follows_sampler: bool,
    /// `OTEL_*` values that were ignored (already logged).
    warnings: Vec<EnvWarning>,
}

/// Service name used when neither the caller nor the environment gives one.
pub(crate) const DEFAULT_SERVICE_NAME: &str = "llmtap";

/// Version written on every instrumentation scope.
const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

impl PipelineBuilder {
    /// JSONL sink (`None` = no file).
    pub fn jsonl(mut self, jsonl: Option<JsonlConfig>) -> Self {
        self.jsonl = Some(jsonl);
        self
    }

    /// OTLP sink, overriding the environment (`None` = forwarding off).
    pub fn otlp(mut self, otlp: Option<OtlpConfig>) -> Self {
        self.otlp = Some(otlp);
        self
    }

    /// Default `service.name`, used unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
    /// names one.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Whether the JSONL file keeps only the spans the sampler samples (`true`) or every span
    /// (`false`, the default: the file is the local record; sampling decides what is forwarded).
    pub fn jsonl_follows_sampler(mut self, follows: bool) -> Self {
        self.jsonl_follows_sampler = Some(follows);
        self
    }

    /// Reads `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`,
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]` (default
    /// `parentbased_always_on`), `OTEL_METRICS_EXPORTER`, `OTEL_SEMCONV_STABILITY_OPT_IN` and
    /// `LLMTAP_JSONL_SAMPLED`. An unusable `OTEL_*` value is logged once and replaced by its
    /// default (see [`config`]); an unusable endpoint or `LLMTAP_*` value is an error.
    /// `OTEL_SDK_DISABLED=true` is a kill switch: it turns off both sinks, even explicit ones.
    pub fn from_env(mut self, env: &impl EnvSource) -> Result<Self, PipelineError> {
        let jsonl_follows_sampler = config::jsonl_follows_sampler(env)?;
        let reader = OtelEnv::new(env);
        let sdk_disabled = config::sdk_disabled(&reader);
        let otlp = if sdk_disabled {
            None
        } else {
            OtlpConfig::from_otel_env(&reader)?
        };
        let resource_attributes = config::resource_attributes(&reader);
        let sampler = config::sampler_from_otel_env(&reader);
        let metrics = config::MetricsConfig::from_otel_env(&reader, otlp.is_some())?;
        let convention = Convention::from_opt_in(
            reader
                .get(llmtap_core::settings::OTEL_SEMCONV_STABILITY_OPT_IN.env)
                .as_deref(),
        );
        self.env = Some(EnvSettings {
            sampler,
            metrics,
            sdk_disabled,
            otlp,
            resource_attributes,
            service_name: reader.get(config::OTEL_SERVICE_NAME),
            convention,
            jsonl_follows_sampler,
            warnings: reader.warnings(),
        });
        Ok(self)
    }

    /// The `OTEL_*` values [`from_env`](Self::from_env) ignored (each was logged once).
    pub fn env_warnings(&self) -> &[EnvWarning] {
        self.env.as_ref().map_or(&[], |e| e.warnings.as_slice())
    }

    /// Opens the JSONL file, builds the OTLP exporter and installs one batch processor per
    /// sink. Does not touch the global tracer provider.
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        let default_name = self.service_name.as_deref().unwrap_or(DEFAULT_SERVICE_NAME);
        let env = self.env.as_ref();
        let disabled = env.is_some_and(|e| e.sdk_disabled);
        let convention = env.map_or(Convention::default(), |e| e.convention);
        let attributes = env.map_or_else(Vec::new, |e| e.resource_attributes.clone());
        let service_name = env.and_then(|e| e.service_name.clone());
        let resource = config::build_resource(
            attributes.clone(),
            service_name.clone(),
            default_name,
            Some(convention.schema_url()),
        );
        let jsonl_cfg = if disabled { None } else { self.jsonl.flatten() };
        let otlp_cfg = if disabled {
            None
        } else {
            self.otlp
                .unwrap_or_else(|| env.and_then(|e| e.otlp.clone()))
        };
        let jsonl_follows_sampler = self
            .jsonl_follows_sampler
            .or(env.map(|e| e.jsonl_follows_sampler))
            .unwrap_or(false);
        let sampler = env.map_or(SamplerChoice::ParentBasedAlwaysOn, |e| e.sampler);

        // What the banner may claim: the sinks about to be built, nothing else.
        let jsonl_summary = jsonl_cfg.as_ref().map(|c| JsonlSummary {
            path: c.path.clone(),
            max_bytes: c.max_bytes,
            keep_files: c.keep_files,
        });
        let otlp_summary = otlp_cfg.as_ref().map(|c| OtlpSummary {
            endpoint: summary::masked(&c.endpoint),
            protocol: c.protocol,
        });
        let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
        // The file is the local record: unless told to follow the sampler, it gets the calls the
        // sampler leaves out too, recorded with the sampled flag off so that only the file (and
        // never OTLP, nor the `traceparent` sent on) treats them as kept.
        let records_sampled_out = jsonl_cfg.is_some() && !jsonl_follows_sampler;
        builder = if records_sampled_out {
            builder.with_sampler(RecordSampledOut(sampler.to_sampler()))
        } else {
            builder.with_sampler(sampler.to_sampler())
        };
        let jsonl = match jsonl_cfg {
            Some(cfg) => {
                let exporter = JsonlSpanExporter::new(&cfg)?;
                let sink = make_sink(
                    "jsonl",
                    ConventionExporter::new(exporter, convention),
                    &resource,
                    cfg.batch,
                    jsonl_follows_sampler,
                );
                builder = builder.with_span_processor(SharedSink(sink.clone()));
                Some(sink)
            }
            None => None,
        };
        let otlp = match otlp_cfg {
            Some(cfg) => {
                let exporter = build_span_exporter(&cfg)?;
                let sink = make_sink(
                    "otlp",
                    ConventionExporter::new(exporter, convention),
                    &resource,
                    cfg.batch,
                    true,
                );
                builder = builder.with_span_processor(SharedSink(sink.clone()));
                Some(sink)
            }
            None => None,
        };
        let metrics = match env.and_then(|e| e.metrics.as_ref()) {
            Some(cfg) if !disabled => {
                // Metrics keep the v1.41 names whatever the span convention (see `metrics`), so
                // their resource names v1.41's schema.
                let metrics_resource = config::build_resource(
                    attributes,
                    service_name,
                    default_name,
                    Some(semconv::SCHEMA_URL),
                );
                Some(build_metrics_sink(
                    &cfg.otlp,
                    cfg.interval,
                    &metrics_resource,
                )?)
            }
            _ => None,
        };
        let summary = PipelineSummary {
            sdk_disabled: disabled,
            jsonl: jsonl_summary,
            otlp: otlp_summary,
            metrics_endpoint: self
                .env
                .as_ref()
                .and_then(|e| e.metrics.as_ref())
                .filter(|_| metrics.is_some())
                .map(|cfg| summary::masked(&cfg.otlp.endpoint)),
            sampler: summary::sampler_name(sampler),
        };
        Ok(Pipeline {
            summary,
            metrics,
            provider: builder.build(),
            jsonl,
            otlp,
            resource,
            convention,
            sampler,
            jsonl_follows_sampler,
            shutdown_started: AtomicBool::new(false),
            final_stats: Mutex::new(None),
        })
    }
}

/// The configured sampler, except that a span it would drop is recorded (sampled flag off)
/// instead, so it reaches the JSONL sink while the sampled-only OTLP sink passes it over. Its
/// children see an unsampled parent, so parent-based samplers keep whole trees consistent.
#[derive(Debug, Clone)]
struct RecordSampledOut(Sampler);

impl ShouldSample for RecordSampledOut {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let mut result =
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if matches!(result.decision, SamplingDecision::Drop) {
            result.decision = SamplingDecision::RecordOnly;
        }
        result
    }
}

fn make_sink<E: SpanExporter + 'static>(
    name: &'static str,
    mut exporter: E,
    resource: &Resource,
    batch: BatchSettings,
    sampled_only: bool,
) -> Arc<SinkProcessor> {
    exporter.set_resource(resource);
    SinkProcessor::new(name, exporter, batch, sampled_only)
}

/// A running export pipeline. Call [`Pipeline::shutdown`] before exit: dropping does not
/// flush while tracers still hold the provider.
#[derive(Debug)]
pub struct Pipeline {
    provider: SdkTracerProvider,
    jsonl: Option<Arc<SinkProcessor>>,
    otlp: Option<Arc<SinkProcessor>>,
    resource: Resource,
    convention: Convention,
    sampler: SamplerChoice,
    jsonl_follows_sampler: bool,
    metrics: Option<MetricsSink>,
    shutdown_started: AtomicBool,
    final_stats: Mutex<Option<PipelineStats>>,
    summary: PipelineSummary,
}

impl Pipeline {
    /// A builder with nothing configured.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// A tracer whose spans go to every sink. Its scope carries llmtap's version and the
    /// schema URL of the convention in use.
    pub fn tracer(&self, name: &'static str) -> SdkTracer {
        self.provider.tracer_with_scope(
            InstrumentationScope::builder(name)
                .with_version(SCOPE_VERSION)
                .with_schema_url(self.convention.schema_url())
                .build(),
        )
    }

    /// The GenAI convention every span, the resource and the scopes follow.
    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// The sampler from `OTEL_TRACES_SAMPLER` (it decides what OTLP gets).
    pub fn sampler(&self) -> SamplerChoice {
        self.sampler
    }

    /// Whether the JSONL file follows the sampler (`LLMTAP_JSONL_SAMPLED=true`) instead of
    /// keeping every call.
    pub fn jsonl_follows_sampler(&self) -> bool {
        self.jsonl_follows_sampler
    }

    /// The provider, e.g. for `tracing-opentelemetry` or `global::set_tracer_provider`.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The resource attached to every span.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The gen_ai metric instruments, when metrics are exported (OTLP on, not
    /// `OTEL_METRICS_EXPORTER=none`). Cheap to clone; record every finished call on them.
    pub fn metrics(&self) -> Option<GenAiMetrics> {
        self.metrics.as_ref().map(|m| m.metrics.clone())
    }

    /// Which sinks are on, where they write, and the sampler — as built.
    pub fn summary(&self) -> &PipelineSummary {
        &self.summary
    }

    /// Current counters; cheap (atomic loads), safe to call from request handlers.
    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            jsonl: self.jsonl.as_ref().map(|s| s.stats().snapshot()),
            otlp: self.otlp.as_ref().map(|s| s.stats().snapshot()),
        }
    }

    /// Flushes every sink in parallel; returns `false` if one failed or `timeout` passed first.
    pub fn force_flush(&self, timeout: Duration) -> bool {
        let sinks: Vec<_> = self.sinks().cloned().collect();
        run_bounded(
            sinks,
            timeout,
            Arc::new(|s: &SinkProcessor| s.force_flush().is_ok()),
        )
    }

    /// Flushes and stops both sinks in parallel, each on its own thread, so a dead collector
    /// never delays the file. Returns within about `timeout` whatever the sinks do, never
    /// panics, is safe inside a tokio runtime (blocks only this thread, and the gRPC client
    /// runs on its own runtime), and is idempotent: later calls return the first result.
    /// Spans ended after shutdown are not exported; each sink counts them as `dropped`.
    pub fn shutdown(&self, timeout: Duration) -> PipelineStats {
        if self.shutdown_started.swap(true, Ordering::AcqRel) {
            let done = *self
                .final_stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return done.unwrap_or_else(|| self.stats());
        }
        // Metrics flush on their own thread, alongside the span sinks.
        let metrics_done = self.metrics.as_ref().map(|m| {
            let provider = m.provider.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("llmtap-metrics-shutdown".into())
                .spawn(move || {
                    let _ = tx.send(provider.shutdown().is_ok());
                });
            (spawned.is_ok(), rx)
        });
        let sinks: Vec<_> = self.sinks().cloned().collect();
        let completed = run_bounded(
            sinks,
            timeout,
            Arc::new(move |s: &SinkProcessor| s.shutdown_with_timeout(timeout).is_ok()),
        );
        if let Some((true, rx)) = metrics_done
            && !matches!(rx.recv_timeout(timeout), Ok(true))
        {
            tracing::warn!("gen_ai metrics could not be flushed at shutdown");
        }
        // The provider itself is deliberately not shut down: the SDK would then skip `on_end`
        // for every later span, so spans ended after shutdown would vanish uncounted. With the
        // provider live they reach the stopped sinks, which count them as dropped. (Dropping
        // the provider later calls the sinks' shutdown again, which returns at once.)
        let stats = self.stats();
        if !completed {
            tracing::warn!(
                ?stats,
                "telemetry shutdown timed out; queued spans are lost"
            );
        }
        for (name, snap) in [("jsonl", stats.jsonl), ("otlp", stats.otlp)] {
            if let Some(s) = snap.filter(|s| s.dropped + s.failed + s.queued > 0) {
                tracing::warn!(
                    sink = name,
                    written = s.written,
                    dropped = s.dropped,
                    failed = s.failed,
                    lost_in_queue = s.queued,
                    "spans were lost"
                );
            }
        }
        *self
            .final_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(stats);
        stats
    }

    fn sinks(&self) -> impl Iterator<Item = &Arc<SinkProcessor>> {
        self.jsonl.iter().chain(self.otlp.iter())
    }
}

/// Runs `op` on every sink on its own thread and waits at most `timeout` (plus a small grace
/// for thread start-up). Returns `true` when all finished in time and returned `true`.
fn run_bounded(
    sinks: Vec<Arc<SinkProcessor>>,
    timeout: Duration,
    op: Arc<dyn Fn(&SinkProcessor) -> bool + Send + Sync>,
) -> bool {
    let expected = sinks.len();
    let deadline = Instant::now() + timeout + Duration::from_millis(200);
    let (tx, rx) = mpsc::channel();
    let mut started = 0usize;
    for sink in sinks {
        let tx = tx.clone();
        let op = op.clone();
        let spawned = thread::Builder::new()
            .name("llmtap-sink-stop".into())
            .spawn(move || {
                let _ = tx.send(op(&sink));
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, "cannot start a sink shutdown thread"),
        }
    }
    drop(tx);
    let mut all_ok = true;
    for _ in 0..started {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ok) => all_ok &= ok,
            Err(_) => return false,
        }
    }
    all_ok && started == expected
}
