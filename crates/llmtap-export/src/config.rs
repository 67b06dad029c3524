//! OTLP and SDK configuration from the standard `OTEL_*` variables, read through
//! [`EnvSource`] so tests pass a map instead of mutating the process environment.
//!
//! Rules (spec `sdk-environment-variables.md`, `protocol/exporter.md`):
//! - `OTEL_EXPORTER_OTLP_TRACES_*` overrides `OTEL_EXPORTER_OTLP_*`, variable by variable.
//! - the generic endpoint is a base URL: HTTP protocols append `v1/traces`; the per-signal
//!   endpoint is used as-is (an empty path becomes `/`).
//! - forwarding is on only when an endpoint is set, `OTEL_TRACES_EXPORTER` does not say `none`
//!   and `OTEL_SDK_DISABLED` is not `true`.
//! - every malformed value is an error naming the variable (we are loud where the Rust SDK
//!   silently falls back), header values are redacted in messages because they carry API keys.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use llmtap_core::env::EnvSource;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::error::ExportConfigError;

/// `OTEL_SDK_DISABLED`: `true` turns off every sink.
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `OTEL_SERVICE_NAME`: wins over `service.name` in `OTEL_RESOURCE_ATTRIBUTES`.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`: `k=v,k2=v2`, values percent-decoded.
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_TRACES_EXPORTER`: comma list; `none` disables OTLP forwarding.
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
/// Generic base endpoint.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Traces endpoint, used verbatim.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Generic protocol.
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// Traces protocol.
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// Generic headers.
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// Traces headers.
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// Generic timeout (ms).
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// Traces timeout (ms).
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// Generic compression.
pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
/// Traces compression.
pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
/// Generic gRPC "insecure" (only for scheme-less gRPC endpoints).
pub const OTEL_EXPORTER_OTLP_INSECURE: &str = "OTEL_EXPORTER_OTLP_INSECURE";
/// Traces gRPC "insecure".
pub const OTEL_EXPORTER_OTLP_TRACES_INSECURE: &str = "OTEL_EXPORTER_OTLP_TRACES_INSECURE";
/// Batch processor schedule delay (ms).
pub const OTEL_BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// Batch processor queue size.
pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// Batch processor max batch size.
pub const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";

/// Spec default for HTTP protocols.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Spec default for gRPC.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Spec default per-batch timeout.
pub const DEFAULT_OTLP_TIMEOUT_MS: u64 = 10_000;
/// Spec default batch schedule delay.
pub const DEFAULT_BSP_SCHEDULE_DELAY_MS: u64 = 5_000;
/// Spec default queue size.
pub const DEFAULT_BSP_MAX_QUEUE_SIZE: usize = 2_048;
/// Spec default batch size.
pub const DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE: usize = 512;

const TRACES_PATH: &str = "v1/traces";
/// The OTLP/HTTP path for metrics, appended to the base endpoint.
const METRICS_PATH: &str = "v1/metrics";
const SERVICE_NAME_KEY: &str = "service.name";

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

    /// `OTEL_BSP_*` over `base`; malformed values are errors.
    pub fn from_env(env: &impl EnvSource, base: Self) -> Result<Self, ExportConfigError> {
        let mut out = base;
        if let Some(ms) = parse_u64(env, OTEL_BSP_SCHEDULE_DELAY)? {
            out.scheduled_delay = Duration::from_millis(ms);
        }
        if let Some(n) = parse_positive_usize(env, OTEL_BSP_MAX_QUEUE_SIZE)? {
            out.max_queue_size = n;
        }
        if let Some(n) = parse_positive_usize(env, OTEL_BSP_MAX_EXPORT_BATCH_SIZE)? {
            out.max_export_batch_size = n;
        }
        out.max_export_batch_size = out.max_export_batch_size.min(out.max_queue_size);
        Ok(out)
    }
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

