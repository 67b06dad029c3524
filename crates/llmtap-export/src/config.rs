//! OTLP and SDK configuration from the standard `OTEL_*` variables, read through
//! [`EnvSource`] so tests pass a map instead of mutating the process environment.
//!
//! Rules (spec `sdk-environment-variables.md`, `protocol/exporter.md`):
//! - each signal has its own settings: `OTEL_EXPORTER_OTLP_TRACES_*` for spans and
//!   `OTEL_EXPORTER_OTLP_METRICS_*` for metrics, each falling back to `OTEL_EXPORTER_OTLP_*`,
//!   variable by variable; one signal never reads the other's variables.
//! - the generic endpoint is a base URL: HTTP protocols append `v1/traces` / `v1/metrics`; a
//!   per-signal endpoint is used as-is (an empty path becomes `/`).
//! - forwarding is on when an endpoint is set, or when `OTEL_TRACES_EXPORTER` names `otlp`
//!   (then the spec default `http://localhost:4318` / `:4317` applies); never when
//!   `OTEL_TRACES_EXPORTER` does not name it or `OTEL_SDK_DISABLED` is `true`.
//! - a value that cannot be used is what the spec says it is: logged once, naming the variable,
//!   and replaced by the default ([`OtelEnv::warnings`]). Two exceptions stay errors, because no
//!   default could stand in for them: an endpoint that is not an `http(s)://` URL, and an
//!   `https://` endpoint in this TLS-less build. Header values are never echoed (API keys).
//!
//! llmtap's own `LLMTAP_*` settings are strict instead (a bad value is a start-up error): they
//! are set for llmtap alone, while `OTEL_*` variables are often shared by every service of a
//! deployment and must not stop the one that reads them differently.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use llmtap_core::env::EnvSource;
use llmtap_core::settings;

mod batch;
mod exporter_choice;
mod metrics;
mod otlp;
mod resource;
mod sampler;

pub use batch::BatchSettings;
pub(crate) use exporter_choice::{ExporterChoice, exporter_choice, sdk_disabled};
pub(crate) use metrics::MetricsConfig;
pub(crate) use otlp::Signal;
pub use otlp::{
    OtlpCompression, OtlpConfig, OtlpOverrides, OtlpProtocol, UnknownProtocol, redact_secrets,
    redact_userinfo,
};
pub(crate) use resource::{build_resource, resource_attributes};
pub(crate) use sampler::{SamplerChoice, jsonl_follows_sampler, sampler_from_otel_env};

/// `OTEL_SDK_DISABLED`: `true` turns off every sink.
pub(crate) const OTEL_SDK_DISABLED: &str = settings::OTEL_SDK_DISABLED.env;
/// `OTEL_SERVICE_NAME`: wins over `service.name` in `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) const OTEL_SERVICE_NAME: &str = settings::OTEL_SERVICE_NAME.env;
/// `OTEL_RESOURCE_ATTRIBUTES`: `k=v,k2=v2`, values percent-decoded.
pub(crate) const OTEL_RESOURCE_ATTRIBUTES: &str = settings::OTEL_RESOURCE_ATTRIBUTES.env;
/// `OTEL_TRACES_EXPORTER`: comma list; `none` disables OTLP forwarding.
pub(crate) const OTEL_TRACES_EXPORTER: &str = settings::OTEL_TRACES_EXPORTER.env;
/// Generic base endpoint.
pub(crate) const OTEL_EXPORTER_OTLP_ENDPOINT: &str = settings::OTEL_EXPORTER_OTLP_ENDPOINT.env;
/// Traces endpoint, used verbatim.
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.env;
/// Generic protocol.
pub(crate) const OTEL_EXPORTER_OTLP_PROTOCOL: &str = settings::OTEL_EXPORTER_OTLP_PROTOCOL.env;
/// Traces protocol.
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.env;
/// Generic headers.
pub(crate) const OTEL_EXPORTER_OTLP_HEADERS: &str = settings::OTEL_EXPORTER_OTLP_HEADERS.env;
/// Traces headers.
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_HEADERS.env;
/// Generic timeout (ms).
pub(crate) const OTEL_EXPORTER_OTLP_TIMEOUT: &str = settings::OTEL_EXPORTER_OTLP_TIMEOUT.env;
/// Traces timeout (ms).
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_TIMEOUT.env;
/// Generic compression.
pub(crate) const OTEL_EXPORTER_OTLP_COMPRESSION: &str =
    settings::OTEL_EXPORTER_OTLP_COMPRESSION.env;
