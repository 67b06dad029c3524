//! `llmtap demo` in-process with `OTEL_EXPORTER_OTLP_ENDPOINT` set: the same spans it writes to
//! JSONL reach the collector, with the same parent links.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use llmtap_tests::{FakeCollector, RecordedSpan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_spans_reach_the_collector_too() -> Result<()> {
    let collector = FakeCollector::start().await;
    let dir = tempfile::tempdir()?;
    let jsonl = dir.path().join("demo.jsonl");
    let env: HashMap<String, String> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let outcome = llmtap_cli::demo::run_demo(&jsonl, &env).await?;
    assert_eq!(outcome.calls, 7);
    let otlp = outcome.report.telemetry.otlp.expect("OTLP sink configured");
    assert_eq!(otlp.written, 7);
    assert_eq!(otlp.failed + otlp.dropped, 0);

    let from_file = llmtap_tests::jsonl::read_spans(&jsonl)?;
    let received = collector.wait_for_spans(7, Duration::from_secs(10)).await?;
    let links = |spans: &[RecordedSpan]| {
        let mut v: Vec<(String, Option<String>)> = spans
            .iter()
            .map(|s| (s.span_id(), s.parent_span_id()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(links(&from_file), links(&received));
    assert_eq!(outcome.trees.len(), 1);
    assert_eq!(outcome.trees[0].span_count, 7);
    Ok(())
}
