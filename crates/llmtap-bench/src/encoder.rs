//! The encoder measurement behind docs/adr/0013-a-direct-otlp-json-encoder.md: one batch of
//! llmtap-shaped spans encoded by the exporter's direct OTLP/JSON encoder and by the proto path
//! it replaced (`opentelemetry-proto` transform + `serde_json`), alternating, best of N rounds
//! each. Run by hand, in release: `cargo run --release --locked -p llmtap-bench -- encoder`.

use std::time::Instant;

use llmtap_export::bench_shapes::{encode_direct, llmtap_resource, llmtap_span_shapes, proto_line};
use opentelemetry_sdk::trace::SpanData;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct EncoderResult {
    pub(crate) spans_per_batch: usize,
    pub(crate) rounds: u32,
    pub(crate) batches_per_round: u32,
    /// Best round, direct encoder.
    pub(crate) direct_ns_per_span: f64,
    /// Best round, proto path.
    pub(crate) proto_ns_per_span: f64,
    /// `proto_ns_per_span / direct_ns_per_span`.
    pub(crate) ratio: f64,
    pub(crate) direct_bytes_per_span: usize,
    pub(crate) proto_bytes_per_span: usize,
    /// The two lines are byte-identical (the unit tests assert it; checked here on the batch).
    pub(crate) identical: bool,
}

/// `spans` spans cycling through the llmtap span shapes, `reps` batches per round, `rounds`
/// rounds of each path alternating; the best (lowest) round of each is reported.
pub(crate) fn encoder(spans: usize, rounds: u32, reps: u32) -> anyhow::Result<EncoderResult> {
    anyhow::ensure!(
        spans > 0 && rounds > 0 && reps > 0,
        "spans, rounds and reps must be > 0"
    );
    let batch: Vec<SpanData> = llmtap_span_shapes()
        .into_iter()
        .cycle()
        .take(spans)
        .collect();
    let resource = llmtap_resource();
    let per_round = reps as f64 * spans as f64;
    let (mut direct, mut proto) = (f64::MAX, f64::MAX);
    let mut out = Vec::new();
    let mut line = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..reps {
            out.clear();
            encode_direct(&batch, &resource, &mut out);
        }
        direct = direct.min(start.elapsed().as_nanos() as f64 / per_round);
        // The SDK hands the exporter an owned batch: clone outside the clock.
        let owned: Vec<Vec<SpanData>> = (0..reps).map(|_| batch.clone()).collect();
        let start = Instant::now();
        for batch in owned {
            // What the exporter did before: build the proto structs, then serialise them.
            line = proto_line(batch, &resource);
        }
        proto = proto.min(start.elapsed().as_nanos() as f64 / per_round);
    }
    Ok(EncoderResult {
        spans_per_batch: spans,
        rounds,
        batches_per_round: reps,
        direct_ns_per_span: direct,
        proto_ns_per_span: proto,
        ratio: proto / direct,
        direct_bytes_per_span: out.len() / spans,
        proto_bytes_per_span: line.len() / spans,
        identical: out == line,
    })
}
