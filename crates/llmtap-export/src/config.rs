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
use std::str::FromStr;
use std::time::Duration;

use llmtap_core::env::EnvSource;
use llmtap_core::settings;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::error::ExportConfigError;

/// `OTEL_SDK_DISABLED`: `true` turns off every sink.
pub const OTEL_SDK_DISABLED: &str = settings::OTEL_SDK_DISABLED.env;
/// `OTEL_SERVICE_NAME`: wins over `service.name` in `OTEL_RESOURCE_ATTRIBUTES`.
pub const OTEL_SERVICE_NAME: &str = settings::OTEL_SERVICE_NAME.env;
/// `OTEL_RESOURCE_ATTRIBUTES`: `k=v,k2=v2`, values percent-decoded.
pub const OTEL_RESOURCE_ATTRIBUTES: &str = settings::OTEL_RESOURCE_ATTRIBUTES.env;
/// `OTEL_TRACES_EXPORTER`: comma list; `none` disables OTLP forwarding.
pub const OTEL_TRACES_EXPORTER: &str = settings::OTEL_TRACES_EXPORTER.env;
/// Generic base endpoint.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = settings::OTEL_EXPORTER_OTLP_ENDPOINT.env;
/// Traces endpoint, used verbatim.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.env;
/// Generic protocol.
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = settings::OTEL_EXPORTER_OTLP_PROTOCOL.env;
/// Traces protocol.
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.env;
/// Generic headers.
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = settings::OTEL_EXPORTER_OTLP_HEADERS.env;
/// Traces headers.
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = settings::OTEL_EXPORTER_OTLP_TRACES_HEADERS.env;
/// Generic timeout (ms).
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = settings::OTEL_EXPORTER_OTLP_TIMEOUT.env;
/// Traces timeout (ms).
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = settings::OTEL_EXPORTER_OTLP_TRACES_TIMEOUT.env;
/// Generic compression.
pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = settings::OTEL_EXPORTER_OTLP_COMPRESSION.env;
/// Traces compression.
pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_COMPRESSION.env;
/// Generic gRPC "insecure" (only for scheme-less gRPC endpoints).
pub const OTEL_EXPORTER_OTLP_INSECURE: &str = settings::OTEL_EXPORTER_OTLP_INSECURE.env;
/// Traces gRPC "insecure".
pub const OTEL_EXPORTER_OTLP_TRACES_INSECURE: &str =
    settings::OTEL_EXPORTER_OTLP_TRACES_INSECURE.env;
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: full URL for metrics, used as-is.
pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT.env;
/// Metrics protocol.
pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_PROTOCOL.env;
/// Metrics headers.
pub const OTEL_EXPORTER_OTLP_METRICS_HEADERS: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_HEADERS.env;
/// Metrics timeout (ms).
pub const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT.env;
/// Metrics compression.
pub const OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION.env;
/// Metrics gRPC "insecure".
pub const OTEL_EXPORTER_OTLP_METRICS_INSECURE: &str =
    settings::OTEL_EXPORTER_OTLP_METRICS_INSECURE.env;
/// Batch processor schedule delay (ms).
pub const OTEL_BSP_SCHEDULE_DELAY: &str = settings::OTEL_BSP_SCHEDULE_DELAY.env;
/// Batch processor queue size.
pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = settings::OTEL_BSP_MAX_QUEUE_SIZE.env;
/// Batch processor max batch size.
pub const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = settings::OTEL_BSP_MAX_EXPORT_BATCH_SIZE.env;
/// `LLMTAP_JSONL_SAMPLED`: `true` makes the JSONL file follow `OTEL_TRACES_SAMPLER` like the
/// OTLP sink; by default the file keeps every call. An llmtap setting, so strict.
pub const LLMTAP_JSONL_SAMPLED: &str = settings::JSONL_SAMPLED.env;

/// Spec default for HTTP protocols.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Spec default for gRPC.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Spec default per-batch timeout.
pub const DEFAULT_OTLP_TIMEOUT_MS: u64 = 10_000;
/// What `OTEL_EXPORTER_OTLP_TIMEOUT=0` ("no limit") becomes: a year, because the HTTP client
/// adds the timeout to the current instant and `Duration::MAX` would overflow there.
pub const NO_LIMIT_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Spec default batch schedule delay.
pub const DEFAULT_BSP_SCHEDULE_DELAY_MS: u64 = 5_000;
/// Spec default queue size.
pub const DEFAULT_BSP_MAX_QUEUE_SIZE: usize = 2_048;
/// Spec default batch size.
pub const DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE: usize = 512;

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

/// OTLP transport and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (tonic).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (spec default).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/HTTP with OTLP/JSON bodies.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// The spec spelling (`grpc`, `http/protobuf`, `http/json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        }
    }

    fn is_http(self) -> bool {
        !matches!(self, Self::Grpc)
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from parsing a protocol name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProtocol;

impl fmt::Display for UnknownProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected one of grpc, http/protobuf, http/json")
    }
}

impl std::error::Error for UnknownProtocol {}

impl FromStr for OtlpProtocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            _ => Err(UnknownProtocol),
        }
    }
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// No compression (spec default).
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// Batch processor settings for one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Spans waiting for export; beyond this, new spans are dropped and counted.
    pub max_queue_size: usize,
    /// Spans per export call.
    pub max_export_batch_size: usize,
    /// Longest time a span waits in the queue before an export is started.
    pub scheduled_delay: Duration,
}