impl OtlpConfig {
    /// Forwarding configuration per the spec, or `None` when forwarding is off (no endpoint
    /// set, `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`).
    pub fn from_env(env: &impl EnvSource) -> Result<Option<Self>, ExportConfigError> {
        if sdk_disabled(env)? || !traces_exporter_wants_otlp(env)? {
            return Ok(None);
        }
        let has_endpoint = env.non_empty(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some()
            || env.non_empty(OTEL_EXPORTER_OTLP_ENDPOINT).is_some();
        if !has_endpoint {
            return Ok(None);
        }
        Self::resolve(env, &OtlpOverrides::default()).map(Some)
    }

    /// Configuration from overrides, then env, then spec defaults (`localhost:4318` / `4317`);
    /// used by `llmtap push`, where sending is the explicit intent.
    pub fn resolve(
        env: &impl EnvSource,
        overrides: &OtlpOverrides,
    ) -> Result<Self, ExportConfigError> {
        let protocol = match overrides.protocol {
            Some(p) => p,
            None => resolve_protocol(env)?,
        };
        let endpoint = resolve_endpoint(env, overrides.endpoint.as_deref(), protocol)?;
        let headers = match first_set(
            env,
            OTEL_EXPORTER_OTLP_TRACES_HEADERS,
            OTEL_EXPORTER_OTLP_HEADERS,
        ) {
            Some((var, raw)) => parse_headers(var, &raw)?,
            None => Vec::new(),
        };
        let timeout = match first_set(
            env,
            OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
            OTEL_EXPORTER_OTLP_TIMEOUT,
        ) {
            Some((var, raw)) => Duration::from_millis(parse_timeout_ms(var, &raw)?),
            None => Duration::from_millis(DEFAULT_OTLP_TIMEOUT_MS),
        };
        let compression = match first_set(
            env,
            OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
            OTEL_EXPORTER_OTLP_COMPRESSION,
        ) {
            Some((var, raw)) => parse_compression(var, &raw)?,
            None => OtlpCompression::None,
        };
        Ok(Self {
            endpoint,
            protocol,
            headers,
            timeout,
            compression,
            retry: true,
            batch: BatchSettings::from_env(env, BatchSettings::otlp_default())?,
        })
    }
}

/// `OTEL_SDK_DISABLED`: `true`/`false` (case-insensitive); anything else is an error rather than
/// the spec's silent `false`, because a kill switch that was mistyped must not be ignored.
pub fn sdk_disabled(env: &impl EnvSource) -> Result<bool, ExportConfigError> {
    match env.non_empty(OTEL_SDK_DISABLED) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ExportConfigError::invalid(
            OTEL_SDK_DISABLED,
            v,
            "expected true or false",
        )),
    }
}

/// `OTEL_TRACES_EXPORTER`: unset/empty means `otlp`. A list containing `otlp` enables
/// forwarding; `none` (alone or with other known values) disables it. Known exporters llmtap
/// does not implement (`console`, `zipkin`, …) are ignored with a warning; unknown names are
/// errors.
pub fn traces_exporter_wants_otlp(env: &impl EnvSource) -> Result<bool, ExportConfigError> {
    let Some(raw) = env.non_empty(OTEL_TRACES_EXPORTER) else {
        return Ok(true);
    };
    let mut wants = false;
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "otlp" => wants = true,
            "none" => {}
            "console" | "zipkin" | "jaeger" | "logging" | "otlp/stdout" => {
                tracing::warn!(
                    variable = OTEL_TRACES_EXPORTER,
                    exporter = name,
                    "trace exporter not supported by llmtap; ignored"
                );
            }
            _ => {
                return Err(ExportConfigError::invalid(
                    OTEL_TRACES_EXPORTER,
                    raw.clone(),
                    format!("unknown exporter {name:?}; expected otlp or none"),
                ));
            }
        }
    }
    Ok(wants)
}

/// The resource every span carries: `telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`, and
/// `service.name` from `OTEL_SERVICE_NAME`, else from the attributes, else `default_service_name`.
pub fn resource_from_env(
    env: &impl EnvSource,
    default_service_name: &str,
) -> Result<Resource, ExportConfigError> {
    let mut attrs = match env.non_empty(OTEL_RESOURCE_ATTRIBUTES) {
        Some(raw) => parse_resource_attributes(&raw)?,
        None => Vec::new(),
    };
    let from_attrs = attrs
        .iter()
        .rev()
        .find(|(k, _)| k == SERVICE_NAME_KEY)
        .map(|(_, v)| v.clone());
    attrs.retain(|(k, _)| k != SERVICE_NAME_KEY);
    let service_name = env
        .non_empty(OTEL_SERVICE_NAME)
        .or(from_attrs)
        .unwrap_or_else(|| default_service_name.to_owned());
    Ok(Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .with_service_name(service_name)
        .build())
}

fn resolve_protocol(env: &impl EnvSource) -> Result<OtlpProtocol, ExportConfigError> {
    match first_set(
        env,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
        OTEL_EXPORTER_OTLP_PROTOCOL,
    ) {
        Some((var, raw)) => raw
            .parse()
            .map_err(|e: UnknownProtocol| ExportConfigError::invalid(var, raw, e.to_string())),
        None => Ok(OtlpProtocol::default()),
    }
}

