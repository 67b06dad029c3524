//! The resource every span carries (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).

use llmtap_core::env::EnvSource;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use super::*;

/// `OTEL_RESOURCE_ATTRIBUTES` parsed, or empty (and reported) when malformed.
pub(crate) fn resource_attributes<E: EnvSource + ?Sized>(
    env: &OtelEnv<'_, E>,
) -> Vec<(String, String)> {
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
pub(crate) fn build_resource(
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