/// Traces compression.
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_COMPRESSION.env;
/// Generic gRPC "insecure" (only for scheme-less gRPC endpoints).
pub(crate) const OTEL_EXPORTER_OTLP_INSECURE: &str = settings::OTEL_EXPORTER_OTLP_INSECURE.env;
/// Traces gRPC "insecure".
pub(crate) const OTEL_EXPORTER_OTLP_TRACES_INSECURE: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_INSECURE.env;
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: full URL for metrics, used as-is.
pub(crate) const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT.env;
/// Metrics protocol.
pub(crate) const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_PROTOCOL.env;
/// Metrics headers.
pub(crate) const OTEL_EXPORTER_OTLP_METRICS_HEADERS: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_HEADERS.env;
/// Metrics timeout (ms).
pub(crate) const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT.env;
/// Metrics compression.
pub(crate) const OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION.env;
/// Metrics gRPC "insecure".
pub(crate) const OTEL_EXPORTER_OTLP_METRICS_INSECURE: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_INSECURE.env;
/// Batch processor schedule delay (ms).
pub(crate) const OTEL_BSP_SCHEDULE_DELAY: &str = settings::OTEL_BSP_SCHEDULE_DELAY.env;
/// Batch processor queue size.
pub(crate) const OTEL_BSP_MAX_QUEUE_SIZE: &str = settings::OTEL_BSP_MAX_QUEUE_SIZE.env;
/// Batch processor max batch size.
pub(crate) const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str =
    settings::OTEL_BSP_MAX_EXPORT_BATCH_SIZE.env;
/// `LLMTAP_JSONL_SAMPLED`: `true` makes the JSONL file follow `OTEL_TRACES_SAMPLER` like the
/// OTLP sink; by default the file keeps every call. An llmtap setting, so strict.
pub(crate) const LLMTAP_JSONL_SAMPLED: &str = settings::JSONL_SAMPLED.env;

/// Spec default for HTTP protocols.
pub(crate) const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Spec default for gRPC.
pub(crate) const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Spec default per-batch timeout.
pub(crate) const DEFAULT_OTLP_TIMEOUT_MS: u64 = 10_000;
/// What `OTEL_EXPORTER_OTLP_TIMEOUT=0` ("no limit") becomes: a year, because the HTTP client
/// adds the timeout to the current instant and `Duration::MAX` would overflow there.
pub(crate) const NO_LIMIT_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Spec default batch schedule delay.
pub(crate) const DEFAULT_BSP_SCHEDULE_DELAY_MS: u64 = 5_000;
/// Spec default queue size.
pub(crate) const DEFAULT_BSP_MAX_QUEUE_SIZE: usize = 2_048;
/// Spec default batch size.
pub(crate) const DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE: usize = 512;

const SERVICE_NAME_KEY: &str = "service.name";

/// One `OTEL_*` value that was ignored, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWarning {
    /// The variable.
    pub var: String,
    /// The logged line (names the variable, the value unless it may be a secret, and the
    /// default used instead).
    pub message: String,
}

/// The environment read the spec's way: a value that cannot be used is logged once per
/// variable (a `WARN` line naming it) and replaced by the default. Use one reader for a whole
/// configuration so a variable shared by two signals is reported once.
pub struct OtelEnv<'a, E: EnvSource + ?Sized> {
    env: &'a E,
    warnings: RefCell<Vec<EnvWarning>>,
}

impl<E: EnvSource + ?Sized> fmt::Debug for OtelEnv<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelEnv")
            .field("warnings", &self.warnings.borrow())
            .finish_non_exhaustive()
    }
}

impl<'a, E: EnvSource + ?Sized> OtelEnv<'a, E> {
    /// A reader over `env` with no warnings yet.
    pub fn new(env: &'a E) -> Self {
        Self {
            env,
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// Every value ignored so far, in order, one per variable.
    pub fn warnings(&self) -> Vec<EnvWarning> {
        self.warnings.borrow().clone()
    }

    /// The value of `var`, trimmed; empty counts as unset (as the spec says).
    pub fn get(&self, var: &str) -> Option<String> {
        self.env.non_empty(var)
    }

    /// Logs (once per variable) that `shown`, the value of `var`, is ignored because of
    /// `problem`, and that `using` applies instead.
    fn ignore(&self, var: &str, shown: &str, problem: &str, using: &str) {
        let mut warnings = self.warnings.borrow_mut();
        if warnings.iter().any(|w| w.var == var) {
            return;
        }
        let message = format!("{var}={shown:?} ignored: {problem}; using {using}");
        tracing::warn!(variable = var, "{message}");
        warnings.push(EnvWarning {
            var: var.to_owned(),
            message,
        });
    }

    /// The first of `vars` whose value `parse` accepts, with its variable; values it rejects are
    /// reported and skipped, so a bad per-signal value falls back to the generic one.
    fn first_valid<T>(
        &self,
        vars: &[&'static str],
        expected: &str,
        using: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<(&'static str, T)> {
        for (i, &var) in vars.iter().enumerate() {
            let Some(raw) = self.get(var) else { continue };
            match parse(&raw) {
                Some(v) => return Some((var, v)),
                None => {
                    // Name what actually applies: the next variable of the chain when it is set.
                    let next = vars[i + 1..].iter().find(|v| self.get(v).is_some());
                    match next {
                        Some(next) => self.ignore(var, &raw, expected, next),
                        None => self.ignore(var, &raw, expected, using),
                    }
                }
            }
        }
        None
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}