impl BatchSettings {
    /// Spec defaults (5 s, 2048, 512): right for network sinks.
    pub fn otlp_default() -> Self {
        Self {
            max_queue_size: DEFAULT_BSP_MAX_QUEUE_SIZE,
            max_export_batch_size: DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE,
            scheduled_delay: Duration::from_millis(DEFAULT_BSP_SCHEDULE_DELAY_MS),
        }
    }

    /// Local file: short delay so a span is on disk within 1 s of ending, and a deeper
    /// queue because a file write is cheap and bursts should not drop. Small batches: the
    /// exporter thread shares the proxy's core, and encoding 512 spans at once (~1.5 ms) held
    /// requests up behind it (docs/benchmarks.md, tail latency); a write per 64 spans is cheap.
    pub fn jsonl_default() -> Self {
        Self {
            max_queue_size: 8_192,
            max_export_batch_size: 64,
            scheduled_delay: Duration::from_millis(500),
        }
    }

    /// `OTEL_BSP_*` over `base`; a malformed value is reported and `base`'s value kept.
    pub fn from_env(env: &impl EnvSource, base: Self) -> Self {
        Self::from_otel_env(&OtelEnv::new(env), base)
    }

    /// [`from_env`](Self::from_env) on a shared reader.
    pub fn from_otel_env<E: EnvSource + ?Sized>(env: &OtelEnv<'_, E>, base: Self) -> Self {
        let mut out = base;
        let default_delay = format!("{} ms", base.scheduled_delay.as_millis());
        if let Some((_, ms)) = env.first_valid(
            &[OTEL_BSP_SCHEDULE_DELAY],
            "expected a whole number of milliseconds",
            &default_delay,
            |raw| raw.parse::<u64>().ok(),
        ) {
            out.scheduled_delay = Duration::from_millis(ms);
        }
        if let Some((_, n)) = env.first_valid(
            &[OTEL_BSP_MAX_QUEUE_SIZE],
            "expected a whole number greater than 0",
            &base.max_queue_size.to_string(),
            positive_usize,
        ) {
            out.max_queue_size = n;
        }
        if let Some((_, n)) = env.first_valid(
            &[OTEL_BSP_MAX_EXPORT_BATCH_SIZE],
            "expected a whole number greater than 0",
            &base.max_export_batch_size.to_string(),
            positive_usize,
        ) {
            out.max_export_batch_size = n;
        }
        out.max_export_batch_size = out.max_export_batch_size.min(out.max_queue_size);
        out
    }
}

fn positive_usize(raw: &str) -> Option<usize> {
    raw.parse::<usize>().ok().filter(|&n| n > 0)
}

/// Everything needed to build an OTLP trace exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL. For HTTP protocols it already includes the path (`…/v1/traces`); for gRPC
    /// it is the server address.
    pub endpoint: String,
    /// Transport and encoding.
    pub protocol: OtlpProtocol,
    /// Extra request headers / gRPC metadata (already percent-decoded).
    pub headers: Vec<(String, String)>,
    /// Per-batch deadline, retries included.
    pub timeout: Duration,
    /// Body compression.
    pub compression: OtlpCompression,
    /// Retry transient failures (429/502/503/504, UNAVAILABLE) with backoff inside `timeout`.
    pub retry: bool,
    /// Batch processor settings for the OTLP sink.
    pub batch: BatchSettings,
}

/// Explicit choices (CLI flags) that win over the environment.
#[derive(Debug, Clone, Default)]
pub struct OtlpOverrides {
    /// Base endpoint, same meaning as `OTEL_EXPORTER_OTLP_ENDPOINT`, except that an HTTP URL
    /// already ending in `/v1/traces` is used as-is.
    pub endpoint: Option<String>,
    /// Protocol.
    pub protocol: Option<OtlpProtocol>,
}

/// A telemetry signal with its own `OTEL_EXPORTER_OTLP_<SIGNAL>_*` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// The gen_ai metrics.
    Metrics,
}

impl Signal {
    fn endpoint_var(self) -> &'static str {
        match self {
            Self::Traces => OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            Self::Metrics => OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
        }
    }

    fn protocol_var(self) -> &'static str {
        match self {
            Self::Traces => OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            Self::Metrics => OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
        }
    }

    fn headers_var(self) -> &'static str {
        match self {
            Self::Traces => OTEL_EXPORTER_OTLP_TRACES_HEADERS,
            Self::Metrics => OTEL_EXPORTER_OTLP_METRICS_HEADERS,
        }
    }

    fn timeout_var(self) -> &'static str {
        match self {
            Self::Traces => OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
            Self::Metrics => OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
        }
    }

    fn compression_var(self) -> &'static str {
        match self {
            Self::Traces => OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
            Self::Metrics => OTEL_EXPORTER_OTLP_METRICS_COMPRESSION,
        }
    }

    fn insecure_var(self) -> &'static str {
        match self {
            Self::Traces => OTEL_EXPORTER_OTLP_TRACES_INSECURE,
            Self::Metrics => OTEL_EXPORTER_OTLP_METRICS_INSECURE,
        }
    }

    /// The path HTTP appends to the generic base endpoint.
    fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "v1/traces",
            Self::Metrics => "v1/metrics",
        }
    }
}