fn resolve_endpoint(
    env: &impl EnvSource,
    explicit: Option<&str>,
    protocol: OtlpProtocol,
) -> Result<String, ExportConfigError> {
    if let Some(raw) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
        let url = validate_url("--endpoint", raw, protocol, env)?;
        let already_full = url.trim_end_matches('/').ends_with("/v1/traces");
        return Ok(if protocol.is_http() && !already_full {
            append_traces_path(&url)
        } else {
            url
        });
    }
    if let Some(raw) = env.non_empty(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
        let url = validate_url(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, &raw, protocol, env)?;
        return Ok(ensure_root_path(&url));
    }
    let (var, base) = match env.non_empty(OTEL_EXPORTER_OTLP_ENDPOINT) {
        Some(raw) => (OTEL_EXPORTER_OTLP_ENDPOINT, raw),
        None if protocol.is_http() => ("default endpoint", DEFAULT_HTTP_ENDPOINT.to_owned()),
        None => ("default endpoint", DEFAULT_GRPC_ENDPOINT.to_owned()),
    };
    let url = validate_url(var, &base, protocol, env)?;
    Ok(if protocol.is_http() {
        append_traces_path(&url)
    } else {
        url
    })
}

/// `http://c:4318/x/` → `http://c:4318/x/v1/traces`; `http://c:4318` → `http://c:4318/v1/traces`.
fn append_traces_path(base: &str) -> String {
    append_signal_path(base, TRACES_PATH)
}

/// The base endpoint plus a signal's path (`v1/traces`, `v1/metrics`), as the spec builds them.
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

/// Checks scheme and authority; a scheme-less gRPC endpoint gets `http://` when
/// `OTEL_EXPORTER_OTLP[_TRACES]_INSECURE=true`, else `https://` (spec).
fn validate_url(
    var: &str,
    raw: &str,
    protocol: OtlpProtocol,
    env: &impl EnvSource,
) -> Result<String, ExportConfigError> {
    let mut url = raw.trim().to_owned();
    if !url.contains("://") && protocol == OtlpProtocol::Grpc {
        let insecure = first_set(
            env,
            OTEL_EXPORTER_OTLP_TRACES_INSECURE,
            OTEL_EXPORTER_OTLP_INSECURE,
        )
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
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

/// `k=v,k2=v2`, percent-decoded. Values are redacted in errors (they are usually API keys).
fn parse_headers(var: &str, raw: &str) -> Result<Vec<(String, String)>, ExportConfigError> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(ExportConfigError::invalid(
                var,
                redact_header_entry(entry),
                "expected key=value pairs separated by commas",
            ));
        };
        let key = percent_decode(var, k.trim(), "<redacted>")?;
        let value = percent_decode(var, v.trim(), &format!("{key}=<redacted>"))?;
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(ExportConfigError::invalid(
                var,
                format!("{key}=<redacted>"),
                "not a valid header name",
            ));
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(ExportConfigError::invalid(
                var,
                format!("{key}=<redacted>"),
                "header value contains characters not allowed in HTTP headers",
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn redact_header_entry(entry: &str) -> String {
    match entry.split_once('=') {
        Some((k, _)) => format!("{k}=<redacted>"),
        None if entry.len() > 8 => "<redacted>".to_owned(),
        None => entry.to_owned(),
    }
}

fn parse_resource_attributes(raw: &str) -> Result<Vec<(String, String)>, ExportConfigError> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(ExportConfigError::invalid(
                OTEL_RESOURCE_ATTRIBUTES,
                raw,
                format!("entry {entry:?} is not key=value"),
            ));
        };
        let key = percent_decode(OTEL_RESOURCE_ATTRIBUTES, k.trim(), raw)?;
        if key.is_empty() {
            return Err(ExportConfigError::invalid(
                OTEL_RESOURCE_ATTRIBUTES,
                raw,
                format!("entry {entry:?} has an empty key"),
            ));
        }
        let value = percent_decode(OTEL_RESOURCE_ATTRIBUTES, v.trim(), raw)?;
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(var: &str, s: &str, shown: &str) -> Result<String, ExportConfigError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ExportConfigError::invalid(var, shown, "percent-decoding gives invalid UTF-8"))
}

