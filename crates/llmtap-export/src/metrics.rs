//! gen_ai client metrics from the same [`LlmCall`] record as the span, exported over OTLP with
//! the metrics' own settings (`OTEL_EXPORTER_OTLP_METRICS_*`, else the generic ones):
//! `gen_ai.client.operation.duration` (s), `gen_ai.client.token.usage` ({token}, per
//! `gen_ai.token.type`) and, for streams, `gen_ai.client.operation.time_to_first_chunk` and
//! `gen_ai.client.operation.time_per_output_chunk` (s), each with the semconv bucket boundaries.
//!
//! Names, attributes and schema URL are those of semconv v1.41 whatever
//! `OTEL_SEMCONV_STABILITY_OPT_IN` says: the GenAI repository replaces these histograms with a
//! different set (`gen_ai.client.inference.*` counters per token modality) that llmtap does not
//! emit yet, and a metric stream must not mix the two.
//!
//! Metrics are recorded for every call whatever the trace sampler decided, so dashboards count
//! all traffic even when traces are sampled. `OTEL_METRICS_EXPORTER=none` turns them off; they are
//! only exported over OTLP (the JSONL file holds traces).

use std::time::Duration;

use llmtap_core::call::LlmCall;
use llmtap_core::semconv;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use crate::error::PipelineError;
use crate::otlp::RuntimeGuard;

/// Instrumentation scope of the metrics.
pub(crate) const METER_NAME: &str = "llmtap";

/// The four gen_ai histograms.
#[derive(Debug, Clone)]
pub struct GenAiMetrics {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    time_to_first_chunk: Histogram<f64>,
    time_per_output_chunk: Histogram<f64>,
}