impl OtlpConfig {
    /// Forwarding configuration per the spec, or `None` when forwarding is off: no endpoint set
    /// and `OTEL_TRACES_EXPORTER` not naming `otlp`, `OTEL_TRACES_EXPORTER` naming only other
    /// exporters or `none`, or `OTEL_SDK_DISABLED=true`.
    pub fn from_env(env: &impl EnvSource) -> Result<Option<Self>, ExportConfigError> {
        Self::from_otel_env(&OtelEnv::new(env))
    }

    /// [`from_env`](Self::from_env) on a shared reader.
    pub fn from_otel_env<E: EnvSource + ?Sized>(
        env: &OtelEnv<'_, E>,
    ) -> Result<Option<Self>, ExportConfigError> {
        if sdk_disabled(env) {
            return Ok(None);
        }
        let has_endpoint = env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some()
            || env.get(OTEL_EXPORTER_OTLP_ENDPOINT).is_some();
        match exporter_choice(env, OTEL_TRACES_EXPORTER) {
            ExporterChoice::Off => Ok(None),
            ExporterChoice::Otlp => Self::resolve_signal(env, Signal::Traces, None).map(Some),
            ExporterChoice::Default if has_endpoint => {
                Self::resolve_signal(env, Signal::Traces, None).map(Some)
            }
            ExporterChoice::Default => Ok(None),
        }
    }

    /// Configuration from overrides, then env, then spec defaults (`localhost:4318` / `4317`);
    /// used by `llmtap push`, where sending is the explicit intent.
    pub fn resolve(
        env: &impl EnvSource,
        overrides: &OtlpOverrides,
    ) -> Result<Self, ExportConfigError> {
        Self::resolve_signal(&OtelEnv::new(env), Signal::Traces, Some(overrides))
    }

    /// The settings of one signal: its own variables, else the generic ones, else the spec's
    /// defaults. Never reads another signal's variables.
    pub fn resolve_signal<E: EnvSource + ?Sized>(
        env: &OtelEnv<'_, E>,
        signal: Signal,
        overrides: Option<&OtlpOverrides>,
    ) -> Result<Self, ExportConfigError> {
        let protocol = match overrides.and_then(|o| o.protocol) {
            Some(p) => p,
            None => env
                .first_valid(
                    &[signal.protocol_var(), OTEL_EXPORTER_OTLP_PROTOCOL],
                    "expected grpc, http/protobuf or http/json",
                    OtlpProtocol::default().as_str(),
                    |raw| raw.parse::<OtlpProtocol>().ok(),
                )
                .map_or(OtlpProtocol::default(), |(_, p)| p),
        };
        let explicit = overrides.and_then(|o| o.endpoint.as_deref());
        let endpoint = resolve_endpoint(env, signal, explicit, protocol)?;
        let headers = resolve_headers(env, signal);
        let timeout = env
            .first_valid(
                &[signal.timeout_var(), OTEL_EXPORTER_OTLP_TIMEOUT],
                "expected a whole number of milliseconds (0 = no limit)",
                "10000 ms",
                |raw| raw.parse::<u64>().ok(),
            )
            .map_or(Duration::from_millis(DEFAULT_OTLP_TIMEOUT_MS), |(_, ms)| {
                if ms == 0 {
                    NO_LIMIT_TIMEOUT
                } else {
                    Duration::from_millis(ms)
                }
            });
        let compression = env
            .first_valid(
                &[signal.compression_var(), OTEL_EXPORTER_OTLP_COMPRESSION],
                "expected gzip or none",
                "none",
                parse_compression,
            )
            .map_or(OtlpCompression::None, |(_, c)| c);
        Ok(Self {
            endpoint,
            protocol,
            headers,
            timeout,
            compression,
            retry: true,
            batch: BatchSettings::from_otel_env(env, BatchSettings::otlp_default()),
        })
    }
}

/// `OTEL_SDK_DISABLED`: only `true` (any case) is true, as the spec says; another value that
/// is not `false` is reported and read as `false`.
pub fn sdk_disabled<E: EnvSource + ?Sized>(env: &OtelEnv<'_, E>) -> bool {
    match env.get(OTEL_SDK_DISABLED) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            env.ignore(
                OTEL_SDK_DISABLED,
                &v,
                "only true disables the SDK",
                "false (SDK enabled)",
            );
            false
        }
    }
}

/// What an `OTEL_{TRACES,METRICS}_EXPORTER` list asks of OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterChoice {
    /// Unset, or only unknown names: the default (`otlp`), which llmtap turns on only when an
    /// endpoint is set.
    Default,
    /// The list names `otlp`: on, at the spec's default endpoint if none is set.
    Otlp,
    /// `none`, or only exporters llmtap does not implement (`console`, `zipkin`, …).
    Off,
}