fn parse_timeout_ms(var: &str, raw: &str) -> Result<u64, ExportConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(0) => Err(ExportConfigError::invalid(
            var,
            raw,
            "timeout must be at least 1 millisecond",
        )),
        Ok(ms) => Ok(ms),
        Err(_) => Err(ExportConfigError::invalid(
            var,
            raw,
            "expected a whole number of milliseconds",
        )),
    }
}

fn parse_compression(var: &str, raw: &str) -> Result<OtlpCompression, ExportConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "gzip" => Ok(OtlpCompression::Gzip),
        "none" => Ok(OtlpCompression::None),
        _ => Err(ExportConfigError::invalid(
            var,
            raw,
            "expected gzip or none",
        )),
    }
}

fn parse_u64(env: &impl EnvSource, var: &str) -> Result<Option<u64>, ExportConfigError> {
    env.non_empty(var)
        .map(|raw| {
            raw.parse::<u64>().map_err(|_| {
                ExportConfigError::invalid(var, raw.clone(), "expected a whole number")
            })
        })
        .transpose()
}

fn parse_positive_usize(
    env: &impl EnvSource,
    var: &str,
) -> Result<Option<usize>, ExportConfigError> {
    env.non_empty(var)
        .map(|raw| match raw.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ExportConfigError::invalid(
                var,
                raw.clone(),
                "expected a whole number greater than 0",
            )),
        })
        .transpose()
}

/// The first of the per-signal / generic pair that is set (non-empty), with its name.
fn first_set(
    env: &impl EnvSource,
    signal: &'static str,
    generic: &'static str,
) -> Option<(&'static str, String)> {
    env.non_empty(signal)
        .map(|v| (signal, v))
        .or_else(|| env.non_empty(generic).map(|v| (generic, v)))
}