impl GenAiMetrics {
    /// Creates the instruments on `meter` with the semconv units and bucket advice.
    pub fn new(meter: &Meter) -> Self {
        Self {
            duration: meter
                .f64_histogram(semconv::GEN_AI_CLIENT_OPERATION_DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(semconv::DURATION_BUCKETS.to_vec())
                .build(),
            tokens: meter
                .u64_histogram(semconv::GEN_AI_CLIENT_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(semconv::TOKEN_BUCKETS.to_vec())
                .build(),
            time_to_first_chunk: meter
                .f64_histogram(semconv::GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK)
                .with_unit("s")
                .with_description("Time to the first chunk of a streamed response")
                .with_boundaries(semconv::DURATION_BUCKETS.to_vec())
                .build(),
            time_per_output_chunk: meter
                .f64_histogram(semconv::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK)
                .with_unit("s")
                .with_description("Time per output chunk after the first of a streamed response")
                .with_boundaries(semconv::DURATION_BUCKETS.to_vec())
                .build(),
        }
    }

    /// Records one finished call.
    pub fn record(&self, call: &LlmCall) {
        let mut attributes = call.metric_attributes();
        if let Some(duration) = call.timings.duration {
            self.duration.record(duration.as_secs_f64(), &attributes);
        }
        for (token_type, count) in [
            (semconv::token_type::INPUT, call.usage.input_tokens),
            (semconv::token_type::OUTPUT, call.usage.output_tokens),
        ] {
            if let Some(count) = count {
                // The token type goes on and comes off again: no copy of the other attributes.
                attributes.push(KeyValue::new(semconv::GEN_AI_TOKEN_TYPE, token_type));
                self.tokens.record(count, &attributes);
                attributes.pop();
            }
        }
        if call.request.stream
            && let Some(ttft) = call.timings.time_to_first_chunk
        {
            self.time_to_first_chunk
                .record(ttft.as_secs_f64(), &attributes);
        }
        if let Some(per_chunk) = time_per_output_chunk(call) {
            self.time_per_output_chunk.record(per_chunk, &attributes);
        }
    }
}

impl llmtap_core::lifecycle::CallMetrics for GenAiMetrics {
    fn record(&self, call: &LlmCall) {
        GenAiMetrics::record(self, call);
    }
}

/// Seconds per output chunk after the first of a streamed call: the time from the first chunk to
/// the end of the stream over the chunks that followed it. One value per call, the mean of the
/// gaps the semconv histogram would get one by one: the recorder sees the first and last chunk
/// and the count, not each gap (timing every chunk would cost the forwarding path).
pub(crate) fn time_per_output_chunk(call: &LlmCall) -> Option<f64> {
    if !call.request.stream || call.timings.chunk_count < 2 {
        return None;
    }
    let after_first = call
        .timings
        .duration?
        .checked_sub(call.timings.time_to_first_chunk?)?;
    Some(after_first.as_secs_f64() / (call.timings.chunk_count - 1) as f64)
}

/// A meter provider exporting over OTLP, plus (for gRPC) the runtime its client lives on.
#[derive(Debug)]
pub(crate) struct MetricsSink {
    pub(crate) provider: SdkMeterProvider,
    pub(crate) metrics: GenAiMetrics,
    // Dropped after the provider.
    _runtime: Option<RuntimeGuard>,
}

/// Builds the OTLP metric pipeline for `otlp` (already pointing at the metrics endpoint).
pub(crate) fn build_metrics_sink(
    otlp: &OtlpConfig,
    interval: Duration,
    resource: &Resource,
) -> Result<MetricsSink, PipelineError> {
    let build_error = |e: opentelemetry_otlp::ExporterBuildError| PipelineError::OtlpBuild {
        endpoint: crate::config::redact_userinfo(&otlp.endpoint),
        reason: crate::config::redact_secrets(&e.to_string()),
    };
    let (exporter, runtime) = match otlp.protocol {
        OtlpProtocol::Grpc => {
            let guard = RuntimeGuard::new("llmtap-otlp-metrics")?;
            let metadata = crate::otlp::grpc_metadata(&otlp.headers)?;
            let mut builder = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(otlp.endpoint.clone())
                .with_timeout(otlp.timeout)
                .with_metadata(metadata);
            if otlp.compression == OtlpCompression::Gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let exporter = guard.enter(|| builder.build().map_err(build_error))??;
            (exporter, Some(guard))
        }
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
            let protocol = if otlp.protocol == OtlpProtocol::HttpJson {
                Protocol::HttpJson
            } else {
                Protocol::HttpBinary
            };
            let mut builder = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(otlp.endpoint.clone())
                .with_timeout(otlp.timeout)
                .with_headers(otlp.headers.iter().cloned().collect());
            if otlp.compression == OtlpCompression::Gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            (builder.build().map_err(build_error)?, None)
        }
    };
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(reader)
        .build();
    let metrics = GenAiMetrics::new(
        &provider.meter_with_scope(
            InstrumentationScope::builder(METER_NAME)
                .with_version(env!("CARGO_PKG_VERSION"))
                .with_schema_url(semconv::SCHEMA_URL)
                .build(),
        ),
    );
    Ok(MetricsSink {
        provider,
        metrics,
        _runtime: runtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmtap_core::semconv::{operation, provider};

    #[test]
    fn time_per_output_chunk_is_the_mean_gap_after_the_first_chunk() {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        call.request.stream = true;
        call.timings.time_to_first_chunk = Some(Duration::from_millis(200));
        call.timings.duration = Some(Duration::from_millis(1_200));
        call.timings.chunk_count = 11;
        assert_eq!(time_per_output_chunk(&call), Some(0.1));
        call.timings.chunk_count = 1;
        assert_eq!(time_per_output_chunk(&call), None, "one chunk has no gap");
        call.timings.chunk_count = 11;
        call.request.stream = false;
        assert_eq!(time_per_output_chunk(&call), None, "streams only");
        call.request.stream = true;
        call.timings.time_to_first_chunk = None;
        assert_eq!(time_per_output_chunk(&call), None);
    }
}