/// Reads an exporter list: `otlp` on; `none` off; the names llmtap does not implement — known
/// ones (`console`, `zipkin`, `prometheus`, …) and unknown ones alike — are reported in one
/// warning and ignored.
pub fn exporter_choice<E: EnvSource + ?Sized>(
    env: &OtelEnv<'_, E>,
    var: &'static str,
) -> ExporterChoice {
    let Some(raw) = env.get(var) else {
        return ExporterChoice::Default;
    };
    let (mut otlp, mut known) = (false, false);
    let mut ignored = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "otlp" => (otlp, known) = (true, true),
            "none" => known = true,
            "console" | "zipkin" | "jaeger" | "logging" | "otlp/stdout" | "prometheus" => {
                known = true;
                ignored.push(name);
            }
            _ => ignored.push(name),
        }
    }
    let choice = match (otlp, known) {
        (true, _) => ExporterChoice::Otlp,
        (false, true) => ExporterChoice::Off,
        (false, false) => ExporterChoice::Default,
    };
    if !ignored.is_empty() {
        let using = match choice {
            ExporterChoice::Otlp => "otlp",
            ExporterChoice::Off => "no OTLP export",
            ExporterChoice::Default => "the default (otlp when an endpoint is set)",
        };
        env.ignore(
            var,
            &ignored.join(","),
            "llmtap exports otlp only (or none)",
            using,
        );
    }
    choice
}

/// The resource every span carries: `telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`, and
/// `service.name` from `OTEL_SERVICE_NAME`, else from the attributes, else `default_service_name`.
/// A malformed `OTEL_RESOURCE_ATTRIBUTES` is reported and discarded as a whole (spec).
pub fn resource_from_env(env: &impl EnvSource, default_service_name: &str) -> Resource {
    let env = OtelEnv::new(env);
    build_resource(
        resource_attributes(&env),
        env.get(OTEL_SERVICE_NAME),
        default_service_name,
        None,
    )
}

/// `OTEL_RESOURCE_ATTRIBUTES` parsed, or empty (and reported) when malformed.
pub fn resource_attributes<E: EnvSource + ?Sized>(env: &OtelEnv<'_, E>) -> Vec<(String, String)> {
    let Some(raw) = env.get(OTEL_RESOURCE_ATTRIBUTES) else {
        return Vec::new();
    };
    match parse_resource_attributes(&raw) {
        Ok(attrs) => attrs,
        Err(problem) => {
            env.ignore(
                OTEL_RESOURCE_ATTRIBUTES,
                &raw,
                &problem,
                "no resource attributes from it",
            );
            Vec::new()
        }
    }
}

/// The resource from parsed attributes, the service name rule and an optional schema URL.
pub fn build_resource(
    mut attrs: Vec<(String, String)>,
    service_name: Option<String>,
    default_service_name: &str,
    schema_url: Option<&'static str>,
) -> Resource {
    let from_attrs = attrs
        .iter()
        .rev()
        .find(|(k, _)| k == SERVICE_NAME_KEY)
        .map(|(_, v)| v.clone());
    attrs.retain(|(k, _)| k != SERVICE_NAME_KEY);
    let service_name = service_name
        .or(from_attrs)
        .unwrap_or_else(|| default_service_name.to_owned());
    let mut builder = Resource::builder_empty().with_detector(Box::new(
        opentelemetry_sdk::resource::TelemetryResourceDetector,
    ));
    builder = builder
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .with_service_name(service_name);
    if let Some(url) = schema_url {
        // Last, with no attributes: only sets the URL, so no attribute precedence changes.
        builder = builder.with_schema_url(std::iter::empty(), url);
    }
    builder.build()
}

fn resolve_endpoint<E: EnvSource + ?Sized>(
    env: &OtelEnv<'_, E>,
    signal: Signal,
    explicit: Option<&str>,
    protocol: OtlpProtocol,
) -> Result<String, ExportConfigError> {
    let path = signal.http_path();
    if let Some(raw) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
        let url = validate_url("--endpoint", raw, protocol, env, signal)?;
        let already_full = url.trim_end_matches('/').ends_with(&format!("/{path}"));
        return Ok(if protocol.is_http() && !already_full {
            append_signal_path(&url, path)
        } else {
            url
        });
    }
    if let Some(raw) = env.get(signal.endpoint_var()) {
        let url = validate_url(signal.endpoint_var(), &raw, protocol, env, signal)?;
        return Ok(ensure_root_path(&url));
    }
    let (var, base) = match env.get(OTEL_EXPORTER_OTLP_ENDPOINT) {
        Some(raw) => (OTEL_EXPORTER_OTLP_ENDPOINT, raw),
        None if protocol.is_http() => ("default endpoint", DEFAULT_HTTP_ENDPOINT.to_owned()),
        None => ("default endpoint", DEFAULT_GRPC_ENDPOINT.to_owned()),
    };
    let url = validate_url(var, &base, protocol, env, signal)?;
    Ok(if protocol.is_http() {
        append_signal_path(&url, path)
    } else {
        url
    })
}

/// The base endpoint plus a signal's path (`v1/traces`, `v1/metrics`), as the spec builds them:
/// `http://c:4318/x/` → `http://c:4318/x/v1/traces`; `http://c:4318` → `http://c:4318/v1/traces`.
fn append_signal_path(base: &str, signal_path: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{signal_path}")
    } else {
        format!("{base}/{signal_path}")
    }
}

