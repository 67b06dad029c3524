//! Whether exporting is on: `OTEL_SDK_DISABLED` and the `OTEL_{TRACES,METRICS}_EXPORTER` lists.

use llmtap_core::env::EnvSource;

use super::*;

/// `OTEL_SDK_DISABLED`: only `true` (any case) is true, as the spec says; another value that
/// is not `false` is reported and read as `false`.
pub(crate) fn sdk_disabled<E: EnvSource + ?Sized>(env: &OtelEnv<'_, E>) -> bool {
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
pub(crate) enum ExporterChoice {
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
pub(crate) fn exporter_choice<E: EnvSource + ?Sized>(
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
