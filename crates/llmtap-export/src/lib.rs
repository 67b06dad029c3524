//! llmtap-export: where finished spans go.
//!
//! - [`JsonlSpanExporter`]: one OTLP/JSON `TracesData` per line (the OpenTelemetry file-exporter
//!   format), created 0600, flushed per batch, size-rotated;
//! - [`OtlpConfig::from_env`]: OTLP forwarding configured by the standard `OTEL_*` variables;
//! - [`Pipeline`]: an `SdkTracerProvider` with one batch processor per sink, so a dead collector
//!   never delays the file, with written/dropped/failed counters per sink;
//! - [`JsonlReader`]: streams a JSONL file back, skipping and counting torn or invalid lines;
//! - [`resend::push_file`]: re-sends a JSONL file to any OTLP endpoint (`llmtap push`).

pub mod config;
pub mod convention;
pub mod error;
pub mod jsonl;
pub mod metrics;
pub mod otlp;
pub mod otlp_json;
pub mod pipeline;
pub mod reader;
pub mod resend;
pub mod sink;
pub mod summary;

pub use config::{
    BatchSettings, EnvWarning, OtelEnv, OtlpCompression, OtlpConfig, OtlpOverrides, OtlpProtocol,
    SamplerChoice,
};
pub use error::{ExportConfigError, JsonlError, PipelineError, ReadError};
pub use jsonl::{JsonlConfig, JsonlSpanExporter};
pub use metrics::GenAiMetrics;
pub use otlp::{OtlpSpanExporter, build_span_exporter};
pub use pipeline::{Pipeline, PipelineBuilder, PipelineStats};
pub use reader::{JsonlReader, ReadStats};
pub use sink::{SinkSnapshot, SinkStats};
pub use summary::{JsonlSummary, OtlpSummary, PipelineSummary};

/// The OTLP protobuf/serde types this crate reads and writes.
pub mod proto {
    pub use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    pub use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    pub use opentelemetry_proto::tonic::resource::v1::Resource;
    pub use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status, TracesData, span, status,
    };
}
