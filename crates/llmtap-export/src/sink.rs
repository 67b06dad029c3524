//! One sink = one exporter behind one `BatchSpanProcessor`, wrapped so every span is accounted
//! for: `written + failed + dropped + queued` equals the spans handed to the sink.
//!
//! How "dropped" is measured: the SDK's `BatchSpanProcessor` counts queue-full drops in a
//! private field and only logs it. So [`SinkProcessor`] admits a span only while fewer than
//! `max_queue_size` spans are in flight (accepted but not yet handed to the exporter), and
//! counts the rest as dropped itself. The in-flight count is decremented by
//! [`CountingExporter`] when a batch reaches the exporter, i.e. after it has left the
//! processor's channel, so the channel (sized `max_queue_size`) can never be full and the
//! SDK never drops a span we did not count. Spans ended after shutdown are dropped too.
//!
//! Sampling: a sink that forwards only sampled spans (OTLP, and the JSONL file with
//! `LLMTAP_JSONL_SAMPLED=true`) passes over spans whose sampled flag is off and counts them as
//! `sampled_out`; those spans reach the processors at all only because the pipeline records
//! sampled-out calls for the file (see `pipeline`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};

use crate::config::BatchSettings;

/// Live counters of one sink, shared between its processor and its exporter.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Spans the exporter reported as written/sent.
    pub written: AtomicU64,
    /// Spans refused before export: queue full, or ended after shutdown.
    pub dropped: AtomicU64,
    /// Spans in batches the exporter failed (dead collector, full disk, …).
    pub failed: AtomicU64,
    /// Spans this sink passed over because the sampler did not sample them.
    pub sampled_out: AtomicU64,
    in_flight: AtomicUsize,
}

/// A point-in-time copy of [`SinkStats`], for `/healthz` and the shutdown report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkSnapshot {
    /// Spans written/sent.
    pub written: u64,
    /// Spans refused (queue full or after shutdown).
    pub dropped: u64,
    /// Spans in failed exports.
    pub failed: u64,
    /// Spans accepted but not yet exported. After a shutdown that timed out, these are lost.
    pub queued: u64,
    /// Spans not forwarded because the sampler left them out (not a loss: by design).
    pub sampled_out: u64,
}

impl SinkStats {
    /// Reads all counters.
    pub fn snapshot(&self) -> SinkSnapshot {
        SinkSnapshot {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            queued: self.in_flight.load(Ordering::Relaxed) as u64,
            sampled_out: self.sampled_out.load(Ordering::Relaxed),
        }
    }

    fn leave_queue(&self, n: usize) {
        // Saturating: an exporter used outside a SinkProcessor never entered the queue.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

/// Wraps an exporter to count written and failed spans, logging the first failure only.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    stats: Arc<SinkStats>,
    sink_name: &'static str,
    failure_logged: AtomicBool,
}

impl<E> CountingExporter<E> {
    /// Counts into `stats`; `sink_name` (`jsonl`, `otlp`) labels the log line.
    pub(crate) fn new(inner: E, stats: Arc<SinkStats>, sink_name: &'static str) -> Self {
        Self {
            inner,
            stats,
            sink_name,
            failure_logged: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.stats.leave_queue(n);
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed.fetch_add(n as u64, Ordering::Relaxed);
                if !self.failure_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        sink = self.sink_name,
                        spans = n,
                        error = %e,
                        "span export failed; further failures are counted, not logged"
                    );
                }
            }
        }
        result
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

/// The batch processor of one sink plus admission control and an idempotent shutdown.
#[derive(Debug)]
pub(crate) struct SinkProcessor {
    name: &'static str,
    batch: BatchSpanProcessor,
    stats: Arc<SinkStats>,
    max_queue_size: usize,
    /// Forward only spans whose sampled flag is set.
    sampled_only: bool,
    shut_down: AtomicBool,
    drop_logged: AtomicBool,
}

impl SinkProcessor {
    /// Wraps `exporter` (resource already set on it) in a counting exporter and a batch
    /// processor with `settings`. With `sampled_only`, spans the sampler did not sample are
    /// passed over (and counted as `sampled_out`).
    pub(crate) fn new<E>(
        name: &'static str,
        exporter: E,
        settings: BatchSettings,
        sampled_only: bool,
    ) -> Arc<Self>
    where
        E: SpanExporter + 'static,
    {
        let stats = Arc::new(SinkStats::default());
        let max_queue_size = settings.max_queue_size.max(1);
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(max_queue_size)
            .with_max_export_batch_size(settings.max_export_batch_size.clamp(1, max_queue_size))
            .with_scheduled_delay(settings.scheduled_delay)
            .build();
        let batch =
            BatchSpanProcessor::new(CountingExporter::new(exporter, stats.clone(), name), config);
        Arc::new(Self {
            name,
            batch,
            stats,
            max_queue_size,
            sampled_only,
            shut_down: AtomicBool::new(false),
            drop_logged: AtomicBool::new(false),
        })
    }

    /// This sink's counters.
    pub(crate) fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }

    /// Flushes queued spans (bounded by the SDK's 5 s flush timeout).
    pub(crate) fn force_flush(&self) -> OTelSdkResult {
        self.batch.force_flush()
    }

    /// Flushes and stops the sink. Only the first call does the work; later calls return
    /// `AlreadyShutdown` at once.
    pub(crate) fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.batch.shutdown_with_timeout(timeout)
    }

    fn on_end(&self, span: SpanData) {
        if self.sampled_only && !span.span_context.is_sampled() {
            self.stats.sampled_out.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.shut_down.load(Ordering::Acquire) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let previous = self.stats.in_flight.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max_queue_size {
            self.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.drop_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    sink = self.name,
                    max_queue_size = self.max_queue_size,
                    "span queue full, dropping spans; the total is reported at shutdown"
                );
            }
            return;
        }
        self.batch.on_end(span);
    }
}

/// The handle registered with the `SdkTracerProvider`; the pipeline keeps another `Arc` to
/// the same [`SinkProcessor`] so it can shut sinks down in parallel and read their stats.
#[derive(Debug)]
pub(crate) struct SharedSink(pub Arc<SinkProcessor>);

impl SpanProcessor for SharedSink {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    /// No-op: the pipeline sets the resource on the exporter before the processor exists
    /// (the `Arc` gives no `&mut` access to the inner processor).
    fn set_resource(&mut self, _resource: &Resource) {}
}