/// Per-signal endpoints are used as-is, except that an empty path becomes `/`.
fn ensure_root_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    if after_scheme.contains('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

/// Checks scheme and authority; a scheme-less gRPC endpoint gets `http://` when the signal's
/// (else the generic) `_INSECURE` is `true`, else `https://` (spec). Stays an error: no default
/// could stand in for the collector the user named.
fn validate_url<E: EnvSource + ?Sized>(
    var: &str,
    raw: &str,
    protocol: OtlpProtocol,
    env: &OtelEnv<'_, E>,
    signal: Signal,
) -> Result<String, ExportConfigError> {
    let mut url = raw.trim().to_owned();
    if !url.contains("://") && protocol == OtlpProtocol::Grpc {
        let insecure = env
            .first_valid(
                &[signal.insecure_var(), OTEL_EXPORTER_OTLP_INSECURE],
                "expected true or false",
                "false",
                |raw| match raw.to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
            )
            .is_some_and(|(_, v)| v);
        url = format!("{}://{url}", if insecure { "http" } else { "https" });
    }
    // An endpoint may carry `user:password@`: never echoed.
    let shown = redact_userinfo(raw);
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
        ExportConfigError::invalid(var, shown.clone(), format!("not a URL: {e}"))
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(ExportConfigError::invalid(
                var,
                shown,
                "expected an http:// or https:// URL",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ExportConfigError::invalid(var, shown, "URL has no host"));
    }
    Ok(url)
}

/// `text` (an error message from a library) with any secret, URL credentials included,
/// replaced by the built-in redactor's `[REDACTED:<kind>]`.
pub fn redact_secrets(text: &str) -> String {
    llmtap_core::redact::Redactor::new()
        .redact(text)
        .into_owned()
}

/// `raw` with the `user:password@` of its authority replaced by `<redacted>@`, for messages.
/// Works on text that is not a valid URL too (that is when it is shown).
pub fn redact_userinfo(raw: &str) -> String {
    let authority_start = raw.find("://").map_or(0, |i| i + 3);
    let rest = raw.get(authority_start..).unwrap_or_default();
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_len).unwrap_or_default();
    match authority.rfind('@') {
        Some(at) => format!(
            "{}<redacted>{}",
            raw.get(..authority_start).unwrap_or_default(),
            raw.get(authority_start + at..).unwrap_or_default()
        ),
        None => raw.to_owned(),
    }
}

/// The signal's headers, else the generic ones. Entries that are not a valid `key=value`
/// header are reported (without their values, usually API keys) and skipped; the rest is kept.
fn resolve_headers<E: EnvSource + ?Sized>(
    env: &OtelEnv<'_, E>,
    signal: Signal,
) -> Vec<(String, String)> {
    for var in [signal.headers_var(), OTEL_EXPORTER_OTLP_HEADERS] {
        if let Some(raw) = env.get(var) {
            let (headers, bad) = parse_headers(&raw);
            if !bad.is_empty() {
                env.ignore(
                    var,
                    &bad.join(","),
                    "expected key=value pairs with valid header names and values",
                    "the other entries",
                );
            }
            return headers;
        }
    }
    Vec::new()
}

/// `k=v,k2=v2`, percent-decoded: the valid headers, and the invalid entries redacted.
fn parse_headers(raw: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            bad.push(redact_header_entry(entry));
            continue;
        };
        let decoded = percent_decode(k.trim()).zip(percent_decode(v.trim()));
        let Some((key, value)) = decoded else {
            bad.push(redact_header_entry(entry));
            continue;
        };
        if http::HeaderName::from_bytes(key.as_bytes()).is_err()
            || http::HeaderValue::from_str(&value).is_err()
        {
            bad.push(redact_header_entry(entry));
            continue;
        }
        out.push((key, value));
    }
    (out, bad)
}

fn redact_header_entry(entry: &str) -> String {
    match entry.split_once('=') {
        Some((k, _)) => format!("{}=<redacted>", k.trim()),
        None if entry.len() > 8 => "<redacted>".to_owned(),
        None => entry.to_owned(),
    }
}

fn parse_resource_attributes(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!("entry {entry:?} is not key=value"));
        };
        let key = percent_decode(k.trim())
            .ok_or_else(|| format!("entry {entry:?} does not percent-decode to UTF-8"))?;
        if key.is_empty() {
            return Err(format!("entry {entry:?} has an empty key"));
        }
        let value = percent_decode(v.trim())
            .ok_or_else(|| format!("entry {entry:?} does not percent-decode to UTF-8"))?;
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn parse_compression(raw: &str) -> Option<OtlpCompression> {
    match raw.to_ascii_lowercase().as_str() {
        "gzip" => Some(OtlpCompression::Gzip),
        "none" => Some(OtlpCompression::None),
        _ => None,
    }
}

/// `LLMTAP_JSONL_SAMPLED`: yes/no as every llmtap switch reads it, unset = `false`. Strict: an
/// llmtap setting.
pub fn jsonl_follows_sampler(env: &(impl EnvSource + ?Sized)) -> Result<bool, ExportConfigError> {
    settings::JSONL_SAMPLED
        .read_bool(false, env)
        .map_err(|e| ExportConfigError::invalid(LLMTAP_JSONL_SAMPLED, e.value, e.reason))
}

/// `OTEL_TRACES_SAMPLER`: which sampler the tracer provider uses.
pub const OTEL_TRACES_SAMPLER: &str = settings::OTEL_TRACES_SAMPLER.env;
/// `OTEL_TRACES_SAMPLER_ARG`: the ratio for the `traceidratio` samplers.
pub const OTEL_TRACES_SAMPLER_ARG: &str = settings::OTEL_TRACES_SAMPLER_ARG.env;

