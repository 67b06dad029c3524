//! Building an OTLP span exporter (gRPC, HTTP/protobuf or HTTP/JSON) from an [`OtlpConfig`].
//!
//! gRPC (tonic) needs a tokio runtime for its connection task, and the SDK's batch processor
//! runs exports on a plain thread. So every gRPC exporter gets its own one-thread runtime,
//! owned by [`OtlpSpanExporter`]: it works whether or not the caller is inside a runtime,
//! and a caller's current-thread runtime that blocks on shutdown can never starve it.
//! HTTP uses opentelemetry-otlp's blocking reqwest client (an async client under the
//! thread-based batch processor panics with "no reactor running").

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::{
    Protocol, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use crate::error::{ExportConfigError, PipelineError};

/// An OTLP span exporter plus, for gRPC, the runtime its connection lives on.
#[derive(Debug)]
pub(crate) struct OtlpSpanExporter {
    // Declared before `_runtime` so the client drops before its runtime.
    inner: opentelemetry_otlp::SpanExporter,
    /// Held only to be dropped after `inner`.
    _runtime: Option<RuntimeGuard>,
}

/// Owns a runtime and shuts it down without blocking, so dropping the exporter is safe
/// anywhere, including inside another tokio runtime (a plain `Runtime` drop would panic).
#[derive(Debug)]
pub(crate) struct RuntimeGuard(Option<tokio::runtime::Runtime>);

impl RuntimeGuard {
    /// A one-worker runtime for a tonic client.
    pub(crate) fn new(thread_name: &str) -> Result<Self, PipelineError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(PipelineError::Runtime)
    }

    /// Runs `f` inside the runtime's context (tonic builds its channel on the current runtime).
    pub(crate) fn enter<T>(&self, f: impl FnOnce() -> T) -> Result<T, PipelineError> {
        let rt = self
            .0
            .as_ref()
            .ok_or_else(|| PipelineError::Runtime(std::io::Error::other("runtime missing")))?;
        let _entered = rt.enter();
        Ok(f())
    }
}

/// OTLP headers as gRPC metadata; values are never echoed in errors (they may be tokens).
pub(crate) fn grpc_metadata(headers: &[(String, String)]) -> Result<MetadataMap, PipelineError> {
    let mut metadata = MetadataMap::new();
    for (k, v) in headers {
        let key = k.to_ascii_lowercase();
        let parsed_key = key.parse::<AsciiMetadataKey>().map_err(|_| {
            ExportConfigError::invalid(
                "OTLP headers",
                format!("{k}=<redacted>"),
                "not a valid gRPC metadata key",
            )
        })?;
        let parsed_value = v.parse::<AsciiMetadataValue>().map_err(|_| {
            ExportConfigError::invalid(
                "OTLP headers",
                format!("{k}=<redacted>"),
                "not a valid gRPC metadata value",
            )
        })?;
        metadata.insert(parsed_key, parsed_value);
    }
    Ok(metadata)
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Builds the exporter for `config`. Callable from any thread, inside or outside a runtime.
/// HTTPS needs TLS, which this build does not include: such endpoints are refused here with a
/// clear message instead of failing on every export later.
pub(crate) fn build_span_exporter(config: &OtlpConfig) -> Result<OtlpSpanExporter, PipelineError> {
    if config.endpoint.starts_with("https://") {
        return Err(ExportConfigError::Unsupported {
            var: "OTLP endpoint".to_owned(),
            value: config.endpoint.clone(),
            reason: "TLS is not compiled in; send to a local collector over http:// and let it \
                     forward over TLS"
                .to_owned(),
        }
        .into());
    }
    let retry = if config.retry {
        RetryPolicy::recommended()
    } else {
        RetryPolicy::disabled()
    };
    let build_error = |e: opentelemetry_otlp::ExporterBuildError| PipelineError::OtlpBuild {
        endpoint: crate::config::redact_userinfo(&config.endpoint),
        reason: crate::config::redact_secrets(&e.to_string()),
    };
    match config.protocol {
        OtlpProtocol::Grpc => {
            let guard = RuntimeGuard::new("llmtap-otlp-grpc")?;
            let metadata = grpc_metadata(&config.headers)?;
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.endpoint.clone())
                .with_timeout(config.timeout)
                .with_metadata(metadata)
                .with_retry_policy(retry);
            if config.compression == OtlpCompression::Gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let inner = guard.enter(|| builder.build().map_err(build_error))??;
            Ok(OtlpSpanExporter {
                inner,
                _runtime: Some(guard),
            })
        }
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
            let protocol = if config.protocol == OtlpProtocol::HttpJson {
                Protocol::HttpJson
            } else {
                Protocol::HttpBinary
            };
            let headers: HashMap<String, String> = config.headers.iter().cloned().collect();
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(config.endpoint.clone())
                .with_timeout(config.timeout)
                .with_headers(headers)
                .with_retry_policy(retry);
            if config.compression == OtlpCompression::Gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let inner = builder.build().map_err(build_error)?;
            Ok(OtlpSpanExporter {
                inner,
                _runtime: None,
            })
        }
    }
}
