//! The sampler (`OTEL_TRACES_SAMPLER`) and whether the JSONL file follows it (`LLMTAP_JSONL_SAMPLED`).

use llmtap_core::env::EnvSource;

use super::*;
use crate::error::ExportConfigError;

/// `LLMTAP_JSONL_SAMPLED`: `true`/`false` (any case), unset = `false`. Strict: an llmtap setting.
pub(crate) fn jsonl_follows_sampler(
    env: &(impl EnvSource + ?Sized),
) -> Result<bool, ExportConfigError> {
    llmtap_core::settings::JSONL_SAMPLED
        .read_bool(false, env)
        .map_err(|e| ExportConfigError::invalid(LLMTAP_JSONL_SAMPLED, e.value, e.reason))
}

/// `OTEL_TRACES_SAMPLER`: which sampler the tracer provider uses.
pub(crate) const OTEL_TRACES_SAMPLER: &str = llmtap_core::settings::OTEL_TRACES_SAMPLER.env;
/// `OTEL_TRACES_SAMPLER_ARG`: the ratio for the `traceidratio` samplers.
pub(crate) const OTEL_TRACES_SAMPLER_ARG: &str = llmtap_core::settings::OTEL_TRACES_SAMPLER_ARG.env;

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

/// Unknown samplers (and `jaeger_remote`, `xray`, … which llmtap does not implement) are
/// reported and replaced by `parentbased_always_on`; a ratio that is not a number in `[0, 1]`
/// is reported and replaced by 1.0, as is a missing one (spec).
pub(crate) fn sampler_from_otel_env<E: EnvSource + ?Sized>(env: &OtelEnv<'_, E>) -> SamplerChoice {
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
        assert_eq!(
            sampler_from_otel_env(&OtelEnv::new(&env)),
            SamplerChoice::ParentBasedAlwaysOn
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