/// A sampler named by `OTEL_TRACES_SAMPLER`, as the OTel SDK environment spec defines them.
///
/// The default is `parentbased_always_on`: a call whose caller's span was sampled is recorded,
/// one whose caller decided not to sample is not, so a sampled agent tree is never cut in half.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerChoice {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with its ratio in `[0, 1]`
    TraceIdRatio(f64),
    /// `parentbased_always_on` (default)
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with its ratio in `[0, 1]`
    ParentBasedTraceIdRatio(f64),
}

impl SamplerChoice {
    /// The SDK sampler.
    pub fn to_sampler(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }

    /// The spec spelling, with the ratio where there is one (`traceidratio 0.25`).
    pub fn describe(self) -> String {
        match self {
            Self::AlwaysOn => "always_on".to_owned(),
            Self::AlwaysOff => "always_off".to_owned(),
            Self::TraceIdRatio(r) => format!("traceidratio {r}"),
            Self::ParentBasedAlwaysOn => "parentbased_always_on".to_owned(),
            Self::ParentBasedAlwaysOff => "parentbased_always_off".to_owned(),
            Self::ParentBasedTraceIdRatio(r) => format!("parentbased_traceidratio {r}"),
        }
    }
}

/// Reads `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (see [`sampler_from_otel_env`]).
pub fn sampler_from_env(env: &impl EnvSource) -> SamplerChoice {
    sampler_from_otel_env(&OtelEnv::new(env))
}

/// Unknown samplers (and `jaeger_remote`, `xray`, … which llmtap does not implement) are
/// reported and replaced by `parentbased_always_on`; a ratio that is not a number in `[0, 1]`
/// is reported and replaced by 1.0, as is a missing one (spec).
pub fn sampler_from_otel_env<E: EnvSource + ?Sized>(env: &OtelEnv<'_, E>) -> SamplerChoice {
    const DEFAULT: SamplerChoice = SamplerChoice::ParentBasedAlwaysOn;
    let Some(name) = env.get(OTEL_TRACES_SAMPLER) else {
        return DEFAULT;
    };
    let ratio = || {
        env.first_valid(
            &[OTEL_TRACES_SAMPLER_ARG],
            "expected a ratio between 0 and 1",
            "1.0",
            |raw| raw.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)),
        )
        .map_or(1.0, |(_, r)| r)
    };
    match name.to_ascii_lowercase().as_str() {
        "always_on" => SamplerChoice::AlwaysOn,
        "always_off" => SamplerChoice::AlwaysOff,
        "traceidratio" => SamplerChoice::TraceIdRatio(ratio()),
        "parentbased_always_on" => SamplerChoice::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerChoice::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerChoice::ParentBasedTraceIdRatio(ratio()),
        "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
            env.ignore(
                OTEL_TRACES_SAMPLER,
                &name,
                "sampler not supported by llmtap",
                "parentbased_always_on",
            );
            DEFAULT
        }
        _ => {
            env.ignore(
                OTEL_TRACES_SAMPLER,
                &name,
                "unknown sampler (known: always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off, parentbased_traceidratio)",
                "parentbased_always_on",
            );
            DEFAULT
        }
    }
}
#[cfg(test)]
mod sampler_tests {
    use super::*;

    #[test]
    fn sampler_defaults_to_parent_based_always_on() {
        let env: [(&str, &str); 0] = [];
        assert_eq!(sampler_from_env(&env), SamplerChoice::ParentBasedAlwaysOn);
    }

    #[test]
    fn sampler_names_and_ratios() {
        let cases = [
            ("always_off", None, SamplerChoice::AlwaysOff),
            ("ALWAYS_ON", None, SamplerChoice::AlwaysOn),
            (
                "traceidratio",
                Some("0.25"),
                SamplerChoice::TraceIdRatio(0.25),
            ),
            ("traceidratio", None, SamplerChoice::TraceIdRatio(1.0)),
            (
                "parentbased_traceidratio",
                Some("0"),
                SamplerChoice::ParentBasedTraceIdRatio(0.0),
            ),
            (
                "parentbased_always_off",
                None,
                SamplerChoice::ParentBasedAlwaysOff,
            ),
        ];
        for (name, arg, want) in cases {
            let env = [
                (OTEL_TRACES_SAMPLER, name),
                (OTEL_TRACES_SAMPLER_ARG, arg.unwrap_or("")),
            ];
            let reader = OtelEnv::new(&env);
            assert_eq!(sampler_from_otel_env(&reader), want, "{name} {arg:?}");
            assert_eq!(reader.warnings(), [], "{name} {arg:?}");
        }
    }

    #[test]
    fn bad_sampler_values_fall_back_with_one_warning_naming_the_variable() {
        let cases = [
            (
                "sometimes",
                None,
                SamplerChoice::ParentBasedAlwaysOn,
                OTEL_TRACES_SAMPLER,
            ),
            (
                "xray",
                None,
                SamplerChoice::ParentBasedAlwaysOn,
                OTEL_TRACES_SAMPLER,
            ),
            (
                "jaeger_remote",
                Some("endpoint=http://localhost:14250"),
                SamplerChoice::ParentBasedAlwaysOn,
                OTEL_TRACES_SAMPLER,
            ),
            (
                "traceidratio",
                Some("1.5"),
                SamplerChoice::TraceIdRatio(1.0),
                OTEL_TRACES_SAMPLER_ARG,
            ),
            (
                "parentbased_traceidratio",
                Some("half"),
                SamplerChoice::ParentBasedTraceIdRatio(1.0),
                OTEL_TRACES_SAMPLER_ARG,
            ),
        ];
        for (name, arg, want, var) in cases {
            let env = [
                (OTEL_TRACES_SAMPLER, name),
                (OTEL_TRACES_SAMPLER_ARG, arg.unwrap_or("")),
            ];
            let reader = OtelEnv::new(&env);
            assert_eq!(sampler_from_otel_env(&reader), want, "{name} {arg:?}");
            // Read twice: still one warning.
            let _ = sampler_from_otel_env(&reader);
            let warnings = reader.warnings();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert_eq!(warnings[0].var, var);
            assert!(warnings[0].message.starts_with(var), "{warnings:?}");
        }
    }
}

