//! Errors of the SDK's fallible entry points. Recording itself never fails and never panics:
//! telemetry problems lose telemetry (counted by the pipeline), never the application's call.

/// Why [`crate::init`] / [`crate::Builder`] could not set telemetry up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// An `LLMTAP_*` value is malformed (the message names the variable).
    #[error(transparent)]
    Setting(#[from] llmtap_core::settings::SettingError),
    /// Content capture settings are malformed.
    #[error(transparent)]
    Capture(#[from] llmtap_core::capture::ConfigError),
    /// The exporter could not be set up (bad `OTEL_*` value, unwritable JSONL path).
    #[error(transparent)]
    Pipeline(#[from] llmtap_export::PipelineError),
}

/// A traceparent-style header value that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent/traceresponse value: {0:?}")]
pub struct TraceparentError(pub String);
