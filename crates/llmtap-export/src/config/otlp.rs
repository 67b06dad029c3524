//! The OTLP exporter settings of one signal: endpoint, protocol, headers, timeout, compression.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use llmtap_core::env::EnvSource;

use super::*;
use crate::error::ExportConfigError;

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

fn parse_compression(raw: &str) -> Option<OtlpCompression> {
    match raw.to_ascii_lowercase().as_str() {
        "gzip" => Some(OtlpCompression::Gzip),
        "none" => Some(OtlpCompression::None),
        _ => None,
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
