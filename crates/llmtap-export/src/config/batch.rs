//! Batch span processor settings (`OTEL_BSP_*`).

use std::time::Duration;

use llmtap_core::env::EnvSource;

use super::*;

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