/// `OTEL_METRICS_EXPORTER`: `none` turns the gen_ai metrics off.
pub const OTEL_METRICS_EXPORTER: &str = settings::OTEL_METRICS_EXPORTER.env;
/// `OTEL_METRIC_EXPORT_INTERVAL`: milliseconds between metric exports.
pub const OTEL_METRIC_EXPORT_INTERVAL: &str = settings::OTEL_METRIC_EXPORT_INTERVAL.env;
/// The spec's default export interval.
const DEFAULT_METRIC_EXPORT_INTERVAL_MS: u64 = 60_000;

/// Where and how often the gen_ai metrics go.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// The metrics' own OTLP settings (`OTEL_EXPORTER_OTLP_METRICS_*`, else the generic ones).
    pub otlp: OtlpConfig,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub interval: Duration,
}

impl MetricsConfig {
    /// See [`from_otel_env`](Self::from_otel_env).
    pub fn from_env(
        env: &impl EnvSource,
        traces_on: bool,
    ) -> Result<Option<Self>, ExportConfigError> {
        Self::from_otel_env(&OtelEnv::new(env), traces_on)
    }

    /// Metrics are exported alongside OTLP trace forwarding (`traces_on`) unless
    /// `OTEL_METRICS_EXPORTER` leaves `otlp` out. The endpoint is
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as-is, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `v1/metrics` appended for HTTP, else — only when `OTEL_METRICS_EXPORTER` names `otlp` —
    /// the spec default; a traces-only endpoint alone does not turn metrics on. Protocol,
    /// headers, timeout and compression come from `OTEL_EXPORTER_OTLP_METRICS_*`, else the
    /// generic variables, never from `OTEL_EXPORTER_OTLP_TRACES_*`.
    pub fn from_otel_env<E: EnvSource + ?Sized>(
        env: &OtelEnv<'_, E>,
        traces_on: bool,
    ) -> Result<Option<Self>, ExportConfigError> {
        if !traces_on || sdk_disabled(env) {
            return Ok(None);
        }
        let has_endpoint = env.get(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT).is_some()
            || env.get(OTEL_EXPORTER_OTLP_ENDPOINT).is_some();
        let on = match exporter_choice(env, OTEL_METRICS_EXPORTER) {
            ExporterChoice::Off => false,
            ExporterChoice::Otlp => true,
            ExporterChoice::Default => has_endpoint,
        };
        if !on {
            return Ok(None);
        }
        let otlp = OtlpConfig::resolve_signal(env, Signal::Metrics, None)?;
        let interval = env
            .first_valid(
                &[OTEL_METRIC_EXPORT_INTERVAL],
                "expected milliseconds greater than 0",
                "60000 ms",
                |raw| raw.parse::<u64>().ok().filter(|&ms| ms > 0),
            )
            .map_or(
                Duration::from_millis(DEFAULT_METRIC_EXPORT_INTERVAL_MS),
                |(_, ms)| Duration::from_millis(ms),
            );
        Ok(Some(Self { otlp, interval }))
    }
}
#[cfg(test)]
mod metrics_config_tests {
    use super::*;

    fn metrics(env: &impl EnvSource) -> Option<MetricsConfig> {
        let reader = OtelEnv::new(env);
        let traces_on = OtlpConfig::from_otel_env(&reader).ok().flatten().is_some();
        MetricsConfig::from_otel_env(&reader, traces_on)
            .ok()
            .flatten()
    }

