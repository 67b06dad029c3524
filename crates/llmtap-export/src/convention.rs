//! One GenAI convention per output: spans are built with the v1.41 names, and under
//! `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` every sink's exporter renames them
//! to the GenAI repository's names ([`Convention::rename`]) before writing. The rename runs on
//! the sink's export thread, never on the thread that ended the span, and not at all by default.

use std::time::Duration;

use llmtap_core::semconv::{self, Convention};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Rewrites `attributes` (v1.41 names) into `convention`'s names and types, in place.
pub(crate) fn apply(convention: Convention, attributes: &mut [KeyValue]) {
    if convention == Convention::V1_41 {
        return;
    }
    for kv in attributes.iter_mut() {
        if let Some(to) = convention.rename(kv.key.as_str()) {
            *kv = KeyValue::new(to, kv.value.clone());
        } else if kv.key.as_str() == semconv::GEN_AI_REQUEST_TOP_K
            && convention.top_k_is_int()
            && let Value::F64(k) = kv.value
        {
            // Counts sent as JSON integers: the cast is exact for every value a request holds.
            kv.value = Value::I64(k as i64);
        }
    }
}

/// An exporter that hands spans on in `convention`'s names.
#[derive(Debug)]
pub(crate) struct ConventionExporter<E> {
    inner: E,
    convention: Convention,
}

impl<E> ConventionExporter<E> {
    pub(crate) fn new(inner: E, convention: Convention) -> Self {
        Self { inner, convention }
    }
}

impl<E: SpanExporter> SpanExporter for ConventionExporter<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        if self.convention != Convention::V1_41 {
            for span in &mut batch {
                apply(self.convention, &mut span.attributes);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Vec<KeyValue> {
        vec![
            KeyValue::new(semconv::GEN_AI_USAGE_INPUT_TOKENS, 10_i64),
            KeyValue::new(semconv::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 7_i64),
            KeyValue::new(semconv::GEN_AI_REQUEST_TOP_K, 40.0),
            KeyValue::new(semconv::LLMTAP_REQUEST_REASONING_LEVEL, "high"),
            KeyValue::new(semconv::LLMTAP_REQUEST_PREVIOUS_RESPONSE_ID, "resp_1"),
            KeyValue::new(
                semconv::LLMTAP_USAGE_TOTAL_CACHE_CREATION_INPUT_TOKENS,
                9_i64,
            ),
        ]
    }

    #[test]
    fn default_leaves_everything_as_built() {
        let mut a = attrs();
        apply(Convention::V1_41, &mut a);
        assert_eq!(a, attrs());
    }

    #[test]
    fn latest_renames_every_difference_and_makes_top_k_an_int() {
        let mut a = attrs();
        apply(Convention::GenAiLatest, &mut a);
        assert_eq!(
            a,
            vec![
                KeyValue::new("gen_ai.usage.input_tokens", 10_i64),
                KeyValue::new("gen_ai.usage.cache_write.input_tokens", 7_i64),
                KeyValue::new("gen_ai.request.top_k", 40_i64),
                KeyValue::new("gen_ai.request.reasoning.level", "high"),
                KeyValue::new("gen_ai.request.previous_response.id", "resp_1"),
                KeyValue::new("llmtap.usage.total.cache_write.input_tokens", 9_i64),
            ]
        );
    }
}
