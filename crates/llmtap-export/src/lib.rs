//! llmtap-export: where finished spans go.
//!
//! - [`JsonlSpanExporter`]: one OTLP/JSON `TracesData` per line (the OpenTelemetry file-exporter
//!   format), created 0600, flushed per batch, size-rotated;
//! - [`OtlpConfig::from_env`]: OTLP forwarding configured by the standard `OTEL_*` variables;
//! - [`Pipeline`]: an `SdkTracerProvider` with one batch processor per sink, so a dead collector
//!   never delays the file, with written/dropped/failed counters per sink;
//! - [`JsonlReader`]: streams a JSONL file back, skipping and counting torn or invalid lines;
//! - [`push_file`]: re-sends a JSONL file to any OTLP endpoint (`llmtap push`).
//!
//! Not part of the API: `bench_shapes` (hidden, behind the non-default `bench-shapes` feature)
//! holds the span shapes and the reference proto encoder for `llmtap-bench encoder`.

#[cfg(any(test, feature = "bench-shapes"))]
#[doc(hidden)]
pub mod bench_shapes;
mod config;
mod convention;
mod error;
mod jsonl;
mod metrics;
mod otlp;
mod otlp_json;
mod pipeline;
mod reader;
mod resend;
mod sink;
mod summary;

pub use config::{
    BatchSettings, OtlpCompression, OtlpConfig, OtlpOverrides, OtlpProtocol, UnknownProtocol,
    redact_secrets, redact_userinfo,
};
pub use error::{ExportConfigError, JsonlError, PipelineError, ReadError};
pub use jsonl::{
    DEFAULT_JSONL_PATH, DEFAULT_KEEP_FILES, DEFAULT_MAX_BYTES, ENV_JSONL, ENV_JSONL_KEEP,
    ENV_JSONL_MAX_BYTES, JsonlConfig, JsonlSpanExporter, MAX_KEEP_FILES, parse_jsonl_path,
    parse_keep, parse_max_bytes,
};
pub use metrics::GenAiMetrics;
pub use otlp_json::encode_line;
pub use pipeline::{Pipeline, PipelineBuilder, PipelineStats};
pub use reader::{DEFAULT_MAX_LINE_BYTES, JsonlReader, ReadStats, parse_line};
pub use resend::{OtlpSender, PushError, PushOptions, PushReport, SendErrorKind, push_file};
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