    #[test]
    fn metrics_follow_the_base_endpoint() {
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318/"),
            (OTEL_METRIC_EXPORT_INTERVAL, "250"),
        ];
        let cfg = metrics(&env).map(|c| (c.otlp.endpoint, c.interval));
        assert_eq!(
            cfg,
            Some((
                "http://c:4318/v1/metrics".to_owned(),
                Duration::from_millis(250)
            ))
        );
    }

    #[test]
    fn metrics_off_without_a_base_endpoint_or_when_none() {
        let env = [(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            "http://c:4318/v1/traces",
        )];
        assert!(metrics(&env).is_none());
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_METRICS_EXPORTER, "none"),
        ];
        assert!(metrics(&env).is_none());
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_METRICS_EXPORTER, "prometheus"),
        ];
        assert!(metrics(&env).is_none());
        // An unknown name is reported and ignored: the default (on with an endpoint) applies.
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_METRICS_EXPORTER, "statsd"),
        ];
        let reader = OtelEnv::new(&env);
        assert!(
            MetricsConfig::from_otel_env(&reader, true)
                .ok()
                .flatten()
                .is_some()
        );
        assert_eq!(
            reader
                .warnings()
                .iter()
                .map(|w| w.var.as_str())
                .collect::<Vec<_>>(),
            [OTEL_METRICS_EXPORTER]
        );
    }

    #[test]
    fn metrics_endpoint_is_used_as_is() {
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:9000/custom"),
        ];
        let cfg = metrics(&env).map(|c| c.otlp.endpoint);
        assert_eq!(cfg.as_deref(), Some("http://m:9000/custom"));
    }

    #[test]
    fn metrics_never_read_the_traces_settings() {
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "grpc"),
            (
                OTEL_EXPORTER_OTLP_TRACES_HEADERS,
                "authorization=traces-only",
            ),
            (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, "1234"),
            (OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, "gzip"),
        ];
        let cfg = metrics(&env).map(|c| c.otlp);
        assert_eq!(
            cfg.map(|c| (c.protocol, c.headers, c.timeout, c.compression, c.endpoint)),
            Some((
                OtlpProtocol::HttpProtobuf,
                Vec::new(),
                Duration::from_millis(DEFAULT_OTLP_TIMEOUT_MS),
                OtlpCompression::None,
                "http://c:4318/v1/metrics".to_owned()
            ))
        );
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "http/json"),
            (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "grpc"),
            (OTEL_EXPORTER_OTLP_HEADERS, "x-generic=1"),
            (OTEL_EXPORTER_OTLP_METRICS_HEADERS, "x-metrics=2"),
            (OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, "0"),
        ];
        let cfg = metrics(&env).map(|c| c.otlp);
        assert_eq!(
            cfg.map(|c| (c.protocol, c.headers, c.timeout, c.endpoint)),
            Some((
                OtlpProtocol::Grpc,
                vec![("x-metrics".to_owned(), "2".to_owned())],
                NO_LIMIT_TIMEOUT,
                "http://c:4317".to_owned()
            ))
        );
    }

    #[test]
    fn explicit_otlp_exporters_use_the_spec_default_endpoint() {
        let env = [
            (OTEL_TRACES_EXPORTER, "otlp"),
            (OTEL_METRICS_EXPORTER, "otlp"),
        ];
        let reader = OtelEnv::new(&env);
        let traces = OtlpConfig::from_otel_env(&reader).ok().flatten();
        assert_eq!(
            traces.as_ref().map(|t| t.endpoint.as_str()),
            Some("http://localhost:4318/v1/traces")
        );
        let metrics = MetricsConfig::from_otel_env(&reader, traces.is_some())
            .ok()
            .flatten();
        assert_eq!(
            metrics.map(|m| m.otlp.endpoint),
            Some("http://localhost:4318/v1/metrics".to_owned())
        );
        let env = [
            (OTEL_TRACES_EXPORTER, "otlp"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "grpc"),
        ];
        let traces = OtlpConfig::from_env(&env).ok().flatten();
        assert_eq!(
            traces.map(|t| t.endpoint),
            Some("http://localhost:4317".to_owned())
        );
        // Unset exporter and no endpoint: forwarding stays off (nothing to send to on purpose).
        let env: [(&str, &str); 0] = [];
        assert!(matches!(OtlpConfig::from_env(&env), Ok(None)));
    }
}

#[cfg(test)]
mod endpoint_secret_tests {
    use super::*;

    const PASSWORD: &str = "s3cr3t-Hunter2-pw";

    #[test]
    fn no_endpoint_error_echoes_a_password() {
        let bad = [
            format!("ftp://collector:{PASSWORD}@otel.example.com:4318"),
            format!("http://collector:{PASSWORD}@/v1/traces"),
            format!("http://collector:{PASSWORD}@bad host:4318/x"),
            format!("https://:{PASSWORD}@[::1"),
            format!("collector:{PASSWORD}@otel.example.com:4317 extra"),
        ];
        for var in [
            OTEL_EXPORTER_OTLP_ENDPOINT,
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        ] {
            for raw in &bad {
                for protocol in ["grpc", "http/protobuf"] {
                    let env = [(var, raw.as_str()), (OTEL_EXPORTER_OTLP_PROTOCOL, protocol)];
                    let err = match OtlpConfig::from_env(&env) {
                        Err(e) => e.to_string(),
                        Ok(cfg) => panic!("{raw} ({protocol}) was accepted: {cfg:?}"),
                    };
                    assert!(!err.contains(PASSWORD), "{err}");
                    assert!(err.contains(var), "names the variable: {err}");
                    assert!(err.contains("<redacted>"), "{err}");
                }
            }
        }
        let overrides = OtlpOverrides {
            endpoint: Some(bad[0].clone()),
            protocol: None,
        };
        let env: [(&str, &str); 0] = [];
        let err = OtlpConfig::resolve(&env, &overrides)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--endpoint") && !err.contains(PASSWORD),
            "{err}"
        );
    }

    #[test]
    fn userinfo_is_redacted_wherever_it_sits() {
        assert_eq!(
            redact_userinfo("http://u:p@host:4318/v1/traces?a=b@c"),
            "http://<redacted>@host:4318/v1/traces?a=b@c"
        );
        assert_eq!(redact_userinfo("u:p@w@host:4317"), "<redacted>@host:4317");
        assert_eq!(
            redact_userinfo("http://host:4318/path@x"),
            "http://host:4318/path@x"
        );
        assert_eq!(redact_userinfo(""), "");
    }
}