/// `OTEL_TRACES_SAMPLER`: which sampler the tracer provider uses.
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`: the ratio for the `traceidratio` samplers.
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

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
}

/// Reads `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`. Unknown samplers and ratios outside
/// `[0, 1]` are errors naming the variable; a missing ratio means 1.0, as the spec says.
pub fn sampler_from_env(env: &impl EnvSource) -> Result<SamplerChoice, ExportConfigError> {
    let Some(name) = env.non_empty(OTEL_TRACES_SAMPLER) else {
        return Ok(SamplerChoice::ParentBasedAlwaysOn);
    };
    let ratio = || -> Result<f64, ExportConfigError> {
        match env.non_empty(OTEL_TRACES_SAMPLER_ARG) {
            None => Ok(1.0),
            Some(raw) => match raw.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ExportConfigError::invalid(
                    OTEL_TRACES_SAMPLER_ARG,
                    raw,
                    "expected a ratio between 0 and 1",
                )),
            },
        }
    };
    match name.to_ascii_lowercase().as_str() {
        "always_on" => Ok(SamplerChoice::AlwaysOn),
        "always_off" => Ok(SamplerChoice::AlwaysOff),
        "traceidratio" => Ok(SamplerChoice::TraceIdRatio(ratio()?)),
        "parentbased_always_on" => Ok(SamplerChoice::ParentBasedAlwaysOn),
        "parentbased_always_off" => Ok(SamplerChoice::ParentBasedAlwaysOff),
        "parentbased_traceidratio" => Ok(SamplerChoice::ParentBasedTraceIdRatio(ratio()?)),
        _ => Err(ExportConfigError::invalid(
            OTEL_TRACES_SAMPLER,
            name,
            "expected always_on, always_off, traceidratio, parentbased_always_on, \
             parentbased_always_off or parentbased_traceidratio",
        )),
    }
}

#[cfg(test)]
mod sampler_tests {
    use super::*;

    #[test]
    fn sampler_defaults_to_parent_based_always_on() {
        let env: [(&str, &str); 0] = [];
        assert_eq!(
            sampler_from_env(&env).ok(),
            Some(SamplerChoice::ParentBasedAlwaysOn)
        );
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
            assert_eq!(sampler_from_env(&env).ok(), Some(want), "{name} {arg:?}");
        }
    }

    #[test]
    fn bad_sampler_values_name_the_variable() {
        let env = [(OTEL_TRACES_SAMPLER, "sometimes")];
        let err = sampler_from_env(&env).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains(OTEL_TRACES_SAMPLER)));
        let env = [
            (OTEL_TRACES_SAMPLER, "traceidratio"),
            (OTEL_TRACES_SAMPLER_ARG, "1.5"),
        ];
        let err = sampler_from_env(&env).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains(OTEL_TRACES_SAMPLER_ARG)));
    }
}

/// `OTEL_METRICS_EXPORTER`: `none` turns the gen_ai metrics off.
pub const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: full URL for metrics, used as-is.
pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// `OTEL_METRIC_EXPORT_INTERVAL`: milliseconds between metric exports.
pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
/// The spec's default export interval.
const DEFAULT_METRIC_EXPORT_INTERVAL_MS: u64 = 60_000;

/// Where and how often the gen_ai metrics go.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// The traces' OTLP settings (protocol, headers, timeout, compression) with the metrics
    /// endpoint.
    pub otlp: OtlpConfig,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub interval: Duration,
}

impl MetricsConfig {
    /// Metrics are exported when OTLP forwarding is on (the traces' settings) and
    /// `OTEL_METRICS_EXPORTER` does not say `none`. The endpoint is
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as-is, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `v1/metrics` appended for HTTP; a traces-only endpoint does not turn metrics on.
    pub fn from_env(
        env: &impl EnvSource,
        traces: Option<&OtlpConfig>,
    ) -> Result<Option<Self>, ExportConfigError> {
        let Some(traces) = traces else {
            return Ok(None);
        };
        if let Some(raw) = env.non_empty(OTEL_METRICS_EXPORTER) {
            let names: Vec<String> = raw
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect();
            if let Some(bad) = names
                .iter()
                .find(|n| !matches!(n.as_str(), "otlp" | "none" | "console" | "prometheus"))
            {
                return Err(ExportConfigError::invalid(
                    OTEL_METRICS_EXPORTER,
                    raw.clone(),
                    format!("unknown exporter {bad:?}; expected otlp or none"),
                ));
            }
            if !names.iter().any(|n| n == "otlp") {
                return Ok(None);
            }
        }
        let protocol = traces.protocol;
        let endpoint = if let Some(raw) = env.non_empty(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) {
            ensure_root_path(&validate_url(
                OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
                &raw,
                protocol,
                env,
            )?)
        } else if let Some(raw) = env.non_empty(OTEL_EXPORTER_OTLP_ENDPOINT) {
            let url = validate_url(OTEL_EXPORTER_OTLP_ENDPOINT, &raw, protocol, env)?;
            if protocol.is_http() {
                append_signal_path(&url, METRICS_PATH)
            } else {
                url
            }
        } else {
            return Ok(None);
        };
        let interval = match parse_u64(env, OTEL_METRIC_EXPORT_INTERVAL)? {
            Some(0) => {
                return Err(ExportConfigError::invalid(
                    OTEL_METRIC_EXPORT_INTERVAL,
                    "0",
                    "expected milliseconds greater than 0",
                ));
            }
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_millis(DEFAULT_METRIC_EXPORT_INTERVAL_MS),
        };
        let mut otlp = traces.clone();
        otlp.endpoint = endpoint;
        Ok(Some(Self { otlp, interval }))
    }
}

#[cfg(test)]
mod metrics_config_tests {
    use super::*;

    fn traces(env: &impl EnvSource) -> Option<OtlpConfig> {
        OtlpConfig::from_env(env).ok().flatten()
    }

    #[test]
    fn metrics_follow_the_base_endpoint() {
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318/"),
            (OTEL_METRIC_EXPORT_INTERVAL, "250"),
        ];
        let cfg = MetricsConfig::from_env(&env, traces(&env).as_ref())
            .ok()
            .flatten()
            .map(|c| (c.otlp.endpoint, c.interval));
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
        assert!(matches!(
            MetricsConfig::from_env(&env, traces(&env).as_ref()),
            Ok(None)
        ));
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_METRICS_EXPORTER, "none"),
        ];
        assert!(matches!(
            MetricsConfig::from_env(&env, traces(&env).as_ref()),
            Ok(None)
        ));
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_METRICS_EXPORTER, "statsd"),
        ];
        let err = MetricsConfig::from_env(&env, traces(&env).as_ref())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains(OTEL_METRICS_EXPORTER)));
    }

    #[test]
    fn metrics_endpoint_is_used_as_is() {
        let env = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:9000/custom"),
        ];
        let cfg = MetricsConfig::from_env(&env, traces(&env).as_ref())
            .ok()
            .flatten()
            .map(|c| c.otlp.endpoint);
        assert_eq!(cfg.as_deref(), Some("http://m:9000/custom"));
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
