//! Exporter throughput (spans/s written to JSONL) and SDK span start+end cost. Run pinned to one
//! core by the orchestrator.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct ExporterResult {
    pub(crate) spans: usize,
    pub(crate) batch: usize,
    pub(crate) seconds: f64,
    pub(crate) spans_per_sec: f64,
    pub(crate) bytes_per_span: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct SdkResult {
    pub(crate) api: &'static str,
    pub(crate) iterations: usize,
    pub(crate) ns_per_span: f64,
    pub(crate) spans_written: u64,
    pub(crate) spans_dropped: u64,
}

/// A span shaped like one proxy call with content capture on (about 1.3 KB of JSON per span).
fn span(i: u64, scope: &InstrumentationScope) -> SpanData {
    let now = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(i) + 1),
            SpanId::from(i + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: "chat gpt-4o-mini".into(),
        start_time: now - Duration::from_millis(350),
        end_time: now,
        attributes: vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
            KeyValue::new("server.address", "api.openai.com"),
            KeyValue::new("server.port", 443_i64),
            KeyValue::new("gen_ai.request.temperature", 0.2),
            KeyValue::new("gen_ai.request.max_tokens", 64_i64),
            KeyValue::new("gen_ai.request.stream", true),
            KeyValue::new("gen_ai.response.id", "chatcmpl-AbCdEf0123456789"),
            KeyValue::new("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            KeyValue::new(
                "gen_ai.response.finish_reasons",
                opentelemetry::Value::Array(vec![opentelemetry::StringValue::from("stop")].into()),
            ),
            KeyValue::new("gen_ai.usage.input_tokens", 24_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 22_i64),
            KeyValue::new("gen_ai.response.time_to_first_chunk", 0.21),
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"Summarise the benefits of OpenTelemetry for LLM applications in one sentence."}]}]"#,
            ),
            KeyValue::new(
                "gen_ai.system_instructions",
                r#"[{"type":"text","content":"You are a concise assistant."}]"#,
            ),
            KeyValue::new(
                "gen_ai.output.messages",
                r#"[{"role":"assistant","parts":[{"type":"text","content":"The quick brown fox jumps over the lazy dog. This is a fixed benchmark answer of a typical short length."}],"finish_reason":"stop"}]"#,
            ),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

/// Calls `JsonlSpanExporter::export` with batches of `batch` spans; only export time is counted.
pub(crate) async fn exporter(
    dir: &Path,
    spans: usize,
    batch: usize,
) -> anyhow::Result<ExporterResult> {
    let path = dir.join("exporter.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut config = llmtap_export::JsonlConfig::new(&path);
    config.max_bytes = None;
    let exporter = llmtap_export::JsonlSpanExporter::new(&config)?;
    let scope = InstrumentationScope::builder("llmtap-proxy").build();
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < spans {
        let n = batch.min(spans - done);
        let data: Vec<SpanData> = (0..n).map(|i| span((done + i) as u64, &scope)).collect();
        let t = Instant::now();
        exporter
            .export(data)
            .await
            .map_err(|e| anyhow::anyhow!("export: {e}"))?;
        spent += t.elapsed();
        done += n;
    }
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&path);
    Ok(ExporterResult {
        spans,
        batch,
        seconds: spent.as_secs_f64(),
        spans_per_sec: spans as f64 / spent.as_secs_f64(),
        bytes_per_span: bytes as f64 / spans as f64,
    })
}

/// `llmtap_sdk` tool span start+end with a JSONL sink; the batch queue is flushed (untimed) every
/// 1,000 spans so no span is dropped, i.e. the timed path is the real one, not the "queue full" one.
pub(crate) fn sdk(dir: &Path, iterations: usize) -> anyhow::Result<SdkResult> {
    let path = dir.join("sdk.jsonl");
    let _ = std::fs::remove_file(&path);
    let guard = llmtap_sdk::Builder::new()
        .jsonl(Some(&path))
        .service_name("llmtap-bench")
        .build()?;
    let telemetry = guard.telemetry();
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < iterations {
        let n = 1000.min(iterations - done);
        let t = Instant::now();
        for _ in 0..n {
            let span = telemetry.tool("lookup").call_id("call_1").start();
            span.end();
        }
        spent += t.elapsed();
        done += n;
        telemetry.force_flush(Duration::from_secs(5));
    }
    let stats = guard.shutdown_blocking();
    let _ = std::fs::remove_file(&path);
    let (written, dropped) = stats.jsonl.map_or((0, 0), |s| (s.written, s.dropped));
    Ok(SdkResult {
        api: "llmtap_sdk::Telemetry::tool(..).call_id(..).start().end()",
        iterations,
        ns_per_span: spent.as_nanos() as f64 / iterations as f64,
        spans_written: written,
        spans_dropped: dropped,
    })
}
