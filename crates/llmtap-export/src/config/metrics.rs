//! Where and how often the gen_ai metrics go (`OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL`).

use std::time::Duration;

use llmtap_core::env::EnvSource;

use super::*;
use crate::error::ExportConfigError;

/// `OTEL_METRICS_EXPORTER`: `none` turns the gen_ai metrics off.
pub(crate) const OTEL_METRICS_EXPORTER: &str = llmtap_core::settings::OTEL_METRICS_EXPORTER.env;
/// `OTEL_METRIC_EXPORT_INTERVAL`: milliseconds between metric exports.
pub(crate) const OTEL_METRIC_EXPORT_INTERVAL: &str =
    llmtap_core::settings::OTEL_METRIC_EXPORT_INTERVAL.env;
/// The spec's default export interval.
const DEFAULT_METRIC_EXPORT_INTERVAL_MS: u64 = 60_000;

/// Where and how often the gen_ai metrics go.
#[derive(Debug, Clone)]
pub(crate) struct MetricsConfig {
    /// The metrics' own OTLP settings (`OTEL_EXPORTER_OTLP_METRICS_*`, else the generic ones).
    pub otlp: OtlpConfig,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub interval: Duration,
}

impl MetricsConfig {
    /// Metrics are exported alongside OTLP trace forwarding (`traces_on`) unless
    /// `OTEL_METRICS_EXPORTER` leaves `otlp` out. The endpoint is
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as-is, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `v1/metrics` appended for HTTP, else — only when `OTEL_METRICS_EXPORTER` names `otlp` —
    /// the spec default; a traces-only endpoint alone does not turn metrics on. Protocol,
    /// headers, timeout and compression come from `OTEL_EXPORTER_OTLP_METRICS_*`, else the
    /// generic variables, never from `OTEL_EXPORTER_OTLP_TRACES_*`.
    pub(crate) fn from_otel_env<E: EnvSource + ?Sized>(
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
