//! What a built [`crate::Pipeline`] actually does — which sinks are on, where they write, the
//! sampler — for start-up banners that must not claim a file or a collector that is not there.
//! Built from the settings the pipeline used, after `OTEL_SDK_DISABLED` and every override, so
//! it cannot disagree with them. Endpoint credentials are masked.

use std::fmt;
use std::path::PathBuf;

use llmtap_core::userinfo::mask_userinfo;

use crate::config::{OtlpProtocol, SamplerChoice};

/// The pipeline's sinks and sampler, as built.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PipelineSummary {
    /// `OTEL_SDK_DISABLED=true`: every sink is off whatever else was set.
    pub sdk_disabled: bool,
    /// The JSONL file sink, when on.
    pub jsonl: Option<JsonlSummary>,
    /// The OTLP trace sink, when on.
    pub otlp: Option<OtlpSummary>,
    /// The gen_ai metrics endpoint (credentials masked), when metrics are exported.
    pub metrics_endpoint: Option<String>,
    /// The sampler by its `OTEL_TRACES_SAMPLER` name, with the ratio when it has one.
    pub sampler: String,
}

/// The JSONL sink's file and rotation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JsonlSummary {
    /// The live file.
    pub path: PathBuf,
    /// Rotation size; `None` never rotates.
    pub max_bytes: Option<u64>,
    /// Rotated files kept.
    pub keep_files: usize,
}

/// The OTLP sink's endpoint and protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OtlpSummary {
    /// The endpoint, credentials masked.
    pub endpoint: String,
    /// `grpc`, `http/protobuf` or `http/json`.
    pub protocol: OtlpProtocol,
}

impl PipelineSummary {
    /// Whether no span goes anywhere (both sinks off).
    pub fn records_nothing(&self) -> bool {
        self.jsonl.is_none() && self.otlp.is_none()
    }
}

/// `OTEL_TRACES_SAMPLER` spelling of a sampler choice.
pub(crate) fn sampler_name(sampler: SamplerChoice) -> String {
    match sampler {
        SamplerChoice::AlwaysOn => "always_on".to_owned(),
        SamplerChoice::AlwaysOff => "always_off".to_owned(),
        SamplerChoice::TraceIdRatio(r) => format!("traceidratio {r}"),
        SamplerChoice::ParentBasedAlwaysOn => "parentbased_always_on".to_owned(),
        SamplerChoice::ParentBasedAlwaysOff => "parentbased_always_off".to_owned(),
        SamplerChoice::ParentBasedTraceIdRatio(r) => format!("parentbased_traceidratio {r}"),
    }
}

pub(crate) fn masked(endpoint: &str) -> String {
    mask_userinfo(endpoint).into_owned()
}

impl fmt::Display for JsonlSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        match self.max_bytes {
            Some(max) => write!(
                f,
                " (rotates at {}, keeps {} old file{})",
                human_bytes(max),
                self.keep_files,
                if self.keep_files == 1 { "" } else { "s" }
            ),
            None => write!(f, " (never rotated)"),
        }
    }
}

impl fmt::Display for OtlpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.endpoint, self.protocol)
    }
}

/// `104857600` → `100 MiB`; sizes that are not a whole number of KiB/MiB/GiB stay in bytes.
fn human_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_a_banner_needs() {
        let jsonl = JsonlSummary {
            path: PathBuf::from(".llmtap/traces.jsonl"),
            max_bytes: Some(100 << 20),
            keep_files: 5,
        };
        assert_eq!(
            jsonl.to_string(),
            ".llmtap/traces.jsonl (rotates at 100 MiB, keeps 5 old files)"
        );
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(
            sampler_name(SamplerChoice::ParentBasedTraceIdRatio(0.25)),
            "parentbased_traceidratio 0.25"
        );
        assert_eq!(
            masked("https://u:p@otlp.example.com/v1/traces"),
            "https://***@otlp.example.com/v1/traces"
        );
    }

    /// The summary is what was built: `OTEL_SDK_DISABLED` removes the file it would have named,
    /// and an OTLP endpoint shows with its protocol and no credentials.
    #[test]
    fn summary_follows_the_built_sinks() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.jsonl");
        let build = |env: &[(&str, &str)]| -> anyhow::Result<crate::Pipeline> {
            let env: std::collections::HashMap<&str, &str> = env.iter().copied().collect();
            Ok(crate::Pipeline::builder()
                .jsonl(Some(
                    crate::JsonlConfig::new(&path).with_rotation(Some(4096), 2),
                ))
                .from_env(&env)?
                .build()?)
        };
        let off = build(&[("OTEL_SDK_DISABLED", "true")])?;
        assert!(off.summary().sdk_disabled);
        assert!(off.summary().records_nothing());
        assert!(!path.exists(), "no file opened");
        off.shutdown(std::time::Duration::from_secs(1));

        let on = build(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://bob:pw@127.0.0.1:9"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ])?;
        let summary = on.summary().clone();
        on.shutdown(std::time::Duration::from_secs(1));
        assert_eq!(
            summary.jsonl,
            Some(JsonlSummary {
                path: path.clone(),
                max_bytes: Some(4096),
                keep_files: 2
            })
        );
        assert_eq!(
            summary.otlp,
            Some(OtlpSummary {
                endpoint: "http://***@127.0.0.1:9/v1/traces".to_owned(),
                protocol: OtlpProtocol::HttpJson
            })
        );
        assert_eq!(summary.metrics_endpoint, None);
        assert_eq!(summary.sampler, "always_on");
        Ok(())
    }
}
